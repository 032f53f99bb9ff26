/**
 * Runs path calls in the supervisor, in the caller's world (world.ts), on
 * the object the decision was made on: the open family (the result installed
 * with SECCOMP_IOCTL_NOTIF_ADDFD), and the calls that change a name or an
 * inode (unlink, rename, link, symlink, mkdir, rmdir, mknod, chmod, chown,
 * truncate). A thread rewriting the path after the check changes nothing
 * (Watson, WOOT 2007): the string is read once, resolved once to an O_PATH
 * fd (or its parent's and a name), and the call acts on that fd.
 *
 * @module
 */
import { ADDFD, SECCOMP_ADDFD_FLAG_SEND, SECCOMP_IOCTL, STAT } from "../../unsafe/layouts.ts";
import { addressOf, errno, libc, SYS } from "../../unsafe/libc.ts";
import { controllingTty } from "../../wss/procfs.ts";
import { emptyNamesDirfd, lastComponent, PATH_ARGS } from "./paths.ts";
import { type Caller, CallerWorld, failed, type Resolved, type Unresolved } from "./world.ts";

const O_NONBLOCK = 0o4000, O_NOCTTY = 0o400, O_CLOEXEC = 0o2000000, O_PATH = 0o10000000, O_DIRECTORY = 0o200000;
const O_CREAT = 0o100, O_EXCL = 0o200, O_NOFOLLOW = 0o400000, O_TMPFILE = 0o20200000, O_WRONLY = 1;
const F_SETFL = 4;
// F_SETFL can change only these; the rest are fixed at open.
const SETFL_MASK = 0o2000 | 0o20000 | 0o40000 | 0o1000000 | O_NONBLOCK;
const AT_EMPTY_PATH = 0x1000, AT_SYMLINK_FOLLOW = 0x400, AT_REMOVEDIR = 0x200, AT_SYMLINK_NOFOLLOW = 0x100;
const ENOENT = 2, ENXIO = 6, EEXIST = 17, ELOOP = 40, EFAULT = 14, EPERM = 1, ENOSYS = 38;
const MAX_LINKS = 40;

/** The calls run here besides opens, race-free. */
export const PATH_CALLS: ReadonlySet<string> = new Set([
  "unlink",
  "unlinkat",
  "rmdir",
  "mkdir",
  "mkdirat",
  "mknod",
  "mknodat",
  "rename",
  "renameat",
  "renameat2",
  "link",
  "linkat",
  "symlink",
  "symlinkat",
  "chmod",
  "fchmodat",
  "fchmodat2",
  "chown",
  "lchown",
  "fchownat",
  "truncate",
  "utimensat",
]);

/** Path calls that cannot be run here exactly: refused while a path rule may deny them (a race would pass). */
export const REFUSED_WHEN_PATH_RULED: ReadonlySet<string> = new Set([
  "setxattr",
  "lsetxattr",
  "removexattr",
  "lremovexattr",
  "utime",
  "utimes",
  "futimesat",
]);

/** A call's path arguments as resolved in the caller's world ([path, path2]). */
export interface PathCheck {
  resolved: (Resolved | Unresolved | undefined)[];
  /** Set when the caller's world could not be entered: the call must fail closed. */
  reason?: string;
}

/** How an open was asked for. */
export interface OpenArgs {
  flags: number;
  mode: number;
  resolve: bigint;
}

/** Where the result of an emulated open goes. */
export interface Install {
  id: bigint;
  listener: number;
  /** Complete the call with the fd (ADDFD_FLAG_SEND); else only install it, and answer later. */
  send: boolean;
}

/**
 * The outcome: a return value (the fd number in the caller for opens), or an errno; `fault` says why a call failed
 * closed because of idwrap itself (to be reported).
 */
export type CallResult = { fd: number } | { errno: number; fault?: string };

/** One per supervisor thread: it enters callers' worlds. */
export class Emulator {
  readonly world = new CallerWorld();
  readonly #addfd = new Uint8Array(ADDFD.size);
  readonly #addfdView = new DataView(this.#addfd.buffer);
  readonly #handle = new Uint8Array(8 + 128);
  readonly #stat = new Uint8Array(STAT.size);
  readonly #statView = new DataView(this.#stat.buffer);
  readonly #times = new Uint8Array(32);

  /**
   * Resolves a call's path arguments in the caller's world (the strings were read once, before this).
   *
   * @param open the open family's flags, which say how the last component is looked up
   */
  check(caller: Caller, name: string, regs: BigUint64Array, raw: (string | undefined)[], open?: OpenArgs): PathCheck {
    const out: PathCheck = { resolved: [] };
    const args = PATH_ARGS[name] ?? [];
    const bases: { fd: number; rest: string; nth: number; last: ReturnType<typeof lastComponent> }[] = [];
    try {
      for (const arg of args) {
        let s = raw[arg.nth];
        if (s === undefined) continue;
        if (s === "/dev/tty") s = controllingTty(caller.tgid) ?? s;
        if (s === "" && !emptyNamesDirfd(arg, regs)) {
          out.resolved[arg.nth] = { errno: ENOENT };
          continue;
        }
        const dirfd = arg.dirfd === undefined ? "AT_FDCWD" : atFd(regs[arg.dirfd]);
        const base = this.world.base(caller, dirfd, s);
        if (failed(base)) out.resolved[arg.nth] = base;
        else {
          let last = lastComponent(arg, regs);
          if (open && open.flags & O_NOFOLLOW) last = "nofollow";
          bases.push({ ...base, nth: arg.nth, last });
        }
      }
      if (bases.length === 0) return out;
      const entered = this.world.enter(caller);
      if (entered) {
        out.reason = entered.reason;
        for (const b of bases) out.resolved[b.nth] = entered;
        return out;
      }
      try {
        for (const b of bases) {
          const r = open ? this.#resolveOpen(b.fd, b.rest, b.last, open) : this.world.resolve(b.fd, b.rest, b.last);
          if (failed(r) && r.errno === ENOENT && b.last !== "parent") {
            // A missing file still has a canonical name: its parent's path and the name (for rules and wrappers).
            const parent = this.world.resolve(b.fd, b.rest, "parent");
            if (!failed(parent)) r.path = parent.path;
            CallerWorld.release(parent);
          }
          out.resolved[b.nth] = r;
        }
      } finally {
        this.world.leave();
      }
      return out;
    } finally {
      for (const b of bases) if (b.fd >= 0) libc.symbols.close(b.fd);
    }
  }

  /** open_by_handle_at: the object the handle names, opened O_PATH as the caller (it needs CAP_DAC_READ_SEARCH). */
  checkHandle(caller: Caller, regs: BigUint64Array, handle: Uint8Array): PathCheck {
    const base = this.world.base(caller, atFd(regs[0]), ".");
    if (failed(base)) return { resolved: [base] };
    // open_by_handle_at refuses O_PATH mount fds: a plain reopen of the caller's directory.
    const mount = this.world.reopen({ fd: base.fd } as Resolved, O_CLOEXEC | O_DIRECTORY);
    libc.symbols.close(base.fd);
    if (mount < 0) return { resolved: [{ errno: -mount }] };
    try {
      const entered = this.world.enter(caller);
      if (entered) return { resolved: [entered], reason: entered.reason };
      try {
        this.#handle.set(handle.subarray(0, this.#handle.length));
        const fd = this.world.call(
          SYS.open_by_handle_at,
          mount,
          addressOf(this.#handle),
          O_PATH | O_CLOEXEC,
        );
        return { resolved: [fd < 0 ? { errno: -fd } : this.world.describeFd(fd)] };
      } finally {
        this.world.leave();
      }
    } finally {
      libc.symbols.close(mount);
    }
  }

  /** How an open reaches its object: followed or not, created in its parent when missing. */
  #resolveOpen(
    base: number,
    rest: string,
    last: "follow" | "nofollow" | "parent",
    open: OpenArgs,
  ): Resolved | Unresolved {
    const tmpfile = (open.flags & O_TMPFILE) === O_TMPFILE;
    const dirOnly = !tmpfile && open.flags & O_DIRECTORY ? O_DIRECTORY : 0;
    const r = this.world.resolve(base, rest, tmpfile ? "follow" : last, tmpfile ? O_DIRECTORY : dirOnly, open.resolve);
    if (!(open.flags & O_CREAT) || !failed(r) || r.errno !== ENOENT || tmpfile) return r;
    // O_CREAT of a missing name: its parent, then the name. A dangling symbolic link is followed (without O_EXCL),
    // as the kernel does, a bounded number of times; its target is created. Every magic link followed on the way is
    // kept for the guard (the outcome carries them all).
    const via = r.via ?? [];
    r.via = undefined;
    const withVia = <T extends Resolved | Unresolved>(out: T): T => {
      if (via.length) out.via = [...via, ...(out.via ?? [])];
      return out;
    };
    let dir = base, path = rest;
    for (let hops = 0; hops < MAX_LINKS; hops++) {
      const p = this.world.resolve(dir, path, "parent");
      if (dir !== base) libc.symbols.close(dir);
      if (failed(p) || !p.ident || !CallerWorld.isLink(p)) return withVia(p);
      via.push(...p.via ?? []);
      p.via = undefined;
      if (open.flags & O_EXCL || last === "nofollow") {
        CallerWorld.release(p);
        return withVia({ errno: open.flags & O_EXCL ? EEXIST : ELOOP });
      }
      const target = this.world.readLink(p.parent, p.name.replace(/\/+$/, ""));
      if (target === undefined) {
        CallerWorld.release(p);
        return withVia({ errno: ENOENT });
      }
      dir = target.startsWith("/") ? -100 : p.parent;
      p.parent = -1;
      path = target;
      CallerWorld.release(p);
      if (dir !== -100) continue;
    }
    return withVia({ errno: ELOOP });
  }

  /**
   * Opens the checked object as the caller would and installs it in the caller (ADDFD). A missing name is created in
   * the checked parent, never through a symbolic link put there since.
   */
  open(caller: Caller, r: Resolved, open: OpenArgs, install: Install): CallResult {
    const elsewhere = this.#notTheDirectory(r, open.flags);
    if (elsewhere) return { errno: EPERM, fault: `${elsewhere}: nothing created, the call failed closed` };
    // Only fds are used from here: credentials and umask, not the namespace and root.
    const entered = this.world.enter(
      caller,
      (open.flags & O_CREAT) !== 0 || (open.flags & O_TMPFILE) === O_TMPFILE,
      false,
    );
    let fd: number;
    try {
      if (entered) return { errno: EPERM };
      fd = this.#openResolved(r, open);
    } finally {
      this.world.leave();
    }
    if (fd < 0) return { errno: -fd };
    // Again after: the number may have been reused between the first check and the openat (a file then made in
    // another directory stays there: the fault says which).
    const gone = this.#notTheDirectory(r, open.flags);
    const stray = gone ? `${gone}: not installed, the call failed closed` : this.#notTheObject(r, fd, open.flags);
    if (stray) {
      libc.symbols.close(fd);
      return { errno: EPERM, fault: stray };
    }
    if (!(open.flags & O_NONBLOCK) && !(open.flags & O_PATH)) {
      if (libc.symbols.fcntl(fd, F_SETFL, BigInt(open.flags & SETFL_MASK)) < 0) {
        const e = errno();
        libc.symbols.close(fd);
        return { errno: e };
      }
    }
    try {
      return this.#install(install, fd, open.flags);
    } finally {
      libc.symbols.close(fd);
    }
  }

  /**
   * Why the directory a file is to be created in (O_CREAT of a missing name: the parent; O_TMPFILE: the directory
   * named) is not the one checked, if it is not. The openat takes the resolution's O_PATH fd as its dirfd: were that
   * number closed and reused by another thread of this process with another directory (a store's, another caller's
   * parent), the file would be made there. Checked by identity (dev:ino), before the openat and again after.
   */
  #notTheDirectory(r: Resolved, flags: number): string | undefined {
    const tmpfile = (flags & O_TMPFILE) === O_TMPFILE;
    const [dir, want] = tmpfile ? [r.fd, r.ident] : r.fd < 0 && flags & O_CREAT ? [r.parent, r.parentIdent] : [];
    if (dir === undefined || dir < 0) return undefined;
    const ident = this.world.identOf(dir);
    if (ident && ident === want) return undefined;
    const where = tmpfile ? r.path : r.path.replace(/\/[^/]*\/*$/, "") || "/";
    const got = ident || "unreadable", checked = want || "unreadable";
    return `the directory ${where} is held by fd ${dir}, which is not the directory checked ` +
      `(${got}; checked ${checked})`;
  }

  /**
   * Why the file just opened is not the object the call was decided on, if it is not. The open goes through the
   * resolution's O_PATH fd by its number (/proc/thread-self/fd/N): were that number closed and reused meanwhile by
   * another thread of this process, the caller would be handed one of idwrap's own files (a socket, a pipe, the
   * store, a listener). Checked by identity (dev:ino) before ADDFD. A file this open created (O_CREAT of a missing
   * name) must be the one its name now holds in the directory checked. An O_TMPFILE file has no name and nothing to
   * compare: its directory's identity is what #notTheDirectory checks (its st_dev is no help: on an overlayfs without
   * xino a file's is not its directory's).
   */
  #notTheObject(r: Resolved, fd: number, flags: number): string | undefined {
    if ((flags & O_TMPFILE) === O_TMPFILE) return undefined;
    const created = r.fd < 0;
    const want = created ? this.world.identOf(r.parent, r.name.replace(/\/+$/, "")) : r.ident;
    if (!want) {
      return created
        ? `the file created for ${r.path} is no longer in the directory checked: not installed, the call failed closed`
        : undefined;
    }
    if (libc.symbols.fstat(fd, this.#stat) < 0) return `cannot fstat the file opened for ${r.path} (errno ${errno()})`;
    const v = this.#statView;
    const ident = `${v.getBigUint64(STAT.dev, true)}:${v.getBigUint64(STAT.ino, true)}`;
    if (ident === want) return undefined;
    const mode = (v.getUint32(STAT.mode, true) & 0o170000).toString(8).padStart(6, "0");
    const what = created ? "created" : "opened";
    return `the file ${what} for ${r.path} is not the object checked (${ident}, type ${mode}; checked ${want}): ` +
      "not installed, the call failed closed";
  }

  #openResolved(r: Resolved, open: OpenArgs): number {
    // O_NONBLOCK so a device or FIFO never stalls the supervisor (cleared after); never a controlling terminal.
    const extra = O_CLOEXEC | (open.flags & O_PATH ? 0 : O_NOCTTY | O_NONBLOCK);
    const tmpfile = (open.flags & O_TMPFILE) === O_TMPFILE;
    if (r.fd >= 0) {
      if (tmpfile) return this.world.openAt(r.fd, ".", open.flags | extra, open.mode);
      if ((open.flags & (O_CREAT | O_EXCL)) === (O_CREAT | O_EXCL)) return -EEXIST;
      if (open.flags & O_PATH) return this.world.reopen(r, O_PATH | extra); // the resolved O_PATH fd, anew
      if (CallerWorld.isLink(r)) return -ELOOP; // O_NOFOLLOW on a symbolic link
      return this.world.reopen(r, (open.flags & ~(O_CREAT | O_EXCL | O_NOFOLLOW)) | extra);
    }
    // The parent and a name (missing when checked): create it there, refusing to follow a link made since.
    return this.world.openAt(r.parent, r.name, open.flags | O_NOFOLLOW | extra, open.mode);
  }

  /** Runs a path call (PATH_CALLS) as the caller, on the checked objects; its return value or errno. */
  run(
    caller: Caller,
    name: string,
    regs: BigUint64Array,
    check: PathCheck,
    symlinkTarget?: string,
    times?: Uint8Array,
  ): CallResult {
    const [a, b] = check.resolved;
    for (const r of [a, b]) if (r && failed(r)) return { errno: r.errno };
    // A NULL path (decoded as absent, not a fault): the kernel says EFAULT.
    for (const arg of PATH_ARGS[name] ?? []) if (!check.resolved[arg.nth]) return { errno: EFAULT };
    const r0 = a as Resolved | undefined, r1 = b as Resolved | undefined;
    const entered = this.world.enter(caller, true, false); // only fds are used: no namespace or root to enter
    try {
      if (entered) return { errno: EPERM };
      const w = this.world;
      const reg = (i: number) => Number(regs[i] & 0xffffffffn);
      let ret: number;
      switch (name) {
        case "unlink":
          ret = w.call(SYS.unlinkat, r0!.parent, r0!.name, 0);
          break;
        case "rmdir":
          ret = w.call(SYS.unlinkat, r0!.parent, r0!.name, AT_REMOVEDIR);
          break;
        case "unlinkat":
          ret = w.call(SYS.unlinkat, r0!.parent, r0!.name, reg(2));
          break;
        case "mkdir":
          ret = w.call(SYS.mkdirat, r0!.parent, r0!.name, reg(1));
          break;
        case "mkdirat":
          ret = w.call(SYS.mkdirat, r0!.parent, r0!.name, reg(2));
          break;
        case "mknod":
          ret = w.call(SYS.mknodat, r0!.parent, r0!.name, reg(1), regs[2]);
          break;
        case "mknodat":
          ret = w.call(SYS.mknodat, r0!.parent, r0!.name, reg(2), regs[3]);
          break;
        case "rename":
        case "renameat":
        case "renameat2":
          ret = w.call(SYS.renameat2, r0!.parent, r0!.name, r1!.parent, r1!.name, name === "renameat2" ? reg(4) : 0);
          break;
        case "link":
        case "linkat":
          // The checked object itself, through this thread's /proc fd link (no CAP_DAC_READ_SEARCH needed).
          ret = w.call(SYS.linkat, w.procFd, String(r0!.fd), r1!.parent, r1!.name, AT_SYMLINK_FOLLOW);
          break;
        case "symlink":
        case "symlinkat":
          if (symlinkTarget === undefined) return { errno: EFAULT };
          ret = w.call(SYS.symlinkat, symlinkTarget, r1!.parent, r1!.name);
          break;
        case "chmod":
        case "fchmodat":
        case "fchmodat2": {
          const mode = reg(name === "chmod" ? 1 : 2);
          const nofollow = name === "fchmodat2" ? reg(3) & AT_SYMLINK_NOFOLLOW : 0;
          ret = w.call(SYS.fchmodat2, r0!.fd, "", mode, AT_EMPTY_PATH | nofollow);
          // Before Linux 6.6 (no fchmodat2): through this thread's /proc fd link, which reaches the object itself.
          if (ret === -ENOSYS && !nofollow) ret = w.call(SYS.fchmodat, w.procFd, String(r0!.fd), mode);
          break;
        }
        case "chown":
        case "lchown":
        case "fchownat": {
          const [u, g] = name === "fchownat" ? [reg(2), reg(3)] : [reg(1), reg(2)];
          ret = w.call(SYS.fchownat, r0!.fd, "", u, g, AT_EMPTY_PATH);
          break;
        }
        case "utimensat": {
          // The times as read once (two struct timespec), or NULL: now. On the object itself (AT_EMPTY_PATH).
          if (times) this.#times.set(times.subarray(0, 32));
          ret = w.call(SYS.utimensat, r0!.fd, "", times ? addressOf(this.#times) : 0n, AT_EMPTY_PATH);
          break;
        }
        case "truncate": {
          const fd = w.reopen(r0!, O_WRONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
          if (fd < 0) return { errno: -fd };
          ret = w.call(SYS.ftruncate, fd, regs[1]);
          libc.symbols.close(fd);
          break;
        }
        default:
          return { errno: EPERM };
      }
      return ret < 0 ? { errno: -ret } : { fd: ret };
    } finally {
      this.world.leave();
    }
  }

  /** ADDFD: the fd lands in the caller; with SEND its call also returns it. */
  #install(req: Install, fd: number, flags: number): CallResult {
    const v = this.#addfdView;
    v.setBigUint64(ADDFD.id, req.id, true);
    v.setUint32(ADDFD.flags, req.send ? SECCOMP_ADDFD_FLAG_SEND : 0, true);
    v.setUint32(ADDFD.srcfd, fd, true);
    v.setUint32(ADDFD.newfd, 0, true);
    v.setUint32(ADDFD.newfdFlags, flags & O_CLOEXEC, true);
    const newfd = libc.symbols.ioctl(req.listener, SECCOMP_IOCTL.NOTIF_ADDFD, this.#addfd);
    return newfd < 0 ? { errno: errno() } : { fd: newfd };
  }
}

/** A dirfd register: AT_FDCWD or an fd number. */
function atFd(raw: bigint): number | "AT_FDCWD" {
  const v = Number(BigInt.asIntN(32, raw));
  return v === -100 ? "AT_FDCWD" : v;
}

export { ENXIO };
