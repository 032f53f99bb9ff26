/**
 * Alerts, logs, settings and the clock (docs/abi.md, "Alerts, logs,
 * settings, clock").
 */
import { alert as hostAlert, clock_ns, log as hostLog } from "./imports";
import { fetchString, fillSetting, input, inputLen } from "./buffer";

export const SEVERITY_INFO: i32 = 0;
export const SEVERITY_LOW: i32 = 1;
export const SEVERITY_MEDIUM: i32 = 2;
export const SEVERITY_HIGH: i32 = 3;
export const SEVERITY_CRITICAL: i32 = 4;

export const LOG_DEBUG: i32 = 0;
export const LOG_INFO: i32 = 1;
export const LOG_WARNING: i32 = 2;
export const LOG_ERROR: i32 = 3;

const ERR_NOT_A_NUMBER = "setting is not a decimal integer: ";

/** Raises an alert about the current process (severity SEVERITY_*). */
export function alert(severity: i32, msg: string): void {
  const p = input(msg);
  hostAlert(severity, p, inputLen());
}

/** Writes a diagnostic line (level LOG_*). */
export function log(level: i32, msg: string): void {
  const p = input(msg);
  hostLog(level, p, inputLen());
}

/** A setting from the policy as text (lists and maps as JSON), or null if unset. */
export function setting(key: string): string | null {
  const p = input(key);
  return fetchString(fillSetting, p, inputLen());
}

/** A setting, or def if unset. */
export function settingOr(key: string, def: string): string {
  const v = setting(key);
  return v === null ? def : v;
}

/**
 * A setting that holds a decimal integer, or def if unset. A value that is
 * not a number is logged as an error and gives def, so a typo in a policy
 * shows up in the log instead of silently becoming 0.
 */
export function settingInt(key: string, def: i64): i64 {
  const v = setting(key);
  if (v === null) return def;
  const s = v.trim();
  let i = 0;
  let neg = false;
  if (s.length > 0 && (s.charCodeAt(0) == 0x2d || s.charCodeAt(0) == 0x2b)) {
    neg = s.charCodeAt(0) == 0x2d;
    i = 1;
  }
  if (i >= s.length) {
    log(LOG_ERROR, ERR_NOT_A_NUMBER + key + "=" + v);
    return def;
  }
  let n: i64 = 0;
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x30 || c > 0x39) {
      log(LOG_ERROR, ERR_NOT_A_NUMBER + key + "=" + v);
      return def;
    }
    n = n * 10 + <i64>(c - 0x30);
  }
  return neg ? -n : n;
}

/** Monotonic nanoseconds, or -EPERM unless the policy grants "clock". */
// @ts-ignore: decorator
@inline
export function clockNs(): i64 {
  return clock_ns();
}
