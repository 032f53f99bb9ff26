/**
 * Verdicts, the i32 that idwrap_on_syscall returns (docs/abi.md): bits 0-7
 * the action, bits 8-23 deny's errno (0 there means EPERM).
 */
import { EPERM } from "./errno";
import { verdict_rewrite, verdict_rewrite_path } from "./imports";

export const ACTION_ALLOW: i32 = 0;
export const ACTION_DENY: i32 = 1;
export const ACTION_KILL: i32 = 2;
/** ABI 1.2: run the call with rewritten arguments (kernel-module source only); see rewriteArg, rewritePath. */
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

/**
 * ABI 1.2 (kernel-module source only): run the call with argument `arg` (0-5) set to `value`. Needs DENY declared for
 * the call, pre only. Returns the verdict to return from idwrap_on_syscall, or, where the source cannot rewrite
 * (seccomp: -ENOSYS) or the argument is bad, the given fallback.
 */
export function rewriteArg(arg: i32, value: i64, fallback: i32 = ACTION_ALLOW): i32 {
  return verdict_rewrite(arg, value) == 0 ? ACTION_REWRITE : fallback;
}

/**
 * ABI 1.2 (kernel-module source only): run an open the module emulates on `path` instead of the caller's. Returns the
 * verdict to return, or `fallback` where the source cannot (seccomp: -ENOSYS) or the call has no path.
 */
export function rewritePath(path: string, fallback: i32 = ACTION_ALLOW): i32 {
  const bytes = String.UTF8.encode(path);
  return verdict_rewrite_path(changetype<usize>(bytes), bytes.byteLength) == 0 ? ACTION_REWRITE : fallback;
}

/** The action of a verdict: ACTION_ALLOW, ACTION_DENY, ACTION_KILL or ACTION_REWRITE. */
export function verdictAction(verdict: i32): i32 {
  return verdict & 0xff;
}

/** The errno of a deny verdict (0 encodes EPERM, so this never returns 0 for a deny). */
export function verdictErrno(verdict: i32): i32 {
  const e = (verdict >> 8) & 0xffff;
  return e == 0 ? EPERM : e;
}
