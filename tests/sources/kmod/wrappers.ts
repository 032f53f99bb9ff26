/**
 * Small WAT wrappers for the kernel-module tests: one that rewrites (ABI
 * 1.2), one that denies an open of one path with an alert.
 *
 * @module
 */

/** A WAT function comparing `len` bytes at two addresses. */
const EQ = `(func $eq (param $a i32) (param $b i32) (param $n i32) (result i32) (local $i i32)
    (loop $next
      (if (i32.ge_u (local.get $i) (local.get $n)) (then (return (i32.const 1))))
      (if (i32.ne (i32.load8_u (i32.add (local.get $a) (local.get $i)))
                  (i32.load8_u (i32.add (local.get $b) (local.get $i))))
        (then (return (i32.const 0))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $next))
    (i32.const 0))`;

/**
 * Rewrites (ABI 1.2), declared PRE|DENY on write (1) and openat (257):
 * - a write to fd 1 runs as a write to fd 2 (arg 0 rewritten): stdout goes to stderr;
 * - an openat of `from` opens `to` instead (verdict_rewrite_path).
 * Where the source cannot rewrite (verdict_rewrite returns -ENOSYS) it alerts
 * "rewrite: -38" and allows.
 */
export function rewriteWat(from: string, to: string): string {
  return `(module
  (import "idwrap" "declare_syscall" (func $d (param i32 i32) (result i32)))
  (import "idwrap" "event_syscall" (func $nr (result i32)))
  (import "idwrap" "event_arg" (func $arg (param i32) (result i64)))
  (import "idwrap" "event_string" (func $str (param i32 i32 i32) (result i32)))
  (import "idwrap" "verdict_rewrite" (func $rw (param i32 i64) (result i32)))
  (import "idwrap" "verdict_rewrite_path" (func $rwp (param i32 i32) (result i32)))
  (import "idwrap" "alert" (func $alert (param i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "${from}")
  (data (i32.const 256) "${to}")
  (data (i32.const 512) "rewrite: -38")
  ${EQ}
  (func $verdict (param $status i32) (result i32)
    (if (i32.eq (local.get $status) (i32.const -38))
      (then (call $alert (i32.const 1) (i32.const 512) (i32.const 12))))
    (if (result i32) (i32.eqz (local.get $status)) (then (i32.const 3)) (else (i32.const 0))))
  (func (export "idwrap_abi_version") (result i32) (i32.const 0x00010002))
  (func (export "idwrap_declare") (result i32)
    (drop (call $d (i32.const 1) (i32.const 5)))
    (drop (call $d (i32.const 257) (i32.const 5)))
    (i32.const 0))
  (func (export "idwrap_on_syscall") (result i32) (local $n i32)
    (if (i32.eq (call $nr) (i32.const 1))
      (then
        (if (i64.ne (call $arg (i32.const 0)) (i64.const 1)) (then (return (i32.const 0))))
        (return (call $verdict (call $rw (i32.const 0) (i64.const 2))))))
    (local.set $n (call $str (i32.const 0) (i32.const 1024) (i32.const 1024)))
    (if (i32.ne (local.get $n) (i32.const ${from.length})) (then (return (i32.const 0))))
    (if (i32.eqz (call $eq (i32.const 0) (i32.const 1024) (i32.const ${from.length}))) (then (return (i32.const 0))))
    (call $verdict (call $rwp (i32.const 256) (i32.const ${to.length})))))`;
}

/** Denies (EACCES) an openat of `path`, with a high alert "forbidden open"; declared PRE|DENY on openat. */
export function denyOpenWat(path: string): string {
  return `(module
  (import "idwrap" "declare_syscall" (func $d (param i32 i32) (result i32)))
  (import "idwrap" "event_string" (func $str (param i32 i32 i32) (result i32)))
  (import "idwrap" "alert" (func $alert (param i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "${path}")
  (data (i32.const 512) "forbidden open")
  ${EQ}
  (func (export "idwrap_abi_version") (result i32) (i32.const 0x00010000))
  (func (export "idwrap_declare") (result i32) (drop (call $d (i32.const 257) (i32.const 5))) (i32.const 0))
  (func (export "idwrap_on_syscall") (result i32)
    (if (i32.ne (call $str (i32.const 0) (i32.const 1024) (i32.const 1024)) (i32.const ${path.length}))
      (then (return (i32.const 0))))
    (if (i32.eqz (call $eq (i32.const 0) (i32.const 1024) (i32.const ${path.length}))) (then (return (i32.const 0))))
    (call $alert (i32.const 3) (i32.const 512) (i32.const 14))
    (i32.const 0x0d01)))`;
}

/** Kills the process in the post hook of a write: declared POST only, so the module only observes it (a late kill). */
export const LATE_KILL_WAT = `(module
  (import "idwrap" "declare_syscall" (func $d (param i32 i32) (result i32)))
  (import "idwrap" "event_phase" (func $phase (result i32)))
  (memory (export "memory") 1)
  (func (export "idwrap_abi_version") (result i32) (i32.const 0x00010000))
  (func (export "idwrap_declare") (result i32) (drop (call $d (i32.const 1) (i32.const 2))) (i32.const 0))
  (func (export "idwrap_on_syscall") (result i32)
    (if (result i32) (i32.eq (call $phase) (i32.const 1)) (then (i32.const 2)) (else (i32.const 0)))))`;

/** Denies (EACCES) a connect to the socket address `addr` (event_string field 2, e.g. `unix:/path`); PRE|DENY on connect. */
export function denyConnectWat(addr: string): string {
  return `(module
  (import "idwrap" "declare_syscall" (func $d (param i32 i32) (result i32)))
  (import "idwrap" "event_string" (func $str (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "${addr}")
  ${EQ}
  (func (export "idwrap_abi_version") (result i32) (i32.const 0x00010000))
  (func (export "idwrap_declare") (result i32) (drop (call $d (i32.const 42) (i32.const 5))) (i32.const 0))
  (func (export "idwrap_on_syscall") (result i32)
    (if (i32.ne (call $str (i32.const 2) (i32.const 1024) (i32.const 1024)) (i32.const ${addr.length}))
      (then (return (i32.const 0))))
    (if (i32.eqz (call $eq (i32.const 0) (i32.const 1024) (i32.const ${addr.length}))) (then (return (i32.const 0))))
    (i32.const 0x0d01)))`;
}

/** Denies (EACCES) a setxattr of the attribute `name` (event_string field 1); PRE|DENY on setxattr. */
export function denyXattrWat(name: string): string {
  return `(module
  (import "idwrap" "declare_syscall" (func $d (param i32 i32) (result i32)))
  (import "idwrap" "event_string" (func $str (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "${name}")
  ${EQ}
  (func (export "idwrap_abi_version") (result i32) (i32.const 0x00010000))
  (func (export "idwrap_declare") (result i32) (drop (call $d (i32.const 188) (i32.const 5))) (i32.const 0))
  (func (export "idwrap_on_syscall") (result i32)
    (if (i32.ne (call $str (i32.const 1) (i32.const 1024) (i32.const 1024)) (i32.const ${name.length}))
      (then (return (i32.const 0))))
    (if (i32.eqz (call $eq (i32.const 0) (i32.const 1024) (i32.const ${name.length}))) (then (return (i32.const 0))))
    (i32.const 0x0d01)))`;
}
