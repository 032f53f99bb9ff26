/**
 * Declarations, made inside idwrap_declare (docs/abi.md, "Declaration").
 * Each call returns the host's status and also remembers the first failure,
 * logged with what was refused, so idwrap_declare can end with
 * `return declared();` and the host refuses the wrapper with a reason.
 */
import {
  declare_emit,
  declare_group,
  declare_lifecycle,
  declare_subscribe,
  declare_syscall,
} from "./imports";
import { input, inputLen, setStatus } from "./buffer";
import { EINVAL, errnoName } from "./errno";
import { log, LOG_ERROR } from "./host";
import { syscallNumber } from "./syscalls";

/** Call the hook before the kernel runs the call. */
export const PRE: i32 = 1;
/** Call the hook after the call completed. */
export const POST: i32 = 2;
/** The pre hook may deny or kill. */
export const DENY: i32 = 4;
/**
 * ABI 1.2: the pre hook may kill but never denies, so the call need not wait for it: the kernel-module source only
 * observes such a call and the kill may land just after it ran. (seccomp answers every notified call first.)
 */
export const MAY_KILL: i32 = 8;
/**
 * ABI 1.5, with DENY on an open (open, openat, creat, openat2, open_by_handle_at): the hook denies or kills only an
 * open that may write (O_WRONLY, O_RDWR, O_CREAT, O_TRUNC or O_TMPFILE; creat always). A source may then hold only
 * those and observe the rest without making them wait; a deny of another open holds only where the source held it.
 */
export const WRITES: i32 = 16;

/** Lifecycle kind: the process now runs a new program. */
export const EXEC: i32 = 1;
/** Lifecycle kind: the process exits (last call of the instance). */
export const EXIT: i32 = 2;

const ERR_DECLARE = "declaration refused: ";
const ERR_UNKNOWN_NAME = "unknown syscall name (pass its number): ";

let firstFailure: i32 = 0;

function check(status: i32, what: string): i32 {
  setStatus(status);
  if (status < 0) {
    log(LOG_ERROR, ERR_DECLARE + what + ": " + errnoName(status));
    if (firstFailure == 0) firstFailure = status;
  }
  return status;
}

/**
 * Intercepts a system call, given by x86_64 number (SYS_openat) or by name
 * ("openat", for the names in syscalls.ts), in the phases of flags
 * (PRE, POST, DENY). Returns 0 or a negative status.
 */
export function declareSyscall<T>(call: T, flags: i32): i32 {
  if (isString<T>()) {
    const name = changetype<string>(call);
    const nr = syscallNumber(name);
    if (nr < 0) {
      log(LOG_ERROR, ERR_UNKNOWN_NAME + name);
      if (firstFailure == 0) firstFailure = -EINVAL;
      return setStatus(-EINVAL);
    }
    return check(declare_syscall(nr, flags), name);
  } else if (isInteger<T>()) {
    const nr = <i32>call;
    return check(declare_syscall(nr, flags), "syscall " + nr.toString());
  } else {
    ERROR("declareSyscall takes a syscall number or name");
    return -EINVAL;
  }
}

/** Intercepts a group of calls: "file", "process", "exec" or "net". */
export function declareGroup(name: string, flags: i32): i32 {
  const p = input(name);
  return check(declare_group(p, inputLen(), flags), "group " + name);
}

/** Receives lifecycle events: EXEC, EXIT or EXEC | EXIT. */
export function declareLifecycle(kinds: i32): i32 {
  return check(declare_lifecycle(kinds), "lifecycle " + kinds.toString());
}

/** Subscribes to an abstract event; returns the subscription number idwrap_on_abstract receives. */
export function subscribe(name: string): i32 {
  const p = input(name);
  return check(declare_subscribe(p, inputLen()), "subscribe " + name);
}

/** Announces an abstract event this wrapper emits; returns its handle for emit(). */
export function declareEmit(name: string): i32 {
  const p = input(name);
  return check(declare_emit(p, inputLen()), "emit " + name);
}

/** What idwrap_declare should return: 0 if every declaration succeeded, else the first failure. */
export function declared(): i32 {
  return firstFailure;
}
