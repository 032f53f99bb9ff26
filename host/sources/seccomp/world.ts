/**
 * The caller's world, entered by the supervisor's emulation thread: its
 * mount namespace and root (setns + chroot, on this thread only: its
 * fs_struct is unshared), its fsuid, fsgid, groups, effective capabilities
 * and umask. Paths are resolved here to an O_PATH fd of the very object the
 * kernel would act on, whose identity (dev:ino) and canonical path are what
 * rules decide on; emulated calls then act on that fd, never on the string
 * again (docs/seccomp.md, "Paths").
 *
 * @module
 */
import { STAT } from "../../unsafe/layouts.ts";
import { addressOf, errno, libc, SYS } from "../../unsafe/libc.ts";
import { readTaskStatus, type TaskStatus } from "../../wss/procfs.ts";
import type { LastComponent } from "./paths.ts";

const AT_FDCWD = -100n;
const O_PATH = 0o10000000, O_DIRECTORY = 0o200000, O_NOFOLLOW = 0o400000, O_CLOEXEC = 0o2000000, O_RDONLY = 0;
const AT_SYMLINK_NOFOLLOW = 0x100;
// openat2's resolve flags: magic links refused (the fast lookup), and those under which the kernel refuses them too.
const RESOLVE_NO_MAGICLINKS = 0x02n, RESOLVE_NO_SYMLINKS = 0x04n, RESOLVE_BENEATH = 0x08n, RESOLVE_IN_ROOT = 0x10n;
const NO_MAGIC_ANYWAY = RESOLVE_NO_MAGICLINKS | RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH | RESOLVE_IN_ROOT;
const PROC_SUPER_MAGIC = 0x9fa0n, PROC_ROOT_INO = 1n;
const MAX_LINKS = 40;
const CLONE_FS = 0x200n, CLONE_NEWNS = 0x20000n;
const ENOENT = 2, EBADF = 9, EPERM = 1, ELOOP = 40;
const DIR = O_PATH | O_DIRECTORY | O_CLOEXEC;
const S_IFMT = 0o170000, S_IFLNK = 0o120000;
const CAP_VERSION_3 = 0x20080522;

/** The task whose world is entered. */
export interface Caller {
  tgid: number;
  tid: number;
  creds: TaskStatus;
}

/**
 * A procfs directory a resolution followed a magic link out of (fd/N, fdinfo, map_files/R, cwd, root, exe, ns/…): the
 * guard refuses the call when it is a per-process directory of the supervisor (host/wss/tamper.ts, checkPassages).
 */
export interface Passage {
  /** O_PATH fd of the directory holding the magic link (owned by the resolution). */
  fd: number;
  /** Its canonical path in the caller's root. */
  path: string;
}

/** A resolved object: an O_PATH fd of it (owned by the resolution), or its parent and name (it may not exist). */
export interface Resolved {
  /** O_PATH fd of the object, or -1 when only the parent is held. */
  fd: number;
  /** O_PATH fd of the parent directory (parent mode), else -1. */
  parent: number;
  /** The last component, as the call names it in `parent`. */
  name: string;
  /** Canonical path in the caller's root. */
  path: string;
  /** "dev:ino" of the object, if it exists. */
  ident?: string;
  /** "dev:ino" of the parent directory (parent mode): what a missing name is created in ("" if unreadable). */
  parentIdent?: string;
  /** st_mode of the object, if it exists. */
  mode?: number;
  /** The procfs directories whose magic links the resolution followed, if any. */
  via?: Passage[];
}

/** A resolution that failed the way the kernel would fail the call, or could not be made (reason). */
export interface Unresolved {
  errno: number;
  reason?: string;
  /** The canonical path it would have had (a missing file: its existing parent's path and the name), if known. */
  path?: string;
  /** The procfs directories whose magic links the resolution followed before it failed, if any. */
  via?: Passage[];
}

/** Whether a resolution failed. */
export function failed<T extends object>(r: T | Unresolved): r is Unresolved {
  return "errno" in r;
}

/** One per emulation thread. */
export class CallerWorld {
  readonly #buf = new Uint8Array(4096 + 64);
  readonly #bufAddr = addressOf(this.#buf);
  readonly #buf2 = new Uint8Array(4096 + 64);
  readonly #buf2Addr = addressOf(this.#buf2);
  readonly #link = new Uint8Array(4096 + 64);
  readonly #linkAddr = addressOf(this.#link);
  readonly #stat = new Uint8Array(STAT.size);
  readonly #statView = new DataView(this.#stat.buffer);
  readonly #statAddr = addressOf(this.#stat);
  readonly #statfs = new Uint8Array(120); // struct statfs, f_type first
  readonly #statfsView = new DataView(this.#statfs.buffer);
  readonly #capHeader = new Uint8Array(8);
  readonly #capData = new Uint8Array(24);
  readonly #how = new Uint8Array(24);
  readonly #encoder = new TextEncoder();
  readonly #decoder = new TextDecoder();
  /** This thread's own fd directory (/proc/thread-self/fd), usable from any root and namespace. */
  readonly procFd: number;
  readonly #ownMnt: number;
  readonly #ownMntIno: string;
  readonly #ownRoot: string;
  readonly #ownRootFd: number;
  readonly #self: Pick<TaskStatus, "euid" | "egid" | "fsuid" | "fsgid" | "groups"> & {
    eff: bigint;
    perm: bigint;
    inh: bigint;
  };
  readonly #ownUserNs: string;
  /** /proc of idwrap's world, usable as a directory fd from any root: the caller's ids there. */
  readonly #procRoot: number;
  /** The task whose world is entered (its "self" in a procfs). */
  #caller: Caller | undefined;
  /** The magic links the current resolution followed. */
  #via: Passage[] = [];
  /** Set if this thread could not get back to idwrap's world: every later call then fails closed. */
  #stuck = "";
  /** What is entered now, to leave it. */
  #entered: { ns: boolean; root: boolean; creds: boolean; umask: number } | undefined;

  constructor() {
    // This thread's own root, cwd and umask: entering a world never moves the host's other threads.
    if (libc.symbols.syscall(SYS.unshare, CLONE_FS, 0n, 0n, 0n, 0n, 0n) < 0n) {
      throw new Error(`Cannot unshare the supervisor thread's fs_struct: errno ${errno()}`);
    }
    const tid = Number(libc.symbols.syscall(SYS.gettid, 0n, 0n, 0n, 0n, 0n, 0n));
    this.procFd = this.#openPlain(`/proc/self/task/${tid}/fd`, O_PATH | O_DIRECTORY | O_CLOEXEC);
    this.#ownMnt = this.#openPlain(`/proc/self/task/${tid}/ns/mnt`, O_RDONLY | O_CLOEXEC);
    if (this.procFd < 0 || this.#ownMnt < 0) {
      throw new Error(`Cannot open this thread's /proc entries: errno ${errno()}`);
    }
    this.#ownMntIno = this.#linkKey(`/proc/self/task/${tid}/ns/mnt`);
    this.#ownRoot = this.#statKey("/");
    this.#ownRootFd = this.#openPlain("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    const [eff, perm, inh] = this.#capget();
    const own = readTaskStatus(tid);
    if (!own) throw new Error("Cannot read this thread's /proc status");
    const { euid, egid, fsuid, fsgid, groups } = own;
    this.#self = { euid, egid, fsuid, fsgid, groups, eff, perm, inh };
    this.#ownUserNs = this.#linkKey(`/proc/self/task/${tid}/ns/user`);
    this.#procRoot = this.#openPlain("/proc", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (this.#procRoot < 0) throw new Error(`Cannot open /proc: errno ${errno()}`);
  }

  /**
   * Enters the caller's world: its credentials and capabilities, its umask if `umask`, and if `paths` (something will
   * be resolved by name) its mount namespace and root. Acting on fds already resolved needs no `paths`. Always pair
   * with leave(), even when this fails (it undoes what was done).
   */
  enter(caller: Caller, umask = false, paths = true): Unresolved | undefined {
    const e = { ns: false, root: false, creds: false, umask: -1 };
    this.#entered = e;
    this.#caller = caller;
    if (this.#stuck) return { errno: EPERM, reason: this.#stuck };
    const mnt = paths ? this.#linkKey(`/proc/${caller.tid}/ns/mnt`) : this.#ownMntIno;
    const root = paths ? this.#statKey(`/proc/${caller.tid}/root`) : this.#ownRoot;
    if (!mnt || !root) return { errno: ENOENT, reason: "the caller is gone" };
    if (mnt !== this.#ownMntIno || root !== this.#ownRoot) {
      const rootFd = this.#openPlain(`/proc/${caller.tid}/root`, O_PATH | O_DIRECTORY | O_CLOEXEC);
      if (rootFd < 0) return { errno: EPERM, reason: `cannot open the caller's root (errno ${-rootFd})` };
      try {
        if (mnt !== this.#ownMntIno) {
          const nsFd = this.#openPlain(`/proc/${caller.tid}/ns/mnt`, O_RDONLY | O_CLOEXEC);
          const ok = nsFd >= 0 && libc.symbols.syscall(SYS.setns, BigInt(nsFd), CLONE_NEWNS, 0n, 0n, 0n, 0n) === 0n;
          const err = errno();
          if (nsFd >= 0) libc.symbols.close(nsFd);
          if (!ok) {
            return { errno: EPERM, reason: `cannot enter the caller's mount namespace (errno ${err}): failed closed` };
          }
          e.ns = true;
        }
        e.root = true;
        this.#cstring(".", this.#buf);
        if (
          libc.symbols.syscall(SYS.fchdir, BigInt(rootFd), 0n, 0n, 0n, 0n, 0n) < 0n ||
          libc.symbols.syscall(SYS.chroot, this.#bufAddr, 0n, 0n, 0n, 0n, 0n) < 0n
        ) return { errno: EPERM, reason: `cannot enter the caller's root (errno ${errno()}): failed closed` };
      } finally {
        libc.symbols.close(rootFd);
      }
    }
    const c = caller.creds, self = this.#self;
    let eff = c.capEff & self.eff;
    // Capabilities held in a user namespace of the caller's own are not capabilities in ours (the kernel applies them
    // only to what that namespace owns): none are carried over (stricter than the kernel, never looser).
    if (eff !== 0n && this.#linkKey(`/proc/${caller.tid}/ns/user`) !== this.#ownUserNs) eff = 0n;
    const groups = c.groups.length !== self.groups.length || c.groups.some((g, i) => g !== self.groups[i]);
    if (
      c.euid !== self.euid || c.egid !== self.egid || c.fsuid !== self.fsuid || c.fsgid !== self.fsgid || groups ||
      eff !== self.eff
    ) {
      e.creds = true;
      // Raw calls, this thread only. The effective ids too: a file opened here carries them (f_cred), and the kernel
      // checks some writes against them (/proc/PID/uid_map). Real and saved ids stay, so all is restorable.
      this.#setgroups(c.groups);
      const gidOk = c.egid === self.egid || this.call(SYS.setresgid, -1, c.egid, -1) === 0;
      libc.symbols.setfsgid(c.fsgid);
      const uidOk = c.euid === self.euid || this.call(SYS.setresuid, -1, c.euid, -1) === 0;
      // A non-zero euid cleared the effective set (the permitted one stays): raise it to set fsuid, then set it exactly.
      this.#capset(self.eff, self.perm, self.inh);
      libc.symbols.setfsuid(c.fsuid);
      this.#capset(eff, self.perm, self.inh);
      if (!gidOk || !uidOk) return { errno: EPERM, reason: "cannot take the caller's user or group id: failed closed" };
    }
    if (umask) e.umask = libc.symbols.umask(c.umask);
    return undefined;
  }

  /** Back to the supervisor's own world. */
  leave(): void {
    const e = this.#entered;
    this.#entered = undefined;
    if (!e) return;
    if (e.umask >= 0) libc.symbols.umask(e.umask);
    if (e.creds) {
      const self = this.#self;
      // Back to euid 0 (allowed: the saved id is 0) restores the effective set from the permitted one.
      this.call(SYS.setresuid, -1, self.euid, -1);
      this.#capset(self.eff, self.perm, self.inh);
      libc.symbols.setfsuid(self.fsuid);
      this.call(SYS.setresgid, -1, self.egid, -1);
      libc.symbols.setfsgid(self.fsgid);
      this.#setgroups(self.groups);
      this.#capset(self.eff, self.perm, self.inh);
    }
    if (e.ns && libc.symbols.syscall(SYS.setns, BigInt(this.#ownMnt), CLONE_NEWNS, 0n, 0n, 0n, 0n) < 0n) {
      this.#stuck = `the emulation thread cannot return to idwrap's mount namespace (errno ${errno()}): failed closed`;
      throw new Error(this.#stuck);
    }
    if (e.root) {
      // setns reset root and cwd to the namespace's root; a same-namespace chroot is undone from our root's fd.
      this.#cstring(".", this.#buf);
      if (
        libc.symbols.syscall(SYS.fchdir, BigInt(this.#ownRootFd), 0n, 0n, 0n, 0n, 0n) < 0n ||
        libc.symbols.syscall(SYS.chroot, this.#bufAddr, 0n, 0n, 0n, 0n, 0n) < 0n
      ) {
        this.#stuck = `the emulation thread cannot return to idwrap's root (errno ${errno()}): failed closed`;
        throw new Error(this.#stuck);
      }
    }
  }

  /**
   * A directory (or object) fd standing for where a path starts, opened in the supervisor's world (so before
   * enter()): the caller's dirfd or cwd, or for the paths that name "the opener" (/proc/self, /proc/thread-self,
   * /dev/fd/N, /dev/std*) the caller's own entry, with the rest of the path. AT_FDCWD for an absolute path.
   */
  base(caller: Caller, dirfd: number | "AT_FDCWD", path: string): { fd: number; rest: string } | Unresolved {
    const m = path.match(/^\/+proc\/+(self|thread-self)(?:\/+(.*))?$/) ??
      path.match(/^\/+dev\/+(fd\/+\d+|stdin|stdout|stderr)(?:\/+(.*))?$/);
    if (m) {
      const std = ["stdin", "stdout", "stderr"].indexOf(m[1]);
      const at = m[1] === "self"
        ? `/proc/${caller.tgid}`
        : m[1] === "thread-self"
        ? `/proc/${caller.tgid}/task/${caller.tid}`
        : `/proc/${caller.tid}/fd/${std >= 0 ? std : m[1].replace(/^fd\/+/, "")}`;
      const fd = this.#openPlain(at, O_PATH | O_CLOEXEC);
      return fd < 0 ? { errno: -fd } : { fd, rest: m[2] ?? "" };
    }
    if (path.startsWith("/")) return { fd: Number(AT_FDCWD), rest: path };
    const at = dirfd === "AT_FDCWD" ? `/proc/${caller.tid}/cwd` : `/proc/${caller.tid}/fd/${dirfd}`;
    // Through /proc rather than pidfd_getfd, which refuses O_PATH fds (openat on an O_PATH dirfd failed with EBADF).
    const fd = this.#openPlain(at, O_PATH | O_CLOEXEC);
    if (fd < 0) return { errno: dirfd !== "AT_FDCWD" && -fd === ENOENT ? EBADF : -fd };
    return { fd, rest: path };
  }

  /**
   * Resolves `rest` from `base` in the entered world: the object (following a final symbolic link or not), or its
   * parent directory and last name. `flags` add O_DIRECTORY; `resolve` is openat2's.
   */
  resolve(base: number, rest: string, last: LastComponent, extra = 0, resolve = 0n): Resolved | Unresolved {
    this.#via = [];
    if (last === "parent") return this.#resolveParent(base, rest);
    let fd: number;
    if (rest === "") {
      // The base itself (AT_EMPTY_PATH, /proc/self/fd/N): a fresh O_PATH fd of the same object.
      fd = this.#openAt(this.procFd, String(base), O_PATH | O_CLOEXEC | extra);
    } else {
      fd = this.#lookup(base, rest, O_PATH | O_CLOEXEC | (last === "nofollow" ? O_NOFOLLOW : 0) | extra, resolve);
    }
    if (fd < 0) return this.#unresolved(-fd);
    return this.#describe(fd, -1, "");
  }

  /** A failure, with the magic links followed before it (the guard refuses those as it refuses a success). */
  #unresolved(errno: number): Unresolved {
    const out: Unresolved = { errno };
    if (this.#via.length) out.via = this.#via;
    this.#via = [];
    return out;
  }

  /**
   * openat(base, rest, flags) as the kernel would do it for the caller: -errno on failure. First the kernel alone,
   * refusing magic links (RESOLVE_NO_MAGICLINKS): what it opens reached no process's fds or directories, the common
   * case and the cost of one openat2. A magic link on the way (ELOOP), or a procfs object at the end (a /proc/self
   * the kernel took for this thread's), and the path is walked again component by component (#walk), which notes
   * each procfs directory it leaves through a magic link and reads "self" as the caller.
   */
  #lookup(base: number, rest: string, flags: number, resolve: bigint): number {
    const fd = this.#openAt2(base, rest, flags, resolve | RESOLVE_NO_MAGICLINKS);
    if (fd >= 0) {
      if (resolve !== 0n || !this.#onProcfs(fd)) return fd;
      libc.symbols.close(fd);
      return this.#walk(base, rest, flags);
    }
    if (fd !== -ELOOP || (resolve & NO_MAGIC_ANYWAY) !== 0n) return fd;
    if (resolve !== 0n) {
      // RESOLVE_NO_XDEV or RESOLVE_CACHED: the kernel's own answer where it refuses; else the walk (flags aside).
      const plain = this.#openAt2(base, rest, flags, resolve);
      if (plain < 0) return plain;
      libc.symbols.close(plain);
    }
    return this.#walk(base, rest, flags);
  }

  /**
   * The path resolved one component at a time, as the kernel's lookup does: symbolic links expanded by their text
   * (procfs's own, /proc/self, /proc/thread-self, /proc/mounts…, for the caller, not for this thread), magic links
   * (any other symbolic link on a procfs) followed by the kernel one at a time, their directory noted in #via.
   */
  #walk(base: number, rest: string, flags: number): number {
    const names = rest.split("/");
    if (rest.endsWith("/")) flags = (flags | O_DIRECTORY) & ~O_NOFOLLOW; // "dir/" is followed, and must be one
    const startAt = (absolute: boolean, from: number) =>
      absolute ? this.#openAt(Number(AT_FDCWD), "/", DIR) : this.#openAt(from, ".", DIR);
    let dir = startAt(rest.startsWith("/"), base);
    let links = 0;
    const done = (fd: number) => {
      if (dir >= 0 && dir !== fd) libc.symbols.close(dir);
      return fd;
    };
    while (dir >= 0) {
      const name = names.shift();
      if (name === undefined) return done(dir);
      if (name === "" || name === ".") {
        if (names.every((n) => n === "" || n === ".")) return done(this.#openAt(dir, ".", flags & ~O_NOFOLLOW));
        continue;
      }
      const last = names.every((n) => n === "" || n === ".");
      const nextFlags = last ? flags | O_NOFOLLOW : DIR | O_NOFOLLOW;
      if (name === ".." || (last && flags & O_NOFOLLOW) || this.#fstatat(dir, name, AT_SYMLINK_NOFOLLOW) !== 0) {
        // "..", a last component not followed, or what fails: the kernel's own answer.
        const next = this.#openAt(dir, name, name === ".." ? DIR : nextFlags);
        if (last || next < 0) return done(next);
        libc.symbols.close(dir);
        dir = next;
        continue;
      }
      if ((this.#statView.getUint32(STAT.mode, true) & S_IFMT) !== S_IFLNK) {
        const next = this.#openAt(dir, name, nextFlags);
        if (last || next < 0) return done(next);
        libc.symbols.close(dir);
        dir = next;
        continue;
      }
      if (++links > MAX_LINKS) return done(-ELOOP);
      const procfs = this.#onProcfs(dir);
      if (procfs && !this.#isProcRoot(dir)) {
        // A magic link: its target is an object, not a name. Noted, then followed by the kernel alone.
        this.#via.push({ fd: this.#openAt(dir, ".", DIR), path: this.canonical(dir) });
        const next = this.#openAt(dir, name, last ? flags & ~O_NOFOLLOW : DIR);
        if (last || next < 0) return done(next);
        libc.symbols.close(dir);
        dir = next;
        continue;
      }
      const text = procfs && (name === "self" || name === "thread-self")
        ? this.#callerSelf(name)
        : this.readLink(dir, name);
      if (text === undefined || text === "") return done(-ENOENT);
      names.unshift(...text.split("/"));
      if (text.startsWith("/")) {
        libc.symbols.close(dir);
        dir = startAt(true, dir);
      }
    }
    return dir;
  }

  /** The caller's "self" ("PID") or "thread-self" ("PID/task/TID") in its own pid namespace, from its status. */
  #callerSelf(name: "self" | "thread-self"): string | undefined {
    const caller = this.#caller;
    if (!caller) return undefined;
    const fd = this.#openAt(this.#procRoot, `${caller.tid}/status`, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return undefined;
    const n = Number(libc.symbols.read(fd, this.#link, BigInt(this.#link.length)));
    libc.symbols.close(fd);
    if (n <= 0) return undefined;
    const status = this.#decoder.decode(this.#link.subarray(0, n));
    // The innermost pid namespace's numbers (the last of each list): the caller's own procfs shows those.
    const innermost = (field: string) =>
      status.match(new RegExp(`^${field}:\\s*(.*)$`, "m"))?.[1].trim().split(/\s+/).pop();
    const tgid = innermost("NStgid"), tid = innermost("NSpid");
    if (!tgid || !tid) return undefined;
    return name === "self" ? tgid : `${tgid}/task/${tid}`;
  }

  /** Whether an fd's object is on a procfs (unknown counts as on one: the walk then notes it). */
  #onProcfs(fd: number): boolean {
    return libc.symbols.fstatfs(fd, this.#statfs) !== 0 || this.#statfsView.getBigInt64(0, true) === PROC_SUPER_MAGIC;
  }

  /** Whether a procfs directory is a procfs's root (its symbolic links are plain text: self, mounts, net…). */
  #isProcRoot(dir: number): boolean {
    return libc.symbols.fstat(dir, this.#stat) === 0 && this.#statView.getBigUint64(STAT.ino, true) === PROC_ROOT_INO;
  }

  #resolveParent(base: number, rest: string): Resolved | Unresolved {
    // The last component keeps its trailing slashes: the call then fails as the kernel would ("unlink file/").
    const m = rest.match(/^(.*?)\/*([^/]+\/*)$/);
    const dir = m ? (m[1] === "" && rest.startsWith("/") ? "/" : m[1] || ".") : rest || ".";
    const name = m ? m[2] : ".";
    if (rest === "") return { errno: ENOENT };
    const parent = this.#lookup(base, dir, O_PATH | O_DIRECTORY | O_CLOEXEC, 0n);
    if (parent < 0) return this.#unresolved(-parent);
    const dirPath = this.canonical(parent);
    const clean = name.replace(/\/+$/, "");
    const path = clean === "."
      ? dirPath
      : clean === ".."
      ? dirPath.replace(/\/[^/]*$/, "") || "/"
      : join(dirPath, clean);
    const out: Resolved = { fd: -1, parent, name, path, parentIdent: this.identOf(parent) };
    if (this.#via.length) out.via = this.#via;
    this.#via = [];
    if (this.#fstatat(parent, clean, AT_SYMLINK_NOFOLLOW) === 0) {
      out.ident = this.#ident();
      out.mode = this.#statView.getUint32(STAT.mode, true);
    }
    return out;
  }

  /** Fills in a resolved fd's canonical path and identity. */
  #describe(fd: number, parent: number, name: string): Resolved {
    libc.symbols.fstat(fd, this.#stat);
    const out: Resolved = {
      fd,
      parent,
      name,
      path: this.canonical(fd),
      ident: this.#ident(),
      mode: this.#statView.getUint32(STAT.mode, true),
    };
    if (this.#via.length) out.via = this.#via;
    this.#via = [];
    return out;
  }

  /** An object reached without a path (open_by_handle_at's result): its identity and canonical path. */
  describeFd(fd: number): Resolved {
    return this.#describe(fd, -1, "");
  }

  /** The canonical path of an fd, relative to the current (entered) root. */
  canonical(fd: number): string {
    this.#cstring(String(fd), this.#buf);
    const n = Number(
      libc.symbols.syscall(SYS.readlinkat, BigInt(this.procFd), this.#bufAddr, this.#linkAddr, 4096n, 0n, 0n),
    );
    return n < 0 ? "" : this.#decoder.decode(this.#link.subarray(0, n));
  }

  /** The target of a symbolic link `name` in `dir` ("" for `dir` itself with AT_EMPTY_PATH). */
  readLink(dir: number, name: string): string | undefined {
    this.#cstring(name, this.#buf);
    const n = Number(libc.symbols.syscall(SYS.readlinkat, BigInt(dir), this.#bufAddr, this.#linkAddr, 4096n, 0n, 0n));
    return n < 0 ? undefined : this.#decoder.decode(this.#link.subarray(0, n));
  }

  /** "dev:ino" of an fd's object, or of `name` in the directory `dir` (not followed); "" if it cannot be read. */
  identOf(dir: number, name?: string): string {
    const ok = name === undefined ? libc.symbols.fstat(dir, this.#stat) : this.#fstatat(dir, name, AT_SYMLINK_NOFOLLOW);
    return ok === 0 ? this.#ident() : "";
  }

  /** Whether a resolved object is a symbolic link. */
  static isLink(r: Resolved): boolean {
    return r.mode !== undefined && (r.mode & S_IFMT) === S_IFLNK;
  }

  /** Closes a resolution's fds. */
  static release(r: Resolved | Unresolved | undefined): void {
    if (!r) return;
    for (const p of r.via ?? []) if (p.fd >= 0) libc.symbols.close(p.fd);
    r.via = undefined;
    if (failed(r)) return;
    if (r.fd >= 0) libc.symbols.close(r.fd);
    if (r.parent >= 0) libc.symbols.close(r.parent);
    r.fd = r.parent = -1;
  }

  /** Reopens a resolved object with real open flags (permission checked now, as the entered caller). */
  reopen(r: Resolved, flags: number): number {
    return this.#openAt(this.procFd, String(r.fd), flags);
  }

  /** openat(dir, name, flags, mode): -errno on failure. */
  openAt(dir: number, name: string, flags: number, mode = 0): number {
    return this.#openAt(dir, name, flags, mode);
  }

  /** A raw *at system call on (dir, name[, dir2, name2]) with up to two more integer arguments; -errno on failure. */
  call(nr: bigint, ...args: (number | bigint | string)[]): number {
    const regs: bigint[] = [];
    let strings = 0;
    for (const a of args) {
      if (typeof a === "string") {
        const buf = strings++ === 0 ? this.#buf : this.#buf2;
        this.#cstring(a, buf);
        regs.push(buf === this.#buf ? this.#bufAddr : this.#buf2Addr);
      } else regs.push(BigInt(a));
    }
    while (regs.length < 6) regs.push(0n);
    const r = Number(libc.symbols.syscall(nr, regs[0], regs[1], regs[2], regs[3], regs[4], regs[5]));
    return r < 0 ? -errno() : r;
  }

  #ident(): string {
    const v = this.#statView;
    return `${v.getBigUint64(STAT.dev, true)}:${v.getBigUint64(STAT.ino, true)}`;
  }

  #fstatat(dir: number, name: string, flags: number): number {
    this.#cstring(name, this.#buf);
    return Number(
      libc.symbols.syscall(SYS.newfstatat, BigInt(dir), this.#bufAddr, this.#statAddr, BigInt(flags), 0n, 0n),
    );
  }

  #openPlain(path: string, flags: number): number {
    return this.#openAt(Number(AT_FDCWD), path, flags);
  }

  #openAt(dir: number, path: string, flags: number, mode = 0): number {
    this.#cstring(path, this.#buf);
    const fd = Number(
      libc.symbols.syscall(SYS.openat, BigInt(dir), this.#bufAddr, BigInt(flags), BigInt(mode), 0n, 0n),
    );
    return fd < 0 ? -errno() : fd;
  }

  #openAt2(dir: number, path: string, flags: number, resolve: bigint): number {
    this.#cstring(path, this.#buf);
    const v = new DataView(this.#how.buffer);
    v.setBigUint64(0, BigInt(flags), true);
    v.setBigUint64(8, 0n, true);
    v.setBigUint64(16, resolve, true);
    const fd = Number(
      libc.symbols.syscall(SYS.openat2, BigInt(dir), this.#bufAddr, addressOf(this.#how), 24n, 0n, 0n),
    );
    return fd < 0 ? -errno() : fd;
  }

  #cstring(s: string, buf: Uint8Array): void {
    const { written } = this.#encoder.encodeInto(s, buf.subarray(0, buf.length - 1));
    buf[written] = 0;
  }

  /** A magic link's text (a namespace's "mnt:[ino]"), "" if unreadable: raw, ~4× cheaper than Deno's op. */
  #linkKey(path: string): string {
    const n = this.call(SYS.readlinkat, AT_FDCWD, path, this.#linkAddr, 4096);
    return n < 0 ? "" : this.#decoder.decode(this.#link.subarray(0, n));
  }

  /** dev:ino of a path (followed), "" if it cannot be read. */
  #statKey(path: string): string {
    return this.#fstatat(Number(AT_FDCWD), path, 0) === 0 ? this.#ident() : "";
  }

  #setgroups(groups: number[]): void {
    // Raw setgroups: glibc's would broadcast to every thread of the host.
    const buf = new Uint32Array(Math.max(1, groups.length));
    groups.forEach((g, i) => buf[i] = g);
    libc.symbols.syscall(SYS.setgroups, BigInt(groups.length), addressOf(new Uint8Array(buf.buffer)), 0n, 0n, 0n, 0n);
  }

  #capget(): [bigint, bigint, bigint] {
    const h = new DataView(this.#capHeader.buffer);
    h.setUint32(0, CAP_VERSION_3, true);
    h.setInt32(4, 0, true);
    libc.symbols.syscall(SYS.capget, addressOf(this.#capHeader), addressOf(this.#capData), 0n, 0n, 0n, 0n);
    const d = new DataView(this.#capData.buffer);
    const two = (o: number) => BigInt(d.getUint32(o, true)) | BigInt(d.getUint32(o + 12, true)) << 32n;
    return [two(0), two(4), two(8)];
  }

  /** This thread's capability sets (raw capset: per thread, as the kernel defines it). */
  #capset(eff: bigint, perm: bigint, inh: bigint): void {
    const h = new DataView(this.#capHeader.buffer);
    h.setUint32(0, CAP_VERSION_3, true);
    h.setInt32(4, 0, true);
    const d = new DataView(this.#capData.buffer);
    [eff, perm, inh].forEach((v, i) => {
      d.setUint32(i * 4, Number(v & 0xffffffffn), true);
      d.setUint32(12 + i * 4, Number(v >> 32n), true);
    });
    if (libc.symbols.syscall(SYS.capset, addressOf(this.#capHeader), addressOf(this.#capData), 0n, 0n, 0n, 0n) < 0n) {
      throw new Error(`capset failed on the emulation thread: errno ${errno()}`);
    }
  }
}

/** Lexical join of a canonical directory and a name. */
function join(dir: string, name: string): string {
  return dir.endsWith("/") ? dir + name : `${dir}/${name}`;
}

/** dev:ino of a path, "" if it cannot be read. */
export function statKey(path: string): string {
  try {
    const info = Deno.statSync(path);
    return `${info.dev}:${info.ino}`;
  } catch {
    return "";
  }
}

export { ELOOP };
