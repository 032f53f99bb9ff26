/**
 * Linux errno numbers, for deny(errno) verdicts and for reading the negative
 * statuses that host imports return (docs/abi.md, "Status codes").
 */

export const EPERM: i32 = 1;
export const ENOENT: i32 = 2;
export const ESRCH: i32 = 3;
export const EINTR: i32 = 4;
export const EIO: i32 = 5;
export const E2BIG: i32 = 7;
export const ENOEXEC: i32 = 8;
export const EBADF: i32 = 9;
export const EAGAIN: i32 = 11;
export const ENOMEM: i32 = 12;
export const EACCES: i32 = 13;
export const EFAULT: i32 = 14;
export const EBUSY: i32 = 16;
export const EEXIST: i32 = 17;
export const EXDEV: i32 = 18;
export const ENOTDIR: i32 = 20;
export const EISDIR: i32 = 21;
export const EINVAL: i32 = 22;
export const EMFILE: i32 = 24;
export const ETXTBSY: i32 = 26;
export const ENOSPC: i32 = 28;
export const EROFS: i32 = 30;
export const EMLINK: i32 = 31;
export const ENAMETOOLONG: i32 = 36;
export const ENOSYS: i32 = 38;
export const ELOOP: i32 = 40;
export const ENOTSOCK: i32 = 88;
export const EPROTONOSUPPORT: i32 = 93;
export const EAFNOSUPPORT: i32 = 97;
export const EADDRINUSE: i32 = 98;
export const EADDRNOTAVAIL: i32 = 99;
export const ENETUNREACH: i32 = 101;
export const ECONNREFUSED: i32 = 111;
export const EHOSTUNREACH: i32 = 113;

/** "EACCES" for 13 (or -13, a status); "E<n>" for numbers not listed here. */
export function errnoName(errno: i32): string {
  const e = errno < 0 ? -errno : errno;
  switch (e) {
    case EPERM: return "EPERM";
    case ENOENT: return "ENOENT";
    case ESRCH: return "ESRCH";
    case EINTR: return "EINTR";
    case EIO: return "EIO";
    case E2BIG: return "E2BIG";
    case ENOEXEC: return "ENOEXEC";
    case EBADF: return "EBADF";
    case EAGAIN: return "EAGAIN";
    case ENOMEM: return "ENOMEM";
    case EACCES: return "EACCES";
    case EFAULT: return "EFAULT";
    case EBUSY: return "EBUSY";
    case EEXIST: return "EEXIST";
    case EXDEV: return "EXDEV";
    case ENOTDIR: return "ENOTDIR";
    case EISDIR: return "EISDIR";
    case EINVAL: return "EINVAL";
    case EMFILE: return "EMFILE";
    case ETXTBSY: return "ETXTBSY";
    case ENOSPC: return "ENOSPC";
    case EROFS: return "EROFS";
    case EMLINK: return "EMLINK";
    case ENAMETOOLONG: return "ENAMETOOLONG";
    case ENOSYS: return "ENOSYS";
    case ELOOP: return "ELOOP";
    case ENOTSOCK: return "ENOTSOCK";
    case EPROTONOSUPPORT: return "EPROTONOSUPPORT";
    case EAFNOSUPPORT: return "EAFNOSUPPORT";
    case EADDRINUSE: return "EADDRINUSE";
    case EADDRNOTAVAIL: return "EADDRNOTAVAIL";
    case ENETUNREACH: return "ENETUNREACH";
    case ECONNREFUSED: return "ECONNREFUSED";
    case EHOSTUNREACH: return "EHOSTUNREACH";
  }
  return "E" + e.toString();
}
