// SPDX-License-Identifier: GPL-2.0-only
/*
 * idwrap: where system calls are intercepted.
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
 * its entry point hooked by the decide ftrace ops (below); when sys_enter's
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
 * execve and execveat carry their argv in the SYSCALL record's data (the
 * strings NUL-separated, cut at data_max like EXEC records), copied once
 * with the path, so the host decides on these bytes and never reads the
 * caller's memory for them.
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
 * TOCTOU: open, openat and creat decided synchronously and allowed are run
 * by the module itself on the copied path (filp_open(); a relative name
 * joined to the d_path of the start directory pinned at copy time, which
 * the record carries as path2), so the file opened is the one decided on
 * (Watson, "Exploiting Concurrency Vulnerabilities in System Call Wrappers",
 * WOOT 2007). openat2 is decided on its copied path but runs the original.
 *
 * An integer REWRITE changes the register in the user pt_regs before the
 * original runs and puts the user's value back in sys_exit (the syscall ABI
 * preserves argument registers), so only this call sees the new value;
 * not after a successful execve, whose registers are the new program's.
 *
 * POST_DECIDE and EXEC_SYNC: the probe queues a TWA_RESUME task_work that
 * emits the waiting record and sleeps for the verdict before the task
 * returns to user mode. Every queued work and every task in the pre path
 * holds a module reference (idw_enter()); close() does not wait for them.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/binfmts.h>
#include <linux/dcache.h>
#include <linux/fcntl.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/fs_struct.h>
#include <linux/fsnotify.h>
#include <linux/ftrace.h>
#include <linux/hashtable.h>
#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/namei.h>
#include <linux/net.h>
#include <linux/openat2.h>
#include <linux/path.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/task_work.h>
#include <linux/tracepoint.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>
#include <asm/syscall.h>
#include <asm/unistd.h>

#include "idwrap.h"

/* ---- per-syscall argument layout ------------------------------------- */

/*
 * Argument index + 1 of the first and second path, of a data buffer and its
 * length, of an argv array (copied as data, NUL-separated).
 */
struct idw_argspec {
	u8 path, path2, data, len, argv;
};

#define PATHS(p, p2)	{ .path = (p) + 1, .path2 = (p2) + 1 }
#define PATH(p)		{ .path = (p) + 1 }
#define DATA(d, l)	{ .data = (d) + 1, .len = (l) + 1 }
#define EXEC(p, a)	{ .path = (p) + 1, .argv = (a) + 1 }

/*
 * Which arguments are strings or buffers: the same as the host's table
 * (host/syscalls/mod.ts, its "path" kinds: the first is path, the second
 * path2; mount's third, its fstype, is not carried); tests/kmod/spec_test.ts
 * compares the two.
 */
static const struct idw_argspec idw_spec[IDWRAP_MAX_SYSCALLS] = {
	[__NR_open] = PATH(0), [__NR_creat] = PATH(0), [__NR_openat] = PATH(1),
	[__NR_openat2] = PATH(1), [__NR_stat] = PATH(0), [__NR_lstat] = PATH(0),
	[__NR_newfstatat] = PATH(1), [__NR_statx] = PATH(1), [__NR_access] = PATH(0),
	[__NR_faccessat] = PATH(1), [__NR_faccessat2] = PATH(1),
	[__NR_execve] = EXEC(0, 1), [__NR_execveat] = EXEC(1, 2),
	[__NR_unlink] = PATH(0), [__NR_unlinkat] = PATH(1), [__NR_rmdir] = PATH(0),
	[__NR_mkdir] = PATH(0), [__NR_mkdirat] = PATH(1), [__NR_chdir] = PATH(0),
	[__NR_chroot] = PATH(0), [__NR_chmod] = PATH(0), [__NR_fchmodat] = PATH(1),
	[__NR_chown] = PATH(0), [__NR_lchown] = PATH(0), [__NR_fchownat] = PATH(1),
	[__NR_truncate] = PATH(0), [__NR_readlink] = PATH(0),
	[__NR_readlinkat] = PATH(1), [__NR_mknod] = PATH(0), [__NR_mknodat] = PATH(1),
	[__NR_utimes] = PATH(0), [__NR_utimensat] = PATH(1), [__NR_umount2] = PATH(0),
	[__NR_swapon] = PATH(0), [__NR_swapoff] = PATH(0), [__NR_acct] = PATH(0),
	[__NR_utime] = PATH(0), [__NR_futimesat] = PATH(1), [__NR_statfs] = PATH(0),
	[__NR_uselib] = PATH(0), [__NR_inotify_add_watch] = PATH(1),
	[__NR_name_to_handle_at] = PATH(1),
	[__NR_listxattr] = PATH(0), [__NR_llistxattr] = PATH(0),
	/* The xattr calls' name is the second string, as the host decodes it. */
	[__NR_getxattr] = PATHS(0, 1), [__NR_lgetxattr] = PATHS(0, 1),
	[__NR_setxattr] = PATHS(0, 1), [__NR_lsetxattr] = PATHS(0, 1),
	[__NR_removexattr] = PATHS(0, 1), [__NR_lremovexattr] = PATHS(0, 1),
	[__NR_rename] = PATHS(0, 1), [__NR_renameat] = PATHS(1, 3),
	[__NR_renameat2] = PATHS(1, 3), [__NR_link] = PATHS(0, 1),
	[__NR_linkat] = PATHS(1, 3), [__NR_symlink] = PATHS(0, 1),
	[__NR_symlinkat] = PATHS(0, 2), [__NR_mount] = PATHS(0, 1),
	[__NR_pivot_root] = PATHS(0, 1),
	[__NR_write] = DATA(1, 2), [__NR_pwrite64] = DATA(1, 2),
	[__NR_sendto] = DATA(1, 2), [__NR_connect] = DATA(1, 2), [__NR_bind] = DATA(1, 2),
};

/* ftrace names of the x86_64 entry points, by number. */
#define __SYSCALL(nr, sym)	[nr] = "__x64_" #sym,
/* 6.12's table marks exit and exit_group apart; same entry point names. */
#define __SYSCALL_NORETURN(nr, sym)	__SYSCALL(nr, sym)
static const char * const idw_names[IDWRAP_MAX_SYSCALLS] = {
#include <asm/syscalls_64.h>
};
#undef __SYSCALL_NORETURN
#undef __SYSCALL

static bool idw_is_open(long nr)
{
	return nr == __NR_open || nr == __NR_openat || nr == __NR_creat;
}

/* ---- building records ---------------------------------------------------- */

/* Per-CPU scratch records for probes (preemption is off in a probe). */
static void **idw_scratch;

/* Copies a user string without faulting, never across a page at once. */
static long idw_strncpy_nofault(char *dst, unsigned long src, long max)
{
	long done = 0;

	while (done < max) {
		unsigned long at = src + done;
		long chunk = min3(max - done, 256L, (long)(PAGE_SIZE - offset_in_page(at)));
		char *nul;

		if (copy_from_user_nofault(dst + done, (const void __user *)at, chunk))
			return -EFAULT;
		nul = memchr(dst + done, 0, chunk);
		if (nul)
			return nul - dst;
		done += chunk;
	}
	return max;
}

static void idw_add_path(struct idw_rec *r, unsigned long uaddr, bool atomic,
			 u16 *lenp)
{
	char *dst = (char *)r->ev + r->len;
	long n;

	if (!uaddr)
		return;
	if (atomic)
		n = idw_strncpy_nofault(dst, uaddr, PATH_MAX);
	else
		n = strncpy_from_user(dst, (const char __user *)uaddr, PATH_MAX);
	if (n < 0) {
		r->ev->flags |= IDWRAP_EVF_FAULT;
		return;
	}
	if (n == PATH_MAX) {
		n--;
		r->ev->flags |= IDWRAP_EVF_TRUNC;
	}
	dst[n] = '\0';
	*lenp = n + 1;
	r->len += n + 1;
}

/* Data bytes the record may still take: its own data_max, within its room. */
static u32 idw_data_room(const struct idw_rec *r)
{
	u32 room = r->cap - r->len;

	room = room > 8 ? room - 8 : 0;	/* padding to 8 */
	return min(r->data_max, room);
}

static void idw_add_data(struct idw_rec *r, unsigned long uaddr, u64 len, bool atomic)
{
	u32 max = idw_data_room(r);
	void *dst = (u8 *)r->ev + r->len;
	unsigned long left;

	if (len > max) {
		len = max;
		r->ev->flags |= IDWRAP_EVF_TRUNC;
	}
	if (!len)
		return;
	if (atomic)
		left = copy_from_user_nofault(dst, (const void __user *)uaddr, len) ? len : 0;
	else
		left = copy_from_user(dst, (const void __user *)uaddr, len);
	if (left) {
		r->ev->flags |= IDWRAP_EVF_FAULT;
		return;
	}
	r->ev->data_len = len;
	r->len += len;
}

/*
 * execve's argv as data: the strings NUL-separated, at most data_max bytes
 * (as in EXEC records; TRUNC beyond). Copied once, so the host decides on
 * these bytes and never reads the caller's memory for them.
 */
static void idw_add_argv(struct idw_rec *r, unsigned long uaddr, bool atomic)
{
	u32 max = idw_data_room(r);
	char *dst = (char *)r->ev + r->len;
	u32 done = 0;
	int i;

	if (!uaddr)
		return;
	for (i = 0;; i++) {
		unsigned long at = uaddr + i * sizeof(unsigned long), str;
		long n;

		if (atomic)
			n = copy_from_user_nofault(&str, (const void __user *)at, sizeof(str));
		else
			n = get_user(str, (unsigned long __user *)at);
		if (n) {
			r->ev->flags |= IDWRAP_EVF_FAULT;
			break;
		}
		if (!str)
			break;
		if (done >= max) {
			r->ev->flags |= IDWRAP_EVF_TRUNC;
			break;
		}
		if (atomic)
			n = idw_strncpy_nofault(dst + done, str, max - done);
		else
			n = strncpy_from_user(dst + done, (const char __user *)str, max - done);
		if (n < 0) {
			r->ev->flags |= IDWRAP_EVF_FAULT;
			break;
		}
		if (n == max - done) {	/* no room for its NUL: cut */
			r->ev->flags |= IDWRAP_EVF_TRUNC;
			done = max;
			break;
		}
		dst[done + n] = '\0';
		done += n + 1;
		if (!atomic && (i & 63) == 63)
			cond_resched();
	}
	r->ev->data_len = done;
	r->len += done;
}

/* The bytes a record of call @nr needs, with @data_max bytes of data. */
static u32 idw_rec_cap(long nr, u32 data_max)
{
	const struct idw_argspec *s = &idw_spec[nr];

	return sizeof(struct idwrap_event) + 8 + (s->path ? PATH_MAX : 0) +
	       (s->path2 ? PATH_MAX : 0) + (s->data || s->argv ? data_max : 0);
}

/* The session's data_max, read once per record. */
static u32 idw_data_max(void)
{
	return min_t(u32, READ_ONCE(idw.cfg.data_max), IDW_DATA_MAX);
}

static void idw_rec_syscall(struct idw_rec *r, u16 flags, long nr,
			    const unsigned long *args, bool atomic)
{
	const struct idw_argspec *s = &idw_spec[nr];

	idw_rec_header(r, IDWRAP_EV_SYSCALL, flags, current);
	r->ev->nr = nr;
	memcpy(r->ev->args, args, sizeof(r->ev->args));
	if (s->path)
		idw_add_path(r, args[s->path - 1], atomic, &r->ev->path_len);
	if (s->path2)
		idw_add_path(r, args[s->path2 - 1], atomic, &r->ev->path2_len);
	if (s->data)
		idw_add_data(r, args[s->data - 1], args[s->len - 1], atomic);
	if (s->argv)
		idw_add_argv(r, args[s->argv - 1], atomic);
}

/*
 * This CPU's scratch record. Callers run with preemption off (idw_probe_begin()):
 * on kernels whose syscall tracepoints may fault, probes are preemptible, and
 * two tasks on one CPU would otherwise share the buffer.
 */
static struct idw_rec idw_scratch_rec(void)
{
	return (struct idw_rec){ .ev = idw_scratch[smp_processor_id()], .cap = IDW_REC_MAX,
				 .data_max = idw_data_max() };
}

/* ---- per-task state between sys_enter and sys_exit --------------------- */

/* A rewritten argument register to put back, or an emulated call to flag. */
struct idw_tstate {
	struct hlist_node node;
	struct task_struct *task;
	long nr;		/* the call it belongs to */
	int arg;		/* -1: none */
	unsigned long saved;
	bool emulated;
};

static DEFINE_HASHTABLE(idw_ts_ht, 6);
static DEFINE_SPINLOCK(idw_ts_lock);
static atomic_t idw_nts = ATOMIC_INIT(0);

static unsigned long *idw_argreg(struct pt_regs *regs, int i)
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

static bool idw_ts_put(long nr, int arg, unsigned long saved, bool emulated)
{
	struct idw_tstate *ts = kmalloc(sizeof(*ts), GFP_KERNEL);
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
#define IDW_CWD		-1	/* a slot's name starts at the cwd */
#define IDW_NOJOIN	-2	/* not looked up from a dirfd/cwd by us (a symlink's
				 * target, mount's source, RESOLVE_BENEATH/IN_ROOT) */
#define IDW_NOSLOT	-3	/* not a name the kernel getname()s (an xattr's name) */

struct idw_slot {
	unsigned long uaddr;	/* the user pointer the call passes */
	char *name;		/* what the kernel gets instead (joined) */
	char *raw;		/* the bytes copied from the caller */
	int err;		/* the copy faulted or was cut (the kernel gets that), or
				 * the join failed (the call fails with it) */
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
	int raced_slot;
};

static DEFINE_HASHTABLE(idw_ex_ht, 6);
static DEFINE_SPINLOCK(idw_ex_lock);
static atomic_t idw_nex = ATOMIC_INIT(0);

static void idw_ex_free(struct idw_expect *ex)
{
	int i;

	for (i = 0; i < 2; i++) {
		kfree(ex->slot[i].name);
		kfree(ex->slot[i].raw);
	}
	kfree(ex->addr);
	kfree(ex->seen);
	kfree(ex);
}

static void idw_ex_put(struct idw_expect *ex)
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
static struct idw_expect *idw_ex_get(struct task_struct *t, bool take)
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
struct idw_refetch {
	struct hlist_node node;
	struct task_struct *task;
	long nr;
};

static DEFINE_HASHTABLE(idw_rf_ht, 6);
static DEFINE_SPINLOCK(idw_rf_lock);
static atomic_t idw_nrf = ATOMIC_INIT(0);
/*
 * Entry points in the decide filter: PRE_DECIDE, or observed with pointers.
 * How the filter names each: 0 not there, 1 __x64_sys_X, 2 __do_sys_X
 * (SYSCALL_DEFINE0's __x64_sys_X is an alias that ftrace knows by that name).
 */
static u8 idw_hook_how[IDWRAP_MAX_SYSCALLS];

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
static bool idw_rf_take(struct task_struct *t, long nr)
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

static bool idw_has_pointers(long nr)
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
	struct idw_defer *d = kmalloc(sizeof(*d) + r->len + 8, GFP_ATOMIC);

	if (!d) {
		atomic64_inc(&idw_stats.lost);
		if (READ_ONCE(idw.cfg.fail_action) != IDWRAP_ACT_ALLOW)
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

static bool idw_intercepts(struct task_struct *t)
{
	return READ_ONCE(idw.active) && !(t->flags & PF_KTHREAD) &&
	       !idw_is_opener(t) && idw_watched_tgid(t->tgid);
}

static bool idw_all(void)
{
	return READ_ONCE(idw.cfg.flags) & IDWRAP_CFG_ALL_PROCESSES;
}

/*
 * io_uring runs I/O that no hook sees: a watched task may not create a ring,
 * nor drive one it got otherwise (created before it was watched, inherited
 * over exec, received over SCM_RIGHTS).
 */
static bool idw_is_uring(long nr)
{
	return nr == __NR_io_uring_setup || nr == __NR_io_uring_enter ||
	       nr == __NR_io_uring_register;
}

static bool idw_is_exec(long nr)
{
	return nr == __NR_execve || nr == __NR_execveat;
}

/* A call the module refused itself: i386, x32, io_uring. */
static void idw_report_refused(struct pt_regs *regs, long id, u16 flags, long ret)
{
	struct idw_rec r = idw_scratch_rec();
	unsigned long args[6];

	syscall_get_arguments(current, regs, args);
	idw_rec_header(&r, IDWRAP_EV_SYSCALL, flags | IDWRAP_EVF_DENIED, current);
	r.ev->nr = id;
	memcpy(r.ev->args, args, sizeof(r.ev->args));
	r.ev->ret = ret;
	atomic64_inc(&idw_stats.denied);
	idw_emit_observe(&r);
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
	if (id < 0 || id >= IDWRAP_MAX_SYSCALLS)
		return;
	m = READ_ONCE(idw.interest[id]);
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

	if (!ex->raced || !READ_ONCE(idw.active))
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
	m = READ_ONCE(idw.interest[nr]);
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

static void idw_zl_clear(void)
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

	if (!READ_ONCE(idw.active) || (child->flags & PF_KTHREAD))
		return;
	if (!thread)
		idw_zl_forget(child->tgid);
	if (idw_is_opener(parent))
		return;
	watched = thread ? idw_watched_tgid(child->tgid) :
			   idw_watch_inherit(parent->tgid, child->tgid);
	if (watched < 0) {
		/* Never an unwatched child of a watched parent: it dies before it runs. */
		atomic64_inc(&idw_stats.killed);
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

	if (!READ_ONCE(idw.active) || (p->flags & PF_KTHREAD) || idw_is_opener(p))
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
	if (READ_ONCE(idw.cfg.flags) & IDWRAP_CFG_EXEC_SYNC)
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
	if (!READ_ONCE(idw.active) || (p->flags & PF_KTHREAD) || !idw_exit_reporter(p))
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

static struct idw_tp {
	const char *name;
	void *probe;
	struct tracepoint *tp;
	bool on;
} idw_tps[] = {
	{ "sys_enter", idw_sys_enter },
	{ "sys_exit", idw_sys_exit },
	{ "sched_process_fork", idw_fork },
	{ "sched_process_exec", idw_exec },
	{ "sched_process_exit", idw_proc_exit },
};

static void idw_tp_find(struct tracepoint *tp, void *priv)
{
	int i;

	for (i = 0; i < ARRAY_SIZE(idw_tps); i++)
		if (!strcmp(tp->name, idw_tps[i].name))
			idw_tps[i].tp = tp;
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
	if (READ_ONCE(idw.interest[nr]) & IDWRAP_PRE_DECIDE)
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

#define IDW_OPS_FLAGS	(FTRACE_OPS_FL_SAVE_REGS | FTRACE_OPS_FL_IPMODIFY | \
			 FTRACE_OPS_FL_RECURSION)

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

/* ---- the pre path (sleepable) ------------------------------------------- */

/*
 * The directory a relative open starts from, pinned when the path is copied
 * (the dirfd's struct path, or the cwd for AT_FDCWD), so that neither a
 * dup2() onto the dirfd number nor a chdir() after the decision changes it.
 * The record carries its name as path2: the host decides knowing it.
 */
static void idw_dir_at(int dfd, struct path *dir)
{
	struct file *f;

	*dir = (struct path){};
	if (dfd == AT_FDCWD) {
		get_fs_pwd(current->fs, dir);
		return;
	}
	f = fget_raw(dfd);
	if (!f)
		return;	/* EBADF at the call, for a relative name */
	*dir = f->f_path;
	path_get(dir);
	fput(f);
}

static void idw_get_dir(long nr, int dfd, struct path *dir)
{
	idw_dir_at(nr == __NR_openat ? dfd : AT_FDCWD, dir);
}

static void idw_pin_dir(long nr, struct idw_rec *r, const unsigned long *args,
			struct path *dir)
{
	const char *name = (const char *)(r->ev + 1);
	char *slot = (char *)r->ev + r->len, *p;
	long len;

	idw_get_dir(nr, args[0], dir);
	if (!dir->dentry || !r->ev->path_len || name[0] == '/' ||
	    r->cap - r->len < PATH_MAX + 8)
		return;
	p = d_path(dir, slot, PATH_MAX);
	if (IS_ERR(p))
		return;
	len = strlen(p) + 1;
	memmove(slot, p, len);
	r->ev->path2_len = len;
	r->len += len;
}

/*
 * @name joined to @dir's name, into @out (PATH_MAX bytes). The name is
 * d_path() of the pinned directory, and it must lead back to that
 * directory itself now (not a directory outside the caller's root, in
 * another mount namespace, under an overmount, or renamed away), else
 * EXDEV: the string would name something other than what was pinned. A
 * non-directory is ENOTDIR, a deleted one ENOENT.
 */
static int idw_join(const struct path *dir, const char *name, char *out)
{
	struct path check;
	char *buf, *p;
	int err;

	if (!d_can_lookup(dir->dentry))
		return -ENOTDIR;
	if (d_unlinked(dir->dentry))
		return -ENOENT;
	buf = kmalloc(PATH_MAX, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	p = d_path(dir, buf, PATH_MAX);
	if (IS_ERR(p)) {
		err = PTR_ERR(p);
		goto out;
	}
	err = kern_path(p, LOOKUP_FOLLOW | LOOKUP_DIRECTORY, &check);
	if (err) {
		err = -EXDEV;
		goto out;
	}
	err = path_equal(&check, dir) ? 0 : -EXDEV;
	path_put(&check);
	if (err)
		goto out;
	/* "/" joins without a second slash. */
	if (snprintf(out, PATH_MAX, "%s/%s", p[1] ? p : "", name) >= PATH_MAX)
		err = -ENAMETOOLONG;
out:
	kfree(buf);
	return err;
}

/*
 * Opens @name as openat() would from @dir (NULL: @name is absolute), on the
 * bytes decided on: the caller's copy, never user memory. filp_open() takes
 * a string, so a relative name is joined to @dir (idw_join()).
 */
static long idw_open_file(const struct path *dir, const char *name, int flags, umode_t mode)
{
	const char *path = name;
	char *buf = NULL;
	struct file *f;
	long fd;

	if (!*name)
		return -ENOENT;
	if (dir && name[0] != '/') {
		buf = kmalloc(PATH_MAX, GFP_KERNEL);
		if (!buf)
			return -ENOMEM;
		fd = idw_join(dir, name, buf);
		if (fd)
			goto out;
		path = buf;
	}
	if (force_o_largefile())
		flags |= O_LARGEFILE;
	fd = get_unused_fd_flags(flags);
	if (fd < 0)
		goto out;
	f = filp_open(path, flags, mode);
	if (IS_ERR(f)) {
		put_unused_fd(fd);
		fd = PTR_ERR(f);
		goto out;
	}
	fsnotify_open(f);
	fd_install(fd, f);
out:
	kfree(buf);
	return fd;
}

/*
 * The open family, emulated on the record's copied path (or @newpath) from
 * the directory pinned at copy time.
 */
static long idw_open_emulated(long nr, struct idw_rec *r, unsigned long *args,
			      const char *newpath, const struct path *dir)
{
	const char *path = newpath ?: (const char *)(r->ev + 1);

	atomic64_inc(&idw_stats.emulated);
	if (!newpath && (r->ev->flags & IDWRAP_EVF_TRUNC))
		return -ENAMETOOLONG;
	if (!newpath && !r->ev->path_len)
		return -EFAULT;
	if (path[0] != '/' && !dir->dentry)
		return nr == __NR_openat ? -EBADF : -ENOENT;
	switch (nr) {
	case __NR_openat:
		return idw_open_file(dir, path, args[2], args[3]);
	case __NR_open:
		return idw_open_file(dir, path, args[1], args[2]);
	default:	/* creat */
		return idw_open_file(dir, path, O_CREAT | O_WRONLY | O_TRUNC, args[1]);
	}
}

/* ---- the kernel's copy of a decided call's arguments --------------------- */

/* openat2 with RESOLVE_BENEATH or RESOLVE_IN_ROOT: its dirfd is part of the lookup, not only a start. */
static bool idw_openat2_rooted(const unsigned long *args)
{
	struct open_how how;

	if (args[3] < sizeof(how) || copy_from_user(&how, (const void __user *)args[2], sizeof(how)))
		return true;	/* the call fails anyway (EINVAL, EFAULT) */
	return how.resolve & (RESOLVE_BENEATH | RESOLVE_IN_ROOT);
}

/*
 * Where the name in slot @i (0: path, 1: path2) of call @nr starts: the
 * index of its dirfd argument, IDW_CWD, IDW_NOJOIN (used as copied) or
 * IDW_NOSLOT (not a name the kernel getname()s).
 */
static int idw_slot_dir(long nr, int i, const unsigned long *args)
{
	switch (nr) {
	case __NR_renameat:
	case __NR_renameat2:
	case __NR_linkat:
		return i ? 2 : 0;
	case __NR_symlink:
		return i ? IDW_CWD : IDW_NOJOIN;
	case __NR_symlinkat:
		return i ? 1 : IDW_NOJOIN;
	case __NR_mount:
		return i ? IDW_CWD : IDW_NOJOIN;
	case __NR_getxattr: case __NR_lgetxattr: case __NR_setxattr:
	case __NR_lsetxattr: case __NR_removexattr: case __NR_lremovexattr:
		return i ? IDW_NOSLOT : IDW_CWD;
	case __NR_inotify_add_watch:
		return IDW_CWD;
	case __NR_openat2:
		return idw_openat2_rooted(args) ? IDW_NOJOIN : 0;
	}
	/* PATH(1): the *at calls, whose dirfd is the first argument. */
	return idw_spec[nr].path == 2 ? 0 : IDW_CWD;
}

/* Slot @sl's relative name joined to the directory of @dfd (or the cwd) as it is now. */
static void idw_slot_join(struct idw_slot *sl, int dfd)
{
	struct path dir;

	idw_dir_at(dfd, &dir);
	sl->err = dir.dentry ? idw_join(&dir, sl->raw, sl->name) : -EBADF;
	path_put(&dir);
}

/*
 * The expectation of decided call @nr (NULL: it has none; an ERR_PTR: no
 * memory), from its record @r, before the verdict: each name the kernel
 * will getname() (its raw copy; a relative one joined to its start
 * directory now, idw_join()), or the error the kernel gets instead; a
 * connect's or bind's sockaddr. A joined name replaces the copied one in
 * the record (EVF_JOINED), so the host decides on what will run.
 */
static struct idw_expect *idw_expect_build(long nr, struct idw_rec *r, const unsigned long *args)
{
	const struct idw_argspec *sp = &idw_spec[nr];
	struct idwrap_event *ev = r->ev;
	char *at[2] = { (char *)(ev + 1), (char *)(ev + 1) + ev->path_len };
	u16 len[2] = { ev->path_len, ev->path2_len };
	u8 argi[2] = { sp->path, sp->path2 };
	struct idw_expect *ex;
	bool joined = false;
	int i;

	if (idw_is_open(nr) || (!sp->path && nr != __NR_connect && nr != __NR_bind))
		return NULL;
	ex = kzalloc(sizeof(*ex), GFP_KERNEL);
	if (!ex)
		return ERR_PTR(-ENOMEM);
	ex->nr = nr;
	ex->raced_slot = -1;
	if (!sp->path) {	/* connect, bind */
		if (!ev->data_len || (ev->flags & IDWRAP_EVF_TRUNC)) {
			kfree(ex);
			return NULL;	/* nothing copied: the kernel faults the same way */
		}
		ex->addrlen = ev->data_len;
		ex->addr = kmemdup(at[1] + len[1], ex->addrlen, GFP_KERNEL);
		if (!ex->addr)
			goto nomem;
		return ex;
	}
	for (i = 0; i < 2; i++) {
		struct idw_slot *sl = &ex->slot[i];
		int where = argi[i] ? idw_slot_dir(nr, i, args) : IDW_NOSLOT;

		if (where == IDW_NOSLOT)
			continue;
		sl->uaddr = args[argi[i] - 1];
		if (!sl->uaddr)
			continue;	/* NULL: never a getname() of ours */
		if (!len[i]) {
			sl->err = -EFAULT;
			continue;
		}
		if (len[i] == PATH_MAX) {	/* cut: the kernel would say so too */
			sl->err = -ENAMETOOLONG;
			continue;
		}
		sl->raw = kstrdup(at[i], GFP_KERNEL);
		sl->name = kmalloc(PATH_MAX, GFP_KERNEL);
		if (!sl->raw || !sl->name)
			goto nomem;
		strscpy(sl->name, sl->raw, PATH_MAX);
		if (where == IDW_NOJOIN || !sl->raw[0] || sl->raw[0] == '/')
			continue;
		idw_slot_join(sl, where == IDW_CWD ? AT_FDCWD : (int)args[where]);
		if (sl->err == -ENOMEM)
			goto nomem;
		joined |= !sl->err;
	}
	if (joined) {
		/* The record again: header, the joined names, the data after them. */
		char *tmp = kmalloc(2 * PATH_MAX, GFP_KERNEL), *dst = (char *)(ev + 1);
		char *data = at[1] + len[1];
		u32 n[2] = {};

		if (!tmp)
			goto nomem;
		for (i = 0; i < 2; i++) {
			const char *str = ex->slot[i].name && !ex->slot[i].err ? ex->slot[i].name : at[i];

			if (!len[i])
				continue;
			n[i] = strlen(str) + 1;
			memcpy(tmp + i * PATH_MAX, str, n[i]);
		}
		memmove(dst + n[0] + n[1], data, ev->data_len);
		memcpy(dst, tmp, n[0]);
		memcpy(dst + n[0], tmp + PATH_MAX, n[1]);
		ev->path_len = n[0];
		ev->path2_len = n[1];
		r->len = sizeof(*ev) + n[0] + n[1] + ev->data_len;
		ev->flags |= IDWRAP_EVF_JOINED;
		kfree(tmp);
	}
	return ex;
nomem:
	idw_ex_free(ex);
	return ERR_PTR(-ENOMEM);
}

/* A name whose start directory could not be joined: the call fails with that (EBADF, ENOTDIR, EXDEV...). */
static int idw_expect_error(const struct idw_expect *ex)
{
	int i;

	for (i = 0; i < 2; i++)
		if (ex->slot[i].err && ex->slot[i].err != -EFAULT && ex->slot[i].err != -ENAMETOOLONG)
			return ex->slot[i].err;
	return 0;
}

/* A REWRITE of a dirfd argument: the names starting there start at the new one. */
static void idw_expect_rewrite(struct idw_expect *ex, long nr, const unsigned long *args, u32 arg)
{
	int i;

	for (i = 0; i < 2; i++) {
		struct idw_slot *sl = &ex->slot[i];

		if (sl->raw && sl->raw[0] && sl->raw[0] != '/' && idw_slot_dir(nr, i, args) == (int)arg)
			idw_slot_join(sl, (int)args[arg]);
	}
}

/* getname()'s room for a name inside its struct filename (fs/namei.c's EMBEDDED_NAME_MAX). */
#define IDW_EMBEDDED_NAME_MAX	(PATH_MAX - offsetof(struct filename, iname))

/*
 * The kernel's copy @fn of one of @ex's names becomes the decided bytes (in
 * place: it is the kernel's own buffer, past any user access). A copy that
 * differs from the caller's bytes the module copied is a race (reported at
 * sys_exit). Returns 0, or the error the call must fail with: the module's
 * copy faulted where the kernel's did not, or the joined name does not fit
 * the buffer getname() sized for the short one.
 */
static int idw_fname_fix(struct idw_expect *ex, struct filename *fn)
{
	struct idw_slot *sl;
	size_t room;
	int i;

	if (IS_ERR_OR_NULL(fn) || !fn->uptr)
		return 0;	/* a name from the kernel, not from the caller */
	for (i = 0; i < 2; i++) {
		sl = &ex->slot[i];
		if (sl->uaddr == (unsigned long)fn->uptr && (sl->name || sl->err))
			break;
	}
	if (i == 2)
		return 0;
	if (!sl->name)
		return sl->err;
	if (!strcmp(fn->name, sl->name))
		return 0;	/* the bytes decided on (or already replaced: a second consumer) */
	if (strcmp(fn->name, sl->raw) && !ex->raced) {
		ex->raced = true;
		ex->raced_slot = i;
		ex->seen = kstrdup(fn->name, GFP_ATOMIC | __GFP_NOWARN);
	}
	room = fn->name == fn->iname ? IDW_EMBEDDED_NAME_MAX : PATH_MAX;
	if (strlen(sl->name) >= room)
		return -ENAMETOOLONG;
	strscpy((char *)fn->name, sl->name, room);
	return 0;
}

static long idw_refuse_toolong(void)
{
	return -ENAMETOOLONG;
}

static long idw_refuse_efault(void)
{
	return -EFAULT;
}

/*
 * On the kernel functions that take a decided call's names as struct
 * filename, after getname() copied them from the caller and before any
 * lookup: do_unlinkat, do_rmdir, do_mkdirat, do_mknodat, do_symlinkat,
 * do_linkat, do_renameat2, filename_lookup (user_path_at(): chmod, chown,
 * truncate, utimensat, chdir...), do_filp_open (openat2) and alloc_bprm
 * (execve, before the file is opened). @op->private: which argument
 * registers hold one. Not getname() itself: gcc splits getname_flags() and
 * inlines its head into getname() and the syscalls (6.1:
 * getname_flags.part.0), so no entry point of it sees every copy; these
 * functions are called, each from its syscall. A refusal returns the error
 * in place of the function (all return an int, or a pointer that takes an
 * ERR_PTR).
 */
static void notrace idw_fname_ftrace(unsigned long ip, unsigned long parent_ip,
				     struct ftrace_ops *op, struct ftrace_regs *fregs)
{
	unsigned long mask = (unsigned long)op->private;
	struct pt_regs *regs;
	struct idw_expect *ex;
	int a, err = 0;

	if (likely(!atomic_read(&idw_nex)))
		return;
	ex = idw_ex_get(current, false);
	if (!ex)
		return;
	regs = ftrace_get_regs(fregs);
	/* The C calling convention's argument registers (not the syscall ABI's: %rcx, not %r10). */
	for (a = 0; a < 4 && !err; a++) {
		unsigned long v = a == 0 ? regs->di : a == 1 ? regs->si : a == 2 ? regs->dx : regs->cx;

		if (mask & BIT(a))
			err = idw_fname_fix(ex, (struct filename *)v);
	}
	if (err)
		regs->ip = err == -ENAMETOOLONG ? (unsigned long)idw_refuse_toolong :
						  (unsigned long)idw_refuse_efault;
	idw_ex_put(ex);
}

static int idw_refuse_sock(struct socket *sock, struct sockaddr *addr, int addrlen)
{
	return -EACCES;
}

/* security_socket_connect/bind(sock, address, addrlen): the kernel's copy must be the decided one. */
static void notrace idw_sock_ftrace(unsigned long ip, unsigned long parent_ip,
				    struct ftrace_ops *op, struct ftrace_regs *fregs)
{
	struct pt_regs *regs;
	struct idw_expect *ex;

	if (likely(!atomic_read(&idw_nex)))
		return;
	ex = idw_ex_get(current, false);
	if (!ex)
		return;
	regs = ftrace_get_regs(fregs);
	if (ex->addr && ((u32)regs->dx != ex->addrlen ||
			 memcmp((const void *)regs->si, ex->addr, ex->addrlen))) {
		ex->raced = ex->refused = true;
		regs->ip = (unsigned long)idw_refuse_sock;
	}
	idw_ex_put(ex);
}

static struct ftrace_ops idw_fname1_ops = {
	.func = idw_fname_ftrace, .flags = IDW_OPS_FLAGS, .private = (void *)BIT(1)
};
static struct ftrace_ops idw_fname13_ops = {
	.func = idw_fname_ftrace, .flags = IDW_OPS_FLAGS, .private = (void *)(BIT(1) | BIT(3))
};
static struct ftrace_ops idw_fname02_ops = {
	.func = idw_fname_ftrace, .flags = IDW_OPS_FLAGS, .private = (void *)(BIT(0) | BIT(2))
};
static struct ftrace_ops idw_sock_ops = { .func = idw_sock_ftrace, .flags = IDW_OPS_FLAGS };
static bool idw_fname1_on, idw_fname13_on, idw_fname02_on, idw_sock_on;

/* An observed call's pre record, copied with faults allowed; never waits. */
static void idw_pre_observe(long nr, const unsigned long *args)
{
	struct idw_rec r = { .data_max = idw_data_max() };

	r.cap = idw_rec_cap(nr, r.data_max);
	r.ev = kvmalloc(r.cap, GFP_KERNEL);
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
	r.ev = kvmalloc(r.cap, GFP_KERNEL);
	if (r.ev) {
		idw_rec_syscall(&r, open ? IDWRAP_EVF_EMULATED : 0, nr, args, false);
		if (open)
			idw_pin_dir(nr, &r, args, &dir);
		else
			ex = idw_expect_build(nr, &r, args);
		idw_wait_verdict(&r, &a);
	} else {
		memset(&a, 0, sizeof(a));
		idw_fail_answer(&a);
	}

	switch (a.action) {
	case IDWRAP_ACT_DENY:
		atomic64_inc(&idw_stats.denied);
		*ret = -a.err;
		run = false;
		break;
	case IDWRAP_ACT_KILL:
		idw_kill_group();
		*ret = -EPERM;
		run = false;
		break;
	case IDWRAP_ACT_REWRITE:
		atomic64_inc(&idw_stats.rewritten);
		if (open) {
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
		*ret = r.ev ? idw_open_emulated(nr, &r, args, a.path, &dir) : -ENOMEM;
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
		WRITE_ONCE(idw.interest[i], mask[i]);
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
