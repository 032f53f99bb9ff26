/**
 * The kernel's struct layouts and constants that idwrap reads and writes
 * through pointers, each with the man page or uapi header it comes from: one
 * definition of each, for every source (the module's own ABI, mirrored from
 * its C header, is host/sources/kmod/uapi.ts).
 *
 * @module
 */

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

/** struct epoll_event (epoll_ctl(2)), packed on x86_64: u32 events; u64 data (here two u32 halves, lo and hi). */
export const EPOLL_EVENT = { size: 12, events: 0, dataLo: 4, dataHi: 8 } as const;
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

/** struct pollfd (poll(2)): int fd; short events; short revents. */
export const POLLFD = { size: 8, fd: 0, events: 4, revents: 6 } as const;
export const POLLIN = 0x1;
export const POLLERR = 0x8;
export const POLLHUP = 0x10;

/** open(2) flags (asm-generic/fcntl.h, x86_64). */
export const O_RDWR = 0o2;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;

/** eventfd(2) flags. */
export const EFD_NONBLOCK = 0o4000;
export const EFD_CLOEXEC = 0o2000000;
/** epoll_create1(2) flags. */
export const EPOLL_CLOEXEC = 0o2000000;
