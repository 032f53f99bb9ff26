/**
 * Moving bytes across the ABI. The module owns all memory (docs/abi.md,
 * "Encoding rules"): strings going to the host are encoded into a static
 * input buffer, and data coming back lands in a static 4096-byte scratch
 * buffer. Both are static so a hook on the fast path allocates nothing but
 * the strings it returns; a value that does not fit (the host returns its
 * full length) is fetched again into a heap buffer of that length.
 */
import {
  abstract_emitter,
  abstract_payload,
  event_argv,
  event_data,
  event_string,
  kv_get,
  kv_list,
  settings_get,
  wr_get_addr,
  wr_getpeername,
  wr_getsockname,
} from "./imports";
import { E2BIG } from "./errno";

/** Size of the shared output scratch buffer. */
export const SCRATCH_SIZE: i32 = 4096;
/** Size of the static input buffer; longer inputs are encoded on the heap. */
export const INPUT_SIZE: i32 = 1024;

const SCRATCH: usize = memory.data(SCRATCH_SIZE, 16);
const INPUT: usize = memory.data(INPUT_SIZE, 16);

// A value can change between the two calls (another process writes the
// key), so retry a few times rather than assuming the second call fits.
const MAX_FETCHES: i32 = 4;

/**
 * A host call that fills (buf, len) and returns the full length or a
 * negative status; a and b carry its own arguments (a key pointer and
 * length, a field number, an fd). One small function per import rather
 * than one dispatcher, so a wrapper imports only what it uses.
 */
export type Filler = (a: usize, b: i32, buf: usize, len: i32) => i32;

export function fillEventString(_a: usize, b: i32, buf: usize, len: i32): i32 {
  return event_string(b, buf, len);
}
export function fillEventArgv(_a: usize, b: i32, buf: usize, len: i32): i32 {
  return event_argv(b, buf, len);
}
export function fillEventData(_a: usize, _b: i32, buf: usize, len: i32): i32 {
  return event_data(buf, len);
}
export function fillKvGet(a: usize, b: i32, buf: usize, len: i32): i32 {
  return kv_get(a, b, buf, len);
}
export function fillKvList(a: usize, b: i32, buf: usize, len: i32): i32 {
  return kv_list(a, b, buf, len);
}
export function fillSetting(a: usize, b: i32, buf: usize, len: i32): i32 {
  return settings_get(a, b, buf, len);
}
export function fillPayload(_a: usize, _b: i32, buf: usize, len: i32): i32 {
  return abstract_payload(buf, len);
}
export function fillEmitter(_a: usize, _b: i32, buf: usize, len: i32): i32 {
  return abstract_emitter(buf, len);
}
export function fillGetAddr(_a: usize, b: i32, buf: usize, len: i32): i32 {
  return wr_get_addr(b, buf, len);
}
export function fillPeerName(_a: usize, b: i32, buf: usize, len: i32): i32 {
  return wr_getpeername(b, buf, len);
}
export function fillSockName(_a: usize, b: i32, buf: usize, len: i32): i32 {
  return wr_getsockname(b, buf, len);
}

let status: i32 = 0;
// Keeps a grown buffer reachable for the GC until its bytes are copied out
// (only ever written: being referenced is its whole job).
// deno-lint-ignore no-unused-vars
let grown: ArrayBuffer | null = null;
let fetchedPtr: usize = 0;
// Keeps a heap-encoded input() alive until the next input(), like grown.
// deno-lint-ignore no-unused-vars
let inputBuf: ArrayBuffer | null = null;
let inputLength: i32 = 0;

/** The status (>= 0, or a negated errno) of the last SDK call that talked to the host. */
export function lastStatus(): i32 {
  return status;
}

/** Records a status for lastStatus() and returns it. */
export function setStatus(s: i32): i32 {
  status = s;
  return s;
}

/**
 * Encodes s as UTF-8 for the host: returns the pointer, inputLen() the
 * length. Valid until the next input() call, so one string at a time.
 */
export function input(s: string): usize {
  const len = String.UTF8.byteLength(s);
  if (len <= INPUT_SIZE) {
    inputBuf = null;
    inputLength = <i32>String.UTF8.encodeUnsafe(changetype<usize>(s), s.length, INPUT);
    return INPUT;
  }
  const buf = String.UTF8.encode(s);
  inputBuf = buf;
  inputLength = buf.byteLength;
  return changetype<usize>(buf);
}

/** The byte length of the last input(). */
// @ts-ignore: decorator
@inline
export function inputLen(): i32 {
  return inputLength;
}

/**
 * Asks the host for a value, growing the buffer until it fits. Returns its
 * length (the bytes are at fetched()) or a negative status.
 */
export function fetch(fill: Filler, a: usize, b: i32): i32 {
  let buf = SCRATCH;
  let cap = SCRATCH_SIZE;
  grown = null;
  for (let i = 0; i < MAX_FETCHES; i++) {
    const n = fill(a, b, buf, cap);
    if (n <= cap) {
      fetchedPtr = buf;
      return setStatus(n);
    }
    const bigger = new ArrayBuffer(n);
    grown = bigger;
    buf = changetype<usize>(bigger);
    cap = n;
  }
  return setStatus(-E2BIG);
}

/** Where the last successful fetch() put its bytes. */
// @ts-ignore: decorator
@inline
export function fetched(): usize {
  return fetchedPtr;
}

/** fetch() decoded as a UTF-8 string, or null on a negative status. */
export function fetchString(fill: Filler, a: usize, b: i32): string | null {
  const n = fetch(fill, a, b);
  if (n < 0) return null;
  const s = String.UTF8.decodeUnsafe(fetchedPtr, <usize>n);
  grown = null;
  return s;
}

/** fetch() copied into a new ArrayBuffer, or null on a negative status. */
export function fetchBytes(fill: Filler, a: usize, b: i32): ArrayBuffer | null {
  const n = fetch(fill, a, b);
  if (n < 0) return null;
  const out = new ArrayBuffer(n);
  memory.copy(changetype<usize>(out), fetchedPtr, <usize>n);
  grown = null;
  return out;
}
