/* SPDX-License-Identifier: GPL-2.0-only WITH Linux-syscall-note */
/*
 * idwrap's /dev/idwrap protocol: what the host and the kernel module say to
 * each other. One header for both sides (the module includes it; the host's
 * TypeScript mirror is host/sources/kmod/uapi.ts and a test checks that the
 * two agree). Everything is little-endian x86-64, naturally aligned, and
 * only grows at the end of a struct (the sizes are part of the ABI).
 *
 * The conversation:
 *   open("/dev/idwrap", O_RDWR)          root or CAP_SYS_ADMIN; one opener at a
 *                                        time (EBUSY); the opener's whole thread
 *                                        group is never intercepted
 *   ioctl(IDWRAP_IOC_VERSION)            returns IDWRAP_ABI_VERSION
 *   ioctl(IDWRAP_IOC_CONFIG, &config)    fail mode, timeout, scope
 *   ioctl(IDWRAP_IOC_INTEREST, &mask)    per-syscall: observe / decide, pre / post
 *   ioctl(IDWRAP_IOC_WATCH, &watch)      a process (and, by default, its future
 *                                        children) whose calls are intercepted
 *   read()                               whole event records, in the order they
 *                                        were produced (one stream: observe and
 *                                        waiting records alike, so a process's
 *                                        calls arrive in order); blocks unless
 *                                        O_NONBLOCK; poll() says POLLIN
 *   write()                              one or more verdicts
 *   close()                              every waiting call gets the fail mode
 *                                        at once; interception stops. close()
 *                                        never waits for calls in flight (an
 *                                        emulated open of a FIFO may block for
 *                                        ever): they hold a module reference, so
 *                                        rmmod is EBUSY until they are done
 *
 * The device does not open (EOPNOTSUPP, the reason in the kernel log) on a
 * kernel running with IBT (X86_KERNEL_IBT and a CPU with it).
 *
 * When the stream is full, an observe record is dropped and counted (an
 * IDWRAP_EV_LOST record says how many, once there is room again); a waiting
 * record is never dropped: its caller sleeps for room, within its timeout.
 * /proc/idwrap (root-readable) prints the statistics and the opener's pid as
 * "key value" lines, without opening the device.
 */
#ifndef _UAPI_IDWRAP_H
#define _UAPI_IDWRAP_H

#include <linux/ioctl.h>
#include <linux/types.h>

#define IDWRAP_ABI_VERSION	1
/* x86_64 syscall numbers below this are addressable in an interest mask. */
#define IDWRAP_MAX_SYSCALLS	512

/* ---- configuration ---------------------------------------------------- */

/* Every process on the host (but the opener) is a candidate: lifecycle
 * events for all of them; syscall events for watched ones. Without it only
 * processes named by IDWRAP_IOC_WATCH (and their children) are seen at all. */
#define IDWRAP_CFG_ALL_PROCESSES	0x1
/* With ALL_PROCESSES: a successful execve of any process waits for a verdict
 * on its IDWRAP_EV_EXEC record, whose flags (IDWRAP_VF_WATCH/UNWATCH) decide
 * whether the new program's calls are intercepted: race-free activation. */
#define IDWRAP_CFG_EXEC_SYNC		0x2

/* Verdict actions; also the fail action. */
#define IDWRAP_ACT_ALLOW	0
#define IDWRAP_ACT_DENY		1
#define IDWRAP_ACT_KILL		2
#define IDWRAP_ACT_REWRITE	3

struct idwrap_config {
	__u32 abi;		/* IDWRAP_ABI_VERSION, or EPROTO */
	__u32 flags;		/* IDWRAP_CFG_* */
	__u32 timeout_ms;	/* a waiting call's limit; 0 = 5000 */
	__u32 fail_action;	/* on timeout, close or unload: ALLOW, DENY or KILL */
	__s32 fail_errno;	/* DENY's errno, 1..511; 0 = EPERM (512 and up: EINVAL) */
	__u32 ring_bytes;	/* observe ring, power of two, 64 KiB .. 64 MiB; 0 = 4 MiB */
	__u32 data_max;		/* write data copied per event, <= 65536; 0 = 4096 */
	__u32 reserved[9];	/* zero */
};

/* ---- interest ---------------------------------------------------------- */

#define IDWRAP_PRE_OBSERVE	0x1	/* a pre record in the ring; the call goes on */
#define IDWRAP_PRE_DECIDE	0x2	/* the call waits for a verdict on its pre record */
#define IDWRAP_POST_OBSERVE	0x4	/* a post record (with the result) in the ring */
#define IDWRAP_POST_DECIDE	0x8	/* the caller waits after the call for a verdict
					 * (only KILL acts): a kill lands before it goes on */

struct idwrap_interest {
	__u8 mask[IDWRAP_MAX_SYSCALLS];	/* by x86_64 number; 0 = not intercepted */
};

/* ---- watching processes ------------------------------------------------ */

#define IDWRAP_WATCH_NO_CHILDREN	0x1	/* children do not inherit the watch */

struct idwrap_watch {
	__s32 pid;		/* a thread group id */
	__u32 flags;		/* IDWRAP_WATCH_* */
};

/* ---- event records (read) ---------------------------------------------- */

#define IDWRAP_EV_SYSCALL	1
#define IDWRAP_EV_FORK		2	/* pid/tid: the child; ppid: the parent */
#define IDWRAP_EV_EXEC		3	/* path: the new program; data: argv, NUL-separated */
#define IDWRAP_EV_EXIT		4	/* a whole thread group ended; ret: its wait status */
#define IDWRAP_EV_LOST		5	/* lost: observe records dropped since the last one */

#define IDWRAP_EVF_POST		0x0001	/* post phase: ret is the result */
#define IDWRAP_EVF_VERDICT	0x0002	/* someone waits: write a verdict for this id */
#define IDWRAP_EVF_COMPAT	0x0004	/* an i386 (int 0x80) call: nr is the i386 number;
					 * never run for a watched process (ENOSYS) */
#define IDWRAP_EVF_X32		0x0008	/* an x32 call: never run (ENOSYS) */
#define IDWRAP_EVF_FAULT	0x0010	/* a pointer argument could not be read */
#define IDWRAP_EVF_TRUNC	0x0020	/* data (or a path) was cut at its limit */
#define IDWRAP_EVF_EMULATED	0x0040	/* the module runs (ran) the call itself on the
					 * copied arguments: the open family */
#define IDWRAP_EVF_WATCHED	0x0080	/* lifecycle: the process is watched */
#define IDWRAP_EVF_THREAD	0x0100	/* FORK: a new thread, not a process */
#define IDWRAP_EVF_DENIED	0x0200	/* the module itself refused the call (foreign
					 * ABI, io_uring_setup/enter/register); ret holds
					 * the result */
#define IDWRAP_EVF_JOINED	0x0400	/* a decided call's relative path (and path2)
					 * joined to its start directory (dirfd or cwd)
					 * as pinned at copy time: the call runs on
					 * exactly these bytes (docs/kmod.md) */
#define IDWRAP_EVF_RACED	0x0800	/* an allowed call's arguments changed in the
					 * caller's memory after they were copied: path
					 * is what was decided (and what ran), path2
					 * what the memory said at the call; with
					 * EVF_DENIED (a sockaddr) the call was refused */

struct idwrap_event {
	__u32 size;		/* the whole record with its payload; a multiple of 8 */
	__u16 type;		/* IDWRAP_EV_* */
	__u16 flags;		/* IDWRAP_EVF_* */
	__u64 id;		/* unique per open of the device; verdicts name it */
	__u64 time_ns;		/* CLOCK_REALTIME */
	__s32 pid;		/* thread group id */
	__s32 tid;
	__s32 ppid;		/* the real parent's thread group id */
	__u32 uid;		/* real uid, gid; effective uid, gid (init_user_ns) */
	__u32 gid;
	__u32 euid;
	__u32 egid;
	__u32 nr;		/* syscall number (i386 numbering with EVF_COMPAT) */
	__u64 args[6];		/* the raw argument registers */
	__s64 ret;		/* post: the return value (-errno on error); EXIT: wait status */
	__u64 lost;		/* LOST: how many records were dropped */
	__u16 path_len;		/* bytes of the first path, with its NUL; 0 = none */
	__u16 path2_len;	/* bytes of the second path (rename, link, symlink); for a
				 * decided open, openat or creat with a relative path: the
				 * directory it starts from (dirfd or cwd), as pinned when
				 * the path was copied; the module opens from there */
	__u32 data_len;		/* bytes of data: a write's buffer, a sockaddr, execve's argv */
	char comm[16];		/* the task's comm, NUL-padded */
	/* then: path[path_len], path2[path2_len], data[data_len], zeros to 8 */
};

/* ---- verdicts (write) -------------------------------------------------- */

#define IDWRAP_VF_WATCH		0x1	/* EXEC: intercept this process's calls from now on */
#define IDWRAP_VF_UNWATCH	0x2	/* EXEC: stop intercepting them */

struct idwrap_verdict {
	__u64 id;		/* the record's id */
	__u32 action;		/* IDWRAP_ACT_* */
	__s32 err;		/* DENY: an errno, 1..511; 0 = EPERM (512 and up: EINVAL) */
	__u32 flags;		/* IDWRAP_VF_* */
	__u32 arg;		/* REWRITE: which argument, 0..5 */
	__u64 value;		/* REWRITE: its new value (an integer argument) */
	__u32 path_len;		/* REWRITE of an emulated open: a new path of this many
				 * bytes (with its NUL) follows the struct; else 0 */
	__u32 reserved;		/* zero */
};

/* ---- statistics -------------------------------------------------------- */

struct idwrap_stats {
	__u64 events;		/* records produced */
	__u64 waited;		/* calls that waited for a verdict */
	__u64 lost;		/* observe records dropped (ring full) */
	__u64 timeouts;		/* waits that ran out: fail mode applied */
	__u64 denied;
	__u64 killed;
	__u64 rewritten;
	__u64 emulated;
	__u64 watched;		/* processes watched now */
	__u64 inflight;		/* calls inside the module now */
};

#define IDWRAP_IOC_MAGIC	0xd1
#define IDWRAP_IOC_VERSION	_IO(IDWRAP_IOC_MAGIC, 0)
#define IDWRAP_IOC_CONFIG	_IOW(IDWRAP_IOC_MAGIC, 1, struct idwrap_config)
#define IDWRAP_IOC_INTEREST	_IOW(IDWRAP_IOC_MAGIC, 2, struct idwrap_interest)
#define IDWRAP_IOC_WATCH	_IOW(IDWRAP_IOC_MAGIC, 3, struct idwrap_watch)
#define IDWRAP_IOC_UNWATCH	_IOW(IDWRAP_IOC_MAGIC, 4, struct idwrap_watch)
#define IDWRAP_IOC_STATS	_IOR(IDWRAP_IOC_MAGIC, 5, struct idwrap_stats)

#endif /* _UAPI_IDWRAP_H */
