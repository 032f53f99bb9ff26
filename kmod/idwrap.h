/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * idwrap: what the module's files share. By job:
 *  - idwrap_device.c: /dev/idwrap, its ioctls, /proc/idwrap, the session's
 *    open and close, module init and exit, callers in flight;
 *  - idwrap_ring.c: the stream (the byte ring, the reader's wake timer);
 *  - idwrap_record.c: building records (argument layout, user copies);
 *  - idwrap_probes.c: tracepoint probes, lifecycle, the watch set;
 *  - idwrap_decide.c: the waiters, ftrace ops, the thunk's entry
 *    (idwrap_pre()), expectations, the session's hooks;
 *  - idwrap_emulate.c: in-module opens, the kernel's path-copy replacement,
 *    the identity of what a decided name names;
 *  - idwrap_guard.c: the supervisor's guard by argument (SIGIO, TIOCSTI,
 *    peer pidfds);
 *  - idwrap_thunk.S: the small trampoline the ftrace handler redirects to.
 */
#ifndef _IDWRAP_H
#define _IDWRAP_H

#include <linux/atomic.h>
#include <linux/ftrace.h>
#include <linux/hashtable.h>
#include <linux/path.h>
#include <linux/poll.h>
#include <linux/mutex.h>
#include <linux/ptrace.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
#include <linux/spinlock.h>
#include <linux/timer.h>
#include <linux/tracepoint.h>
#include <linux/types.h>
#include <linux/wait.h>

#include "idwrap_uapi.h"

#define IDWRAP_VERSION	"0.2"

/* The largest record: header, two paths, data_max bytes of data. */
#define IDW_DATA_MAX	65536
#define IDW_REC_MAX	(sizeof(struct idwrap_event) + 2 * PATH_MAX + IDW_DATA_MAX + 8)

/* Verdict and fail errnos: 1..511; 512 and up are kernel-internal (ERESTARTSYS...). */
#define IDW_ERRNO_MAX	511

/* A record being built: the header, then payload appended after it. */
struct idw_rec {
	struct idwrap_event *ev;
	u32 cap;		/* bytes available at ev */
	u32 len;		/* bytes used, header included */
	/*
	 * data_max read once for this record: cap was sized with it and every
	 * copy into the record uses it (IDWRAP_IOC_CONFIG may change the
	 * session's value while a copy sleeps on a page fault).
	 */
	u32 data_max;
};

struct idw_stats {
	atomic64_t events, waited, lost, timeouts, denied, killed;
	atomic64_t rewritten, emulated, unknown;
};

/*
 * The stream (idwrap_ring.c): one vmalloc'd byte ring of whole records and
 * the reader's wake timer.
 */
struct idw_ring {
	spinlock_t lock;		/* the bytes' bounds, buf, lost_pending; irq-safe */
	struct mutex read_lock;		/* one reader at a time */
	wait_queue_head_t read_wq;	/* the reader waits for records */
	wait_queue_head_t room_wq;	/* waiting records wait for room */
	u8 *buf;			/* NULL outside a session */
	u32 size;			/* a power of two */
	u64 head, tail;			/* free-running byte counters */
	u64 lost_pending;		/* dropped since the last LOST record */
	atomic64_t next_id;
	struct timer_list wake_timer;
};

/*
 * The device: the state of /dev/idwrap and its one session, allocated at
 * module init and reached through idw. The session's fields read by probes
 * are READ_ONCE'd.
 */
struct idw_dev {
	struct mutex lock;		/* open, close, ioctls */
	atomic_t opened;		/* one opener at a time */
	bool active;			/* interception on: set at open, cleared first at close */
	pid_t opener;			/* the opener's thread group (init pid ns), for /proc */
	/*
	 * The opener's thread group as a struct pid, held for the session: the
	 * number alone could name another process once the opener is gone
	 * (the fd passed on), and that one would never be intercepted.
	 */
	struct pid *opener_pid;
	struct idwrap_config cfg;	/* defaults filled in */
	u8 interest[IDWRAP_MAX_SYSCALLS];
	struct idw_ring ring;
	/* Tasks running module code outside a probe (idw_enter()). */
	atomic_t inflight;
	struct idw_stats stats;
};

/* The outcome of a wait for a verdict. */
struct idw_answer {
	u32 action;
	s32 err;
	u32 flags;
	u32 arg;
	u64 value;
	char *path;		/* REWRITE of an open: kmalloc'd, the caller frees */
	u32 path_len;
};

extern struct idw_dev *idw;

/* idwrap_device.c */
bool idw_enter(void);
void idw_leave(void);
void idw_kill_group(void);

/* idwrap_ring.c */
void idw_ring_init(struct idw_ring *ring);
bool idw_ring_room(u32 size);
bool idw_ring_put(struct idw_rec *r);
void idw_rec_finish(struct idw_rec *r);
void idw_wake_reader(struct timer_list *t);
void idw_emit_observe(struct idw_rec *r);
void idw_count_lost(void);
int idw_ring_alloc(u32 size);
void idw_ring_free(void);
ssize_t idw_read(struct file *file, char __user *buf, size_t count, loff_t *ppos);
__poll_t idw_poll(struct file *file, poll_table *wait);

/* idwrap_record.c */
/*
 * Argument index + 1 of the first and second path, of a data buffer and its
 * length, of an argv array (copied as data, NUL-separated).
 */
struct idw_argspec {
	u8 path, path2, data, len, argv;
};

extern const struct idw_argspec idw_spec[IDWRAP_MAX_SYSCALLS];
extern const char * const idw_names[IDWRAP_MAX_SYSCALLS];
extern void **idw_scratch;
bool idw_is_open(long nr);
void idw_add_data(struct idw_rec *r, unsigned long uaddr, u64 len, bool atomic);
u32 idw_rec_cap(long nr, u32 data_max);
u32 idw_data_max(void);
void idw_rec_syscall(struct idw_rec *r, u16 flags, long nr,
		     const unsigned long *args, bool atomic);
struct idw_rec idw_scratch_rec(void);
void idw_rec_header(struct idw_rec *r, u16 type, u16 flags, struct task_struct *t);

/* idwrap_probes.c */
/* A rewritten argument register to put back, or an emulated call to flag. */
struct idw_tstate {
	struct hlist_node node;
	struct task_struct *task;
	long nr;		/* the call it belongs to */
	int arg;		/* -1: none */
	unsigned long saved;
	bool emulated;
};

struct idw_refetch {
	struct hlist_node node;
	struct task_struct *task;
	long nr;
};

extern struct hlist_head idw_ts_ht[1 << 6];
extern spinlock_t idw_ts_lock;
extern atomic_t idw_nts;
extern struct hlist_head idw_rf_ht[1 << 6];
extern spinlock_t idw_rf_lock;
extern atomic_t idw_nrf;
extern u8 idw_hook_how[IDWRAP_MAX_SYSCALLS];
extern atomic_t idw_nwatched;
unsigned long *idw_argreg(struct pt_regs *regs, int i);
bool idw_ts_put(long nr, int arg, unsigned long saved, bool emulated);
bool idw_rf_take(struct task_struct *t, long nr);
bool idw_has_pointers(long nr);
bool idw_intercepts(struct task_struct *t);
bool idw_is_uring(long nr);
void idw_zl_clear(void);
struct idw_tp {
	const char *name;
	void *probe;
	struct tracepoint *tp;
	bool on;
};

extern struct idw_tp idw_tps[5];
void idw_tp_find(struct tracepoint *tp, void *priv);
bool idw_watched_tgid(pid_t tgid);
bool idw_watch_add(pid_t tgid, u32 flags);
bool idw_watch_del(pid_t tgid);
int idw_watch_inherit(pid_t parent, pid_t child);
void idw_watch_clear(void);

/* idwrap_decide.c */
#define IDW_CWD		-1	/* a slot's name starts at the cwd */
#define IDW_NOJOIN	-2	/* not looked up from a dirfd/cwd by us (a symlink's
				 * target, mount's source, RESOLVE_BENEATH/IN_ROOT) */
#define IDW_NOSLOT	-3	/* not a name the kernel getname()s (an xattr's name) */

/* A file's identity: ino 0 is "nothing there" (or the lookup failed). */
struct idw_ident {
	unsigned long ino;
	dev_t dev;
	u32 gen;
};

struct idw_slot {
	unsigned long uaddr;	/* the user pointer the call passes */
	char *name;		/* what the kernel gets instead (joined) */
	char *raw;		/* the bytes copied from the caller */
	int err;		/* the copy faulted or was cut (the kernel gets that), or
				 * the join failed (the call fails with it) */
	/*
	 * What the name resolved to at copy time (idw_ident_record()): its
	 * parent directory, the object itself, and the object with a final
	 * symlink followed. The kernel's security_* hooks compare what the call
	 * acts on with these.
	 */
	bool ident;
	struct idw_ident parent, obj, objf;
};

struct idw_expect {
	struct hlist_node node;
	struct task_struct *task;
	refcount_t ref;
	long nr;
	struct idw_slot slot[2];
	void *addr;		/* connect/bind: the sockaddr decided on */
	u32 addrlen;
	/* Filled by the hooks: the call saw other bytes than the copy. */
	bool raced, refused;
	char *seen;		/* the path bytes the caller's memory held at the call */
	char *xname;		/* an xattr call's name, as decided on (the kernel copies it again) */
	u16 ident_done;		/* the identity hooks (by kind) already passed for this call */
	int raced_slot;
};

#define IDW_OPS_FLAGS	(FTRACE_OPS_FL_SAVE_REGS | FTRACE_OPS_FL_IPMODIFY | \
			 FTRACE_OPS_FL_RECURSION)

extern atomic_t idw_nex;
void idw_wait_verdict(struct idw_rec *r, struct idw_answer *a);
void idw_fail_answer(struct idw_answer *a);
void idw_release_waiters(void);
bool idw_answer(const struct idwrap_verdict *v, char *path);
void idw_ex_free(struct idw_expect *ex);
void idw_ex_put(struct idw_expect *ex);
struct idw_expect *idw_ex_get(struct task_struct *t, bool take);
int idw_hooks_start(void);
void idw_hooks_stop(void);
int idw_hooks_interest(const u8 *mask);
void idw_hooks_forget(void);
void idw_hooks_exit(void);
void idw_report_guarded(long ret);

/* idwrap_emulate.c */
extern struct ftrace_ops idw_fname1_ops, idw_fname13_ops, idw_fname02_ops, idw_sock_ops;
extern bool idw_fname1_on, idw_fname13_on, idw_fname02_on, idw_sock_on;
void idw_get_dir(long nr, int dfd, struct path *dir);
void idw_pin_dir(long nr, struct idw_rec *r, const unsigned long *args,
		 struct path *dir);
int idw_join(const struct path *dir, const char *name, char *out);
long idw_open_emulated(long nr, struct idw_rec *r, unsigned long *args,
		       const char *newpath, const struct path *dir);
struct idw_expect *idw_expect_build(long nr, struct idw_rec *r, const unsigned long *args);
int idw_expect_error(const struct idw_expect *ex);
void idw_expect_rewrite(struct idw_expect *ex, long nr, const unsigned long *args, u32 arg);
struct idw_expect *idw_expect_open(long nr, struct idw_rec *r, const struct path *dir);
int idw_ident_start(void);
void idw_ident_stop(void);
void idw_ident_exit(void);

/* idwrap_guard.c */
extern atomic64_t idw_sigio_refused, idw_ptrace_refused, idw_kill_refused;
int idw_guard_refuses(long nr, const struct pt_regs *regs);
enum {
	IDW_GUARD_SIGIO, IDW_GUARD_IOCTL, IDW_GUARD_GETSOCKOPT, IDW_GUARD_SETSOCKOPT,
	IDW_GUARD_PTRACE, IDW_GUARD_KILL,
};
void idw_guard_hook(int which, struct pt_regs *regs);

/*
 * The module's own allocations, by site, so the test-only build
 * (IDWRAP_FAULT_INJECT, idwrap_fault.c) can fail each on request. Sites:
 * "ring" (the session's ring), "record" (a decided or refetched call's
 * record), "expect" (a decided path call's copies), "open" (the emulated
 * open's joined name), "tstate" (a rewritten register's note), "defer" (a
 * deferred decision: POST_DECIDE, EXEC_SYNC), "watch" (a watch entry:
 * inheritance at fork, the WATCH ioctl and verdict flag).
 */
#ifdef IDWRAP_FAULT_INJECT
bool idw_fault(const char *site);
bool idw_force_ibt(void);
void idw_test_observe_delay(void);
unsigned int idw_test_wake_delay_ms(void);
#else
static inline bool idw_fault(const char *site) { return false; }
static inline bool idw_force_ibt(void) { return false; }
static inline void idw_test_observe_delay(void) { }
static inline unsigned int idw_test_wake_delay_ms(void) { return 0; }
#endif
#define idw_kmalloc(site, n, gfp)	(idw_fault(site) ? NULL : kmalloc(n, gfp))
#define idw_kzalloc(site, n, gfp)	(idw_fault(site) ? NULL : kzalloc(n, gfp))
#define idw_kvmalloc(site, n, gfp)	(idw_fault(site) ? NULL : kvmalloc(n, gfp))
#define idw_vmalloc(site, n)		(idw_fault(site) ? NULL : vmalloc(n))
#define idw_kstrdup(site, s, gfp)	(idw_fault(site) ? NULL : kstrdup(s, gfp))
#define idw_kmemdup(site, p, n, gfp)	(idw_fault(site) ? NULL : kmemdup(p, n, gfp))

/* idwrap_thunk.S and the C function it calls. */
void idwrap_thunk(void);
bool idwrap_pre(struct pt_regs *regs, long *ret, unsigned long observe);

static inline bool idw_is_opener(struct task_struct *t)
{
	return task_tgid(t) == READ_ONCE(idw->opener_pid);
}

#endif /* _IDWRAP_H */
