/**
 * The current event, inside idwrap_on_syscall (docs/abi.md, "The current
 * event"). Outside a hook the host answers -EPERM; the string getters then
 * return null, like a missing field.
 */
import {
  event_arg,
  event_argc,
  event_denied,
  event_gid,
  event_phase,
  event_pid,
  event_result,
  event_syscall,
  event_tid,
  event_uid,
} from "./imports";
import { fetchBytes, fetchString, fillEventArgv, fillEventData, fillEventString } from "./buffer";

/** event_phase values. */
export const PHASE_PRE: i32 = 0;
export const PHASE_POST: i32 = 1;

/** event_string fields. */
export const FIELD_PATH: i32 = 0;
export const FIELD_PATH2: i32 = 1;
export const FIELD_ADDR: i32 = 2;
export const FIELD_FLAGS: i32 = 3;
export const FIELD_EXE: i32 = 4;
export const FIELD_ARGV0: i32 = 5;
export const FIELD_SYSCALL_NAME: i32 = 6;
export const FIELD_RAW_PATH: i32 = 7;
export const FIELD_RAW_PATH2: i32 = 8;
export const FIELD_IDENT: i32 = 9;

/** Static accessors for the event being decided: `Event.path()`, `Event.uid()`, ... */
export class Event {
  /** The x86_64 syscall number. */
  static syscall(): i32 {
    return event_syscall();
  }

  /** PHASE_PRE or PHASE_POST. */
  static phase(): i32 {
    return event_phase();
  }

  /** True before the kernel runs the call (a verdict can stop it). */
  static isPre(): bool {
    return event_phase() == PHASE_PRE;
  }

  /** True after the call completed (result() is known). */
  static isPost(): bool {
    return event_phase() == PHASE_POST;
  }

  /** Raw argument register i (0-5). */
  static arg(i: i32): i64 {
    return event_arg(i);
  }

  /** Process (thread group) id. */
  static pid(): i32 {
    return event_pid();
  }

  /** Thread id. */
  static tid(): i32 {
    return event_tid();
  }

  /** Real uid of the process (the paper's invoker, _uid). */
  static uid(): i32 {
    return event_uid();
  }

  /** Real gid of the process. */
  static gid(): i32 {
    return event_gid();
  }

  /** Post: the return value, -errno on failure. Pre: 0. */
  static result(): i64 {
    return event_result();
  }

  /** True if an outer layer already denied this call (this verdict will be ignored). */
  static denied(): bool {
    return event_denied() == 1;
  }

  /** A decoded string field (FIELD_*), or null if the call has none. */
  static string(field: i32): string | null {
    return fetchString(fillEventString, 0, field);
  }

  /** The first path argument, exactly as the kernel will use it. */
  static path(): string | null {
    return fetchString(fillEventString, 0, FIELD_PATH);
  }

  /** The second path argument (rename, link, symlink). */
  static path2(): string | null {
    return fetchString(fillEventString, 0, FIELD_PATH2);
  }

  /** The socket address: "inet:127.0.0.1:80", "inet6:[::1]:80", "unix:/path", "unix:@name". */
  static addr(): string | null {
    return fetchString(fillEventString, 0, FIELD_ADDR);
  }

  /** The flags as text, e.g. "O_WRONLY|O_CREAT". */
  static flagsText(): string | null {
    return fetchString(fillEventString, 0, FIELD_FLAGS);
  }

  /** The program's executable path. */
  static exe(): string | null {
    return fetchString(fillEventString, 0, FIELD_EXE);
  }

  /** The program's argv[0]. */
  static argv0(): string | null {
    return fetchString(fillEventString, 0, FIELD_ARGV0);
  }

  /** The first path exactly as the program passed it (`path()` is the file the kernel acts on). */
  static rawPath(): string | null {
    return fetchString(fillEventString, 0, FIELD_RAW_PATH);
  }

  /** "dev:ino" of the file `path()` names, where the source knows it. */
  static ident(): string | null {
    return fetchString(fillEventString, 0, FIELD_IDENT);
  }

  /** The syscall's name ("openat"), for any call. */
  static syscallName(): string | null {
    return fetchString(fillEventString, 0, FIELD_SYSCALL_NAME);
  }

  /** Number of execve arguments (0 for other calls). */
  static argc(): i32 {
    const n = event_argc();
    return n < 0 ? 0 : n;
  }

  /** execve argument i, or null. */
  static argvAt(i: i32): string | null {
    return fetchString(fillEventArgv, 0, i);
  }

  /** write/pwrite64: the bytes the call writes (at most 65536), or null for other calls. ABI 1.1. */
  static data(): ArrayBuffer | null {
    return fetchBytes(fillEventData, 0, 0);
  }

  /** All execve arguments (empty for other calls). */
  static argv(): string[] {
    const n = Event.argc();
    const out = new Array<string>(0);
    for (let i = 0; i < n; i++) {
      const a = fetchString(fillEventArgv, 0, i);
      if (a === null) break;
      out.push(a);
    }
    return out;
  }
}
