/**
 * The host functions of the idwrap hook ABI v1.2 (docs/abi.md), exactly as
 * the host provides them: module "idwrap", these names, these signatures.
 * Pointers are offsets into this module's memory (usize is i32 on wasm32);
 * strings are UTF-8 (ptr, len). Wrappers should use the typed API in
 * index.ts; this file is the raw layer it is built on.
 */

// ---- Declaration (only inside idwrap_declare; -EPERM elsewhere) ----

// @ts-ignore: decorator
@external("idwrap", "declare_syscall")
export declare function declare_syscall(nr: i32, flags: i32): i32;
// @ts-ignore: decorator
@external("idwrap", "declare_group")
export declare function declare_group(name: usize, name_len: i32, flags: i32): i32;
// @ts-ignore: decorator
@external("idwrap", "declare_lifecycle")
export declare function declare_lifecycle(kinds: i32): i32;
// @ts-ignore: decorator
@external("idwrap", "declare_subscribe")
export declare function declare_subscribe(name: usize, name_len: i32): i32;
// @ts-ignore: decorator
@external("idwrap", "declare_emit")
export declare function declare_emit(name: usize, name_len: i32): i32;

// ---- The current event (inside idwrap_on_syscall; -EPERM elsewhere) ----

// @ts-ignore: decorator
@external("idwrap", "event_syscall")
export declare function event_syscall(): i32;
// @ts-ignore: decorator
@external("idwrap", "event_phase")
export declare function event_phase(): i32;
// @ts-ignore: decorator
@external("idwrap", "event_arg")
export declare function event_arg(i: i32): i64;
// @ts-ignore: decorator
@external("idwrap", "event_pid")
export declare function event_pid(): i32;
// @ts-ignore: decorator
@external("idwrap", "event_tid")
export declare function event_tid(): i32;
// @ts-ignore: decorator
@external("idwrap", "event_uid")
export declare function event_uid(): i32;
// @ts-ignore: decorator
@external("idwrap", "event_gid")
export declare function event_gid(): i32;
// @ts-ignore: decorator
@external("idwrap", "event_result")
export declare function event_result(): i64;
// @ts-ignore: decorator
@external("idwrap", "event_denied")
export declare function event_denied(): i32;
// @ts-ignore: decorator
@external("idwrap", "event_string")
export declare function event_string(field: i32, buf: usize, buf_len: i32): i32;
// @ts-ignore: decorator
@external("idwrap", "event_argc")
export declare function event_argc(): i32;
// @ts-ignore: decorator
@external("idwrap", "event_argv")
export declare function event_argv(i: i32, buf: usize, buf_len: i32): i32;

// ABI 1.1: the bytes a write or pwrite64 writes (at most 65536), or -ENOENT.
// @ts-ignore: decorator
@external("idwrap", "event_data")
export declare function event_data(buf: usize, buf_len: i32): i32;

// ---- The paper's library (Table 1) ----

// @ts-ignore: decorator
@external("idwrap", "wr_stat")
export declare function wr_stat(path: usize, path_len: i32, out: usize): i32;
// @ts-ignore: decorator
@external("idwrap", "wr_fstat")
export declare function wr_fstat(fd: i32, out: usize): i32;
// @ts-ignore: decorator
@external("idwrap", "wr_audit")
export declare function wr_audit(data: usize, len: i32): i32;
// @ts-ignore: decorator
@external("idwrap", "wr_audit_printf")
export declare function wr_audit_printf(fmt: usize, fmt_len: i32, args: usize, nargs: i32): i32;
// @ts-ignore: decorator
@external("idwrap", "wr_get_addr")
export declare function wr_get_addr(fd: i32, buf: usize, buf_len: i32): i32;
// @ts-ignore: decorator
@external("idwrap", "wr_getpeername")
export declare function wr_getpeername(fd: i32, buf: usize, buf_len: i32): i32;
// @ts-ignore: decorator
@external("idwrap", "wr_getsockname")
export declare function wr_getsockname(fd: i32, buf: usize, buf_len: i32): i32;

// ---- Key-value store ----

// @ts-ignore: decorator
@external("idwrap", "kv_get")
export declare function kv_get(key: usize, key_len: i32, buf: usize, buf_len: i32): i32;
// @ts-ignore: decorator
@external("idwrap", "kv_set")
export declare function kv_set(key: usize, key_len: i32, val: usize, val_len: i32): i32;
// @ts-ignore: decorator
@external("idwrap", "kv_delete")
export declare function kv_delete(key: usize, key_len: i32): i32;
// @ts-ignore: decorator
@external("idwrap", "kv_list")
export declare function kv_list(prefix: usize, prefix_len: i32, buf: usize, buf_len: i32): i32;

// ---- Abstract events ----

// @ts-ignore: decorator
@external("idwrap", "emit")
export declare function emit(handle: i32, payload: usize, len: i32): i32;
// @ts-ignore: decorator
@external("idwrap", "abstract_payload")
export declare function abstract_payload(buf: usize, buf_len: i32): i32;
// @ts-ignore: decorator
@external("idwrap", "abstract_emitter")
export declare function abstract_emitter(buf: usize, buf_len: i32): i32;

// ---- Alerts, logs, settings, clock ----

// @ts-ignore: decorator
@external("idwrap", "alert")
export declare function alert(severity: i32, msg: usize, len: i32): void;
// @ts-ignore: decorator
@external("idwrap", "log")
export declare function log(level: i32, msg: usize, len: i32): void;
// @ts-ignore: decorator
@external("idwrap", "settings_get")
export declare function settings_get(key: usize, key_len: i32, buf: usize, buf_len: i32): i32;
// @ts-ignore: decorator
@external("idwrap", "clock_ns")
export declare function clock_ns(): i64;

// ---- Rewrite (ABI 1.2; kernel-module source only, else -ENOSYS) ----

// Inside a pre idwrap_on_syscall that then returns ACTION_REWRITE: run the call with argument arg (0-5) set to value.
// @ts-ignore: decorator
@external("idwrap", "verdict_rewrite")
export declare function verdict_rewrite(arg: i32, value: i64): i32;
// The same for the path of an open the module runs itself: run it on this path instead.
// @ts-ignore: decorator
@external("idwrap", "verdict_rewrite_path")
export declare function verdict_rewrite_path(path: usize, path_len: i32): i32;

// ---- Filters handed to the kernel (ABI 1.4) ----

// Publish the k-call windows (u64 each, packed as event_window's) for which this instance needs no hook: a source
// that can may then drop those calls in the kernel. 0, -EINVAL (k outside 1..6, a window 0 or wider than k calls, a
// bad pointer), -E2BIG (more than 65536 windows), -EPERM (inside idwrap_declare), -ENOSYS (the source drops nothing).
// @ts-ignore: decorator
@external("idwrap", "filter_windows")
export declare function filter_windows(k: i32, windows: usize, count: i32): i32;
// Writes 16 bytes at buf: the process's window after this call (u64) and the calls the kernel dropped since the
// previous one it reported (u64). 1 when the source keeps a window, 0 when not (both written as 0), -EINVAL, -EPERM.
// @ts-ignore: decorator
@external("idwrap", "event_window")
export declare function event_window(buf: usize): i32;
