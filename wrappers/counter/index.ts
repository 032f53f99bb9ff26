/**
 * counter: counts openat and execve calls of every wrapped process in the
 * wrapper's key-value store, under "count/<syscall name>" as an i64
 * (8 bytes, little-endian), so the counts add up across processes.
 *
 * Setting "alert_at" (optional): when the shared openat count reaches this
 * number, one alert is raised (by whichever process makes that call).
 */
import {
  alert,
  allow,
  declared,
  declareSyscall,
  Event,
  kvAddI64,
  PRE,
  settingInt,
  SEVERITY_MEDIUM,
  SYS_execve,
  SYS_openat,
  syscallNameOf,
} from "../sdk/index";

export { idwrap_abi_version } from "../sdk/index";

const KEY_PREFIX = "count/";
const ALERT_REACHED = "counter: openat count reached ";

// 0 disables the alert.
let alertAt: i64 = 0;

export function idwrap_declare(): i32 {
  declareSyscall(SYS_openat, PRE);
  declareSyscall(SYS_execve, PRE);
  return declared();
}

export function idwrap_init(): i32 {
  alertAt = settingInt("alert_at", 0);
  return 0;
}

export function idwrap_on_syscall(): i32 {
  const nr = Event.syscall();
  // The SDK knows both names; asking the host is the fallback for others.
  let name = syscallNameOf(nr);
  if (name === null) name = Event.syscallName();
  if (name === null) return allow();
  const count = kvAddI64(KEY_PREFIX + name, 1);
  // "==" rather than ">=": the count is shared, so exactly one call sees it.
  if (nr == SYS_openat && alertAt > 0 && count == alertAt) {
    alert(SEVERITY_MEDIUM, ALERT_REACHED + count.toString());
  }
  return allow();
}
