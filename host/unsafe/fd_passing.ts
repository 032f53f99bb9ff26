/**
 * A Unix SEQPACKET socket pair, and a message sent with a file descriptor attached (SCM_RIGHTS): how the supervisor
 * hands idwrap-holder a copy of each listener (host/sources/seccomp/holder.ts). Deno has no API for either, so
 * socketpair(2) and sendmsg(2) through libc's syscall(2), with struct msghdr and cmsghdr laid out here.
 *
 * @module
 */
import { addressOf, errno, libc } from "./libc.ts";

const SYS_SENDMSG = 46n;
const SYS_SOCKETPAIR = 53n;
const AF_UNIX = 1n;
const SOCK_SEQPACKET = 5n;
const SOCK_CLOEXEC = 0x80000n;
const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const MSG_NOSIGNAL = 0x4000n;

/** A connected pair of close-on-exec Unix SEQPACKET sockets; throws with the errno. */
export function seqpacketPair(): [number, number] {
  const pair = new Int32Array(2);
  const r = libc.symbols.syscall(
    SYS_SOCKETPAIR,
    AF_UNIX,
    SOCK_SEQPACKET | SOCK_CLOEXEC,
    0n,
    addressOf(new Uint8Array(pair.buffer)),
    0n,
    0n,
  );
  if (r < 0n) throw new Error(`socketpair(AF_UNIX, SOCK_SEQPACKET) failed: errno ${errno()}`);
  return [pair[0], pair[1]];
}

/** Sends `data` on socket `sock` with a copy of `fd` attached; returns sendmsg's result (negative: see errno()). */
export function sendWithFd(sock: number, data: Uint8Array, fd: number): bigint {
  const iov = new BigUint64Array([addressOf(data), BigInt(data.length)]); // struct iovec
  const control = new Uint8Array(24); // CMSG_SPACE(sizeof(int))
  const cv = new DataView(control.buffer);
  cv.setBigUint64(0, 20n, true); // cmsg_len = CMSG_LEN(sizeof(int))
  cv.setInt32(8, SOL_SOCKET, true);
  cv.setInt32(12, SCM_RIGHTS, true);
  cv.setInt32(16, fd, true);
  const msg = new BigUint64Array(7); // struct msghdr: name, namelen, iov, iovlen, control, controllen, flags
  msg[2] = addressOf(new Uint8Array(iov.buffer));
  msg[3] = 1n;
  msg[4] = addressOf(control);
  msg[5] = BigInt(control.length);
  return libc.symbols.syscall(
    SYS_SENDMSG,
    BigInt(sock),
    addressOf(new Uint8Array(msg.buffer)),
    MSG_NOSIGNAL,
    0n,
    0n,
    0n,
  );
}
