/**
 * The valid operations of a set-uid-root print spooler client (lpr, lprm),
 * in the spirit of the paper's Figure 3 (section 3.1; docs/wrappers.md,
 * "lpr" and "lprm"). Shared by wrappers/lpr and wrappers/lprm, which differ
 * in their name (alert prefix) and in whether they may chmod/chown.
 *
 *  (a) open for reading: the invoker (the real uid at the process's first
 *      call, the paper's _uid) could read the file by its mode bits, or it
 *      is the spool directory or a file in it. pre: wr_stat the path, deny
 *      EACCES; post: wr_fstat the new fd, kill (the file changed between).
 *  (b) open for writing (O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, creat),
 *      unlink, rename, link, symlink, mkdir, rmdir, truncate: only in the
 *      spool directory (the path's parent directory has the spool's nodeid).
 *      pre: deny EACCES; post of an open for writing: the fd must be a
 *      regular file on the spool's device, else kill.
 *  (c) chmod, chown (all forms): only of files in the spool (fchmod/fchown:
 *      of an fd this process opened in the spool); lprm: never.
 *  (d) execve, execveat: never.
 *  (e) connect: only to the setting `printer` (if any) or glibc's name
 *      service cache socket (nscd, which getpwuid tries first).
 *
 * Every violation is a critical alert (severity 4) naming it; pre
 * violations fail with EACCES (the paper's WR_D_BADPERM).
 */
import {
  alert,
  allow,
  declareSyscall,
  DENY,
  deny,
  EACCES,
  Event,
  kill,
  POST,
  PRE,
  setting,
  SEVERITY_CRITICAL,
  SYS_chmod,
  SYS_chown,
  SYS_connect,
  SYS_creat,
  SYS_execve,
  SYS_execveat,
  SYS_fchmod,
  SYS_fchmodat,
  SYS_fchown,
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
  wrFstat,
  WrStat,
  wrStat,
} from "../sdk/index";

const AT_FDCWD: i64 = -100;
/** glibc's nscd sockets: getpwuid tries them before reading /etc/passwd. */
const NSCD = ["unix:/var/run/nscd/socket", "unix:/run/nscd/socket"];

const PENDING_NONE: i32 = 0;
const PENDING_SPOOL: i32 = 1; // an open in the spool
const PENDING_READ: i32 = 2; // an open for reading outside the spool
const PENDING_WRITE_SPOOL: i32 = 3; // an open for writing in the spool

let name = "lpr";
let modesAllowed = true;
let spool = "";
let printer: string | null = null;
/** The spool's nodeid ("" until resolved or if it does not exist) and device. */
let spoolId = "";
let spoolDev: u64 = 0;
let resolved = false;
/** The invoker: the real uid and gid at the first call (set-uid keeps them). */
let invokerUid: i32 = -1;
let invokerGid: i32 = -1;
/** nodeids of the files this process opened in the spool. */
const spoolFiles = new Set<string>();
/** Per thread, between an open's pre and post. */
const pending = new Map<i32, i32>();

export function declareSpec(): void {
  declareSyscall(SYS_open, PRE | POST | DENY);
  declareSyscall(SYS_openat, PRE | POST | DENY);
  declareSyscall(SYS_openat2, PRE | POST | DENY);
  declareSyscall(SYS_creat, PRE | POST | DENY);
  const pre = [
    SYS_unlink,
    SYS_unlinkat,
    SYS_rename,
    SYS_renameat,
    SYS_renameat2,
    SYS_link,
    SYS_linkat,
    SYS_symlink,
    SYS_symlinkat,
    SYS_mkdir,
    SYS_mkdirat,
    SYS_rmdir,
    SYS_truncate,
    SYS_chmod,
    SYS_fchmodat,
    SYS_fchmod,
    SYS_chown,
    SYS_lchown,
    SYS_fchownat,
    SYS_fchown,
    SYS_execve,
    SYS_execveat,
    SYS_connect,
  ];
  for (let i = 0; i < pre.length; i++) declareSyscall(pre[i], PRE | DENY);
}

/** Reads the settings; 0, or 1 to refuse (no `spool`). */
export function initSpec(wrapperName: string, mayChangeModes: bool): i32 {
  name = wrapperName;
  modesAllowed = mayChangeModes;
  const s = setting("spool");
  if (s === null || s.length == 0) return 1;
  spool = s;
  printer = setting("printer");
  return 0;
}

function resolve(): void {
  if (invokerUid < 0) {
    invokerUid = Event.uid();
    invokerGid = Event.gid();
  }
  if (resolved) return;
  resolved = true;
  const s = wrStat(spool);
  if (s !== null && s.isDir()) {
    spoolId = s.nodeId();
    spoolDev = s.dev;
  }
}

function violation(message: string): void {
  alert(SEVERITY_CRITICAL, name + ": " + message);
}

function callName(): string {
  const n = Event.syscallName();
  return n === null ? "call" : n;
}

function describe(s: WrStat): string {
  return "mode 0" + (s.mode & 0o7777).toString(8) + ", owner uid " + s.uid.toString() + ", group " +
    s.gid.toString();
}

/** Whether the invoker could read the file, by its owner, group and mode bits. */
function invokerMayRead(s: WrStat): bool {
  if (invokerUid == 0) return true;
  if (s.uid == <u32>invokerUid) return (s.mode & 0o400) != 0;
  if (s.gid == <u32>invokerGid) return (s.mode & 0o040) != 0;
  return (s.mode & 0o004) != 0;
}

/**
 * The nodeid of the directory a path names its last component in, as the
 * call resolves it (dirfd: the call's directory fd, AT_FDCWD for calls
 * without one); null when it cannot be told or the last component is not
 * a plain name.
 */
function parentOf(path: string, dirfd: i64): string | null {
  let base = path;
  let dir = "";
  const slash = path.lastIndexOf("/");
  if (slash >= 0) {
    base = path.substring(slash + 1);
    dir = slash == 0 ? "/" : path.substring(0, slash);
  }
  if (base.length == 0 || base == "." || base == "..") return null;
  let s: WrStat | null;
  if (dir.length > 0 && (dir.startsWith("/") || dirfd == AT_FDCWD)) {
    s = wrStat(dir);
  } else if (dir.length == 0) {
    s = dirfd == AT_FDCWD ? wrStat(".") : wrFstat(<i32>dirfd);
  } else {
    return null; // a relative path with directories, from another dirfd
  }
  return s === null ? null : s.nodeId();
}

function inSpool(path: string | null, dirfd: i64): bool {
  if (path === null || spoolId.length == 0) return false;
  const p = parentOf(path, dirfd);
  return p !== null && p == spoolId;
}

class Flags {
  tokens: string[];
  constructor(text: string | null) {
    this.tokens = text === null ? new Array<string>(0) : text.split("|");
  }
  has(flag: string): bool {
    return this.tokens.includes(flag);
  }
}

function openDirfd(nr: i32): i64 {
  return nr == SYS_openat || nr == SYS_openat2 ? Event.arg(0) : AT_FDCWD;
}

function onOpenPre(nr: i32): i32 {
  const tid = Event.tid();
  pending.set(tid, PENDING_NONE);
  const flags = new Flags(Event.flagsText());
  const path = Event.path();
  const shown = path === null ? "?" : path;
  const dirfd = openDirfd(nr);
  const writing = nr == SYS_creat || flags.has("O_WRONLY") || flags.has("O_RDWR") || flags.has("O_CREAT") ||
    flags.has("O_TRUNC");
  const spooled = inSpool(path, dirfd);
  if (writing) {
    if (!spooled) {
      const text = Event.flagsText();
      violation("open for writing of " + shown + " (" + (text === null ? "?" : text) + ") outside the spool " + spool);
      return deny(EACCES);
    }
    pending.set(tid, PENDING_WRITE_SPOOL);
    return allow();
  }
  if (flags.has("O_PATH")) return allow();
  if (spooled) {
    pending.set(tid, PENDING_SPOOL);
    return allow();
  }
  pending.set(tid, PENDING_READ);
  // A path the wrapper can stat as the call will resolve it: from the cwd.
  if (path === null || (!path.startsWith("/") && dirfd != AT_FDCWD)) return allow();
  const s = wrStat(path);
  if (s === null) return allow(); // the open will fail, or the post check decides
  if (invokerMayRead(s) || s.nodeId() == spoolId) return allow();
  violation(
    "open-read of " + shown + " (" + describe(s) + "): the invoker (uid " + invokerUid.toString() +
      ") may not read it",
  );
  return deny(EACCES);
}

function onOpenPost(): i32 {
  const tid = Event.tid();
  const what = pending.has(tid) ? pending.get(tid) : PENDING_NONE;
  pending.delete(tid);
  const fd = Event.result();
  if (fd < 0 || what == PENDING_NONE) return allow();
  const s = wrFstat(<i32>fd);
  if (s === null) return allow();
  const path = Event.path();
  const shown = path === null ? "fd " + fd.toString() : path;
  if (what == PENDING_WRITE_SPOOL) {
    if (s.dev != spoolDev || !s.isRegular()) {
      violation("open for writing of " + shown + " reached a file outside the spool (" + describe(s) + ")");
      return kill();
    }
    spoolFiles.add(s.nodeId());
    return allow();
  }
  if (what == PENDING_SPOOL) {
    if (s.dev == spoolDev) spoolFiles.add(s.nodeId());
    return allow();
  }
  if (invokerMayRead(s) || s.nodeId() == spoolId || spoolFiles.has(s.nodeId())) return allow();
  violation(
    "open-read of " + shown + " (" + describe(s) + "): the invoker (uid " + invokerUid.toString() +
      ") may not read it (it changed after the check)",
  );
  return kill();
}

/** unlink, rename, link, symlink, mkdir, rmdir, truncate: every path it changes must be in the spool. */
function onModify(nr: i32): i32 {
  let path: string | null = Event.path();
  let dirfd: i64 = AT_FDCWD;
  let second: string | null = null;
  let secondDirfd: i64 = AT_FDCWD;
  if (nr == SYS_unlinkat || nr == SYS_mkdirat) dirfd = Event.arg(0);
  if (nr == SYS_rename || nr == SYS_link) second = Event.path2();
  if (nr == SYS_renameat || nr == SYS_renameat2 || nr == SYS_linkat) {
    dirfd = Event.arg(0);
    second = Event.path2();
    secondDirfd = Event.arg(2);
  }
  if (nr == SYS_link || nr == SYS_linkat) {
    // The source is only read; the new name is what changes.
    path = second;
    dirfd = secondDirfd;
    second = null;
  }
  if (nr == SYS_symlink || nr == SYS_symlinkat) {
    path = Event.path2(); // the link's name; the target is just text
    dirfd = nr == SYS_symlinkat ? Event.arg(1) : AT_FDCWD;
  }
  const ok = inSpool(path, dirfd) && (second === null || inSpool(second, secondDirfd));
  if (ok) return allow();
  const shown = (path === null ? "?" : path) + (second === null ? "" : " -> " + second);
  violation(callName() + " of " + shown + " outside the spool " + spool);
  return deny(EACCES);
}

/** chmod and chown: of files in the spool only (lprm: never). */
function onModeChange(nr: i32): i32 {
  const call = callName();
  if (!modesAllowed) {
    const p = Event.path();
    violation(
      call + " of " + (p === null ? "fd " + Event.arg(0).toString() : p) + ": " + name +
        " never changes modes or owners",
    );
    return deny(EACCES);
  }
  if (nr == SYS_fchmod || nr == SYS_fchown) {
    const fd = <i32>Event.arg(0);
    const s = wrFstat(fd);
    if (s !== null && spoolFiles.has(s.nodeId())) return allow();
    violation(
      call + " of fd " + fd.toString() + (s === null ? "" : " (" + describe(s) + ")") +
        ", which is not a file this process opened in the spool " + spool,
    );
    return deny(EACCES);
  }
  const path = Event.path();
  const dirfd = nr == SYS_fchmodat || nr == SYS_fchownat ? Event.arg(0) : AT_FDCWD;
  if (inSpool(path, dirfd)) {
    // chmod and chown follow a symbolic link: its target must be a file on the spool's device.
    const s = path !== null && (path.startsWith("/") || dirfd == AT_FDCWD) ? wrStat(path) : null;
    if (s === null || (s.dev == spoolDev && s.isRegular())) return allow();
  }
  violation(call + " of " + (path === null ? "?" : path) + " outside the spool " + spool);
  return deny(EACCES);
}

function onExec(): i32 {
  const path = Event.path();
  violation(callName() + " of " + (path === null ? "?" : path) + ": " + name + " never executes programs");
  return deny(EACCES); // WR_D_BADPERM
}

function onConnect(): i32 {
  const addr = Event.addr();
  if (addr !== null) {
    if (printer !== null && addr == printer!) return allow();
    if (NSCD.includes(addr)) return allow();
  }
  violation(
    "connect to " + (addr === null ? "?" : addr) + ": not the printer" +
      (printer === null ? " (none configured)" : " " + printer!),
  );
  return deny(EACCES);
}

export function onSyscallSpec(): i32 {
  resolve();
  const nr = Event.syscall();
  if (nr == SYS_open || nr == SYS_openat || nr == SYS_openat2 || nr == SYS_creat) {
    return Event.isPre() ? onOpenPre(nr) : onOpenPost();
  }
  if (nr == SYS_execve || nr == SYS_execveat) return onExec();
  if (nr == SYS_connect) return onConnect();
  if (
    nr == SYS_chmod || nr == SYS_fchmodat || nr == SYS_fchmod || nr == SYS_chown || nr == SYS_lchown ||
    nr == SYS_fchownat || nr == SYS_fchown
  ) return onModeChange(nr);
  return onModify(nr);
}
