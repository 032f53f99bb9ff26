/**
 * Verdicts, the i32 that idwrap_on_syscall returns (docs/abi.md): bits 0-7
 * the action, bits 8-23 deny's errno (0 there means EPERM).
 */
import { EPERM } from "./errno";

export const ACTION_ALLOW: i32 = 0;
export const ACTION_DENY: i32 = 1;
export const ACTION_KILL: i32 = 2;
/** Reserved by the ABI (rewrite, kernel module only); no helper builds it. */
export const ACTION_REWRITE: i32 = 3;

/** Let the call run. */
export const ALLOW: i32 = ACTION_ALLOW;
/** Kill the process (only with DENY declared, in pre; in post too). */
export const KILL: i32 = ACTION_KILL;

/** Let the call run. */
// @ts-ignore: decorator
@inline
export function allow(): i32 {
  return ACTION_ALLOW;
}

/** Fail the call with errno (only if DENY was declared for it; pre only). */
// @ts-ignore: decorator
@inline
export function deny(errno: i32 = EPERM): i32 {
  return ACTION_DENY | ((errno & 0xffff) << 8);
}

/** Kill the process (only if DENY was declared for the call). */
// @ts-ignore: decorator
@inline
export function kill(): i32 {
  return ACTION_KILL;
}

/** The action of a verdict: ACTION_ALLOW, ACTION_DENY or ACTION_KILL. */
export function verdictAction(verdict: i32): i32 {
  return verdict & 0xff;
}

/** The errno of a deny verdict (0 encodes EPERM, so this never returns 0 for a deny). */
export function verdictErrno(verdict: i32): i32 {
  const e = (verdict >> 8) & 0xffff;
  return e == 0 ? EPERM : e;
}
