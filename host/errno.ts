/**
 * errno names and numbers of Linux, from Node's os.constants (libuv's table).
 *
 * @module
 */
import { constants } from "node:os";

const BY_NAME: Readonly<Record<string, number>> = constants.errno;
const BY_NUMBER = new Map<number, string>();
for (const [name, nr] of Object.entries(BY_NAME)) if (!BY_NUMBER.has(nr)) BY_NUMBER.set(nr, name);

/** `EACCES` for 13; `E123` where the table has no name. */
export function errnoName(nr: number): string {
  return BY_NUMBER.get(nr) ?? `E${nr}`;
}

/**
 * The number of an errno name.
 *
 * @returns the number, or undefined for an unknown name
 */
export function errnoNumber(name: string): number | undefined {
  return BY_NAME[name];
}

/** The errno numbers idwrap names in code (Linux, x86_64; asm-generic/errno-base.h and errno.h). */
export const E = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EBADF: 9,
  EAGAIN: 11,
  EWOULDBLOCK: 11,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  EXDEV: 18,
  ENOTDIR: 20,
  EISDIR: 21,
  EINVAL: 22,
  ELOOP: 40,
  ENOSYS: 38,
  EOPNOTSUPP: 95,
} as const;
