/**
 * The unsafe edge of the seccomp source: libc symbols, ioctl numbers and
 * struct layouts, each with the man page or uapi header it comes from.
 * Nothing outside host/sources/seccomp/ touches pointers.
 *
 * @module
 */

/** libc functions the supervisor calls synchronously (one OS thread each). */
export const libc = Deno.dlopen("libc.so.6", {
  // ioctl(2): int ioctl(int fd, unsigned long request, void *arg)
  ioctl: { parameters: ["i32", "u32", "buffer"], result: "i32" }, // the kernel takes cmd as unsigned int
  // ioctl(2) whose argument is a value, not a pointer (NOTIF_SET_FLAGS)
  ioctl_value: { name: "ioctl", parameters: ["i32", "u32", "u64"], result: "i32" },
  // epoll(7)
  epoll_create1: { parameters: ["i32"], result: "i32" },
  epoll_ctl: { parameters: ["i32", "i32", "i32", "buffer"], result: "i32" },
  epoll_wait: { parameters: ["i32", "buffer", "i32", "i32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  // process_vm_readv(2)
  process_vm_readv: {
    parameters: ["i32", "buffer", "u64", "buffer", "u64", "u64"],
    result: "isize",
  },
  // syscall(2) for calls glibc wraps with per-process semantics or lacks
  syscall: {
    parameters: ["i64", "i64", "i64", "i64", "i64", "i64", "i64"],
    result: "i64",
  },
  fstat: { parameters: ["i32", "buffer"], result: "i32" },
  fstatfs: { parameters: ["i32", "buffer"], result: "i32" },
  fcntl: { parameters: ["i32", "i32", "i64"], result: "i32" },
  setfsuid: { parameters: ["u32"], result: "i32" },
  setfsgid: { parameters: ["u32"], result: "i32" },
  umask: { parameters: ["u32"], result: "u32" },
  // prctl(2): int prctl(int op, unsigned long arg2, arg3, arg4, arg5)
  prctl: { parameters: ["i32", "u64", "u64", "u64", "u64"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
});

let errnoView: Deno.UnsafePointerView | undefined;

/** The calling thread's errno, valid right after a failed libc call. */
export function errno(): number {
  // __errno_location() is per thread and stable for the thread's life.
  errnoView ??= new Deno.UnsafePointerView(libc.symbols.__errno_location()!);
  return errnoView.getInt32();
}

/** The address of a buffer's first byte, for structs that hold pointers. */
export function addressOf(buf: Uint8Array): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
}

/** x86_64 system call numbers used directly (asm/unistd_64.h). */
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

/** ioctl requests of seccomp_unotify(2), from <linux/seccomp.h>. */
export const SECCOMP_IOCTL = {
  NOTIF_RECV: 0xc0502100, // _IOWR('!', 0, struct seccomp_notif)
  NOTIF_SEND: 0xc0182101, // _IOWR('!', 1, struct seccomp_notif_resp)
  NOTIF_ID_VALID: 0x40082102, // _IOW('!', 2, __u64)
  NOTIF_ADDFD: 0x40182103, // _IOW('!', 3, struct seccomp_notif_addfd)
  NOTIF_SET_FLAGS: 0x40082104, // _IOW('!', 4, __u64), Linux 6.6
} as const;

/** SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP, for NOTIF_SET_FLAGS (Linux 6.6). */
export const SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP = 1n;
/** seccomp_notif_resp.flags: let the kernel run the call. */
export const SECCOMP_USER_NOTIF_FLAG_CONTINUE = 1;
/** seccomp_notif_addfd.flags. */
export const SECCOMP_ADDFD_FLAG_SETFD = 1;
export const SECCOMP_ADDFD_FLAG_SEND = 2;

/**
 * struct seccomp_notif (80 bytes):
 *   u64 id; u32 pid; u32 flags;
 *   struct seccomp_data { s32 nr; u32 arch; u64 instruction_pointer; u64 args[6]; }
 */
export const NOTIF = {
  size: 80,
  id: 0,
  pid: 8,
  nr: 16,
  arch: 20,
  ip: 24,
  args: 32,
} as const;

/** struct seccomp_notif_resp (24 bytes): u64 id; s64 val; s32 error; u32 flags. */
export const RESP = { size: 24, id: 0, val: 8, error: 16, flags: 20 } as const;

/** struct seccomp_notif_addfd (24 bytes): u64 id; u32 flags, srcfd, newfd, newfd_flags. */
export const ADDFD = {
  size: 24,
  id: 0,
  flags: 8,
  srcfd: 12,
  newfd: 16,
  newfdFlags: 20,
} as const;

/** struct epoll_event is packed on x86_64: u32 events; u64 data. */
export const EPOLL_EVENT_SIZE = 12;
export const EPOLLIN = 0x1;
export const EPOLLERR = 0x8;
export const EPOLLHUP = 0x10;
export const EPOLL_CTL_ADD = 1;
export const EPOLL_CTL_DEL = 2;

/** AUDIT_ARCH_* from <linux/audit.h>. */
export const AUDIT_ARCH_X86_64 = 0xc000003e;
export const AUDIT_ARCH_I386 = 0x40000003;
/** __X32_SYSCALL_BIT from asm/unistd_x32.h. */
export const X32_SYSCALL_BIT = 0x40000000;

/** struct stat on x86_64 (asm/stat.h), the fields we read. */
export const STAT = {
  size: 144,
  dev: 0,
  ino: 8,
  nlink: 16,
  mode: 24,
  uid: 28,
  gid: 32,
  rdev: 40,
  size_: 48,
  mtime: 88,
} as const;

/** f_type values of statfs(2) that change what an open means. */
export const PROC_SUPER_MAGIC = 0x9fa0;
