/*
 * idwrap.h — the idwrap hook ABI, version 1.3, for wrappers written in C.
 *
 * This header states docs/abi.md in C; where the two differ, docs/abi.md is
 * right and this file is a bug. Mark the hooks with IDWRAP_EXPORT, e.g.
 *
 *   IDWRAP_EXPORT("idwrap_abi_version")
 *   int32_t idwrap_abi_version(void) { return IDWRAP_ABI_VERSION; }
 *
 * and build with (clang and lld; wasm-ld exports "memory" by default):
 *
 *   clang --target=wasm32 -O2 -nostdlib -Wl,--no-entry -o w.wasm w.c
 *
 * C names equal the ABI's import names, except "log", which is idwrap_log
 * here because C reserves log for libm. Every import lives in module
 * "idwrap"; there is no WASI and no libc, so the module must import nothing
 * else. Pointers are i32 offsets into the module's memory; strings are UTF-8
 * (ptr, len) without a terminator, except the %s arguments of
 * wr_audit_printf. The module owns all memory: to receive data it passes a
 * buffer, the host copies min(len, buf_len) bytes and returns the full len,
 * so a result greater than buf_len means "call again with a larger buffer".
 */
#ifndef IDWRAP_H
#define IDWRAP_H

/* clang ships a freestanding <stdint.h>/<stddef.h>, so these work on wasm32
 * without a libc. */
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------- version */

/* (major << 16) | minor: this header is ABI 1.3. */
#define IDWRAP_ABI_VERSION 0x00010005
#define IDWRAP_ABI_MAJOR(v) (((v) >> 16) & 0xffff)
#define IDWRAP_ABI_MINOR(v) ((v) & 0xffff)

/* ABI 1.3: the custom section holding the module's settings schema (JSON,
 * docs/abi.md "Settings"). A 1.3 module without it declares no settings, so
 * a policy that gives it any is refused. clang's section attribute makes a
 * data segment, not a custom section: add it after linking, e.g.
 *
 *   llvm-objcopy --add-section idwrap.settings=settings.json w.wasm
 */
#define IDWRAP_SETTINGS_SECTION "idwrap.settings"

/* ------------------------------------------------------------ import glue */

/* On wasm the attribute names the host function; on any other target (a
 * syntax or layout check with the host compiler) the declarations are plain
 * externs. */
#if defined(__wasm__) && defined(__clang__)
#define IDWRAP_IMPORT(name) __attribute__((import_module("idwrap"), import_name(name)))
#else
#define IDWRAP_IMPORT(name)
#endif

/* Marks a function the host calls: use it on the idwrap_* exports. */
#if defined(__wasm__) && defined(__clang__)
#define IDWRAP_EXPORT(name) __attribute__((export_name(name), visibility("default")))
#else
#define IDWRAP_EXPORT(name)
#endif

/* ------------------------------------------------------------ declaration */

/* declare_syscall / declare_group flags. */
#define DECLARE_PRE 1  /* call the hook before the kernel runs the call */
#define DECLARE_POST 2 /* call the hook after the call completed */
#define DECLARE_DENY 4 /* the pre hook may deny or kill */
#define DECLARE_KILL 8 /* ABI 1.2: the pre hook may kill, not deny: the call need not wait (the kill may land after it) */
#define DECLARE_WRITES 16 /* ABI 1.5, with DENY on an open: only an open that may write is denied (O_WRONLY, O_RDWR, \
			     O_CREAT, O_TRUNC, O_TMPFILE; creat always): a source may hold only those */

/* Lifecycle kinds: declare_lifecycle's mask and idwrap_on_lifecycle's kind. */
#define IDWRAP_LIFECYCLE_EXEC 1 /* the process now runs a new program */
#define IDWRAP_LIFECYCLE_EXIT 2 /* last call; the instance is then dropped */

/* Event phases, as event_phase returns them. */
#define IDWRAP_PHASE_PRE 0
#define IDWRAP_PHASE_POST 1

/* --------------------------------------------------------------- verdicts */

/* Bits 0-7: the action; bits 8-23: deny's errno (0 means EPERM). */
#define IDWRAP_ACTION_ALLOW 0
#define IDWRAP_ACTION_DENY 1
#define IDWRAP_ACTION_KILL 2
#define IDWRAP_ACTION_REWRITE 3 /* ABI 1.2, kernel-module source only: see verdict_rewrite */

#define IDWRAP_ALLOW ((int32_t)IDWRAP_ACTION_ALLOW)
#define IDWRAP_DENY(err) ((int32_t)(IDWRAP_ACTION_DENY | (((int32_t)(err) & 0xffff) << 8)))
#define IDWRAP_KILL ((int32_t)IDWRAP_ACTION_KILL)
#define IDWRAP_VERDICT_ACTION(v) ((int32_t)(v) & 0xff)
#define IDWRAP_VERDICT_ERRNO(v) (((int32_t)(v) >> 8) & 0xffff)

/* ------------------------------------------------------ event_string fields */

#define IDWRAP_FIELD_PATH 0         /* first path argument, as the kernel uses it */
#define IDWRAP_FIELD_PATH2 1        /* second path (rename, link, symlink) */
#define IDWRAP_FIELD_ADDR 2         /* socket address: inet:127.0.0.1:80, unix:/p, ... */
#define IDWRAP_FIELD_FLAGS 3        /* flags as text: O_WRONLY|O_CREAT */
#define IDWRAP_FIELD_EXE 4          /* the program's executable path */
#define IDWRAP_FIELD_ARGV0 5        /* the program's argv[0] */
#define IDWRAP_FIELD_SYSCALL_NAME 6 /* the syscall's name */
#define IDWRAP_FIELD_RAW_PATH 7     /* first path as the program passed it */
#define IDWRAP_FIELD_RAW_PATH2 8    /* second path as the program passed it */
#define IDWRAP_FIELD_IDENT 9        /* "dev:ino" of the file the first path names */

/* ----------------------------------------------------- alerts and logging */

#define IDWRAP_SEVERITY_INFO 0
#define IDWRAP_SEVERITY_LOW 1
#define IDWRAP_SEVERITY_MEDIUM 2
#define IDWRAP_SEVERITY_HIGH 3
#define IDWRAP_SEVERITY_CRITICAL 4

#define IDWRAP_LOG_DEBUG 0
#define IDWRAP_LOG_INFO 1
#define IDWRAP_LOG_WARNING 2
#define IDWRAP_LOG_ERROR 3

/* ----------------------------------------------------------- status codes */

/* Imports return >= 0 on success, a negated Linux errno on failure. */
#define IDWRAP_EPERM (-1)     /* not allowed here (declare outside idwrap_declare, ...) */
#define IDWRAP_ENOENT (-2)    /* no such field, key, argument or file */
#define IDWRAP_E2BIG (-7)     /* key or value too large */
#define IDWRAP_EBADF (-9)     /* the process has no such fd */
#define IDWRAP_EINVAL (-22)   /* bad argument: unknown call/group/flag/field, bad pointer */
#define IDWRAP_ENOSYS (-38)   /* the active event source cannot provide this */
#define IDWRAP_ELOOP (-40)    /* abstract events nested too deep */
#define IDWRAP_ENOTSOCK (-88) /* the fd is not a socket */

/* ----------------------------------------------------------- size limits */

#define IDWRAP_KV_MAX_KEY 1024     /* kv key bytes */
#define IDWRAP_KV_MAX_VALUE 32768  /* kv value bytes */
#define IDWRAP_EMIT_MAX_DEPTH 4    /* nested emits; deeper ones return -ELOOP */

/* ------------------------------------------------------- the wr_stat record */

/* Filled by wr_stat / wr_fstat: 48 bytes, little-endian. */
struct wr_stat {
  uint64_t dev;   /* device; with ino, the paper's nodeid */
  uint64_t ino;   /* inode number */
  uint32_t mode;  /* type and permission bits, as st_mode */
  uint32_t uid;   /* owner */
  uint32_t gid;   /* group */
  uint32_t nlink; /* hard links */
  uint64_t size;  /* bytes */
  int64_t mtime;  /* last modification, seconds since the epoch */
};

/* C11 spells it _Static_assert, C++11 static_assert. */
#ifdef __cplusplus
#define IDWRAP_STATIC_ASSERT(e, m) static_assert(e, m)
#else
#define IDWRAP_STATIC_ASSERT(e, m) _Static_assert(e, m)
#endif

IDWRAP_STATIC_ASSERT(sizeof(struct wr_stat) == 48, "wr_stat is 48 bytes");
IDWRAP_STATIC_ASSERT(offsetof(struct wr_stat, dev) == 0, "wr_stat.dev at 0");
IDWRAP_STATIC_ASSERT(offsetof(struct wr_stat, ino) == 8, "wr_stat.ino at 8");
IDWRAP_STATIC_ASSERT(offsetof(struct wr_stat, mode) == 16, "wr_stat.mode at 16");
IDWRAP_STATIC_ASSERT(offsetof(struct wr_stat, uid) == 20, "wr_stat.uid at 20");
IDWRAP_STATIC_ASSERT(offsetof(struct wr_stat, gid) == 24, "wr_stat.gid at 24");
IDWRAP_STATIC_ASSERT(offsetof(struct wr_stat, nlink) == 28, "wr_stat.nlink at 28");
IDWRAP_STATIC_ASSERT(offsetof(struct wr_stat, size) == 32, "wr_stat.size at 32");
IDWRAP_STATIC_ASSERT(offsetof(struct wr_stat, mtime) == 40, "wr_stat.mtime at 40");

/* ===================================================== host imports (idwrap) */

/* --- Declaration: valid only inside idwrap_declare, -EPERM elsewhere. --- */

/* Intercept x86_64 syscall nr in the DECLARE_* phases of flags; 0 or -EINVAL. */
IDWRAP_IMPORT("declare_syscall") int32_t declare_syscall(int32_t nr, int32_t flags);
/* Intercept a group ("file", "process", "exec", "net"); 0 or -EINVAL. */
IDWRAP_IMPORT("declare_group") int32_t declare_group(const char *name, int32_t name_len, int32_t flags);
/* Receive lifecycle events: IDWRAP_LIFECYCLE_EXEC, _EXIT or both (3). */
IDWRAP_IMPORT("declare_lifecycle") int32_t declare_lifecycle(int32_t kinds);
/* Subscribe to an abstract event; returns the subscription number (0, 1, ...). */
IDWRAP_IMPORT("declare_subscribe") int32_t declare_subscribe(const char *name, int32_t name_len);
/* Announce an abstract event this module emits; returns its handle for emit. */
IDWRAP_IMPORT("declare_emit") int32_t declare_emit(const char *name, int32_t name_len);

/* --- The current event: inside idwrap_on_syscall, -EPERM elsewhere. --- */

/* The x86_64 syscall number. */
IDWRAP_IMPORT("event_syscall") int32_t event_syscall(void);
/* IDWRAP_PHASE_PRE (0) or IDWRAP_PHASE_POST (1). */
IDWRAP_IMPORT("event_phase") int32_t event_phase(void);
/* Raw argument register i (0-5); 0 for others. */
IDWRAP_IMPORT("event_arg") int64_t event_arg(int32_t i);
/* The process (thread group) id. */
IDWRAP_IMPORT("event_pid") int32_t event_pid(void);
/* The thread id. */
IDWRAP_IMPORT("event_tid") int32_t event_tid(void);
/* The process's real uid (the paper's invoker, _uid). */
IDWRAP_IMPORT("event_uid") int32_t event_uid(void);
/* The process's real gid. */
IDWRAP_IMPORT("event_gid") int32_t event_gid(void);
/* Post: the call's return value, -errno on failure; pre: 0. */
IDWRAP_IMPORT("event_result") int64_t event_result(void);
/* 1 if an outer layer already denied this call (this verdict is then ignored). */
IDWRAP_IMPORT("event_denied") int32_t event_denied(void);
/* A decoded string (IDWRAP_FIELD_*): its length, or -ENOENT if the call has none. */
IDWRAP_IMPORT("event_string") int32_t event_string(int32_t field, char *buf, int32_t buf_len);
/* Number of execve arguments; 0 for other calls. */
IDWRAP_IMPORT("event_argc") int32_t event_argc(void);
/* execve argument i: its length, or -ENOENT. */
IDWRAP_IMPORT("event_argv") int32_t event_argv(int32_t i, char *buf, int32_t buf_len);
/* ABI 1.1: the bytes a write/pwrite64 writes (at most 65536): their length, or -ENOENT. */
IDWRAP_IMPORT("event_data") int32_t event_data(void *buf, int32_t buf_len);

/* --- The paper's library (Table 1): 0 or a length, -errno on failure. --- */

/* stat of a path as the process sees it (its cwd and root). */
IDWRAP_IMPORT("wr_stat") int32_t wr_stat(const char *path, int32_t path_len, struct wr_stat *out);
/* stat of one of the process's open files. */
IDWRAP_IMPORT("wr_fstat") int32_t wr_fstat(int32_t fd, struct wr_stat *out);
/* Append a record to the wrapper's audit queue. */
IDWRAP_IMPORT("wr_audit") int32_t wr_audit(const char *data, int32_t len);
/* The same, formatted: args holds nargs 8-byte values; %s takes a pointer to a NUL-terminated string. */
IDWRAP_IMPORT("wr_audit_printf") int32_t wr_audit_printf(const char *fmt, int32_t fmt_len, const int64_t *args,
                                                         int32_t nargs);
/* A socket's address family and type: "inet/stream", "unix/dgram", ... */
IDWRAP_IMPORT("wr_get_addr") int32_t wr_get_addr(int32_t fd, char *buf, int32_t buf_len);
/* The peer address of a connected socket, as IDWRAP_FIELD_ADDR writes it. */
IDWRAP_IMPORT("wr_getpeername") int32_t wr_getpeername(int32_t fd, char *buf, int32_t buf_len);
/* The local address of a socket, as IDWRAP_FIELD_ADDR writes it. */
IDWRAP_IMPORT("wr_getsockname") int32_t wr_getsockname(int32_t fd, char *buf, int32_t buf_len);

/* --- Key-value store, one per wrapper, shared across its instances. --- */

/* Read a value: its length, or -ENOENT. */
IDWRAP_IMPORT("kv_get") int32_t kv_get(const char *key, int32_t key_len, void *buf, int32_t buf_len);
/* Write a value: 0, or -E2BIG past IDWRAP_KV_MAX_KEY / IDWRAP_KV_MAX_VALUE. */
IDWRAP_IMPORT("kv_set") int32_t kv_set(const char *key, int32_t key_len, const void *val, int32_t val_len);
/* Delete a key: 0, or -ENOENT. */
IDWRAP_IMPORT("kv_delete") int32_t kv_delete(const char *key, int32_t key_len);
/* Keys with a prefix, in byte order, each followed by a NUL: the total length. */
IDWRAP_IMPORT("kv_list") int32_t kv_list(const char *prefix, int32_t prefix_len, char *buf, int32_t buf_len);

/* --- Abstract events (active composition). --- */

/* Run every subscriber's idwrap_on_abstract now; the largest answer (0 if none), or -ELOOP. */
IDWRAP_IMPORT("emit") int32_t emit(int32_t handle, const void *payload, int32_t len);
/* Inside idwrap_on_abstract: the payload. */
IDWRAP_IMPORT("abstract_payload") int32_t abstract_payload(void *buf, int32_t buf_len);
/* Inside idwrap_on_abstract: the emitting wrapper's name. */
IDWRAP_IMPORT("abstract_emitter") int32_t abstract_emitter(char *buf, int32_t buf_len);

/* --- Rewrite (ABI 1.2; kernel-module source only, elsewhere -ENOSYS). --- */

/* In a pre idwrap_on_syscall of a call declared with DECLARE_DENY, before returning IDWRAP_ACTION_REWRITE: run the
 * call with argument arg (0-5) set to value. 0, -EINVAL (bad arg), -EPERM (not in a pre hook), -ENOSYS. */
IDWRAP_IMPORT("verdict_rewrite") int32_t verdict_rewrite(int32_t arg, int64_t value);
/* The same for an open the module runs itself: open this path instead (at most 4095 bytes). 0, -EINVAL (the call has
 * no path, or an empty one), -E2BIG, -EPERM, -ENOSYS. */
IDWRAP_IMPORT("verdict_rewrite_path") int32_t verdict_rewrite_path(const char *path, int32_t path_len);

/* --- Filters handed to the kernel (ABI 1.4). --- */

/* Publish the k-call windows (uint64_t each: the calls' numbers + 1, 10 bits each, the newest lowest) for which this
 * instance needs no hook; a source that can drops those calls in the kernel. 0, -EINVAL, -E2BIG, -EPERM, -ENOSYS (the
 * source drops nothing). */
IDWRAP_IMPORT("filter_windows") int32_t filter_windows(int32_t k, const uint64_t *windows, int32_t count);
/* Writes 16 bytes: the process's window after this call, then the calls the kernel dropped before it (uint64_t
 * each). 1 when the source keeps a window, 0 when not (both 0), -EINVAL, -EPERM. */
IDWRAP_IMPORT("event_window") int32_t event_window(uint64_t *buf);

/* --- Alerts, logs, settings, clock. --- */

/* Raise an alert about the current process (IDWRAP_SEVERITY_*). */
IDWRAP_IMPORT("alert") void alert(int32_t severity, const char *msg, int32_t len);
/* A diagnostic line (IDWRAP_LOG_*). Named idwrap_log in C: "log" is libm's. */
IDWRAP_IMPORT("log") void idwrap_log(int32_t level, const char *msg, int32_t len);
/* A setting from the policy as text (lists and maps as JSON): its length, or -ENOENT. */
IDWRAP_IMPORT("settings_get") int32_t settings_get(const char *key, int32_t key_len, char *buf, int32_t buf_len);
/* Monotonic nanoseconds, or -EPERM unless the policy grants "clock". */
IDWRAP_IMPORT("clock_ns") int64_t clock_ns(void);

/* ==================================================== module exports (yours) */

/* Required: return IDWRAP_ABI_VERSION. */
int32_t idwrap_abi_version(void);
/* Required: call declare_* and return 0, or non-zero to refuse to load. */
int32_t idwrap_declare(void);
/* Optional: per-instance setup before the first hook; non-zero is a failure. */
int32_t idwrap_init(void);
/* If a syscall was declared: the verdict (IDWRAP_ALLOW, IDWRAP_DENY(e), IDWRAP_KILL, IDWRAP_ACTION_REWRITE). */
int32_t idwrap_on_syscall(void);
/* If subscribed: handle one abstract event; the result goes back to the emitter. */
int32_t idwrap_on_abstract(int32_t subscription, int32_t payload_len);
/* If lifecycle was declared: IDWRAP_LIFECYCLE_EXEC or IDWRAP_LIFECYCLE_EXIT. */
void idwrap_on_lifecycle(int32_t kind);

#ifdef __cplusplus
}
#endif

#endif /* IDWRAP_H */
