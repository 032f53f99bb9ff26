;; A third-party ID wrapper written in WebAssembly text from docs/abi.md alone:
;; it denies (EACCES) any open of the path named by its setting "path",
;; raising a high-severity alert, and allows everything else.
(module
  (import "idwrap" "declare_syscall" (func $declare_syscall (param i32 i32) (result i32)))
  (import "idwrap" "event_string" (func $event_string (param i32 i32 i32) (result i32)))
  (import "idwrap" "settings_get" (func $settings_get (param i32 i32 i32 i32) (result i32)))
  (import "idwrap" "alert" (func $alert (param i32 i32 i32)))
  (memory (export "memory") 1)
  ;; 0..15: the setting's key; 1024..: the setting's value; 8192..: the event's path
  (data (i32.const 0) "path")
  (data (i32.const 16) "open of the forbidden path")
  (global $want_len (mut i32) (i32.const -1))

  (func (export "idwrap_abi_version") (result i32) (i32.const 0x00010000))

  (func (export "idwrap_declare") (result i32)
    ;; PRE | DENY = 5, for open (2), openat (257), openat2 (437), creat (85)
    (drop (call $declare_syscall (i32.const 2) (i32.const 5)))
    (drop (call $declare_syscall (i32.const 257) (i32.const 5)))
    (drop (call $declare_syscall (i32.const 437) (i32.const 5)))
    (drop (call $declare_syscall (i32.const 85) (i32.const 5)))
    (i32.const 0))

  (func (export "idwrap_init") (result i32)
    (global.set $want_len (call $settings_get (i32.const 0) (i32.const 4) (i32.const 1024) (i32.const 4096)))
    ;; refuse to start without the setting
    (i32.lt_s (global.get $want_len) (i32.const 0)))

  (func (export "idwrap_on_syscall") (result i32)
    (local $len i32) (local $i i32)
    (local.set $len (call $event_string (i32.const 0) (i32.const 8192) (i32.const 4096)))
    (if (i32.ne (local.get $len) (global.get $want_len)) (then (return (i32.const 0))))
    (block $differ
      (loop $next
        (br_if $differ (i32.ne
          (i32.load8_u (i32.add (i32.const 1024) (local.get $i)))
          (i32.load8_u (i32.add (i32.const 8192) (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $next (i32.lt_u (local.get $i) (local.get $len))))
      (call $alert (i32.const 3) (i32.const 16) (i32.const 26))
      ;; deny with EACCES (13): 1 | (13 << 8)
      (return (i32.const 0x0d01)))
    (i32.const 0)))
