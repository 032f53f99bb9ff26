/**
 * How the kernel resolves each path argument of each call: which register
 * holds the string, which the directory fd, and what happens to the last
 * component (followed if a symbolic link, not followed, or only named in its
 * parent directory because the call creates or removes it). The supervisor
 * resolves paths exactly so (world.ts), to decide on the object the kernel
 * will act on rather than on the string.
 *
 * @module
 */

/** What the kernel does with the last component of a path. */
export type LastComponent = "follow" | "nofollow" | "parent";

/** One path argument of a call. */
export interface PathArg {
  /** 0: the event's `path`; 1: its `path2`. */
  nth: 0 | 1;
  /** Register holding the string pointer. */
  reg: number;
  /** Register holding the directory fd (absent: the cwd). */
  dirfd?: number;
  last: LastComponent;
  /** `[register, bit]`: the call does not follow with this AT_ flag (AT_SYMLINK_NOFOLLOW). */
  nofollowIf?: [number, number];
  /** `[register, bit]`: the call follows only with this flag (linkat's AT_SYMLINK_FOLLOW). */
  followIf?: [number, number];
  /** `[register, bit]`: an empty string names the dirfd itself (AT_EMPTY_PATH). */
  emptyIf?: [number, number];
}

const NOFOLLOW = 0x100, EMPTY = 0x1000, FOLLOW = 0x400;
const p = (nth: 0 | 1, reg: number, last: LastComponent, extra: Partial<PathArg> = {}): PathArg => ({
  nth,
  reg,
  last,
  ...extra,
});

/**
 * The path arguments that name files. Not listed: symlink's target (a string stored as it is), xattr names,
 * mount's source and type, and calls whose strings are not looked up as paths.
 */
export const PATH_ARGS: Readonly<Record<string, readonly PathArg[]>> = {
  open: [p(0, 0, "follow")],
  openat: [p(0, 1, "follow", { dirfd: 0 })],
  openat2: [p(0, 1, "follow", { dirfd: 0 })],
  creat: [p(0, 0, "follow")],
  stat: [p(0, 0, "follow")],
  lstat: [p(0, 0, "nofollow")],
  newfstatat: [p(0, 1, "follow", { dirfd: 0, nofollowIf: [3, NOFOLLOW], emptyIf: [3, EMPTY] })],
  statx: [p(0, 1, "follow", { dirfd: 0, nofollowIf: [2, NOFOLLOW], emptyIf: [2, EMPTY] })],
  access: [p(0, 0, "follow")],
  faccessat: [p(0, 1, "follow", { dirfd: 0 })],
  faccessat2: [p(0, 1, "follow", { dirfd: 0, nofollowIf: [3, NOFOLLOW], emptyIf: [3, EMPTY] })],
  readlink: [p(0, 0, "nofollow")],
  readlinkat: [p(0, 1, "nofollow", { dirfd: 0 })],
  execve: [p(0, 0, "follow")],
  execveat: [p(0, 1, "follow", { dirfd: 0, nofollowIf: [4, NOFOLLOW], emptyIf: [4, EMPTY] })],
  chdir: [p(0, 0, "follow")],
  chroot: [p(0, 0, "follow")],
  mkdir: [p(0, 0, "parent")],
  mkdirat: [p(0, 1, "parent", { dirfd: 0 })],
  rmdir: [p(0, 0, "parent")],
  unlink: [p(0, 0, "parent")],
  unlinkat: [p(0, 1, "parent", { dirfd: 0 })],
  rename: [p(0, 0, "parent"), p(1, 1, "parent")],
  renameat: [p(0, 1, "parent", { dirfd: 0 }), p(1, 3, "parent", { dirfd: 2 })],
  renameat2: [p(0, 1, "parent", { dirfd: 0 }), p(1, 3, "parent", { dirfd: 2 })],
  link: [p(0, 0, "nofollow"), p(1, 1, "parent")],
  linkat: [
    p(0, 1, "nofollow", { dirfd: 0, followIf: [4, FOLLOW], emptyIf: [4, EMPTY] }),
    p(1, 3, "parent", { dirfd: 2 }),
  ],
  symlink: [p(1, 1, "parent")],
  symlinkat: [p(1, 2, "parent", { dirfd: 1 })],
  chmod: [p(0, 0, "follow")],
  fchmodat: [p(0, 1, "follow", { dirfd: 0 })],
  fchmodat2: [p(0, 1, "follow", { dirfd: 0, nofollowIf: [3, NOFOLLOW], emptyIf: [3, EMPTY] })],
  chown: [p(0, 0, "follow")],
  lchown: [p(0, 0, "nofollow")],
  fchownat: [p(0, 1, "follow", { dirfd: 0, nofollowIf: [4, NOFOLLOW], emptyIf: [4, EMPTY] })],
  truncate: [p(0, 0, "follow")],
  utime: [p(0, 0, "follow")],
  utimes: [p(0, 0, "follow")],
  utimensat: [p(0, 1, "follow", { dirfd: 0, nofollowIf: [3, NOFOLLOW], emptyIf: [3, EMPTY] })],
  futimesat: [p(0, 1, "follow", { dirfd: 0 })],
  mknod: [p(0, 0, "parent")],
  mknodat: [p(0, 1, "parent", { dirfd: 0 })],
  statfs: [p(0, 0, "follow")],
  getxattr: [p(0, 0, "follow")],
  lgetxattr: [p(0, 0, "nofollow")],
  setxattr: [p(0, 0, "follow")],
  lsetxattr: [p(0, 0, "nofollow")],
  listxattr: [p(0, 0, "follow")],
  llistxattr: [p(0, 0, "nofollow")],
  removexattr: [p(0, 0, "follow")],
  lremovexattr: [p(0, 0, "nofollow")],
  umount2: [p(0, 0, "follow")],
  swapon: [p(0, 0, "follow")],
  swapoff: [p(0, 0, "follow")],
  acct: [p(0, 0, "follow")],
  uselib: [p(0, 0, "follow")],
  inotify_add_watch: [p(0, 1, "follow")],
  name_to_handle_at: [p(0, 1, "nofollow", { dirfd: 0, followIf: [4, FOLLOW], emptyIf: [4, EMPTY] })],
};

/** How one path argument of this call, with these registers, is resolved. */
export function lastComponent(arg: PathArg, regs: BigUint64Array): LastComponent {
  const has = (f?: [number, number]) => f !== undefined && (Number(regs[f[0]] & 0xffffffffn) & f[1]) !== 0;
  if (arg.last === "parent") return "parent";
  if (has(arg.followIf)) return "follow";
  if (arg.followIf) return "nofollow";
  return has(arg.nofollowIf) ? "nofollow" : arg.last;
}

/** Whether an empty string names the dirfd itself here (AT_EMPTY_PATH). */
export function emptyNamesDirfd(arg: PathArg, regs: BigUint64Array): boolean {
  return arg.emptyIf !== undefined && (Number(regs[arg.emptyIf[0]] & 0xffffffffn) & arg.emptyIf[1]) !== 0;
}
