/**
 * The filesystem type (statfs(2) `f_type`) of a path, magic links followed: O_PATH open, fstatfs, close.
 *
 * @module
 */
import { addressOf, libc, SYS } from "./libc.ts";

/** overlayfs: a view of other directories, whose files have the overlay's own dev:ino. */
export const OVERLAYFS_SUPER_MAGIC = 0x794c7630n;

const O_PATH = 0o10000000n, O_CLOEXEC = 0o2000000n;

/** `f_type` of the filesystem holding `path`, or undefined when it cannot be opened. */
export function fsTypeOf(path: string): bigint | undefined {
  const buf = new Uint8Array(path.length * 3 + 1);
  const { written } = new TextEncoder().encodeInto(path, buf);
  buf[written] = 0;
  const fd = Number(libc.symbols.syscall(SYS.openat, -100n, addressOf(buf), O_PATH | O_CLOEXEC, 0n, 0n, 0n));
  if (fd < 0) return undefined;
  try {
    const st = new BigInt64Array(15); // struct statfs (120 bytes), f_type first
    return libc.symbols.fstatfs(fd, new Uint8Array(st.buffer)) === 0 ? st[0] : undefined;
  } finally {
    libc.symbols.close(fd);
  }
}
