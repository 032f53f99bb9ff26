/**
 * deny_path: fails every open of one exact path.
 *
 * Settings: "path" (required) the path, compared byte for byte with the
 * path argument as the kernel will use it (so a relative open of the same
 * file is not matched); "errno" (optional, default 13 = EACCES) the errno
 * the open fails with. Each denied open raises a high-severity alert.
 */
import {
  alert,
  allow,
  declared,
  declareSyscall,
  deny,
  DENY,
  EACCES,
  Event,
  log,
  LOG_ERROR,
  PRE,
  setting,
  settingInt,
  SEVERITY_HIGH,
  SYS_creat,
  SYS_open,
  SYS_openat,
  SYS_openat2,
} from "../sdk/index";

export { idwrap_abi_version } from "../sdk/index";

const ERR_NO_PATH = "deny_path: the setting \"path\" is required";
const ERR_BAD_ERRNO = "deny_path: the setting \"errno\" must be between 1 and 4095";
const ALERT_DENIED = "deny_path: denied open of ";

// errno values fit in 12 bits on Linux (MAX_ERRNO); the verdict has room for 16.
const MAX_ERRNO: i64 = 4095;

let target = "";
let errno: i32 = EACCES;

export function idwrap_declare(): i32 {
  declareSyscall(SYS_open, PRE | DENY);
  declareSyscall(SYS_openat, PRE | DENY);
  declareSyscall(SYS_openat2, PRE | DENY);
  declareSyscall(SYS_creat, PRE | DENY);
  return declared();
}

export function idwrap_init(): i32 {
  const path = setting("path");
  // A deny_path without a path is a policy mistake: fail (the process gets
  // the fail mode) rather than silently protect nothing.
  if (path === null || path.length == 0) {
    log(LOG_ERROR, ERR_NO_PATH);
    return 1;
  }
  target = path;
  const e = settingInt("errno", EACCES);
  if (e < 1 || e > MAX_ERRNO) {
    log(LOG_ERROR, ERR_BAD_ERRNO);
    return 1;
  }
  errno = <i32>e;
  return 0;
}

export function idwrap_on_syscall(): i32 {
  const path = Event.path();
  if (path === null || path != target) return allow();
  alert(SEVERITY_HIGH, ALERT_DENIED + path);
  return deny(errno);
}
