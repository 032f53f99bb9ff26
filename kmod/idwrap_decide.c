// SPDX-License-Identifier: GPL-2.0-only
/*
 * idwrap: synchronous decisions (ftrace ops, the thunk's entry, the verdict
 * wait, the expectations) and the session's hooks.
 *
 * Synchronous pre decisions go through ftrace with IPMODIFY, the mechanism
 * live patching uses to redirect a function, on __x64_sys_<name> of each
 * syscall with PRE_DECIDE interest. Not kprobes: their handlers cannot
 * sleep. Not the syscall table: it is read-only, and patching it is what
 * rootkits do. ftrace is the supported way to send a function's callers
 * somewhere else. For a watched task the handler points regs->ip at
 * idwrap_thunk (idwrap_thunk.S), which calls idwrap_pre(): that copies the
 * path and buffer arguments once (copy_from_user, strncpy_from_user), emits
 * a waiting record, sleeps for the verdict and says either "return this
 * value" or "run the original". To run the original the thunk pops its frame
 * and JUMPS to the original function just past its fentry call
 * (ip + MCOUNT_INSN_SIZE), so ftrace does not see that entry again and no
 * module frame stays on the stack while the original runs (a task blocked in
 * accept() never returns into module text after unload). With kernel IBT
 * on, the indirect jump would land on an instruction that is not an ENDBR
 * and fault (#CP): the device refuses to open there (idw_open()); a per-task
 * one-shot bypass flag that the ftrace handler honours, with the thunk
 * jumping to the function's start, would lift that (not built).
 *
 * Refusals: i386 (int 0x80) and x32 calls of watched tasks are refused
 * with ftrace, on ia32_sys_call() and x32_sys_call() (the dispatchers every
 * such call goes through), and io_uring_setup/enter/register on their
 * __x64_sys_* (io_uring runs I/O that no hook sees, also on a ring made
 * before the watch): the handler sends the call to a function that returns
 * -ENOSYS or -EPERM. sys_enter reports them (EVF_COMPAT/EVF_X32 +
 * EVF_DENIED). (6.1.192's syscall_trace_enter() does re-read the number
 * after the tracepoint, so orig_ax = -1 would work there too; ftrace does
 * not depend on it.)
 *
 * An integer REWRITE changes the register in the user pt_regs before the
 * original runs and puts the user's value back in sys_exit (the syscall ABI
 * preserves argument registers), so only this call sees the new value;
 * not after a successful execve, whose registers are the new program's.
 *
 * The session's waiters: callers sleeping for a verdict, on a list by record
 * id. write() answers them; a timeout, close() or unload gives them the fail
 * action at once.
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

/* ---- waiters ------------------------------------------------------------- */

struct idw_waiter {
	struct list_head node;
	u64 id;
	struct completion done;
	bool answered;
	struct idw_answer *answer;
};

static DEFINE_SPINLOCK(idw_wait_lock);
static LIST_HEAD(idw_waiters);

void idw_fail_answer(struct idw_answer *a)
{
	a->action = READ_ONCE(idw->cfg.fail_action);
	a->err = READ_ONCE(idw->cfg.fail_errno);
}

/*
 * Sleepable context: push the record (waiting for room) and wait for its
 * verdict within the configured timeout. Anything but an answer in time
 * gives the fail action.
 */
void idw_wait_verdict(struct idw_rec *r, struct idw_answer *a)
{
	struct idw_waiter w = { .answer = a };
	unsigned long left = msecs_to_jiffies(READ_ONCE(idw->cfg.timeout_ms));
	unsigned long flags;
	long t = 1;
	bool queued;

	memset(a, 0, sizeof(*a));
	r->ev->flags |= IDWRAP_EVF_VERDICT;
	idw_rec_finish(r);
	w.id = r->ev->id;
	init_completion(&w.done);
	atomic64_inc(&idw->stats.waited);

	spin_lock(&idw_wait_lock);
	queued = READ_ONCE(idw->active);
	if (queued)
		list_add_tail(&w.node, &idw_waiters);
	spin_unlock(&idw_wait_lock);
	if (!queued)
		goto fail;

	for (;;) {
		spin_lock_irqsave(&idw->ring.lock, flags);
		queued = idw->ring.buf && idw_ring_put(r);
		spin_unlock_irqrestore(&idw->ring.lock, flags);
		if (queued)
			break;
		t = wait_event_killable_timeout(idw->ring.room_wq,
						idw_ring_room(r->len + sizeof(*r->ev)) ||
						!READ_ONCE(idw->active), left);
		if (t <= 0 || !READ_ONCE(idw->active))
			break;
		left = t;
	}
	if (queued) {
		wake_up(&idw->ring.read_wq);
		t = wait_for_completion_killable_timeout(&w.done, left);
	}

	spin_lock(&idw_wait_lock);
	list_del_init(&w.node);
	spin_unlock(&idw_wait_lock);
	if (w.answered)
		return;
	if (t == 0)
		atomic64_inc(&idw->stats.timeouts);
fail:
	idw_fail_answer(a);
}

/* Every waiter gets the fail action now (close, unload). */
void idw_release_waiters(void)
{
	struct idw_waiter *w, *n;

	spin_lock(&idw_wait_lock);
	WRITE_ONCE(idw->active, false);
	list_for_each_entry_safe(w, n, &idw_waiters, node) {
		list_del_init(&w->node);
		complete(&w->done);
	}
	spin_unlock(&idw_wait_lock);
	wake_up_all(&idw->ring.room_wq);
	wake_up_all(&idw->ring.read_wq);
}

/* A verdict for a waiter; false if nobody waits for that id any more. */
bool idw_answer(const struct idwrap_verdict *v, char *path)
{
	struct idw_waiter *w;
	bool found = false;

	spin_lock(&idw_wait_lock);
	list_for_each_entry(w, &idw_waiters, node) {
		if (w->id != v->id)
			continue;
		w->answer->action = v->action;
		w->answer->err = v->err ? v->err : EPERM;
		w->answer->flags = v->flags;
		w->answer->arg = v->arg;
		w->answer->value = v->value;
		w->answer->path = path;
		w->answer->path_len = v->path_len;
		w->answered = true;
		list_del_init(&w->node);
		complete(&w->done);
		found = true;
		break;
	}
	spin_unlock(&idw_wait_lock);
	return found;
}

/* ---- decided path calls: the kernel runs on the bytes decided on ------- */

/*
 * Every decided call but the emulated opens runs the original syscall,
 * which copies its path arguments from user memory again (getname()) and
 * looks its dirfd and cwd up again: a thread rewriting the buffer, dup2()ing
 * another directory onto the dirfd or chdir()ing (CLONE_FS) after the copy
 * would make the kernel act on another object than the one decided on
 * (Watson, WOOT 2007). So an allowed call leaves an expectation here, and the
 * kernel's own copy is replaced by the module's: getname_flags() (which
 * getname(), getname_uflags() and user_path_at() go through) is hooked with
 * ftrace; for a task with an expectation, a call whose user pointer is one
 * the module copied returns getname_kernel() of the decided bytes instead.
 * A relative name was joined at copy time to its start directory (the
 * dirfd's or the cwd's struct path then, idw_join()), so neither the dirfd
 * number nor the cwd is looked up again (the record says EVF_JOINED, and
 * carries the joined name: the host decides on it). The sockaddr of
 * connect() and bind() is not a name: the kernel's copy is compared with
 * the module's in security_socket_connect/bind, and a different one fails
 * the call (EACCES). Either way a change is reported at sys_exit (EVF_RACED).
 * The expectation lives until sys_exit (or the task's exit, or the end of
 * the session); only a task that has one pays more than a counter read.
 */

static DEFINE_HASHTABLE(idw_ex_ht, 6);
static DEFINE_SPINLOCK(idw_ex_lock);
atomic_t idw_nex = ATOMIC_INIT(0);

void idw_ex_free(struct idw_expect *ex)
{
	int i;

	for (i = 0; i < 2; i++) {
		kfree(ex->slot[i].name);
		kfree(ex->slot[i].raw);
	}
	kfree(ex->addr);
	kfree(ex->seen);
	kfree(ex->xname);
	kfree(ex);
}

void idw_ex_put(struct idw_expect *ex)
{
	if (refcount_dec_and_test(&ex->ref))
		idw_ex_free(ex);
}

static void idw_ex_add(struct idw_expect *ex)
{
	unsigned long flags;

	ex->task = current;
	refcount_set(&ex->ref, 1);
	spin_lock_irqsave(&idw_ex_lock, flags);
	hash_add(idw_ex_ht, &ex->node, (unsigned long)current);
	atomic_inc(&idw_nex);
	spin_unlock_irqrestore(&idw_ex_lock, flags);
}

/* @t's expectation with a reference (NULL: none); @take also removes it from the table. */
struct idw_expect *idw_ex_get(struct task_struct *t, bool take)
{
	struct idw_expect *ex, *found = NULL;
	unsigned long flags;

	if (!atomic_read(&idw_nex))
		return NULL;
	spin_lock_irqsave(&idw_ex_lock, flags);
	hash_for_each_possible(idw_ex_ht, ex, node, (unsigned long)t) {
		if (ex->task != t)
			continue;
		found = ex;
		if (take) {
			hash_del(&ex->node);
			atomic_dec(&idw_nex);
		} else {
			refcount_inc(&ex->ref);
		}
		break;
	}
	spin_unlock_irqrestore(&idw_ex_lock, flags);
	return found;
}

static void idw_ex_clear(void)
{
	struct idw_expect *ex;
	struct hlist_node *tmp;
	unsigned long flags;
	HLIST_HEAD(gone);
	int bkt;

	spin_lock_irqsave(&idw_ex_lock, flags);
	hash_for_each_safe(idw_ex_ht, bkt, tmp, ex, node) {
		hash_del(&ex->node);
		hlist_add_head(&ex->node, &gone);
	}
	atomic_set(&idw_nex, 0);
	spin_unlock_irqrestore(&idw_ex_lock, flags);
	hlist_for_each_entry_safe(ex, tmp, &gone, node)
		idw_ex_put(ex);
}

/* ---- ftrace: decisions and refusals ------------------------------------ */

static void notrace idw_decide_ftrace(unsigned long ip, unsigned long parent_ip,
				      struct ftrace_ops *op, struct ftrace_regs *fregs)
{
	struct pt_regs *regs = ftrace_get_regs(fregs);
	struct pt_regs *uregs = (struct pt_regs *)regs->di;
	unsigned long observe;
	long nr;

	/* Only the syscall dispatch of a watched task, with its own pt_regs. */
	if (uregs != task_pt_regs(current) || !idw_intercepts(current))
		return;
	nr = syscall_get_nr(current, uregs);
	if (nr < 0 || nr >= IDWRAP_MAX_SYSCALLS)
		return;
	if (READ_ONCE(idw->interest[nr]) & IDWRAP_PRE_DECIDE)
		observe = 0;
	else if (idw_rf_take(current, nr))
		observe = 1;	/* an observed call whose copy faulted in sys_enter */
	else
		return;
	if (!idw_enter())
		return;
	/* The thunk jumps here to run the original, past the fentry call. */
	regs->si = ip + MCOUNT_INSN_SIZE;
	/* idwrap_pre()'s third argument: observe only, or decide. */
	regs->dx = observe;
	regs->ip = (unsigned long)idwrap_thunk;
}

static long idw_refuse_enosys(const struct pt_regs *regs)
{
	return -ENOSYS;
}

static long idw_refuse_eperm(const struct pt_regs *regs)
{
	return -EPERM;
}

static void notrace idw_abi_ftrace(unsigned long ip, unsigned long parent_ip,
				   struct ftrace_ops *op, struct ftrace_regs *fregs)
{
	if (idw_intercepts(current))
		ftrace_get_regs(fregs)->ip = (unsigned long)idw_refuse_enosys;
}

static void notrace idw_uring_ftrace(unsigned long ip, unsigned long parent_ip,
				     struct ftrace_ops *op, struct ftrace_regs *fregs)
{
	if (idw_intercepts(current))
		ftrace_get_regs(fregs)->ip = (unsigned long)idw_refuse_eperm;
}

static struct ftrace_ops idw_decide_ops = { .func = idw_decide_ftrace, .flags = IDW_OPS_FLAGS };
static struct ftrace_ops idw_abi_ops = { .func = idw_abi_ftrace, .flags = IDW_OPS_FLAGS };
static struct ftrace_ops idw_uring_ops = { .func = idw_uring_ftrace, .flags = IDW_OPS_FLAGS };
static bool idw_decide_on, idw_abi_on, idw_uring_on;

static int idw_filter(struct ftrace_ops *ops, const char *name, int reset)
{
	char buf[KSYM_NAME_LEN];

	strscpy(buf, name, sizeof(buf));
	return ftrace_set_filter(ops, buf, strlen(buf), reset);
}

/* Hooks the functions named in @names (NULL-terminated) with @ops. */
static int idw_ops_start(struct ftrace_ops *ops, bool *on, const char * const *names)
{
	int i, ret = 0;

	for (i = 0; names[i] && !ret; i++) {
		ret = idw_filter(ops, names[i], !i);
		if (ret)
			pr_err("cannot hook %s: %d\n", names[i], ret);
	}
	if (!ret)
		ret = register_ftrace_function(ops);
	*on = !ret;
	return ret;
}

static void idw_ops_stop(struct ftrace_ops *ops, bool *on)
{
	if (*on)
		unregister_ftrace_function(ops);
	*on = false;
}

/* An observed call's pre record, copied with faults allowed; never waits. */
static void idw_pre_observe(long nr, const unsigned long *args)
{
	struct idw_rec r = { .data_max = idw_data_max() };

	r.cap = idw_rec_cap(nr, r.data_max);
	idw_test_observe_delay();
	r.ev = idw_kvmalloc("record", r.cap, GFP_KERNEL);
	if (!r.ev) {
		idw_count_lost();
		return;
	}
	idw_rec_syscall(&r, 0, nr, args, false);
	idw_emit_observe(&r);
	kvfree(r.ev);
}

/*
 * Called by idwrap_thunk in place of an __x64_sys_* function, with the
 * caller's idw_enter() reference. True: run the original; false: return
 * *@ret to the caller instead. @observe: only emit the call's observe
 * record (its copy faulted in sys_enter) and run the original.
 */
bool idwrap_pre(struct pt_regs *regs, long *ret, unsigned long observe)
{
	long nr = syscall_get_nr(current, regs);
	bool open = idw_is_open(nr), run = true;
	unsigned long args[6], *reg;
	struct idw_expect *ex = NULL;
	struct path dir = {};
	struct idw_answer a;
	struct idw_rec r;

	syscall_get_arguments(current, regs, args);
	if (observe) {
		idw_pre_observe(nr, args);
		idw_leave();
		return true;
	}
	r.data_max = idw_data_max();
	/* An open's record also carries the directory a relative path starts from (path2). */
	r.cap = idw_rec_cap(nr, r.data_max) + (open ? PATH_MAX : 0);
	r.ev = idw_kvmalloc("record", r.cap, GFP_KERNEL);
	if (r.ev) {
		idw_rec_syscall(&r, open ? IDWRAP_EVF_EMULATED : 0, nr, args, false);
		if (open) {
			idw_pin_dir(nr, &r, args, &dir);
			ex = idw_expect_open(nr, &r, &dir);
		} else
			ex = idw_expect_build(nr, &r, args);
		idw_wait_verdict(&r, &a);
	} else {
		memset(&a, 0, sizeof(a));
		idw_fail_answer(&a);
	}

	switch (a.action) {
	case IDWRAP_ACT_DENY:
		atomic64_inc(&idw->stats.denied);
		*ret = -a.err;
		run = false;
		break;
	case IDWRAP_ACT_KILL:
		idw_kill_group();
		*ret = -EPERM;
		run = false;
		break;
	case IDWRAP_ACT_REWRITE:
		atomic64_inc(&idw->stats.rewritten);
		if (open) {
			/* Another name or start directory: the identity recorded is not what it names. */
			if (!IS_ERR_OR_NULL(ex) && (a.path || (nr == __NR_openat && a.arg == 0))) {
				idw_ex_free(ex);
				ex = NULL;
			}
			if (a.path)
				break;
			args[a.arg] = a.value;
			/* A new dirfd, named by the verdict: the directory it holds now. */
			if (nr == __NR_openat && a.arg == 0) {
				path_put(&dir);
				idw_get_dir(nr, a.value, &dir);
			}
			break;
		}
		reg = idw_argreg(regs, a.arg);
		if (idw_ts_put(nr, a.arg, *reg, false)) {
			*reg = a.value;
			args[a.arg] = a.value;
			if (!IS_ERR_OR_NULL(ex))
				idw_expect_rewrite(ex, nr, args, a.arg);
		} else {
			*ret = -ENOMEM;
			run = false;
		}
		break;
	}
	if (run && open) {
		/* The file opened must be the one the name named at copy time (checked in security_file_open). */
		if (!IS_ERR_OR_NULL(ex)) {
			idw_ex_add(ex);
			ex = NULL;
		}
		*ret = !r.ev || IS_ERR(ex) ? -ENOMEM : idw_open_emulated(nr, &r, args, a.path, &dir);
		run = false;
		idw_ts_put(nr, -1, 0, true);
	}
	/* The original runs on the decided bytes (fail closed without memory for them). */
	if (run && !IS_ERR_OR_NULL(ex) && idw_expect_error(ex)) {
		*ret = idw_expect_error(ex);
		run = false;
	}
	if (run && IS_ERR(ex)) {
		*ret = PTR_ERR(ex);
		run = false;
	} else if (run && ex) {
		idw_ex_add(ex);
		ex = NULL;
	}
	if (!IS_ERR_OR_NULL(ex))
		idw_ex_free(ex);
	path_put(&dir);
	kfree(a.path);
	kvfree(r.ev);
	idw_leave();
	return run;
}

/* ---- the session's hooks -------------------------------------------------- */

static const char * const idw_abi_fns[] = { "ia32_sys_call", "x32_sys_call", NULL };
/* Where the kernel takes a decided call's names (its own copies), by the arguments holding them. */
static const char * const idw_fname1_fns[] = {
	"do_unlinkat", "do_rmdir", "do_mkdirat", "do_mknodat", "filename_lookup", "do_filp_open",
	"alloc_bprm", NULL
};
static const char * const idw_fname13_fns[] = { "do_linkat", "do_renameat2", NULL };
static const char * const idw_fname02_fns[] = { "do_symlinkat", NULL };
/* Where the kernel checks its copy of a decided call's sockaddr. */
static const char * const idw_sock_fns[] = {
	"security_socket_connect", "security_socket_bind", NULL
};
static const char * const idw_uring_fns[] = {
	"__x64_sys_io_uring_setup", "__x64_sys_io_uring_enter", "__x64_sys_io_uring_register", NULL
};

int idw_hooks_start(void)
{
	int cpu, i, ret;

	idw_scratch = kcalloc(nr_cpu_ids, sizeof(*idw_scratch), GFP_KERNEL);
	if (!idw_scratch)
		return -ENOMEM;
	for_each_possible_cpu(cpu) {
		idw_scratch[cpu] = vmalloc(IDW_REC_MAX);
		if (!idw_scratch[cpu]) {
			ret = -ENOMEM;
			goto err;
		}
	}
	for_each_kernel_tracepoint(idw_tp_find, NULL);
	for (i = 0; i < ARRAY_SIZE(idw_tps); i++) {
		ret = idw_tps[i].tp ? tracepoint_probe_register(idw_tps[i].tp,
								idw_tps[i].probe, NULL) : -ENOENT;
		if (ret) {
			pr_err("cannot attach to tracepoint %s: %d\n", idw_tps[i].name, ret);
			goto err;
		}
		idw_tps[i].on = true;
	}
	ret = idw_ops_start(&idw_abi_ops, &idw_abi_on, idw_abi_fns);
	if (!ret)
		ret = idw_ops_start(&idw_uring_ops, &idw_uring_on, idw_uring_fns);
	if (!ret)
		ret = idw_ops_start(&idw_fname1_ops, &idw_fname1_on, idw_fname1_fns);
	if (!ret)
		ret = idw_ops_start(&idw_fname13_ops, &idw_fname13_on, idw_fname13_fns);
	if (!ret)
		ret = idw_ops_start(&idw_fname02_ops, &idw_fname02_on, idw_fname02_fns);
	if (!ret)
		ret = idw_ops_start(&idw_sock_ops, &idw_sock_on, idw_sock_fns);
	if (!ret)
		ret = idw_ident_start();
	if (ret)
		goto err;
	return 0;
err:
	idw_hooks_stop();
	idw_hooks_forget();
	return ret;
}

/* Unhooks every entry point and empties the decide filter. */
static void idw_decide_off(void)
{
	idw_ops_stop(&idw_decide_ops, &idw_decide_on);
	/* Unregistered: an empty filter is safe now (registered, it would mean "all"). */
	ftrace_set_filter(&idw_decide_ops, NULL, 0, 1);
	memset(idw_hook_how, 0, sizeof(idw_hook_how));
}

/* After this no probe or ftrace handler runs; tasks may still be in the thunk. */
void idw_hooks_stop(void)
{
	int i;

	idw_decide_off();
	idw_ops_stop(&idw_abi_ops, &idw_abi_on);
	idw_ops_stop(&idw_uring_ops, &idw_uring_on);
	idw_ops_stop(&idw_fname1_ops, &idw_fname1_on);
	idw_ops_stop(&idw_fname13_ops, &idw_fname13_on);
	idw_ops_stop(&idw_fname02_ops, &idw_fname02_on);
	idw_ops_stop(&idw_sock_ops, &idw_sock_on);
	idw_ident_stop();
	for (i = 0; i < ARRAY_SIZE(idw_tps); i++) {
		if (idw_tps[i].on)
			tracepoint_probe_unregister(idw_tps[i].tp, idw_tps[i].probe, NULL);
		idw_tps[i].on = false;
	}
	tracepoint_synchronize_unregister();
}

/*
 * Once no probe runs: per-task state (a rewritten register whose sys_exit
 * never came stays rewritten) and the scratch records. Callers still in
 * flight may add per-task state meanwhile (under the locks); module exit
 * calls this again for what they left.
 */
void idw_hooks_forget(void)
{
	struct idw_tstate *ts;
	struct idw_refetch *rf;
	struct hlist_node *tmp;
	unsigned long flags;
	int cpu, bkt;

	spin_lock_irqsave(&idw_ts_lock, flags);
	hash_for_each_safe(idw_ts_ht, bkt, tmp, ts, node) {
		hash_del(&ts->node);
		kfree(ts);
	}
	atomic_set(&idw_nts, 0);
	spin_unlock_irqrestore(&idw_ts_lock, flags);
	spin_lock_irqsave(&idw_rf_lock, flags);
	hash_for_each_safe(idw_rf_ht, bkt, tmp, rf, node) {
		hash_del(&rf->node);
		kfree(rf);
	}
	atomic_set(&idw_nrf, 0);
	spin_unlock_irqrestore(&idw_rf_lock, flags);
	idw_ex_clear();
	idw_zl_clear();
	if (idw_scratch)
		for_each_possible_cpu(cpu)
			vfree(idw_scratch[cpu]);
	kfree(idw_scratch);
	idw_scratch = NULL;
}

/* Module exit: the filters stay allocated between sessions (reset on reuse). */
void idw_hooks_exit(void)
{
	ftrace_free_filter(&idw_decide_ops);
	ftrace_free_filter(&idw_abi_ops);
	ftrace_free_filter(&idw_uring_ops);
	ftrace_free_filter(&idw_fname1_ops);
	ftrace_free_filter(&idw_fname13_ops);
	ftrace_free_filter(&idw_fname02_ops);
	ftrace_free_filter(&idw_sock_ops);
	idw_ident_exit();
}

static void idw_hook_fn(char *buf, int nr, int how, bool remove)
{
	snprintf(buf, KSYM_NAME_LEN, "%s%s%s", remove ? "!" : "", how == 1 ? "" : "__do_",
		 how == 1 ? idw_names[nr] : idw_names[nr] + 6);
}

/* Adds @nr's entry point to the decide filter (live if the ops is registered). */
static int idw_hook_add(int nr)
{
	char fn[KSYM_NAME_LEN];
	int how, ret = -EINVAL;

	if (!idw_names[nr] || !strcmp(idw_names[nr], "__x64_sys_ni_syscall"))
		return -EINVAL;
	for (how = 1; how <= 2; how++) {
		idw_hook_fn(fn, nr, how, false);
		ret = idw_filter(&idw_decide_ops, fn, 0);
		if (!ret) {
			WRITE_ONCE(idw_hook_how[nr], how);
			return 0;
		}
	}
	return ret;
}

static void idw_hook_del(int nr)
{
	char fn[KSYM_NAME_LEN];

	idw_hook_fn(fn, nr, idw_hook_how[nr], true);
	if (idw_filter(&idw_decide_ops, fn, 0))
		pr_warn("cannot unhook %s\n", fn + 1);
	WRITE_ONCE(idw_hook_how[nr], 0);
}

/* Whether the decide hook should be on @nr's entry point under @mask. */
static bool idw_hook_wanted(const u8 *mask, int nr)
{
	return !idw_is_uring(nr) &&
	       ((mask[nr] & IDWRAP_PRE_DECIDE) ||
		((mask[nr] & IDWRAP_PRE_OBSERVE) && idw_has_pointers(nr)));
}

/*
 * A new interest mask. The decide hook follows its PRE_DECIDE entries (one
 * that cannot be hooked is EINVAL, and the old mask stays) and its
 * PRE_OBSERVE entries with pointer arguments (for copies that fault in
 * sys_enter; one that cannot be hooked keeps the probe's copy only).
 *
 * Add before remove: the new entry points are hooked first (a live filter
 * update: the ops stays registered, so entry points in both masks are never
 * unhooked), then the mask switches, then the entry points no longer
 * wanted are unhooked. A call during the update is decided under the old
 * mask or the new one, never under neither. An empty filter would mean
 * "every function", so the ops is unregistered before its last entry goes.
 */
int idw_hooks_interest(const u8 *mask)
{
	int i, ret = 0, want = 0;

	for (i = 0; i < IDWRAP_MAX_SYSCALLS; i++) {
		if (!idw_hook_wanted(mask, i) || idw_hook_how[i])
			continue;
		ret = idw_hook_add(i);
		if (ret && (mask[i] & IDWRAP_PRE_DECIDE)) {
			pr_info("cannot decide on %s: %d\n", idw_names[i] ?: "?", ret);
			break;
		}
		ret = 0;
	}
	for (i = 0; i < IDWRAP_MAX_SYSCALLS; i++)
		want += idw_hook_how[i] != 0;
	if (!ret && want && !idw_decide_on) {
		ret = register_ftrace_function(&idw_decide_ops);
		idw_decide_on = !ret;
	}
	if (ret) {
		/* Entry points hooked so far stay: the handler follows the mask, which has not changed. */
		return ret;
	}
	for (i = 0; i < IDWRAP_MAX_SYSCALLS; i++)
		WRITE_ONCE(idw->interest[i], mask[i]);
	want = 0;
	for (i = 0; i < IDWRAP_MAX_SYSCALLS; i++)
		want += idw_hook_how[i] && idw_hook_wanted(mask, i);
	if (!want) {
		idw_decide_off();
		return 0;
	}
	for (i = 0; i < IDWRAP_MAX_SYSCALLS; i++)
		if (idw_hook_how[i] && !idw_hook_wanted(mask, i))
			idw_hook_del(i);
	return 0;
}
