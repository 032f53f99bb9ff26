/**
 * emitter: on every execve, emits the abstract event "suspicious-exec" with
 * the program's path as payload and lets the subscribers decide: the
 * largest answer 2 kills the process, 1 fails the execve with EACCES,
 * anything else allows it (the paper's active composition).
 */
import {
  allow,
  declared,
  declareEmit,
  declareSyscall,
  deny,
  DENY,
  EACCES,
  emit,
  errnoName,
  Event,
  kill,
  log,
  LOG_ERROR,
  LOG_WARNING,
  PRE,
  SYS_execve,
} from "../sdk/index";

export { idwrap_abi_version } from "../sdk/index";

const EVENT_NAME = "suspicious-exec";
// idwrap_declare runs on a scratch instance that is then discarded, so the
// handle cannot be kept from there: it is the first (and only) emit this
// module declares, number 0, and idwrap_declare checks that.
const HANDLE: i32 = 0;
const ERR_HANDLE = "emitter: the host numbered the emit handle differently than expected (0)";
const WARN_EMIT = "emitter: emit failed: ";

const ANSWER_DENY: i32 = 1;
const ANSWER_KILL: i32 = 2;

export function idwrap_declare(): i32 {
  declareSyscall(SYS_execve, PRE | DENY);
  const handle = declareEmit(EVENT_NAME);
  if (handle >= 0 && handle != HANDLE) {
    log(LOG_ERROR, ERR_HANDLE);
    return 1;
  }
  return declared();
}

export function idwrap_on_syscall(): i32 {
  const path = Event.path();
  const answer = emit(HANDLE, path === null ? "" : path);
  if (answer < 0) {
    // -ELOOP (nested too deep) or a host error: nobody answered, so allow.
    log(LOG_WARNING, WARN_EMIT + errnoName(answer));
    return allow();
  }
  if (answer == ANSWER_KILL) return kill();
  if (answer == ANSWER_DENY) return deny(EACCES);
  return allow();
}
