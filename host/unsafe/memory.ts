/**
 * Reads a wrapped process's memory with process_vm_readv(2). The caller
 * must check SECCOMP_IOCTL_NOTIF_ID_VALID after reading: until then the
 * bytes may belong to a process that has since died or exec'd.
 *
 * @module
 */
import { addressOf, libc } from "./libc.ts";

const PAGE = 4096;
/** Longest string read: PATH_MAX, as the kernel's getname(). */
export const MAX_STRING = 4096;
/** Largest block read at once: a write's data for event_data (decode.ts's MAX_DATA). */
export const MAX_BYTES = 65536;

/** A reader owning its buffers; one per supervisor thread. */
export class TargetMemory {
  #buf = new Uint8Array(Math.max(MAX_STRING + PAGE, MAX_BYTES));
  #local = new Uint8Array(16);
  #remote = new Uint8Array(16);
  #localView = new DataView(this.#local.buffer);
  #remoteView = new DataView(this.#remote.buffer);
  #bufAddr = addressOf(this.#buf);
  #decoder = new TextDecoder();

  /** Copies up to `len` bytes from `addr` in `pid`; returns how many arrived. */
  #read(pid: number, addr: bigint, len: number, offset: number): number {
    this.#localView.setBigUint64(0, this.#bufAddr + BigInt(offset), true);
    this.#localView.setBigUint64(8, BigInt(len), true);
    this.#remoteView.setBigUint64(0, addr, true);
    this.#remoteView.setBigUint64(8, BigInt(len), true);
    return Number(libc.symbols.process_vm_readv(pid, this.#local, 1n, this.#remote, 1n, 0n));
  }

  /**
   * Reads a NUL-terminated string, a page at a time so a string ending just
   * before an unmapped page still reads.
   *
   * @param cut a string longer than `max` comes back cut, ending in "…" (an execve argument may be 128 KiB)
   * @returns the string, or undefined if the memory is not readable (or, unless `cut`, the string is too long)
   */
  readString(pid: number, addr: bigint, max = MAX_STRING, cut = false): string | undefined {
    if (addr === 0n) return undefined;
    let got = 0;
    while (got < max) {
      const pageLeft = PAGE - Number((addr + BigInt(got)) % BigInt(PAGE));
      const want = Math.min(pageLeft, max - got);
      const n = this.#read(pid, addr + BigInt(got), want, got);
      if (n <= 0) return undefined;
      const nul = this.#buf.subarray(got, got + n).indexOf(0);
      if (nul >= 0) return this.#decoder.decode(this.#buf.subarray(0, got + nul));
      got += n;
    }
    // Longer than PATH_MAX: as a path the kernel says ENAMETOOLONG; as an argument it is fine.
    return cut ? this.#decoder.decode(this.#buf.subarray(0, got)) + "…" : undefined;
  }

  /** Reads `len` bytes; undefined unless all of them could be read. */
  readBytes(pid: number, addr: bigint, len: number): Uint8Array | undefined {
    if (addr === 0n || len > this.#buf.length) return undefined;
    const n = this.#read(pid, addr, len, 0);
    return n === len ? this.#buf.slice(0, len) : undefined;
  }

  /** Reads a NULL-terminated array of string pointers (execve's argv). */
  readStringArray(pid: number, addr: bigint, maxItems = 256): string[] | undefined {
    if (addr === 0n) return [];
    const out: string[] = [];
    for (let i = 0; i < maxItems; i++) {
      const ptr = this.readBytes(pid, addr + BigInt(i * 8), 8);
      if (!ptr) return undefined;
      const p = new DataView(ptr.buffer).getBigUint64(0, true);
      if (p === 0n) return out;
      const s = this.readString(pid, p, MAX_STRING, true);
      if (s === undefined) return undefined;
      out.push(s);
    }
    out.push("...");
    return out;
  }
}
