// SPDX-License-Identifier: GPL-2.0-only
/*
 * idwrap - intrusion-detection wrappers for Linux processes, kernel side.
 *
 * idwrap binds small ID wrappers to running programs; the wrappers see the
 * system calls the programs make and may deny a call, kill the process or
 * rewrite an argument (after Ko, Fraser, Badger and Kilpatrick, "Detecting
 * and Countering System Intrusions Using Software Wrappers", USENIX Security
 * 2000). This module is idwrap's in-kernel event source; the wrappers live
 * in the user-space host, which talks to it through /dev/idwrap with the
 * protocol of idwrap_uapi.h.
 *
 * This file: the device and the session. One opener at a time
 * (CAP_SYS_ADMIN); opening starts interception (idwrap_decide.c), closing
 * stops it. The session's stream is in idwrap_ring.c, its waiters in
 * idwrap_decide.c, its watch set in idwrap_probes.c.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/capability.h>
#include <linux/completion.h>
#include <linux/cred.h>
#include <linux/fs.h>
#include <linux/hashtable.h>
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/pid.h>
#include <linux/poll.h>
#include <linux/proc_fs.h>
#include <linux/rcupdate.h>
#include <linux/sched/signal.h>
#include <linux/seq_file.h>
#include <linux/slab.h>
#include <linux/spinlock.h>
#include <linux/string.h>
#include <linux/timekeeping.h>
#include <linux/timer.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>
#include <asm/cpufeature.h>

#include "idwrap.h"

/* The device: allocated at module init, freed at exit (idwrap.h). */
struct idw_dev *idw;

/* ---- callers in flight: module lifetime by references ------------------ */

/*
 * A task that will run module code outside a probe (the thunk and
 * idwrap_pre(), a queued task_work) holds a module reference from the
 * ftrace handler or probe that sends it there until idw_leave(). Such a
 * task may block without bound (an emulated open of a FIFO with no writer,
 * FUSE or hard NFS, a page fault on a FUSE mapping during a copy), so
 * close() never waits for it: the session ends at once (waiting calls get
 * the fail action, hooks come off), and only rmmod is refused (EBUSY)
 * while such a task holds the module. The few instructions a caller runs
 * after module_put() (the rest of idw_leave()'s caller, the thunk's
 * epilogue) are covered by synchronize_rcu_tasks() in module exit: a task
 * there has not voluntarily scheduled since.
 */
bool idw_enter(void)
{
	if (!READ_ONCE(idw->active) || !try_module_get(THIS_MODULE))
		return false;
	atomic_inc(&idw->inflight);
	if (likely(READ_ONCE(idw->active)))
		return true;
	idw_leave();
	return false;
}

void idw_leave(void)
{
	atomic_dec(&idw->inflight);
	module_put(THIS_MODULE);
}

void idw_kill_group(void)
{
	atomic64_inc(&idw->stats.killed);
	kill_pid(task_tgid(current), SIGKILL, 1);
}

/* ---- the device ---------------------------------------------------------- */

static const struct idwrap_config idw_default_cfg = {
	.abi = IDWRAP_ABI_VERSION,
	.timeout_ms = 5000,
	.fail_action = IDWRAP_ACT_DENY,
	.fail_errno = EPERM,
	.ring_bytes = 4 << 20,
	.data_max = 4096,
};

/*
 * Whether the kernel runs with indirect branch tracking: read from the CPU
 * feature the kernel set at boot (it clears it when IBT is off, e.g.
 * ibt=off or a CPU without CET); the test build can force it on.
 */
static bool idw_ibt_on(void)
{
	if (idw_force_ibt())
		return true;
#ifdef X86_FEATURE_IBT
	return cpu_feature_enabled(X86_FEATURE_IBT);
#else
	return false;
#endif
}

static int idw_open(struct inode *inode, struct file *file)
{
	int ret;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
	/*
	 * The thunk runs the original past its fentry call with an indirect
	 * jump that lands on no ENDBR: a #CP fault under kernel IBT. Until a
	 * one-shot bypass exists, no session on such a kernel.
	 */
	if (idw_ibt_on()) {
		pr_err_ratelimited("not opening /dev/idwrap: kernel IBT is enabled and the decide thunk's jump would fault (#CP)\n");
		return -EOPNOTSUPP;
	}
	if (atomic_cmpxchg(&idw->opened, 0, 1))
		return -EBUSY;

	mutex_lock(&idw->lock);
	idw->cfg = idw_default_cfg;
	memset(idw->interest, 0, sizeof(idw->interest));
	WRITE_ONCE(idw->opener, task_tgid_nr(current));
	WRITE_ONCE(idw->opener_pid, get_pid(task_tgid(current)));
	atomic64_set(&idw->ring.next_id, 0);
	memset(&idw->stats, 0, sizeof(idw->stats));
	ret = idw_ring_alloc(idw->cfg.ring_bytes);
	if (ret)
		goto err;
	WRITE_ONCE(idw->active, true);
	ret = idw_hooks_start();
	if (ret) {
		WRITE_ONCE(idw->active, false);
		idw_ring_free();
		goto err;
	}
	mutex_unlock(&idw->lock);
	return nonseekable_open(inode, file);
err:
	WRITE_ONCE(idw->opener, 0);
	put_pid(idw->opener_pid);
	WRITE_ONCE(idw->opener_pid, NULL);
	mutex_unlock(&idw->lock);
	atomic_set(&idw->opened, 0);
	return ret;
}

/*
 * Stop everything the session started, without waiting for callers in
 * flight (they hold module references, see idw_enter()): on return no probe
 * or ftrace handler runs, every waiting call has its fail action, no new
 * call waits, and callers still in flight find no ring, no waiter list and
 * no timer to arm.
 */
static void idw_session_end(void)
{
	idw_release_waiters();
	idw_hooks_stop();
	/* Waiters that queued between the two steps above. */
	idw_release_waiters();
	idw_ring_free();
	/* After the ring is gone: nobody can arm it again (idw_emit_observe). */
	timer_delete_sync(&idw->ring.wake_timer);
	idw_hooks_forget();
	idw_watch_clear();
	WRITE_ONCE(idw->opener, 0);
	/* No probe or handler runs now: none compares with it any more. */
	put_pid(idw->opener_pid);
	WRITE_ONCE(idw->opener_pid, NULL);
}

static int idw_release(struct inode *inode, struct file *file)
{
	mutex_lock(&idw->lock);
	idw_session_end();
	mutex_unlock(&idw->lock);
	atomic_set(&idw->opened, 0);
	return 0;
}

static ssize_t idw_write(struct file *file, const char __user *buf,
			 size_t count, loff_t *ppos)
{
	struct idwrap_verdict v;
	size_t done = 0;
	char *path;

	while (count - done >= sizeof(v)) {
		if (copy_from_user(&v, buf + done, sizeof(v)))
			return done ? done : -EFAULT;
		if (v.action > IDWRAP_ACT_REWRITE || v.err < 0 || v.err > IDW_ERRNO_MAX ||
		    v.flags & ~(IDWRAP_VF_WATCH | IDWRAP_VF_UNWATCH) ||
		    v.arg > 5 || v.path_len > PATH_MAX || v.reserved ||
		    count - done - sizeof(v) < v.path_len)
			break;
		path = NULL;
		if (v.path_len) {
			path = memdup_user(buf + done + sizeof(v), v.path_len);
			if (IS_ERR(path))
				return done ? done : PTR_ERR(path);
			if (path[v.path_len - 1]) {
				kfree(path);
				break;
			}
		}
		if (!idw_answer(&v, path)) {
			kfree(path);
			atomic64_inc(&idw->stats.unknown);
		}
		done += sizeof(v) + v.path_len;
	}
	return done ? done : -EINVAL;
}

static int idw_set_config(const struct idwrap_config *c)
{
	struct idwrap_config n = *c;
	int i, ret;

	if (n.abi != IDWRAP_ABI_VERSION)
		return -EPROTO;
	for (i = 0; i < ARRAY_SIZE(n.reserved); i++)
		if (n.reserved[i])
			return -EINVAL;
	if (n.flags & ~(IDWRAP_CFG_ALL_PROCESSES | IDWRAP_CFG_EXEC_SYNC) ||
	    n.fail_action > IDWRAP_ACT_KILL || n.fail_errno < 0 ||
	    n.fail_errno > IDW_ERRNO_MAX || n.data_max > IDW_DATA_MAX)
		return -EINVAL;
	n.timeout_ms = n.timeout_ms ?: idw_default_cfg.timeout_ms;
	n.fail_errno = n.fail_errno ?: EPERM;
	n.ring_bytes = n.ring_bytes ?: idw_default_cfg.ring_bytes;
	n.data_max = n.data_max ?: idw_default_cfg.data_max;
	if (!is_power_of_2(n.ring_bytes) || n.ring_bytes < SZ_64K ||
	    n.ring_bytes > SZ_64M)
		return -EINVAL;
	/* A waiting record must always fit, with a LOST record before it. */
	if (2 * (sizeof(struct idwrap_event) + 2 * PATH_MAX + n.data_max + 8) >
	    n.ring_bytes)
		return -EINVAL;
	if (n.ring_bytes != idw->ring.size) {
		ret = idw_ring_alloc(n.ring_bytes);
		if (ret)
			return ret;
	}
	WRITE_ONCE(idw->cfg.timeout_ms, n.timeout_ms);
	WRITE_ONCE(idw->cfg.fail_action, n.fail_action);
	WRITE_ONCE(idw->cfg.fail_errno, n.fail_errno);
	WRITE_ONCE(idw->cfg.data_max, n.data_max);
	WRITE_ONCE(idw->cfg.ring_bytes, n.ring_bytes);
	WRITE_ONCE(idw->cfg.flags, n.flags);
	return 0;
}

static int idw_watch_ioctl(const struct idwrap_watch *wa, bool add)
{
	struct task_struct *t;
	bool opener = false;
	pid_t tgid = 0;

	if (wa->flags & ~IDWRAP_WATCH_NO_CHILDREN)
		return -EINVAL;
	rcu_read_lock();
	t = pid_task(find_vpid(wa->pid), PIDTYPE_TGID);
	if (t) {
		tgid = task_tgid_nr(t);
		opener = idw_is_opener(t);
	}
	rcu_read_unlock();
	if (!tgid)
		return add ? -ESRCH : 0;
	if (opener)
		return -EINVAL;
	if (!add)
		return idw_watch_del(tgid) ? 0 : -ESRCH;
	return idw_watch_add(tgid, wa->flags) ? 0 : -ENOMEM;
}

static void idw_get_stats(struct idwrap_stats *s)
{
	s->events = atomic64_read(&idw->stats.events);
	s->waited = atomic64_read(&idw->stats.waited);
	s->lost = atomic64_read(&idw->stats.lost);
	s->timeouts = atomic64_read(&idw->stats.timeouts);
	s->denied = atomic64_read(&idw->stats.denied);
	s->killed = atomic64_read(&idw->stats.killed);
	s->rewritten = atomic64_read(&idw->stats.rewritten);
	s->emulated = atomic64_read(&idw->stats.emulated);
	s->watched = atomic_read(&idw_nwatched);
	s->inflight = atomic_read(&idw->inflight);
}

static long idw_ioctl(struct file *file, unsigned int cmd, unsigned long arg)
{
	void __user *uarg = (void __user *)arg;
	union {
		struct idwrap_config cfg;
		struct idwrap_watch watch;
		struct idwrap_stats stats;
	} u;
	struct idwrap_interest *in;
	long ret;
	int i;

	switch (cmd) {
	case IDWRAP_IOC_VERSION:
		return IDWRAP_ABI_VERSION;
	case IDWRAP_IOC_CONFIG:
		if (copy_from_user(&u.cfg, uarg, sizeof(u.cfg)))
			return -EFAULT;
		mutex_lock(&idw->lock);
		ret = idw_set_config(&u.cfg);
		mutex_unlock(&idw->lock);
		return ret;
	case IDWRAP_IOC_INTEREST:
		in = memdup_user(uarg, sizeof(*in));
		if (IS_ERR(in))
			return PTR_ERR(in);
		ret = 0;
		for (i = 0; i < IDWRAP_MAX_SYSCALLS; i++)
			if (in->mask[i] & ~0xf)
				ret = -EINVAL;
		if (!ret) {
			mutex_lock(&idw->lock);
			ret = idw_hooks_interest(in->mask);
			mutex_unlock(&idw->lock);
		}
		kfree(in);
		return ret;
	case IDWRAP_IOC_WATCH:
	case IDWRAP_IOC_UNWATCH:
		if (copy_from_user(&u.watch, uarg, sizeof(u.watch)))
			return -EFAULT;
		return idw_watch_ioctl(&u.watch, cmd == IDWRAP_IOC_WATCH);
	case IDWRAP_IOC_STATS:
		idw_get_stats(&u.stats);
		return copy_to_user(uarg, &u.stats, sizeof(u.stats)) ? -EFAULT : 0;
	}
	return -ENOTTY;
}

static const struct file_operations idw_fops = {
	.owner		= THIS_MODULE,
	.open		= idw_open,
	.release	= idw_release,
	.read		= idw_read,
	.write		= idw_write,
	.poll		= idw_poll,
	.unlocked_ioctl	= idw_ioctl,
	/*
	 * A 32-bit supervisor: every ioctl struct has the same size and layout
	 * on i386 (u32s and u8s; the u64s sit at multiples of 8), so only the
	 * pointer needs converting.
	 */
	.compat_ioctl	= compat_ptr_ioctl,
};

static struct miscdevice idw_misc = {
	.minor	= MISC_DYNAMIC_MINOR,
	.name	= "idwrap",
	.fops	= &idw_fops,
	.mode	= 0600,
};

static int idw_proc_show(struct seq_file *m, void *v)
{
	struct idwrap_stats s;
	unsigned long flags;
	u64 used;

	idw_get_stats(&s);
	spin_lock_irqsave(&idw->ring.lock, flags);
	used = idw->ring.head - idw->ring.tail;
	spin_unlock_irqrestore(&idw->ring.lock, flags);
	seq_printf(m, "version %s\nabi %d\nopener %d\n", IDWRAP_VERSION,
		   IDWRAP_ABI_VERSION, READ_ONCE(idw->opener));
	seq_printf(m, "events %llu\nwaited %llu\nlost %llu\ntimeouts %llu\n",
		   s.events, s.waited, s.lost, s.timeouts);
	seq_printf(m, "denied %llu\nkilled %llu\nrewritten %llu\nemulated %llu\n",
		   s.denied, s.killed, s.rewritten, s.emulated);
	seq_printf(m, "watched %llu\ninflight %llu\nunknown_verdicts %llu\n",
		   s.watched, s.inflight, (u64)atomic64_read(&idw->stats.unknown));
	seq_printf(m, "ring_bytes %u\nring_used %llu\n", idw->ring.size, used);
	/* The IBT guard's inputs: built for an IBT kernel, and what it reads now. */
	seq_printf(m, "ibt_kernel %s\nibt %s\n",
		   IS_ENABLED(CONFIG_X86_KERNEL_IBT) ? "y" : "n", idw_ibt_on() ? "on" : "off");
	/* Armed only while a ring exists: "pending" with no session is a bug. */
	seq_printf(m, "wake_timer %s\n",
		   timer_pending(&idw->ring.wake_timer) ? "pending" : "idle");
	seq_printf(m, "sigio_refused %llu\n", (u64)atomic64_read(&idw_sigio_refused));
	seq_printf(m, "ptrace_refused %llu\nkill_refused %llu\n",
		   (u64)atomic64_read(&idw_ptrace_refused), (u64)atomic64_read(&idw_kill_refused));
	return 0;
}

static int __init idw_init(void)
{
	int ret;

	idw = kzalloc(sizeof(*idw), GFP_KERNEL);
	if (!idw)
		return -ENOMEM;
	mutex_init(&idw->lock);
	idw_ring_init(&idw->ring);
	if (!proc_create_single("idwrap", 0400, NULL, idw_proc_show)) {
		kfree(idw);
		return -ENOMEM;
	}
	ret = misc_register(&idw_misc);
	if (ret) {
		pr_err("cannot register /dev/idwrap: %d\n", ret);
		remove_proc_entry("idwrap", NULL);
		kfree(idw);
		return ret;
	}
	pr_info("version %s, abi %d, /dev/idwrap (minor %d)\n",
		IDWRAP_VERSION, IDWRAP_ABI_VERSION, idw_misc.minor);
	return 0;
}

/*
 * An open device and every caller in flight hold a module reference
 * (fops.owner, idw_enter()), so exit only runs once the session has ended
 * and the last caller has called idw_leave().
 */
static void __exit idw_module_exit(void)
{
	misc_deregister(&idw_misc);
	remove_proc_entry("idwrap", NULL);
	/* Callers' last instructions after module_put(): the thunk's epilogue. */
	synchronize_rcu_tasks();
	/*
	 * After the last caller (above): no session, no ring, nobody arms it.
	 * Shut down, not just deleted: a late mod_timer() would be a no-op,
	 * never an expiry into freed module text or a freed idw.
	 */
	timer_shutdown_sync(&idw->ring.wake_timer);
	/* What callers that outlived their session left (a rewritten register's note). */
	idw_hooks_forget();
	idw_hooks_exit();
	rcu_barrier();	/* kfree_rcu() of watch entries */
	kfree(idw);
	pr_info("unloaded\n");
}

module_init(idw_init);
module_exit(idw_module_exit);

MODULE_AUTHOR("idwrap developers");
MODULE_DESCRIPTION("idwrap: intrusion-detection wrappers, kernel event source");
MODULE_LICENSE("GPL");
MODULE_VERSION(IDWRAP_VERSION);
