/**
 * Constants of the hook ABI (docs/abi.md): the numbers both sides agree on.
 *
 * @module
 */

/** The import module name; nothing else may be imported. */
export const ABI_MODULE = "idwrap";
/** This host's ABI version: major 1, minor 5. */
export const ABI_MAJOR = 1;
export const ABI_MINOR = 5;

/**
 * ABI 1.3: the custom section in which a module declares its settings (a JSON schema, docs/abi.md "Settings"); the
 * host checks a policy's settings against it before anything runs. Modules of an older minor are not checked.
 */
export const SETTINGS_SECTION = "idwrap.settings";
/** The first minor version whose modules declare their settings. */
export const SETTINGS_MINOR = 3;

/** declare_syscall / declare_group flags. */
export const DECLARE_PRE = 1;
export const DECLARE_POST = 2;
export const DECLARE_DENY = 4;
/** ABI 1.2: the hook may kill but not deny, so the call need not wait (a source may kill after it ran). */
export const DECLARE_KILL = 8;
/**
 * ABI 1.5: with DENY on an open (open, openat, creat, openat2, open_by_handle_at): the hook denies or kills only an open
 * that may write (O_WRONLY, O_RDWR, O_CREAT, O_TRUNC or O_TMPFILE; creat always), so a source may hold only those and
 * observe the others. A deny of any other open is enforced only where the source held it.
 */
export const DECLARE_WRITES = 16;

/** declare_lifecycle kinds, and idwrap_on_lifecycle's argument. */
export const LIFECYCLE_EXEC = 1;
export const LIFECYCLE_EXIT = 2;

/** Verdict actions (bits 0–7 of a hook's return value). */
export const ACTION_ALLOW = 0;
export const ACTION_DENY = 1;
export const ACTION_KILL = 2;
export const ACTION_REWRITE = 3;

/** event_string fields. */
export const FIELD = {
  path: 0,
  path2: 1,
  addr: 2,
  flags: 3,
  exe: 4,
  argv0: 5,
  syscall: 6,
  /** The first path as the program passed it (`path` is the resolved one where the source resolves paths). */
  rawPath: 7,
  rawPath2: 8,
  /** "dev:ino" of the file `path` names, where known. */
  ident: 9,
} as const;

/** Status codes: negated Linux errno values. */
export const STATUS = {
  EPERM: -1,
  ENOENT: -2,
  E2BIG: -7,
  EBADF: -9,
  EINVAL: -22,
  ENOSYS: -38,
  ELOOP: -40,
  ENOTSOCK: -88,
} as const;

/** KV limits. */
export const KV_MAX_KEY = 1024;
export const KV_MAX_VALUE = 32768;
/** Abstract events nest at most this deep. */
export const MAX_EMIT_DEPTH = 4;

/** Every import a v1 module may use, with its wasm signature (params → results). */
export const ABI_IMPORTS: Readonly<Record<string, string>> = {
  declare_syscall: "ii>i",
  declare_group: "iii>i",
  declare_lifecycle: "i>i",
  declare_subscribe: "ii>i",
  declare_emit: "ii>i",
  event_syscall: ">i",
  event_phase: ">i",
  event_arg: "i>I",
  event_pid: ">i",
  event_tid: ">i",
  event_uid: ">i",
  event_gid: ">i",
  event_result: ">I",
  event_denied: ">i",
  event_string: "iii>i",
  event_argc: ">i",
  event_argv: "iii>i",
  event_data: "ii>i",
  wr_stat: "iii>i",
  wr_fstat: "ii>i",
  wr_audit: "ii>i",
  wr_audit_printf: "iiii>i",
  wr_get_addr: "iii>i",
  wr_getpeername: "iii>i",
  wr_getsockname: "iii>i",
  kv_get: "iiii>i",
  kv_set: "iiii>i",
  kv_delete: "ii>i",
  kv_list: "iiii>i",
  emit: "iii>i",
  abstract_payload: "ii>i",
  abstract_emitter: "ii>i",
  alert: "iii>",
  log: "iii>",
  settings_get: "iiii>i",
  clock_ns: ">I",
  verdict_rewrite: "iI>i",
  verdict_rewrite_path: "ii>i",
  filter_windows: "iii>i",
  event_window: "i>i",
};

/** ABI 1.4: the most windows one filter_windows call may publish (a window is 8 bytes). */
export const MAX_FILTER_WINDOWS = 1 << 16;
/** ABI 1.4: the bytes event_window writes: the window (u64), then the calls skipped (u64). */
export const EVENT_WINDOW_SIZE = 16;

/** The exports the host calls, with their wasm signature (params → results); `memory` must be a memory. */
export const ABI_EXPORTS: Readonly<Record<string, string>> = {
  idwrap_abi_version: ">i",
  idwrap_declare: ">i",
  idwrap_init: ">i",
  idwrap_on_syscall: ">i",
  idwrap_on_abstract: "ii>i",
  idwrap_on_lifecycle: "i>",
};

/** The longest path verdict_rewrite_path takes, without a terminator (PATH_MAX - 1). */
export const MAX_REWRITE_PATH = 4095;
