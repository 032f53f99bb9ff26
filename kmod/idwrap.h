/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * idwrap: what the module's files share. idwrap_main.c owns the device, the
 * session (config, interest, the stream, the waiters, the watch set);
 * idwrap_hook.c owns interception (tracepoints, ftrace, the pre path);
 * idwrap_thunk.S the small trampoline the ftrace handler redirects to.
 */
#ifndef _IDWRAP_H
#define _IDWRAP_H

#include <linux/atomic.h>
#include <linux/ptrace.h>
#include <linux/sched.h>
#include <linux/sched/signal.h>
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

/* The open session; one at a time. Fields read by probes are READ_ONCE'd. */
struct idw_session {
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

extern struct idw_session idw;
extern struct idw_stats idw_stats;
extern atomic_t idw_inflight;

/* idwrap_main.c */
bool idw_watched_tgid(pid_t tgid);
bool idw_watch_add(pid_t tgid, u32 flags);
bool idw_watch_del(pid_t tgid);
int idw_watch_inherit(pid_t parent, pid_t child);
void idw_rec_header(struct idw_rec *r, u16 type, u16 flags, struct task_struct *t);
void idw_emit_observe(struct idw_rec *r);
void idw_count_lost(void);
void idw_wait_verdict(struct idw_rec *r, struct idw_answer *a);
void idw_fail_answer(struct idw_answer *a);
bool idw_enter(void);
void idw_leave(void);
void idw_kill_group(void);

/* idwrap_hook.c */
int idw_hooks_start(void);
void idw_hooks_stop(void);
int idw_hooks_interest(const u8 *mask);
void idw_hooks_forget(void);
void idw_hooks_exit(void);

/* idwrap_thunk.S and the C function it calls. */
void idwrap_thunk(void);
bool idwrap_pre(struct pt_regs *regs, long *ret, unsigned long observe);

static inline bool idw_is_opener(struct task_struct *t)
{
	return task_tgid(t) == READ_ONCE(idw.opener_pid);
}

#endif /* _IDWRAP_H */
