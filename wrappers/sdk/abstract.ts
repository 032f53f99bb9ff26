/**
 * Abstract events, the paper's active composition (docs/abi.md, "Abstract
 * events"): a wrapper announces with declareEmit() and emits; subscribers'
 * idwrap_on_abstract runs at once and their largest answer comes back.
 */
import { emit as hostEmit } from "./imports";
import { fetchBytes, fetchString, fillEmitter, fillPayload, setStatus } from "./buffer";
import { EINVAL } from "./errno";

/**
 * Emits an abstract event (handle from declareEmit) with a payload, a
 * string (sent as UTF-8) or an ArrayBuffer. Returns the largest value the
 * subscribers returned (0 if none), or -ELOOP when nested too deep.
 */
export function emit<T>(handle: i32, payload: T): i32 {
  // The payload goes on the heap, not the static input buffer: a
  // subscriber in this same instance may run during the call.
  let buf: ArrayBuffer;
  if (isString<T>()) {
    buf = String.UTF8.encode(changetype<string>(payload));
  } else if (idof<T>() == idof<ArrayBuffer>()) {
    buf = changetype<ArrayBuffer>(payload);
  } else {
    ERROR("emit takes a string or an ArrayBuffer");
    return -EINVAL;
  }
  return setStatus(hostEmit(handle, changetype<usize>(buf), buf.byteLength));
}

/** Inside idwrap_on_abstract: the payload as UTF-8 text ("" if unavailable). */
export function abstractPayload(): string {
  const s = fetchString(fillPayload, 0, 0);
  return s === null ? "" : s;
}

/** Inside idwrap_on_abstract: the payload bytes (empty if unavailable). */
export function abstractPayloadBytes(): ArrayBuffer {
  const b = fetchBytes(fillPayload, 0, 0);
  return b === null ? new ArrayBuffer(0) : b;
}

/** Inside idwrap_on_abstract: the emitting wrapper's name ("" if unavailable). */
export function abstractEmitter(): string {
  const s = fetchString(fillEmitter, 0, 0);
  return s === null ? "" : s;
}
