/**
 * Fitting an audit record into a size limit: its longest strings are halved, then its longest arrays, until it fits;
 * the record is marked `idwrap.truncated`. The store fits a record into one Deno KV value (at most 64 KiB, estimated);
 * an output fits it into its transport's limit (a UDP datagram, a NATS message), measured in the bytes it sends.
 *
 * @module
 */
import type { AuditRecord } from "./record.ts";

/** Deno KV values are at most 64 KiB; a record is cut to fit in this many bytes (estimated). */
const MAX_RECORD_BYTES = 60 * 1024;

/** Estimated serialized size: V8 stores a string with any non-Latin-1 character as UTF-16. */
function estimate(value: unknown): number {
  return JSON.stringify(value).length * 2 + 64;
}

/** Cuts a record's longest strings until it fits in a Deno KV value. */
export function fit(record: AuditRecord): { value: AuditRecord; bytes: number } {
  return cutToFit(record, estimate, MAX_RECORD_BYTES);
}

/**
 * Cuts a record's longest strings (then its longest arrays) until `size` of it is at most `max`. Returns the record
 * unchanged when it fits; else a copy marked `idwrap.truncated`, and its size — still above `max` when nothing more
 * could be cut (the caller decides what to do with it).
 */
export function cutToFit(
  record: AuditRecord,
  size: (r: AuditRecord) => number,
  max: number,
): { value: AuditRecord; bytes: number } {
  let bytes = size(record);
  if (bytes <= max) return { value: record, bytes };
  const value: Record<string, unknown> = { ...record, "idwrap.truncated": true };
  for (const [k, v] of Object.entries(value)) if (Array.isArray(v)) value[k] = [...v];
  while (bytes > max) {
    // The longest string, at top level or in an array.
    let best: { holder: Record<string, unknown> | unknown[]; key: string | number; length: number } | undefined;
    for (const [k, v] of Object.entries(value)) {
      if (typeof v === "string" && v.length > (best?.length ?? 0)) best = { holder: value, key: k, length: v.length };
      if (Array.isArray(v)) {
        v.forEach((s, i) => {
          if (typeof s === "string" && s.length > (best?.length ?? 0)) best = { holder: v, key: i, length: s.length };
        });
      }
    }
    if (best && best.length >= 16) {
      const s = (best.holder as Record<string | number, string>)[best.key];
      (best.holder as Record<string | number, string>)[best.key] = s.slice(0, s.length >> 1) + "…";
    } else {
      // Many short strings: halve the longest array.
      const longest = Object.values(value).filter(Array.isArray).sort((a, b) => b.length - a.length)[0];
      if (!longest || longest.length < 2) break;
      longest.length = longest.length >> 1;
    }
    bytes = size(value as unknown as AuditRecord);
  }
  return { value: value as unknown as AuditRecord, bytes };
}
