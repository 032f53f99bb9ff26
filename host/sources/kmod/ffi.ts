/**
 * The unsafe edge of the kernel-module source: the libc calls that talk to
 * /dev/idwrap (open, ioctl, read, write, poll). Layouts live in uapi.ts.
 *
 * @module
 */

/** libc functions the kmod supervisor calls synchronously. */
export const libc = Deno.dlopen("libc.so.6", {
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  // ioctl(2) with a struct argument, and with none (IDWRAP_IOC_VERSION)
  ioctl: { parameters: ["i32", "u32", "buffer"], result: "i32" },
  ioctl_none: { name: "ioctl", parameters: ["i32", "u32", "u64"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  // poll(2): struct pollfd { int fd; short events; short revents; }
  poll: { parameters: ["buffer", "u64", "i32"], result: "i32" },
  eventfd: { parameters: ["u32", "i32"], result: "i32" },
  syscall: { parameters: ["i64", "i64", "i64", "i64", "i64", "i64", "i64"], result: "i64" },
  __errno_location: { parameters: [], result: "pointer" },
});

let errnoView: Deno.UnsafePointerView | undefined;

/** The calling thread's errno, valid right after a failed libc call. */
export function errno(): number {
  errnoView ??= new Deno.UnsafePointerView(libc.symbols.__errno_location()!);
  return errnoView.getInt32();
}

export const O_RDWR = 0o2;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;
export const POLLIN = 0x1;
export const POLLERR = 0x8;
export const POLLHUP = 0x10;
export const POLLFD_SIZE = 8;
export const EAGAIN = 11;
export const EINTR = 4;
export const EBUSY = 16;
export const ENOENT = 2;
export const EACCES = 13;
export const EPERM = 1;

/** x86_64 syscall numbers used directly (asm/unistd_64.h). */
export const SYS = { pidfd_send_signal: 424n, pidfd_open: 434n } as const;

/** The device's path. */
export const DEVICE = "/dev/idwrap";

/** open(2) on a path; the fd or -errno. */
export function openPath(path: string, flags: number): number {
  const fd = libc.symbols.open(new TextEncoder().encode(path + "\0"), flags, 0);
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
