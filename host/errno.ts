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
