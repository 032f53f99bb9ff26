/**
 * Runs the open family in the supervisor and installs the result in the
 * wrapped process with SECCOMP_IOCTL_NOTIF_ADDFD, so the path a wrapper
 * checked is the path opened (no TOCTOU on the argument bytes, Watson, WOOT
 * 2007), and the `post` result is known.
 *
 * The open happens with the caller's view of the world: its fsuid, fsgid and
 * groups (set on this thread only, with raw syscalls), its umask (this
 * thread's fs_struct is unshared), its cwd or dirfd, and its root; paths
 * that name "the caller" (/proc/self, /dev/stdin, /dev/tty) are rewritten to
 * name the caller rather than the supervisor. docs/seccomp.md lists the limits.
 *
 * @module
 */
import { ADDFD, addressOf, errno, libc, SECCOMP_ADDFD_FLAG_SEND, SECCOMP_IOCTL, SYS } from "./ffi.ts";
import { controllingTty, type TaskStatus } from "./procfs.ts";

const AT_FDCWD = -100n;
const O_NONBLOCK = 0o4000;
const O_NOCTTY = 0o400;
const O_CLOEXEC = 0o2000000;
const O_PATH = 0o10000000;
const O_DIRECTORY = 0o200000;
const O_CREAT = 0o100;
const O_TMPFILE = 0o20200000;
const F_SETFL = 4;
// F_SETFL can change only these; the rest are fixed at open.
const SETFL_MASK = 0o2000 | 0o20000 | 0o40000 | 0o1000000 | O_NONBLOCK;
const CLONE_FS = 0x200n;

/** Where the caller's path is resolved from. */
export interface OpenRequest {
  id: bigint;
  pid: number; // tgid
  tid: number;
  pidfd: number;
  dirfd: number | "AT_FDCWD";
  path: string;
  flags: number;
  mode: number;
  /** openat2's resolve flags, 0 otherwise. */
  resolve: bigint;
  creds: TaskStatus;
  /** The caller's root is ours, so absolute paths need no RESOLVE_IN_ROOT. */
  sameRoot: boolean;
  listener: number;
  /** Complete the call with the fd (ADDFD_FLAG_SEND); else only install it, and answer later. */
  send: boolean;
}

/** The outcome: the fd number in the caller, or an errno. */
export type OpenResult = { fd: number } | { errno: number };

/** One per supervisor thread: it changes the thread's credentials and umask. */
export class OpenEmulator {
  #path = new Uint8Array(4096 + 64);
  #pathAddr = addressOf(this.#path);
  #how = new Uint8Array(24);
  #howAddr = addressOf(this.#how);
  #addfd = new Uint8Array(ADDFD.size);
  #addfdView = new DataView(this.#addfd.buffer);
  #encoder = new TextEncoder();
  #self: Pick<TaskStatus, "fsuid" | "fsgid" | "groups">;

  constructor() {
    // Give this thread its own umask and cwd, so emulation never moves the host's.
    if (libc.symbols.syscall(SYS.unshare, CLONE_FS, 0n, 0n, 0n, 0n, 0n) < 0n) {
      throw new Error(`Cannot unshare the supervisor thread's fs_struct: errno ${errno()}`);
    }
    this.#self = { fsuid: Deno.uid() ?? 0, fsgid: Deno.gid() ?? 0, groups: [] };
  }

  /**
   * Opens the file as the caller would and installs it in the caller,
   * completing its system call (SECCOMP_ADDFD_FLAG_SEND).
   */
  open(req: OpenRequest): OpenResult {
    const path = this.#rewrite(req);
    if (typeof path !== "string") return path;
    const dirfd = this.#dirfd(req, path);
    if (dirfd < 0 && BigInt(dirfd) !== AT_FDCWD) return { errno: -dirfd };
    const fd = this.#openAs(req, path, dirfd);
    if (dirfd >= 0) libc.symbols.close(dirfd);
    if (fd < 0) return { errno: -fd };
    try {
      return this.#install(req, fd);
    } finally {
      libc.symbols.close(fd);
    }
  }

  /** Paths that mean "the opener" must mean the caller, not us. */
  #rewrite(req: OpenRequest): string | { errno: number } {
    const p = req.path;
    if (p === "/dev/tty") return controllingTty(req.pid) ?? { errno: 6 /* ENXIO */ };
    const m = p.match(/^\/proc\/(self|thread-self)(\/.*)?$/) ??
      p.match(/^\/dev\/(stdin|stdout|stderr|fd)(\/.*)?$/);
    if (!m) return p;
    const rest = m[2] ?? "";
    switch (m[1]) {
      case "self":
        return `/proc/${req.pid}${rest}`;
      case "thread-self":
        return `/proc/${req.pid}/task/${req.tid}${rest}`;
      case "fd":
        return `/proc/${req.pid}/fd${rest}`;
      default:
        return `/proc/${req.pid}/fd/${["stdin", "stdout", "stderr"].indexOf(m[1])}${rest}`;
    }
  }

  /**
   * A directory fd standing for the caller's dirfd, cwd or (if it differs
   * from ours) root; AT_FDCWD (negative, not an error) for our own root.
   */
  #dirfd(req: OpenRequest, path: string): number {
    if (path.startsWith("/")) {
      if (req.sameRoot) return Number(AT_FDCWD);
      return this.#openPlain(`/proc/${req.pid}/root`, O_PATH | O_DIRECTORY | O_CLOEXEC);
    }
    if (req.dirfd === "AT_FDCWD") {
      return this.#openPlain(`/proc/${req.tid}/cwd`, O_PATH | O_DIRECTORY | O_CLOEXEC);
    }
    const fd = Number(libc.symbols.syscall(SYS.pidfd_getfd, BigInt(req.pidfd), BigInt(req.dirfd), 0n, 0n, 0n, 0n));
    return fd < 0 ? -errno() : fd;
  }

  #openPlain(path: string, flags: number): number {
    this.#cstring(path);
    const fd = Number(libc.symbols.syscall(SYS.openat, AT_FDCWD, this.#pathAddr, BigInt(flags), 0n, 0n, 0n));
    return fd < 0 ? -errno() : fd;
  }

  #cstring(s: string): void {
    const { written } = this.#encoder.encodeInto(s, this.#path.subarray(0, this.#path.length - 1));
    this.#path[written] = 0;
  }

  /** openat2(dirfd, path, flags) under the caller's fs credentials and umask. */
  #openAs(req: OpenRequest, path: string, dirfd: number): number {
    const switchCreds = req.creds.fsuid !== this.#self.fsuid || req.creds.fsgid !== this.#self.fsgid ||
      req.creds.groups.length > 0;
    if (switchCreds) this.#become(req.creds);
    const creating = (req.flags & O_CREAT) !== 0 || (req.flags & O_TMPFILE) === O_TMPFILE;
    if (creating) libc.symbols.umask(req.creds.umask);
    // O_NONBLOCK so a device or FIFO never stalls the supervisor; cleared below.
    // (O_PATH ignores both flags under openat but openat2 would refuse them.)
    const flags = req.flags | O_CLOEXEC | (req.flags & O_PATH ? 0 : O_NOCTTY | O_NONBLOCK);
    const mode = creating ? BigInt(req.mode & 0o7777) : 0n;
    this.#cstring(path);
    // A chrooted caller's absolute paths resolve inside its root, as the kernel's would.
    const resolve = req.resolve | (path.startsWith("/") && !req.sameRoot ? 0x10n /* RESOLVE_IN_ROOT */ : 0n);
    let fd: number;
    if (resolve === 0n) {
      // Plain openat keeps the kernel's exact flag semantics (it ignores unknown bits; openat2 refuses them).
      fd = Number(libc.symbols.syscall(SYS.openat, BigInt(dirfd), this.#pathAddr, BigInt(flags), mode, 0n, 0n));
    } else {
      const how = new DataView(this.#how.buffer);
      how.setBigUint64(0, BigInt(flags), true);
      how.setBigUint64(8, mode, true);
      how.setBigUint64(16, resolve, true);
      fd = Number(libc.symbols.syscall(SYS.openat2, BigInt(dirfd), this.#pathAddr, this.#howAddr, 24n, 0n, 0n));
    }
    const err = fd < 0 ? errno() : 0;
    if (switchCreds) this.#become(this.#self);
    if (fd < 0) return -err;
    if (!(req.flags & O_NONBLOCK) && !(req.flags & O_PATH)) {
      if (libc.symbols.fcntl(fd, F_SETFL, BigInt(req.flags & SETFL_MASK)) < 0) {
        const e = errno();
        libc.symbols.close(fd);
        return -e;
      }
    }
    return fd;
  }

  #become(c: Pick<TaskStatus, "fsuid" | "fsgid" | "groups">): void {
    // Raw setgroups: glibc's would broadcast to every thread of the host.
    const groups = new BigUint64Array(Math.max(1, Math.ceil(c.groups.length / 2)));
    const u32 = new Uint32Array(groups.buffer);
    c.groups.forEach((g, i) => u32[i] = g);
    libc.symbols.syscall(
      SYS.setgroups,
      BigInt(c.groups.length),
      addressOf(new Uint8Array(groups.buffer)),
      0n,
      0n,
      0n,
      0n,
    );
    libc.symbols.setfsgid(c.fsgid);
    libc.symbols.setfsuid(c.fsuid);
  }

  /** ADDFD: the fd lands in the caller; with SEND its call also returns it. */
  #install(req: OpenRequest, fd: number): OpenResult {
    const v = this.#addfdView;
    v.setBigUint64(ADDFD.id, req.id, true);
    v.setUint32(ADDFD.flags, req.send ? SECCOMP_ADDFD_FLAG_SEND : 0, true);
    v.setUint32(ADDFD.srcfd, fd, true);
    v.setUint32(ADDFD.newfd, 0, true);
    v.setUint32(ADDFD.newfdFlags, req.flags & O_CLOEXEC, true);
    const newfd = libc.symbols.ioctl(req.listener, SECCOMP_IOCTL.NOTIF_ADDFD, this.#addfd);
    return newfd < 0 ? { errno: errno() } : { fd: newfd };
  }
}
