/**
 * A small specification engine shared by the server wrappers (httpd, ftpd,
 * fingerd; docs/wrappers.md): a server's valid operations as lists of
 * directories it may read, directories it may change, ports it may bind,
 * addresses it may connect to and programs it may execute. Each wrapper's
 * index.ts fills a Spec in idwrap_init and hands every call to
 * Spec.onSyscall. Paths are judged lexically, after resolving "." and ".."
 * against the process's working directory and root as this instance saw
 * them change (chdir, chroot); docs/wrappers.md lists what that misses.
 *
 * ftpd and fingerd import it from here (`from "../httpd/spec"`);
 * tools/build_wrappers.ts follows such sibling imports, so a change here
 * rebuilds all three.
 */
import {
  alert,
  allow,
  declareSyscall,
  DENY,
  deny,
  EACCES,
  Event,
  foldPath,
  PRE,
  setting,
  SEVERITY_HIGH,
  SYS_bind,
  SYS_chdir,
  SYS_chmod,
  SYS_chown,
  SYS_chroot,
  SYS_connect,
  SYS_creat,
  SYS_execve,
  SYS_execveat,
  SYS_fchmodat,
  SYS_fchownat,
  SYS_lchown,
  SYS_link,
  SYS_linkat,
  SYS_mkdir,
  SYS_mkdirat,
  SYS_open,
  SYS_openat,
  SYS_openat2,
  SYS_rename,
  SYS_renameat,
  SYS_renameat2,
  SYS_rmdir,
  SYS_symlink,
  SYS_symlinkat,
  SYS_truncate,
  SYS_unlink,
  SYS_unlinkat,
} from "../sdk/index";

const AT_FDCWD: i32 = -100;

/** What a violation does besides the alert. */
export const RESPONSE_ALERT: i32 = 0;
export const RESPONSE_DENY: i32 = 1;

/** Normalises an absolute path: no "//", ".", "..", no trailing "/" (except "/"). */
export function normalize(path: string): string {
  return foldPath(path);
}

/** Whether path (normalised) is dir or inside it (dir normalised). */
export function under(path: string, dir: string): bool {
  if (dir == "/") return true;
  if (path == dir) return true;
  return path.startsWith(dir + "/");
}

/** Whether path is under any of dirs. */
export function underAny(path: string, dirs: string[]): bool {
  for (let i = 0; i < dirs.length; i++) {
    if (under(path, dirs[i])) return true;
  }
  return false;
}

/**
 * Parses a list setting: a JSON list of strings or numbers (["/a", "/b"],
 * [80, 443]) or a comma-separated list ("/a,/b"). Empty entries are dropped.
 */
export function parseList(text: string): string[] {
  let s = text.trim();
  if (s.startsWith("[") && s.endsWith("]")) s = s.substring(1, s.length - 1);
  const raw = s.split(",");
  const out = new Array<string>(0);
  for (let i = 0; i < raw.length; i++) {
    let v = raw[i].trim();
    if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.substring(1, v.length - 1);
    v = v.replaceAll('\\/', "/");
    if (v.length > 0) out.push(v);
  }
  return out;
}

/** A list setting, or def when unset. */
export function listSetting(key: string, def: string[]): string[] {
  const v = setting(key);
  return v === null ? def : parseList(v);
}

/** Normalises every entry of a list of absolute paths (relative entries are dropped). */
export function normalizeAll(paths: string[]): string[] {
  const out = new Array<string>(0);
  for (let i = 0; i < paths.length; i++) {
    if (paths[i].startsWith("/")) out.push(normalize(paths[i]));
  }
  return out;
}

/** The port of an "inet:1.2.3.4:80" or "inet6:[::1]:80" address, or -1. */
export function portOf(addr: string): i32 {
  if (!addr.startsWith("inet")) return -1;
  const colon = addr.lastIndexOf(":");
  if (colon < 0) return -1;
  const digits = addr.substring(colon + 1);
  if (digits.length == 0 || digits.length > 5) return -1;
  let n = 0;
  for (let i = 0; i < digits.length; i++) {
    const c = digits.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return -1;
    n = n * 10 + (c - 0x30);
  }
  return n;
}

/** "inet:127.0.0.1:80" → "127.0.0.1:80"; "unix:/p" stays as is. */
function hostPort(addr: string): string {
  if (addr.startsWith("inet6:")) return addr.substring(6);
  if (addr.startsWith("inet:")) return addr.substring(5);
  return addr;
}

/** Whether an open's flags change the file (write access, create, truncate, append). */
export function writesFile(flags: string | null): bool {
  if (flags === null) return false;
  const t = flags.split("|");
  return t.includes("O_WRONLY") || t.includes("O_RDWR") || t.includes("O_CREAT") || t.includes("O_TRUNC") ||
    t.includes("O_APPEND") || t.includes("O_TMPFILE");
}

/** Whether an open's flags make an O_PATH handle (no data can be read or written through it). */
function pathOnly(flags: string | null): bool {
  return flags !== null && flags.split("|").includes("O_PATH");
}

export class Spec {
  /** The wrapper's name, which prefixes its alerts. */
  name: string;
  /** Directories (or files) the server may read. */
  read: string[] = new Array<string>(0);
  /** Directories (or files) the server may create, change, remove or write (and read). */
  write: string[] = new Array<string>(0);
  /** Directories (or files) whose mode and owner the server may change. */
  chmodDirs: string[] = new Array<string>(0);
  /** Ports the server may bind (any address); an empty list with bindAny false forbids binding. */
  ports: i32[] = new Array<i32>(0);
  /** Inclusive port ranges [lo, hi] also allowed for bind. */
  rangeLo: i32[] = new Array<i32>(0);
  rangeHi: i32[] = new Array<i32>(0);
  /** Addresses the server may connect to: "host:port" (as decoded), or "unix:/path" (a directory prefix). */
  connects: string[] = new Array<string>(0);
  /** Programs the server may execute (exact normalised paths). */
  execs: string[] = new Array<string>(0);
  /** Directories whose programs the server may execute (httpd's CGI directories). */
  execDirs: string[] = new Array<string>(0);
  /** Whether executing the process's own program (its executable) is allowed: a re-exec of itself. */
  execSelf: bool = false;
  /** RESPONSE_ALERT or RESPONSE_DENY, for everything but execve (always denied). */
  response: i32 = RESPONSE_ALERT;
  /** Whether the server may write files at all. */
  mayWrite: bool = true;
  /** Whether the server may bind sockets at all. */
  mayBind: bool = true;
  /** The working directory as this instance knows it (absolute, outside the chroot view), or "" if unknown. */
  cwd: string;
  /** The root directory after chroot, "/" before. */
  root: string = "/";

  constructor(name: string, cwd: string) {
    this.name = name;
    this.cwd = cwd;
  }

  /** Declares every call the engine examines (from idwrap_declare), all in pre with DENY. */
  static declare(): void {
    const calls: i32[] = [
      SYS_open, SYS_openat, SYS_openat2, SYS_creat, SYS_mkdir, SYS_mkdirat, SYS_rmdir, SYS_unlink, SYS_unlinkat,
      SYS_rename, SYS_renameat, SYS_renameat2, SYS_link, SYS_linkat, SYS_symlink, SYS_symlinkat, SYS_truncate,
      SYS_chmod, SYS_fchmodat, SYS_chown, SYS_lchown, SYS_fchownat, SYS_execve, SYS_execveat, SYS_bind,
      SYS_connect, SYS_chdir, SYS_chroot,
    ];
    for (let i = 0; i < calls.length; i++) declareSyscall(calls[i], PRE | DENY);
  }

  /** The response setting ("alert" or "deny"); anything else is alert, with def when unset. */
  static responseSetting(def: i32): i32 {
    const v = setting("response");
    if (v === null) return def;
    return v.trim() == "deny" ? RESPONSE_DENY : RESPONSE_ALERT;
  }

  /**
   * Resolves a path argument to an absolute host path, or null when it
   * cannot be (relative to a directory fd, or to an unknown cwd).
   */
  resolve(path: string, dirfdArg: i32): string | null {
    let view: string;
    if (path.startsWith("/")) {
      view = path;
    } else {
      // The dirfd is an int: compare its low 32 bits (the register may hold it zero-extended).
      if (dirfdArg >= 0 && <i32>Event.arg(dirfdArg) != AT_FDCWD) return null;
      if (this.cwd.length == 0) return null;
      // cwd is a host path; turn it back into the process's view under the root.
      let cwdView = this.cwd;
      if (this.root != "/") cwdView = under(this.cwd, this.root) ? this.cwd.substring(this.root.length) : "/";
      view = cwdView + "/" + path;
    }
    const inView = normalize(view);
    return this.root == "/" ? inView : normalize(this.root + inView);
  }

  violation(message: string): i32 {
    alert(SEVERITY_HIGH, this.name + ": " + message);
    return this.response == RESPONSE_DENY ? deny(EACCES) : allow();
  }

  private unresolved(raw: string): i32 {
    return this.violation(this.callName() + " of " + raw + " relative to a directory it cannot resolve");
  }

  private callName(): string {
    const n = Event.syscallName();
    return n === null ? "syscall " + Event.syscall().toString() : n;
  }

  /** A change (create, remove, rename, link, truncate) of path: only under write dirs. */
  private checkChange(field: i32, dirfdArg: i32): i32 {
    const raw = field == 0 ? Event.path() : Event.path2();
    if (raw === null) return allow();
    const p = this.resolve(raw, dirfdArg);
    if (p === null) return this.unresolved(raw);
    if (!this.mayWrite) return this.violation(this.callName() + " of " + p + ": this server never changes files");
    if (underAny(p, this.write)) return allow();
    return this.violation(this.callName() + " of " + p + ": outside the directories it may change");
  }

  private onOpen(nr: i32): i32 {
    const raw = Event.path();
    if (raw === null) return allow();
    const flags = nr == SYS_creat ? "O_WRONLY|O_CREAT|O_TRUNC" : Event.flagsText();
    const dirfdArg = nr == SYS_open || nr == SYS_creat ? -1 : 0;
    const p = this.resolve(raw, dirfdArg);
    const writing = writesFile(flags);
    if (p === null) {
      return this.violation(
        "open of " + raw + " relative to a directory it cannot resolve (" + (flags === null ? "" : flags) + ")",
      );
    }
    if (writing) {
      if (!this.mayWrite) return this.violation("open for writing of " + p + ": this server never writes files");
      if (underAny(p, this.write)) return allow();
      return this.violation("open for writing of " + p + ": outside the directories it may write");
    }
    if (pathOnly(flags)) return allow();
    if (underAny(p, this.read) || underAny(p, this.write)) return allow();
    return this.violation("open for reading of " + p + ": outside the paths it may read");
  }

  private onChmod(nr: i32): i32 {
    const raw = Event.path();
    if (raw === null) return allow();
    const p = this.resolve(raw, nr == SYS_fchmodat || nr == SYS_fchownat ? 0 : -1);
    if (p === null) return this.unresolved(raw);
    if (underAny(p, this.chmodDirs)) return allow();
    return this.violation(this.callName() + " of " + p + ": outside its own directories");
  }

  private onExec(nr: i32): i32 {
    const raw = Event.path();
    let p: string | null = null;
    if (raw !== null) p = this.resolve(raw, nr == SYS_execveat ? 0 : -1);
    if (p !== null) {
      if (this.execs.includes(p) || underAny(p, this.execDirs)) return allow();
      if (this.execSelf) {
        const exe = Event.exe();
        if (exe !== null && normalize(exe) == p) return allow();
      }
    }
    alert(
      SEVERITY_HIGH,
      this.name + ": " + this.callName() + " of " + (p === null ? (raw === null ? "?" : raw) : p) +
        ": not a program this server may run",
    );
    return deny(EACCES);
  }

  private onBind(): i32 {
    const addr = Event.addr();
    if (addr === null) return allow();
    if (addr.startsWith("unix:")) {
      const path = addr.substring(5);
      if (path.startsWith("/")) {
        const p = this.resolve(path, -1);
        if (p !== null && underAny(p, this.write)) return allow();
      }
      return this.violation("bind to " + addr + ": not a socket in its own directories");
    }
    const port = portOf(addr);
    if (port < 0) return allow(); // netlink and other families: not a listening port
    if (this.mayBind) {
      if (this.ports.includes(port)) return allow();
      for (let i = 0; i < this.rangeLo.length; i++) {
        if (port >= this.rangeLo[i] && port <= this.rangeHi[i]) return allow();
      }
    }
    return this.violation("bind to " + addr + ": port " + port.toString() + " is not one it serves");
  }

  private onConnect(): i32 {
    const addr = Event.addr();
    if (addr === null) return allow();
    if (addr.startsWith("unix:")) {
      const path = addr.substring(5);
      if (path.startsWith("/")) {
        const p = normalize(path);
        for (let i = 0; i < this.connects.length; i++) {
          const c = this.connects[i];
          if (c.startsWith("unix:") && under(p, normalize(c.substring(5)))) return allow();
        }
      } else if (this.connects.includes(addr)) {
        return allow();
      }
      return this.violation("connect to " + addr + ": not an allowed upstream");
    }
    if (!addr.startsWith("inet")) return allow(); // AF_UNSPEC (disconnect), netlink
    const hp = hostPort(addr);
    if (this.connects.includes("*") || this.connects.includes(hp) || this.connects.includes(addr)) return allow();
    return this.violation("connect to " + addr + ": not an allowed upstream");
  }

  private onChdir(nr: i32): i32 {
    const raw = Event.path();
    if (raw === null) return allow();
    const p = this.resolve(raw, -1);
    if (nr == SYS_chroot) {
      if (p === null) {
        this.root = "/";
        this.cwd = "";
        return this.violation("chroot to " + raw + ", which it cannot resolve");
      }
      this.root = p;
      return allow();
    }
    // chdir: assumed to succeed (the seccomp source has no post for it).
    this.cwd = p === null ? "" : p;
    return allow();
  }

  /** Judges the current call. */
  onSyscall(): i32 {
    const nr = Event.syscall();
    if (nr == SYS_open || nr == SYS_openat || nr == SYS_openat2 || nr == SYS_creat) return this.onOpen(nr);
    if (nr == SYS_execve || nr == SYS_execveat) return this.onExec(nr);
    if (nr == SYS_bind) return this.onBind();
    if (nr == SYS_connect) return this.onConnect();
    if (nr == SYS_chdir || nr == SYS_chroot) return this.onChdir(nr);
    if (nr == SYS_chmod || nr == SYS_fchmodat || nr == SYS_chown || nr == SYS_lchown || nr == SYS_fchownat) {
      return this.onChmod(nr);
    }
    if (nr == SYS_mkdir || nr == SYS_rmdir || nr == SYS_unlink || nr == SYS_truncate) return this.checkChange(0, -1);
    if (nr == SYS_mkdirat || nr == SYS_unlinkat) return this.checkChange(0, 0);
    if (nr == SYS_rename || nr == SYS_link) {
      const v = this.checkChange(0, -1);
      return v != allow() ? v : this.checkChange(1, -1);
    }
    if (nr == SYS_renameat || nr == SYS_renameat2 || nr == SYS_linkat) {
      const v = this.checkChange(0, 0);
      return v != allow() ? v : this.checkChange(1, 2);
    }
    if (nr == SYS_symlink) return this.checkChange(1, -1);
    if (nr == SYS_symlinkat) return this.checkChange(1, 1);
    return allow();
  }
}

/** A non-negative decimal number, or -1. */
function number(text: string): i32 {
  const s = text.trim();
  if (s.length == 0 || s.length > 9) return -1;
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return -1;
    n = n * 10 + (c - 0x30);
  }
  return n;
}

/** Adds the ports and ranges of a "ports" list ("80", "8000-8100") to spec. Returns false on a bad entry. */
export function addPorts(spec: Spec, entries: string[]): bool {
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    const dash = e.indexOf("-");
    if (dash > 0) {
      const lo = number(e.substring(0, dash));
      const hi = number(e.substring(dash + 1));
      if (lo < 0 || hi < lo) return false;
      spec.rangeLo.push(lo);
      spec.rangeHi.push(hi);
    } else {
      const n = number(e);
      if (n < 0) return false;
      spec.ports.push(n);
    }
  }
  return true;
}
