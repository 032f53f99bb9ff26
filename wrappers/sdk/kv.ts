/**
 * The wrapper's key-value store, shared by all its instances across
 * processes (docs/abi.md, "Key-value store"). Keys up to 1024 bytes,
 * values up to 32768. Functions that return null leave the reason
 * (-ENOENT: no such key) in lastStatus().
 */
import { kv_delete, kv_set } from "./imports";
import { fetch, fetchBytes, fetched, fetchString, fillKvGet, fillKvList, input, inputLen, setStatus } from "./buffer";
import { EINVAL } from "./errno";

export const KV_MAX_KEY: i32 = 1024;
export const KV_MAX_VALUE: i32 = 32768;

/** The value of key, or null if there is none. */
export function kvGet(key: string): ArrayBuffer | null {
  const p = input(key);
  return fetchBytes(fillKvGet, p, inputLen());
}

/** The value of key decoded as UTF-8, or null if there is none. */
export function kvGetString(key: string): string | null {
  const p = input(key);
  return fetchString(fillKvGet, p, inputLen());
}

/** Stores value (a string, as UTF-8, or an ArrayBuffer) under key; 0 or -E2BIG. */
export function kvSet<T>(key: string, value: T): i32 {
  let val: ArrayBuffer;
  if (isString<T>()) {
    val = String.UTF8.encode(changetype<string>(value));
  } else if (idof<T>() == idof<ArrayBuffer>()) {
    val = changetype<ArrayBuffer>(value);
  } else {
    ERROR("kvSet takes a string or an ArrayBuffer");
    return -EINVAL;
  }
  const p = input(key);
  return setStatus(kv_set(p, inputLen(), changetype<usize>(val), val.byteLength));
}

/** Removes key; 0 or -ENOENT. */
export function kvDelete(key: string): i32 {
  const p = input(key);
  return setStatus(kv_delete(p, inputLen()));
}

/** The keys that start with prefix, in byte order. */
export function kvList(prefix: string): string[] {
  const p = input(prefix);
  const n = fetch(fillKvList, p, inputLen());
  const keys = new Array<string>(0);
  if (n <= 0) return keys;
  // The host writes each key followed by a NUL.
  const base = fetched();
  let start: i32 = 0;
  for (let i: i32 = 0; i < n; i++) {
    if (load<u8>(base + <usize>i) == 0) {
      keys.push(String.UTF8.decodeUnsafe(base + <usize>start, <usize>(i - start)));
      start = i + 1;
    }
  }
  return keys;
}

/** An i64 counter stored as 8 little-endian bytes; def if the key is missing or not 8 bytes long. */
export function kvGetI64(key: string, def: i64 = 0): i64 {
  const p = input(key);
  const n = fetch(fillKvGet, p, inputLen());
  if (n != 8) return def;
  return load<i64>(fetched());
}

/** Stores an i64 counter as 8 little-endian bytes; 0 or a negative status. */
export function kvSetI64(key: string, value: i64): i32 {
  const p = input(key);
  const buf = memory.data(8, 8);
  store<i64>(buf, value);
  return setStatus(kv_set(p, inputLen(), buf, 8));
}

/**
 * Adds delta to an i64 counter and returns the new value. A read then a
 * write, not one atomic step: if the host runs two instances of the wrapper
 * at the same moment on different threads, one update can be lost.
 */
export function kvAddI64(key: string, delta: i64 = 1): i64 {
  const v = kvGetI64(key, 0) + delta;
  kvSetI64(key, v);
  return v;
}
