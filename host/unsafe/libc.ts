/**
 * The one libc binding of the host: every foreign function idwrap calls,
 * opened once (`dlopen`) per thread that imports it, with the man page of
 * each. All of idwrap's unsafe code lives in host/unsafe/ (as gVisor keeps
 * its own apart): this binding, the errno reader, pointers, and the kernel's
 * struct layouts (./layouts.ts). Nothing else calls Deno.dlopen or reads a
 * pointer.
 *
 * @module
 */

/** libc functions, called synchronously (one OS thread each). */
export const libc = Deno.dlopen("libc.so.6", {
  // open(2), close(2), read(2), write(2)
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  // ioctl(2): int ioctl(int fd, unsigned long request, void *arg); the kernel takes cmd as unsigned int
  ioctl: { parameters: ["i32", "u32", "buffer"], result: "i32" },
  // ioctl(2) whose argument is a value, not a pointer (SECCOMP_IOCTL_NOTIF_SET_FLAGS, IDWRAP_IOC_VERSION)
  ioctl_value: { name: "ioctl", parameters: ["i32", "u32", "u64"], result: "i32" },
  // epoll(7), poll(2), eventfd(2)
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  // process_vm_readv(2)
  process_vm_readv: { parameters: ["i32", "buffer", "u64", "buffer", "u64", "u64"], result: "isize" },
  // syscall(2), for calls glibc wraps with per-process semantics or lacks
  syscall: { parameters: ["i64", "i64", "i64", "i64", "i64", "i64", "i64"], result: "i64" },
  fstat: { parameters: ["i32", "buffer"], result: "i32" },
  fstatfs: { parameters: ["i32", "buffer"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", "i64"], result: "i32" },
  // flock(2), ftruncate(2): the audit journal
  flock: { parameters: ["i32", "i32"], result: "i32" },
  ftruncate: { parameters: ["i32", "i64"], result: "i32" },
  setfsuid: { parameters: ["u32"], result: "i32" },
  setfsgid: { parameters: ["u32"], result: "i32" },
  umask: { parameters: ["u32"], result: "u32" },
  // prctl(2): int prctl(int op, unsigned long arg2, arg3, arg4, arg5)
  prctl: { parameters: ["i32", "u64", "u64", "u64", "u64"], result: "i32" },
  // getsockopt(2): SO_PEERCRED of the daemon's socket
  getsockopt: { parameters: ["i32", "i32", "i32", "buffer", "buffer"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
});

let errnoView: Deno.UnsafePointerView | undefined;

/** The calling thread's errno, valid right after a failed libc call. */
export function errno(): number {
  // __errno_location() is per thread and stable for the thread's life (and this module is per thread).
  errnoView ??= new Deno.UnsafePointerView(libc.symbols.__errno_location()!);
  return errnoView.getInt32();
}

/** The address of a buffer's first byte, for structs that hold pointers. */
export function addressOf(buf: Uint8Array): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
}

/** x86_64 system call numbers called directly (asm/unistd_64.h). */
export const SYS = {
  ftruncate: 77n,
  fchdir: 81n,
  setgroups: 116n,
  setresuid: 117n,
  setresgid: 119n,
  getpgid: 121n,
  capget: 125n,
  capset: 126n,
  chroot: 161n,
  gettid: 186n,
  fchownat: 260n,
  utimensat: 280n,
  mkdirat: 258n,
  mknodat: 259n,
  newfstatat: 262n,
  unlinkat: 263n,
  linkat: 265n,
  symlinkat: 266n,
  readlinkat: 267n,
  fchmodat: 268n,
  open_by_handle_at: 304n,
  setns: 308n,
  renameat2: 316n,
  fchmodat2: 452n,
  unshare: 272n,
  openat: 257n,
  pidfd_send_signal: 424n,
  pidfd_open: 434n,
  openat2: 437n,
  pidfd_getfd: 438n,
} as const;

/** open(2) on a path; the fd or -errno. */
export function openPath(path: string, flags: number, mode = 0): number {
  const fd = libc.symbols.open(new TextEncoder().encode(path + "\0"), flags, mode);
  return fd < 0 ? -errno() : fd;
}

/** Sends SIGKILL to a process through a pidfd (no pid-reuse race once the pidfd is open). */
export function killProcess(pid: number): boolean {
  const pidfd = Number(libc.symbols.syscall(SYS.pidfd_open, BigInt(pid), 0n, 0n, 0n, 0n, 0n));
  if (pidfd < 0) return false;
  const r = libc.symbols.syscall(SYS.pidfd_send_signal, BigInt(pidfd), 9n, 0n, 0n, 0n, 0n);
  libc.symbols.close(pidfd);
  return r === 0n;
}
