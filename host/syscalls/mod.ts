/**
 * System calls of the x86_64 ABI: names, numbers, groups, and what each
 * argument is, so sources can decode the arguments wrappers ask for.
 *
 * @module
 */
import { I386_NAMES, X86_64_NAMES } from "./tables.ts";

const NUMBERS = new Map<string, number>();
X86_64_NAMES.forEach((name, nr) => name && NUMBERS.set(name, nr));

/** The name of an x86_64 system call, or `syscall_N` for an unknown number. */
export function syscallName(nr: number): string {
  return X86_64_NAMES[nr] || `syscall_${nr}`;
}

/** The name of an i386 system call (reached through int 0x80), for reports. */
export function i386SyscallName(nr: number): string {
  return I386_NAMES[nr] || `syscall_${nr}`;
}

/** The number of a named x86_64 system call, or undefined. */
export function syscallNumber(name: string): number | undefined {
  return NUMBERS.get(name);
}

/** What a system call argument holds, for decoding. */
export type ArgKind =
  | "int" // plain value, reported raw
  | "fd"
  | "dirfd" // AT_FDCWD or a directory fd
  | "path" // NUL-terminated string in the caller's memory
  | "oflags" // open(2) flags
  | "mode" // permission bits
  | "atflags" // AT_* flags
  | "argv" // NULL-terminated array of strings
  | "sockaddr" // struct sockaddr *, length in the next argument
  | "socklen"
  | "clone_flags"
  | "clone_args" // struct clone_args *, size in the next argument
  | "open_how" // struct open_how *, size in the next argument
  | "signal"
  | "data"; // bytes the call writes, length in the next argument

const ARGS: Record<string, ArgKind[]> = {
  open: ["path", "oflags", "mode"],
  openat: ["dirfd", "path", "oflags", "mode"],
  openat2: ["dirfd", "path", "open_how", "int"],
  creat: ["path", "mode"],
  stat: ["path", "int"],
  lstat: ["path", "int"],
  newfstatat: ["dirfd", "path", "int", "atflags"],
  statx: ["dirfd", "path", "atflags", "int", "int"],
  access: ["path", "int"],
  faccessat: ["dirfd", "path", "int"],
  faccessat2: ["dirfd", "path", "int", "atflags"],
  readlink: ["path", "int", "int"],
  readlinkat: ["dirfd", "path", "int", "int"],
  execve: ["path", "argv", "argv"],
  execveat: ["dirfd", "path", "argv", "argv", "atflags"],
  chdir: ["path"],
  chroot: ["path"],
  mkdir: ["path", "mode"],
  mkdirat: ["dirfd", "path", "mode"],
  rmdir: ["path"],
  unlink: ["path"],
  unlinkat: ["dirfd", "path", "atflags"],
  rename: ["path", "path"],
  renameat: ["dirfd", "path", "dirfd", "path"],
  renameat2: ["dirfd", "path", "dirfd", "path", "int"],
  link: ["path", "path"],
  linkat: ["dirfd", "path", "dirfd", "path", "atflags"],
  symlink: ["path", "path"],
  symlinkat: ["path", "dirfd", "path"],
  chmod: ["path", "mode"],
  fchmod: ["fd", "mode"],
  fchmodat: ["dirfd", "path", "mode"],
  fchmodat2: ["dirfd", "path", "mode", "atflags"],
  chown: ["path", "int", "int"],
  lchown: ["path", "int", "int"],
  fchown: ["fd", "int", "int"],
  fchownat: ["dirfd", "path", "int", "int", "atflags"],
  truncate: ["path", "int"],
  utime: ["path", "int"],
  utimes: ["path", "int"],
  utimensat: ["dirfd", "path", "int", "atflags"],
  futimesat: ["dirfd", "path", "int"],
  mknod: ["path", "mode", "int"],
  mknodat: ["dirfd", "path", "mode", "int"],
  statfs: ["path", "int"],
  getxattr: ["path", "path", "int", "int"],
  lgetxattr: ["path", "path", "int", "int"],
  setxattr: ["path", "path", "int", "int", "int"],
  lsetxattr: ["path", "path", "int", "int", "int"],
  listxattr: ["path", "int", "int"],
  llistxattr: ["path", "int", "int"],
  removexattr: ["path", "path"],
  lremovexattr: ["path", "path"],
  mount: ["path", "path", "path", "int", "int"],
  umount2: ["path", "int"],
  pivot_root: ["path", "path"],
  swapon: ["path", "int"],
  swapoff: ["path"],
  acct: ["path"],
  uselib: ["path"],
  inotify_add_watch: ["fd", "path", "int"],
  name_to_handle_at: ["dirfd", "path", "int", "int", "atflags"],
  connect: ["fd", "sockaddr", "socklen"],
  bind: ["fd", "sockaddr", "socklen"],
  sendto: ["fd", "int", "int", "int", "sockaddr", "socklen"],
  accept: ["fd", "int", "int"],
  accept4: ["fd", "int", "int", "int"],
  listen: ["fd", "int"],
  socket: ["int", "int", "int"],
  clone: ["clone_flags", "int", "int", "int", "int"],
  clone3: ["clone_args", "int"],
  write: ["fd", "data", "int"],
  pwrite64: ["fd", "data", "int", "int"],
  kill: ["int", "signal"],
  tkill: ["int", "signal"],
  tgkill: ["int", "int", "signal"],
  rt_sigqueueinfo: ["int", "signal", "int"],
  rt_tgsigqueueinfo: ["int", "int", "signal", "int"],
  pidfd_send_signal: ["fd", "signal", "int", "int"],
};

/** The argument kinds of a system call; unknown arguments are "int". */
export function argKinds(name: string): readonly ArgKind[] {
  return ARGS[name] ?? [];
}

/** The x86_64 calls that take a path name: strace's %file class. */
export const FILE_SYSCALLS: readonly string[] = Object.entries(ARGS)
  .filter(([name, kinds]) => kinds.includes("path") && NUMBERS.has(name))
  .map(([name]) => name);

/** Process lifecycle: always notified so the host can follow the tree. */
export const LIFECYCLE_SYSCALLS: readonly string[] = [
  "clone",
  "clone3",
  "fork",
  "vfork",
  "execve",
  "execveat",
];

/** Calls every filter notifies so the host can deny and report them. */
export const ALWAYS_DENIED_SYSCALLS: readonly string[] = ["io_uring_setup"];

/** The calls that open a file by path: the ones the sources run themselves (TOCTOU-free), with post results. */
export const OPEN_SYSCALLS: readonly string[] = ["open", "openat", "openat2", "creat"];

/** Named groups a policy or wrapper may ask for instead of single calls. */
export const SYSCALL_GROUPS: Readonly<Record<string, readonly string[]>> = {
  file: FILE_SYSCALLS,
  process: [...LIFECYCLE_SYSCALLS, "kill", "tgkill", "ptrace", "setuid", "setgid", "setreuid", "setresuid"],
  exec: ["execve", "execveat"],
  net: ["socket", "connect", "bind", "listen", "accept", "accept4", "sendto"],
};

/**
 * Expands names and `%group`s to syscall numbers.
 *
 * @param names syscall names (`openat`) or groups (`%file`)
 * @returns the numbers, or throws naming the first unknown entry
 */
export function resolveSyscalls(names: Iterable<string>): Set<number> {
  const out = new Set<number>();
  for (const name of names) {
    const members = name.startsWith("%") ? SYSCALL_GROUPS[name.slice(1)] : [name];
    if (!members) {
      throw new Error(
        `Unknown syscall group "${name}": expected one of ${
          Object.keys(SYSCALL_GROUPS).map((g) => "%" + g).join(", ")
        }`,
      );
    }
    for (const member of members) {
      const nr = syscallNumber(member);
      if (nr === undefined) throw new Error(`Unknown system call "${member}" for x86_64`);
      out.add(nr);
    }
  }
  return out;
}
