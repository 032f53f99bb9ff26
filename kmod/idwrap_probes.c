// SPDX-License-Identifier: GPL-2.0-only
/*
 * idwrap: the tracepoint probes (sys_enter, sys_exit, lifecycle), the
 * watch set.
 *
 * Observation and lifecycle go through tracepoints (sys_enter, sys_exit,
 * sched_process_fork/exec/exit), found with for_each_kernel_tracepoint() and
 * attached with tracepoint_probe_register(), as Falco's module does. Probes
 * are atomic: they copy user memory only with the *_nofault helpers into a
 * per-CPU scratch record.
 *
 * Observed copies that fault: a page that is not resident cannot be read in
 * the probe (an execve's path in read-only data right after fork is the
 * common case). So every PRE_OBSERVE call with pointer arguments also has
 * its entry point hooked by the decide ftrace ops (idwrap_decide.c); when sys_enter's
 * copy fails it emits nothing and notes the task, and the ftrace handler,
 * which runs next on that call's __x64_sys_<name>, sends it through the
 * thunk in observe mode: idwrap_pre() copies with faults allowed (sleeping
 * for the page, as the call itself would), emits the record into the ring
 * like any observe record (dropped and counted if the ring is full: it
 * never waits for the host) and runs the original. The record keeps its
 * place before the call's post record. Chosen over copying every observed
 * call in the thunk: the common resident case stays in the cheap probe, and
 * only faulting calls pay for the detour. IDWRAP_EVF_FAULT remains for
 * pointers that cannot be read at all, and for a call whose entry point
 * ftrace cannot hook (probe copy only).
 *
 * POST_DECIDE and EXEC_SYNC: the probe queues a TWA_RESUME task_work that
 * emits the waiting record and sleeps for the verdict before the task
 * returns to user mode. Every queued work and every task in the pre path
 * holds a module reference (idw_enter()); close() does not wait for them.
 *
 * The session's watch set: thread-group ids in an RCU hashtable, read by every
 *    probe, inherited at fork, dropped at exit.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/binfmts.h>
#include <linux/capability.h>
#include <linux/completion.h>
#include <linux/cred.h>
#include <linux/dcache.h>
#include <linux/fcntl.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/fs_struct.h>
#include <linux/fsnotify.h>
#include <linux/ftrace.h>
#include <linux/hashtable.h>
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/namei.h>
#include <linux/net.h>
#include <linux/openat2.h>
#include <linux/path.h>
#include <linux/pid.h>
#include <linux/poll.h>
#include <linux/proc_fs.h>
#include <linux/rcupdate.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/task_work.h>
#include <linux/timekeeping.h>
#include <linux/timer.h>
#include <linux/tracepoint.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>
#include <asm/cpufeature.h>
#include <asm/syscall.h>
#include <asm/unistd.h>

#include "idwrap.h"

/* ---- per-task state between sys_enter and sys_exit --------------------- */

DEFINE_HASHTABLE(idw_ts_ht, 6);
DEFINE_SPINLOCK(idw_ts_lock);
atomic_t idw_nts = ATOMIC_INIT(0);

unsigned long *idw_argreg(struct pt_regs *regs, int i)
{
	switch (i) {
	case 0: return &regs->di;
	case 1: return &regs->si;
	case 2: return &regs->dx;
	case 3: return &regs->r10;
	case 4: return &regs->r8;
	default: return &regs->r9;
	}
}

bool idw_ts_put(long nr, int arg, unsigned long saved, bool emulated)
{
	struct idw_tstate *ts = idw_kmalloc("tstate", sizeof(*ts), GFP_KERNEL);
	unsigned long flags;

	if (!ts)
		return false;
	ts->task = current;
	ts->nr = nr;
	ts->arg = arg;
	ts->saved = saved;
	ts->emulated = emulated;
	spin_lock_irqsave(&idw_ts_lock, flags);
	hash_add(idw_ts_ht, &ts->node, (unsigned long)current);
	atomic_inc(&idw_nts);
	spin_unlock_irqrestore(&idw_ts_lock, flags);
	return true;
}

/* Removes and returns @t's state; the caller kfree()s it. */
static struct idw_tstate *idw_ts_take(struct task_struct *t)
{
	struct idw_tstate *ts, *found = NULL;
	unsigned long flags;

	if (!atomic_read(&idw_nts))
		return NULL;
	spin_lock_irqsave(&idw_ts_lock, flags);
	hash_for_each_possible(idw_ts_ht, ts, node, (unsigned long)t) {
		if (ts->task == t) {
			hash_del(&ts->node);
			atomic_dec(&idw_nts);
			found = ts;
			break;
		}
	}
	spin_unlock_irqrestore(&idw_ts_lock, flags);
	return found;
}

/* ---- observed calls whose copy faulted in sys_enter -------------------- */

/*
 * sys_enter is atomic: a string or buffer whose page is not present (an
 * execve's path in read-only data right after fork) cannot be read there.
 * Such a call's record is not emitted by the probe: the task is noted here,
 * and the decide ftrace handler, which runs next on the call's entry point
 * (hooked for every observed call with pointer arguments), sends it through
 * the thunk in observe mode: idwrap_pre() copies with faults allowed, emits
 * the record (never waiting for the host) and runs the original.
 */

DEFINE_HASHTABLE(idw_rf_ht, 6);
DEFINE_SPINLOCK(idw_rf_lock);
atomic_t idw_nrf = ATOMIC_INIT(0);
/*
 * Entry points in the decide filter: PRE_DECIDE, or observed with pointers.
 * How the filter names each: 0 not there, 1 __x64_sys_X, 2 __do_sys_X
 * (SYSCALL_DEFINE0's __x64_sys_X is an alias that ftrace knows by that name).
 */
u8 idw_hook_how[IDWRAP_MAX_SYSCALLS];

static bool idw_rf_put(long nr)
{
	struct idw_refetch *rf = kmalloc(sizeof(*rf), GFP_ATOMIC);
	unsigned long flags;

	if (!rf)
		return false;
	rf->task = current;
	rf->nr = nr;
	spin_lock_irqsave(&idw_rf_lock, flags);
	hash_add(idw_rf_ht, &rf->node, (unsigned long)current);
	atomic_inc(&idw_nrf);
	spin_unlock_irqrestore(&idw_rf_lock, flags);
	return true;
}

/* Removes @t's note (for call @nr, or any if @nr < 0); true if there was one. */
bool idw_rf_take(struct task_struct *t, long nr)
{
	struct idw_refetch *rf, *found = NULL;
	unsigned long flags;

	if (!atomic_read(&idw_nrf))
		return false;
	spin_lock_irqsave(&idw_rf_lock, flags);
	hash_for_each_possible(idw_rf_ht, rf, node, (unsigned long)t) {
		if (rf->task == t && (nr < 0 || rf->nr == nr)) {
			hash_del(&rf->node);
			atomic_dec(&idw_nrf);
			found = rf;
			break;
		}
	}
	spin_unlock_irqrestore(&idw_rf_lock, flags);
	kfree(found);
	return found;
}

bool idw_has_pointers(long nr)
{
	const struct idw_argspec *s = &idw_spec[nr];

	return s->path || s->path2 || s->data || s->argv;
}

/* ---- deferred waits: POST_DECIDE, EXEC_SYNC ---------------------------- */

struct idw_defer {
	struct callback_head cb;
	bool exec;
	u32 len;
	struct idwrap_event ev[];
};

/* Runs in the task before it returns to user mode; may sleep. */
static void idw_defer_run(struct callback_head *cb)
{
	struct idw_defer *d = container_of(cb, struct idw_defer, cb);
	struct idw_rec r = { .ev = d->ev, .cap = d->len + 8, .len = d->len };
	struct idw_answer a;

	idw_wait_verdict(&r, &a);
	kfree(a.path);
	if (a.action == IDWRAP_ACT_KILL)
		idw_kill_group();
	else if (d->exec && (a.flags & IDWRAP_VF_UNWATCH))
		idw_watch_del(current->tgid);
	else if (d->exec && (a.flags & IDWRAP_VF_WATCH))
		idw_watch_add(current->tgid, 0);
	kfree(d);
	idw_leave();
}

/*
 * Queues the wait. If the record cannot be kept (GFP_ATOMIC failed) the call
 * is not let through undecided: the fail action applies now (KILL, and DENY
 * too, which cannot undo a call that already ran; ALLOW lets it go, counted
 * as lost).
 */
static void idw_defer(struct idw_rec *r, bool exec)
{
	struct idw_defer *d = idw_kmalloc("defer", sizeof(*d) + r->len + 8, GFP_ATOMIC);

	if (!d) {
		atomic64_inc(&idw->stats.lost);
		if (READ_ONCE(idw->cfg.fail_action) != IDWRAP_ACT_ALLOW)
			idw_kill_group();
		return;
	}
	if (!idw_enter()) {
		kfree(d);
		return;
	}
	d->exec = exec;
	d->len = r->len;
	memcpy(d->ev, r->ev, r->len);
	init_task_work(&d->cb, idw_defer_run);
	if (task_work_add(current, &d->cb, TWA_RESUME)) {	/* exiting */
		kfree(d);
		idw_leave();
	}
}

/* ---- tracepoint probes --------------------------------------------------- */

bool idw_intercepts(struct task_struct *t)
{
	return READ_ONCE(idw->active) && !(t->flags & PF_KTHREAD) &&
	       !idw_is_opener(t) && idw_watched_tgid(t->tgid);
}

static bool idw_all(void)
{
	return READ_ONCE(idw->cfg.flags) & IDWRAP_CFG_ALL_PROCESSES;
}

/*
 * io_uring runs I/O that no hook sees: a watched task may not create a ring,
 * nor drive one it got otherwise (created before it was watched, inherited
 * over exec, received over SCM_RIGHTS).
 */
bool idw_is_uring(long nr)
{
	return nr == __NR_io_uring_setup || nr == __NR_io_uring_enter ||
	       nr == __NR_io_uring_register;
}

static bool idw_is_exec(long nr)
{
	return nr == __NR_execve || nr == __NR_execveat;
}

/* A call the module refused itself: i386, x32, io_uring, the guard's (idwrap_guard.c). */
static void idw_report_refused(struct pt_regs *regs, long id, u16 flags, long ret)
{
	struct idw_rec r = idw_scratch_rec();
	unsigned long args[6];

	syscall_get_arguments(current, regs, args);
	idw_rec_header(&r, IDWRAP_EV_SYSCALL, flags | IDWRAP_EVF_DENIED, current);
	r.ev->nr = id;
	memcpy(r.ev->args, args, sizeof(r.ev->args));
	r.ev->ret = ret;
	atomic64_inc(&idw->stats.denied);
	idw_emit_observe(&r);
}

/*
 * The guard's refusal inside a call (idwrap_guard.c: a ptrace access check,
 * a signal), reported as the caller's call refused, from the hook: the
 * record carries the guard's errno, not the call's final result (an open of
 * /proc/PID/fd/N fails with EACCES). The hook runs under task_lock() or
 * RCU: the record is built without touching the caller's memory, on this
 * CPU's scratch buffer, preemption off as in the probes.
 */
void idw_report_guarded(long ret)
{
	struct pt_regs *regs = task_pt_regs(current);
	long nr = syscall_get_nr(current, regs);

	if (nr < 0)
		return;
	preempt_disable();
	idw_report_refused(regs, nr, 0, ret);
	preempt_enable();
}

static void __idw_sys_enter(struct pt_regs *regs, long id)
{
	struct idw_rec r;
	unsigned long args[6];
	u8 m;

	if (!idw_intercepts(current))
		return;
	if (in_ia32_syscall()) {
		idw_report_refused(regs, id, IDWRAP_EVF_COMPAT, -ENOSYS);
		return;
	}
	if (id & __X32_SYSCALL_BIT) {
		idw_report_refused(regs, id, IDWRAP_EVF_X32, -ENOSYS);
		return;
	}
	if (idw_is_uring(id)) {
		idw_report_refused(regs, id, 0, -EPERM);
		return;
	}
	if (idw_guard_refuses(id, regs)) {
		idw_report_refused(regs, id, 0, -idw_guard_refuses(id, regs));
		return;
	}
	if (id < 0 || id >= IDWRAP_MAX_SYSCALLS)
		return;
	m = READ_ONCE(idw->interest[id]);
	/* A decided call's record comes from idwrap_pre(). */
	if (!(m & IDWRAP_PRE_OBSERVE) || (m & IDWRAP_PRE_DECIDE))
		return;
	r = idw_scratch_rec();
	syscall_get_arguments(current, regs, args);
	idw_rec_syscall(&r, 0, id, args, true);
	/* Not resident: copied by idwrap_pre() in the call's entry hook instead. */
	if ((r.ev->flags & IDWRAP_EVF_FAULT) && READ_ONCE(idw_hook_how[id]) && idw_rf_put(id))
		return;
	idw_emit_observe(&r);
}

/* A string into the record, cut at PATH_MAX. */
static void idw_put_str(struct idw_rec *r, const char *str, u16 *lenp)
{
	ssize_t n;

	if (!str)
		return;
	n = strscpy((char *)r->ev + r->len, str, PATH_MAX);
	if (n < 0)
		n = PATH_MAX - 1;
	*lenp = n + 1;
	r->len += n + 1;
}

/*
 * The end of a call that had an expectation: if the caller's memory held
 * other bytes when the kernel read them, a RACED record says so (path: the
 * name decided on, which the call ran on; path2: the bytes found; for a
 * sockaddr, data: the one decided on, and EVF_DENIED: refused).
 */
static void idw_report_raced(struct pt_regs *regs, struct idw_expect *ex, long ret)
{
	struct idw_rec r;
	unsigned long args[6];

	if (!ex->raced || !READ_ONCE(idw->active))
		return;
	r = idw_scratch_rec();
	syscall_get_arguments(current, regs, args);
	idw_rec_header(&r, IDWRAP_EV_SYSCALL,
		       IDWRAP_EVF_POST | IDWRAP_EVF_RACED | (ex->refused ? IDWRAP_EVF_DENIED : 0),
		       current);
	r.ev->nr = ex->nr;
	memcpy(r.ev->args, args, sizeof(r.ev->args));
	r.ev->ret = ret;
	if (ex->raced_slot >= 0) {
		idw_put_str(&r, ex->slot[ex->raced_slot].name, &r.ev->path_len);
		idw_put_str(&r, ex->seen, &r.ev->path2_len);
	} else if (ex->xname) {	/* an xattr name: the one decided on, the one the kernel copied */
		idw_put_str(&r, ex->xname, &r.ev->path_len);
		idw_put_str(&r, ex->seen, &r.ev->path2_len);
	} else if (ex->addr) {
		memcpy((u8 *)r.ev + r.len, ex->addr, ex->addrlen);
		r.ev->data_len = ex->addrlen;
		r.len += ex->addrlen;
	}
	idw_emit_observe(&r);
}

static void __idw_sys_exit(struct pt_regs *regs, long ret)
{
	struct idw_tstate *ts = idw_ts_take(current);
	struct idw_expect *ex = idw_ex_get(current, true);
	long nr = syscall_get_nr(current, regs);
	u16 flags = IDWRAP_EVF_POST;
	unsigned long args[6];
	struct idw_rec r;
	u8 m;

	if (ts) {
		/*
		 * The user's value back (the ABI preserves argument registers),
		 * except after a successful execve: these registers are the new
		 * program's, which the kernel set up (a static binary takes %rdx
		 * at entry as its atexit function).
		 */
		if (ts->arg >= 0 && !(idw_is_exec(ts->nr) && ret == 0))
			*idw_argreg(regs, ts->arg) = ts->saved;
		if (ts->emulated)
			flags |= IDWRAP_EVF_EMULATED;
		kfree(ts);
	}
	if (ex) {
		idw_report_raced(regs, ex, ret);
		idw_ex_put(ex);
	}
	/* A note the entry hook never took (its hook went away meanwhile). */
	if (idw_rf_take(current, -1))
		idw_count_lost();
	if (!idw_intercepts(current) || in_ia32_syscall() || nr < 0 ||
	    nr >= IDWRAP_MAX_SYSCALLS || idw_is_uring(nr))
		return;
	m = READ_ONCE(idw->interest[nr]);
	if (!(m & (IDWRAP_POST_OBSERVE | IDWRAP_POST_DECIDE)))
		return;
	r = idw_scratch_rec();
	syscall_get_arguments(current, regs, args);
	idw_rec_syscall(&r, flags, nr, args, true);
	r.ev->ret = ret;
	if (m & IDWRAP_POST_DECIDE)
		idw_defer(&r, false);
	else
		idw_emit_observe(&r);
}

/* ---- one EXIT per thread group ------------------------------------------ */

/*
 * Every thread that reaches sched_process_exit after the group's last
 * live-count decrement sees signal->live == 0, and threads killed together
 * get there together: "live == 0" alone reported a group's EXIT several
 * times. Exactly one thread reports it:
 *  - the group leader, if it sees live == 0;
 *  - else the first thread to see live == 0 after the leader went ahead
 *    (the leader leaves a note, taken once).
 * The leader's read and note and the others' read and take are under one
 * lock, so either the leader saw 0 or its note is there for the others.
 */
struct idw_zleader {
	struct hlist_node node;
	pid_t tgid;
	const void *sig;	/* the group's signal_struct, as a key only */
};

static DEFINE_HASHTABLE(idw_zl_ht, 6);
static DEFINE_SPINLOCK(idw_zl_lock);
static atomic_t idw_nzl = ATOMIC_INIT(0);
/* A leader's note could not be allocated: fall back to "every thread that sees 0". */
static bool idw_zl_degraded;

/* Under idw_zl_lock: removes the note for @tgid (and @sig, if given). */
static bool idw_zl_take(pid_t tgid, const void *sig)
{
	struct idw_zleader *z;

	hash_for_each_possible(idw_zl_ht, z, node, tgid) {
		if (z->tgid == tgid && (!sig || z->sig == sig)) {
			hash_del(&z->node);
			atomic_dec(&idw_nzl);
			kfree(z);
			return true;
		}
	}
	return false;
}

/* Whether @p reports its group's EXIT. */
static bool idw_exit_reporter(struct task_struct *p)
{
	const void *sig = p->signal;
	struct idw_zleader *z;
	unsigned long flags;
	bool report;

	if (thread_group_leader(p)) {
		z = kmalloc(sizeof(*z), GFP_ATOMIC);
		spin_lock_irqsave(&idw_zl_lock, flags);
		report = !atomic_read(&p->signal->live);
		if (report) {
			idw_zl_take(p->tgid, sig);	/* one left by an exec'ing thread's old leader */
		} else if (z) {
			z->tgid = p->tgid;
			z->sig = sig;
			hash_add(idw_zl_ht, &z->node, z->tgid);
			atomic_inc(&idw_nzl);
			z = NULL;
		} else {
			idw_zl_degraded = true;
		}
		spin_unlock_irqrestore(&idw_zl_lock, flags);
		kfree(z);
		return report;
	}
	spin_lock_irqsave(&idw_zl_lock, flags);
	report = !atomic_read(&p->signal->live) &&
		 (idw_zl_take(p->tgid, sig) || idw_zl_degraded);
	spin_unlock_irqrestore(&idw_zl_lock, flags);
	return report;
}

/* A new process: a note left under its (reused) tgid is stale. */
static void idw_zl_forget(pid_t tgid)
{
	unsigned long flags;

	if (!atomic_read(&idw_nzl))
		return;
	spin_lock_irqsave(&idw_zl_lock, flags);
	idw_zl_take(tgid, NULL);
	spin_unlock_irqrestore(&idw_zl_lock, flags);
}

void idw_zl_clear(void)
{
	struct idw_zleader *z;
	struct hlist_node *tmp;
	unsigned long flags;
	int bkt;

	spin_lock_irqsave(&idw_zl_lock, flags);
	hash_for_each_safe(idw_zl_ht, bkt, tmp, z, node) {
		hash_del(&z->node);
		kfree(z);
	}
	atomic_set(&idw_nzl, 0);
	idw_zl_degraded = false;
	spin_unlock_irqrestore(&idw_zl_lock, flags);
}

static void __idw_fork(struct task_struct *parent, struct task_struct *child)
{
	bool thread = child->tgid == parent->tgid;
	struct idw_rec r;
	int watched;

	if (!READ_ONCE(idw->active) || (child->flags & PF_KTHREAD))
		return;
	if (!thread)
		idw_zl_forget(child->tgid);
	if (idw_is_opener(parent))
		return;
	watched = thread ? idw_watched_tgid(child->tgid) :
			   idw_watch_inherit(parent->tgid, child->tgid);
	if (watched < 0) {
		/* Never an unwatched child of a watched parent: it dies before it runs. */
		atomic64_inc(&idw->stats.killed);
		send_sig(SIGKILL, child, 1);
		watched = 0;
	}
	if (!watched && !idw_all())
		return;
	r = idw_scratch_rec();
	idw_rec_header(&r, IDWRAP_EV_FORK, (thread ? IDWRAP_EVF_THREAD : 0) |
		       (watched ? IDWRAP_EVF_WATCHED : 0), child);
	idw_emit_observe(&r);
}

static void __idw_exec(struct task_struct *p, struct linux_binprm *bprm)
{
	struct mm_struct *mm = p->mm;
	struct idw_rec r;
	bool watched;
	ssize_t n;

	if (!READ_ONCE(idw->active) || (p->flags & PF_KTHREAD) || idw_is_opener(p))
		return;
	watched = idw_watched_tgid(p->tgid);
	if (!watched && !idw_all())
		return;
	r = idw_scratch_rec();
	idw_rec_header(&r, IDWRAP_EV_EXEC, watched ? IDWRAP_EVF_WATCHED : 0, p);
	n = strscpy((char *)r.ev + r.len, bprm->filename, PATH_MAX);
	if (n == -E2BIG) {
		n = PATH_MAX - 1;
		r.ev->flags |= IDWRAP_EVF_TRUNC;
	}
	r.ev->path_len = n + 1;
	r.len += n + 1;
	if (mm)
		idw_add_data(&r, mm->arg_start, mm->arg_end - mm->arg_start, true);
	if (READ_ONCE(idw->cfg.flags) & IDWRAP_CFG_EXEC_SYNC)
		idw_defer(&r, true);
	else
		idw_emit_observe(&r);
}

static void __idw_proc_exit(struct task_struct *p)
{
	struct idw_tstate *ts = idw_ts_take(p);
	struct idw_expect *ex = idw_ex_get(p, true);
	struct idw_rec r;
	bool watched;
	int status;

	kfree(ts);
	if (ex)
		idw_ex_put(ex);
	idw_rf_take(p, -1);
	if (!READ_ONCE(idw->active) || (p->flags & PF_KTHREAD) || !idw_exit_reporter(p))
		return;
	/* The group's reporter: the process is gone. */
	watched = idw_watch_del(p->tgid);
	if ((!watched && !idw_all()) || idw_is_opener(p))
		return;
	status = (p->signal->flags & SIGNAL_GROUP_EXIT) ?
		 p->signal->group_exit_code : p->exit_code;
	r = idw_scratch_rec();
	idw_rec_header(&r, IDWRAP_EV_EXIT, watched ? IDWRAP_EVF_WATCHED : 0, p);
	r.ev->ret = status;
	idw_emit_observe(&r);
}

/*
 * The probes, with preemption off around the per-CPU scratch record: 6.1
 * calls them so already; kernels with faultable syscall tracepoints do not.
 */
static void idw_sys_enter(void *data, struct pt_regs *regs, long id)
{
	preempt_disable();
	__idw_sys_enter(regs, id);
	preempt_enable();
}

static void idw_sys_exit(void *data, struct pt_regs *regs, long ret)
{
	preempt_disable();
	__idw_sys_exit(regs, ret);
	preempt_enable();
}

static void idw_fork(void *data, struct task_struct *parent, struct task_struct *child)
{
	preempt_disable();
	__idw_fork(parent, child);
	preempt_enable();
}

static void idw_exec(void *data, struct task_struct *p, pid_t old_pid,
		     struct linux_binprm *bprm)
{
	preempt_disable();
	__idw_exec(p, bprm);
	preempt_enable();
}

static void idw_proc_exit(void *data, struct task_struct *p)
{
	preempt_disable();
	__idw_proc_exit(p);
	preempt_enable();
}

struct idw_tp idw_tps[] = {
	{ "sys_enter", idw_sys_enter },
	{ "sys_exit", idw_sys_exit },
	{ "sched_process_fork", idw_fork },
	{ "sched_process_exec", idw_exec },
	{ "sched_process_exit", idw_proc_exit },
};

void idw_tp_find(struct tracepoint *tp, void *priv)
{
	int i;

	for (i = 0; i < ARRAY_SIZE(idw_tps); i++)
		if (!strcmp(tp->name, idw_tps[i].name))
			idw_tps[i].tp = tp;
}

/* ---- the watch set ------------------------------------------------------- */

struct idw_watch {
	struct hlist_node node;
	pid_t tgid;
	u32 flags;
	struct rcu_head rcu;
};

static DEFINE_HASHTABLE(idw_watch_ht, 8);
static DEFINE_SPINLOCK(idw_watch_lock);
atomic_t idw_nwatched = ATOMIC_INIT(0);

static struct idw_watch *idw_watch_find(pid_t tgid)
{
	struct idw_watch *w;

	hash_for_each_possible_rcu(idw_watch_ht, w, node, tgid)
		if (w->tgid == tgid)
			return w;
	return NULL;
}

bool idw_watched_tgid(pid_t tgid)
{
	bool ret;

	if (!atomic_read(&idw_nwatched))
		return false;
	rcu_read_lock();
	ret = idw_watch_find(tgid);
	rcu_read_unlock();
	return ret;
}

/* May run in atomic context (fork). */
bool idw_watch_add(pid_t tgid, u32 flags)
{
	struct idw_watch *w = idw_kmalloc("watch", sizeof(*w), GFP_ATOMIC), *old;
	unsigned long irq;

	if (!w)
		return false;
	w->tgid = tgid;
	w->flags = flags;
	spin_lock_irqsave(&idw_watch_lock, irq);
	old = idw_watch_find(tgid);
	if (old) {
		old->flags = flags;
		kfree(w);
	} else {
		hash_add_rcu(idw_watch_ht, &w->node, tgid);
		atomic_inc(&idw_nwatched);
	}
	spin_unlock_irqrestore(&idw_watch_lock, irq);
	return true;
}

bool idw_watch_del(pid_t tgid)
{
	struct idw_watch *w;
	unsigned long irq;

	if (!atomic_read(&idw_nwatched))
		return false;
	spin_lock_irqsave(&idw_watch_lock, irq);
	w = idw_watch_find(tgid);
	if (w) {
		hash_del_rcu(&w->node);
		atomic_dec(&idw_nwatched);
		kfree_rcu(w, rcu);
	}
	spin_unlock_irqrestore(&idw_watch_lock, irq);
	return w;
}

/*
 * Fork: the child inherits the parent's watch unless NO_CHILDREN. 1 if it
 * does, 0 if not, -ENOMEM if it should but no entry could be allocated (the
 * caller kills the child: never an unwatched child of a watched parent).
 */
int idw_watch_inherit(pid_t parent, pid_t child)
{
	struct idw_watch *w;
	u32 flags = 0;
	bool inherit = false;

	if (!atomic_read(&idw_nwatched))
		return 0;
	rcu_read_lock();
	w = idw_watch_find(parent);
	if (w && !(w->flags & IDWRAP_WATCH_NO_CHILDREN)) {
		inherit = true;
		flags = w->flags;
	}
	rcu_read_unlock();
	if (!inherit)
		return 0;
	return idw_watch_add(child, flags) ? 1 : -ENOMEM;
}

void idw_watch_clear(void)
{
	struct idw_watch *w;
	struct hlist_node *tmp;
	unsigned long irq;
	int bkt;

	spin_lock_irqsave(&idw_watch_lock, irq);
	hash_for_each_safe(idw_watch_ht, bkt, tmp, w, node) {
		hash_del_rcu(&w->node);
		kfree_rcu(w, rcu);
	}
	atomic_set(&idw_nwatched, 0);
	spin_unlock_irqrestore(&idw_watch_lock, irq);
}
