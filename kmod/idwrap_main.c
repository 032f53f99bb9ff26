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
 * (CAP_SYS_ADMIN); opening starts interception (idwrap_hook.c), closing
 * stops it. The session holds:
 *  - the stream: one vmalloc'd byte ring of whole records under a spinlock.
 *    Observe records are built in atomic context and dropped (counted, then
 *    reported by an IDWRAP_EV_LOST record) when the ring is full; waiting
 *    records come from sleepable context and wait for room within their
 *    timeout. read() hands out whole records; one reader at a time copies
 *    from the ring outside the spinlock, producers never touch the bytes
 *    between tail and head;
 *  - the waiters: callers sleeping for a verdict, on a list by record id.
 *    write() answers them; a timeout, close() or unload gives them the fail
 *    action at once;
 *  - the watch set: thread-group ids in an RCU hashtable, read by every
 *    probe, inherited at fork, dropped at exit.
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

struct idw_session idw;
struct idw_stats idw_stats;
atomic_t idw_inflight = ATOMIC_INIT(0);

static DEFINE_MUTEX(idw_lock);		/* open, close, ioctls */
static atomic_t idw_opened = ATOMIC_INIT(0);

/* ---- the stream ---------------------------------------------------------- */

static DEFINE_SPINLOCK(idw_ring_lock);
static DEFINE_MUTEX(idw_read_lock);
static DECLARE_WAIT_QUEUE_HEAD(idw_read_wq);
static DECLARE_WAIT_QUEUE_HEAD(idw_room_wq);
static u8 *idw_ring;
static u32 idw_ring_size;		/* a power of two */
static u64 idw_head, idw_tail;		/* free-running byte counters */
static u64 idw_lost_pending;		/* dropped since the last LOST record */
static atomic64_t idw_next_id;
/*
 * Observe records wake the reader at once only past a watermark; below it a
 * timer wakes it within IDW_WAKE_DELAY, so a busy observed process costs a
 * few reader wakeups per tick instead of one per call. The timer is armed
 * only under idw_ring_lock while a ring exists: once the session's end has
 * freed the ring nobody can arm it, and del_timer_sync() after that stops
 * it for good (a caller still in flight emits into no ring).
 */
#define IDW_WAKE_DELAY	msecs_to_jiffies(2)
static struct timer_list idw_wake_timer;

static void idw_ring_copy_in(u64 at, const void *src, u32 len)
{
	u32 off = at & (idw_ring_size - 1);
	u32 first = min(len, idw_ring_size - off);

	memcpy(idw_ring + off, src, first);
	memcpy(idw_ring, src + first, len - first);
}

static bool idw_ring_room(u32 size)
{
	return idw_ring_size - (idw_head - idw_tail) >= size;
}

/* Under idw_ring_lock: the LOST record owed, then @r (if any). False if no room. */
static bool idw_ring_put(struct idw_rec *r)
{
	struct idwrap_event lost = {};
	u32 need = r ? r->len : 0;

	if (idw_lost_pending)
		need += sizeof(lost);
	if (!idw_ring_room(need))
		return false;
	if (idw_lost_pending) {
		lost.size = sizeof(lost);
		lost.type = IDWRAP_EV_LOST;
		lost.id = atomic64_inc_return(&idw_next_id);
		lost.time_ns = ktime_get_real_ns();
		lost.lost = idw_lost_pending;
		idw_ring_copy_in(idw_head, &lost, sizeof(lost));
		idw_head += sizeof(lost);
		idw_lost_pending = 0;
	}
	if (r) {
		idw_ring_copy_in(idw_head, r->ev, r->len);
		idw_head += r->len;
	}
	return true;
}

static void idw_rec_finish(struct idw_rec *r)
{
	u32 padded = ALIGN(r->len, 8);

	memset((u8 *)r->ev + r->len, 0, padded - r->len);
	r->len = padded;
	r->ev->size = padded;
	r->ev->id = atomic64_inc_return(&idw_next_id);
	atomic64_inc(&idw_stats.events);
}

static void idw_wake_reader(struct timer_list *t)
{
	wake_up(&idw_read_wq);
}

/* Atomic context: into the ring or dropped and counted. */
void idw_emit_observe(struct idw_rec *r)
{
	bool ok, now = false;
	unsigned long flags;

	idw_rec_finish(r);
	spin_lock_irqsave(&idw_ring_lock, flags);
	ok = idw_ring && idw_ring_put(r);
	if (!ok) {
		idw_lost_pending++;
		atomic64_inc(&idw_stats.lost);
	} else if (idw_head - idw_tail >= idw_ring_size / 8) {
		now = true;
	} else if (!timer_pending(&idw_wake_timer)) {
		mod_timer(&idw_wake_timer, jiffies + IDW_WAKE_DELAY);
	}
	spin_unlock_irqrestore(&idw_ring_lock, flags);
	if (now && wq_has_sleeper(&idw_read_wq))
		wake_up(&idw_read_wq);
}

/* A record that could not be built: reported like a dropped one. */
void idw_count_lost(void)
{
	unsigned long flags;

	spin_lock_irqsave(&idw_ring_lock, flags);
	idw_lost_pending++;
	spin_unlock_irqrestore(&idw_ring_lock, flags);
	atomic64_inc(&idw_stats.lost);
}

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
	a->action = READ_ONCE(idw.cfg.fail_action);
	a->err = READ_ONCE(idw.cfg.fail_errno);
}

/*
 * Sleepable context: push the record (waiting for room) and wait for its
 * verdict within the configured timeout. Anything but an answer in time
 * gives the fail action.
 */
void idw_wait_verdict(struct idw_rec *r, struct idw_answer *a)
{
	struct idw_waiter w = { .answer = a };
	unsigned long left = msecs_to_jiffies(READ_ONCE(idw.cfg.timeout_ms));
	unsigned long flags;
	long t = 1;
	bool queued;

	memset(a, 0, sizeof(*a));
	r->ev->flags |= IDWRAP_EVF_VERDICT;
	idw_rec_finish(r);
	w.id = r->ev->id;
	init_completion(&w.done);
	atomic64_inc(&idw_stats.waited);

	spin_lock(&idw_wait_lock);
	queued = READ_ONCE(idw.active);
	if (queued)
		list_add_tail(&w.node, &idw_waiters);
	spin_unlock(&idw_wait_lock);
	if (!queued)
		goto fail;

	for (;;) {
		spin_lock_irqsave(&idw_ring_lock, flags);
		queued = idw_ring && idw_ring_put(r);
		spin_unlock_irqrestore(&idw_ring_lock, flags);
		if (queued)
			break;
		t = wait_event_killable_timeout(idw_room_wq,
						idw_ring_room(r->len + sizeof(*r->ev)) ||
						!READ_ONCE(idw.active), left);
		if (t <= 0 || !READ_ONCE(idw.active))
			break;
		left = t;
	}
	if (queued) {
		wake_up(&idw_read_wq);
		t = wait_for_completion_killable_timeout(&w.done, left);
	}

	spin_lock(&idw_wait_lock);
	list_del_init(&w.node);
	spin_unlock(&idw_wait_lock);
	if (w.answered)
		return;
	if (t == 0)
		atomic64_inc(&idw_stats.timeouts);
fail:
	idw_fail_answer(a);
}

/* Every waiter gets the fail action now (close, unload). */
static void idw_release_waiters(void)
{
	struct idw_waiter *w, *n;

	spin_lock(&idw_wait_lock);
	WRITE_ONCE(idw.active, false);
	list_for_each_entry_safe(w, n, &idw_waiters, node) {
		list_del_init(&w->node);
		complete(&w->done);
	}
	spin_unlock(&idw_wait_lock);
	wake_up_all(&idw_room_wq);
	wake_up_all(&idw_read_wq);
}

/* A verdict for a waiter; false if nobody waits for that id any more. */
static bool idw_answer(const struct idwrap_verdict *v, char *path)
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
	if (!READ_ONCE(idw.active) || !try_module_get(THIS_MODULE))
		return false;
	atomic_inc(&idw_inflight);
	if (likely(READ_ONCE(idw.active)))
		return true;
	idw_leave();
	return false;
}

void idw_leave(void)
{
	atomic_dec(&idw_inflight);
	module_put(THIS_MODULE);
}

void idw_kill_group(void)
{
	atomic64_inc(&idw_stats.killed);
	kill_pid(task_tgid(current), SIGKILL, 1);
}

/* ---- records ------------------------------------------------------------- */

void idw_rec_header(struct idw_rec *r, u16 type, u16 flags, struct task_struct *t)
{
	struct idwrap_event *ev = r->ev;
	const struct cred *cred;

	memset(ev, 0, sizeof(*ev));
	r->len = sizeof(*ev);
	ev->type = type;
	ev->flags = flags;
	ev->time_ns = ktime_get_real_ns();
	ev->pid = task_tgid_nr(t);
	ev->tid = task_pid_nr(t);
	rcu_read_lock();
	ev->ppid = task_tgid_nr(rcu_dereference(t->real_parent));
	cred = __task_cred(t);
	ev->uid = from_kuid(&init_user_ns, cred->uid);
	ev->gid = from_kgid(&init_user_ns, cred->gid);
	ev->euid = from_kuid(&init_user_ns, cred->euid);
	ev->egid = from_kgid(&init_user_ns, cred->egid);
	rcu_read_unlock();
	strscpy_pad(ev->comm, t->comm, sizeof(ev->comm));
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
static atomic_t idw_nwatched = ATOMIC_INIT(0);

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
	struct idw_watch *w = kmalloc(sizeof(*w), GFP_ATOMIC), *old;
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

static void idw_watch_clear(void)
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

/* ---- the device ---------------------------------------------------------- */

static const struct idwrap_config idw_default_cfg = {
	.abi = IDWRAP_ABI_VERSION,
	.timeout_ms = 5000,
	.fail_action = IDWRAP_ACT_DENY,
	.fail_errno = EPERM,
	.ring_bytes = 4 << 20,
	.data_max = 4096,
};

static int idw_ring_alloc(u32 size)
{
	u8 *ring = vmalloc(size), *old;
	unsigned long flags;

	if (!ring)
		return -ENOMEM;
	spin_lock_irqsave(&idw_ring_lock, flags);
	if (idw_ring && idw_head != idw_tail) {
		spin_unlock_irqrestore(&idw_ring_lock, flags);
		vfree(ring);
		return -EBUSY;
	}
	old = idw_ring;
	idw_ring = ring;
	idw_ring_size = size;
	idw_head = idw_tail = 0;
	spin_unlock_irqrestore(&idw_ring_lock, flags);
	vfree(old);
	return 0;
}

static void idw_ring_free(void)
{
	unsigned long flags;
	u8 *old;

	spin_lock_irqsave(&idw_ring_lock, flags);
	old = idw_ring;
	idw_ring = NULL;
	idw_head = idw_tail = idw_lost_pending = 0;
	spin_unlock_irqrestore(&idw_ring_lock, flags);
	vfree(old);
}

static int idw_open(struct inode *inode, struct file *file)
{
	int ret;

	if (!capable(CAP_SYS_ADMIN))
		return -EPERM;
#ifdef X86_FEATURE_IBT
	/*
	 * The thunk runs the original past its fentry call with an indirect
	 * jump that lands on no ENDBR: a #CP fault under kernel IBT. Until a
	 * one-shot bypass exists, no session on such a kernel.
	 */
	if (cpu_feature_enabled(X86_FEATURE_IBT)) {
		pr_err_ratelimited("not opening /dev/idwrap: kernel IBT is enabled and the decide thunk's jump would fault (#CP)\n");
		return -EOPNOTSUPP;
	}
#endif
	if (atomic_cmpxchg(&idw_opened, 0, 1))
		return -EBUSY;

	mutex_lock(&idw_lock);
	idw.cfg = idw_default_cfg;
	memset(idw.interest, 0, sizeof(idw.interest));
	WRITE_ONCE(idw.opener, task_tgid_nr(current));
	WRITE_ONCE(idw.opener_pid, get_pid(task_tgid(current)));
	atomic64_set(&idw_next_id, 0);
	memset(&idw_stats, 0, sizeof(idw_stats));
	ret = idw_ring_alloc(idw.cfg.ring_bytes);
	if (ret)
		goto err;
	WRITE_ONCE(idw.active, true);
	ret = idw_hooks_start();
	if (ret) {
		WRITE_ONCE(idw.active, false);
		idw_ring_free();
		goto err;
	}
	mutex_unlock(&idw_lock);
	return nonseekable_open(inode, file);
err:
	WRITE_ONCE(idw.opener, 0);
	put_pid(idw.opener_pid);
	WRITE_ONCE(idw.opener_pid, NULL);
	mutex_unlock(&idw_lock);
	atomic_set(&idw_opened, 0);
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
	del_timer_sync(&idw_wake_timer);
	idw_hooks_forget();
	idw_watch_clear();
	WRITE_ONCE(idw.opener, 0);
	/* No probe or handler runs now: none compares with it any more. */
	put_pid(idw.opener_pid);
	WRITE_ONCE(idw.opener_pid, NULL);
}

static int idw_release(struct inode *inode, struct file *file)
{
	mutex_lock(&idw_lock);
	idw_session_end();
	mutex_unlock(&idw_lock);
	atomic_set(&idw_opened, 0);
	return 0;
}

static ssize_t idw_read(struct file *file, char __user *buf, size_t count,
			loff_t *ppos)
{
	unsigned long flags;
	u64 tail, avail, n = 0;
	u32 off, first;
	int ret;

	if (count < sizeof(struct idwrap_event))
		return -EINVAL;
	if (mutex_lock_interruptible(&idw_read_lock))
		return -ERESTARTSYS;
	for (;;) {
		spin_lock_irqsave(&idw_ring_lock, flags);
		tail = idw_tail;
		avail = idw_head - idw_tail;
		/* Whole records only: walk their size fields. */
		while (n < avail) {
			u32 size = *(u32 *)(idw_ring + ((tail + n) & (idw_ring_size - 1)));

			if (n + size > count)
				break;
			n += size;
		}
		spin_unlock_irqrestore(&idw_ring_lock, flags);
		if (n)
			break;
		if (avail) {
			ret = -EINVAL;	/* the next record is larger than the buffer */
			goto out;
		}
		if (file->f_flags & O_NONBLOCK) {
			ret = -EAGAIN;
			goto out;
		}
		ret = wait_event_interruptible(idw_read_wq,
					       READ_ONCE(idw_head) != READ_ONCE(idw_tail));
		if (ret)
			goto out;
	}
	/* Producers never write between tail and head: copy without the lock. */
	off = tail & (idw_ring_size - 1);
	first = min_t(u64, n, idw_ring_size - off);
	if (copy_to_user(buf, idw_ring + off, first) ||
	    copy_to_user(buf + first, idw_ring, n - first)) {
		ret = -EFAULT;
		goto out;
	}
	spin_lock_irqsave(&idw_ring_lock, flags);
	idw_tail += n;
	/* Say what was lost now, not at the next record, which may never come. */
	if (idw_lost_pending)
		idw_ring_put(NULL);
	spin_unlock_irqrestore(&idw_ring_lock, flags);
	wake_up_all(&idw_room_wq);
	ret = n;
out:
	mutex_unlock(&idw_read_lock);
	return ret;
}

static __poll_t idw_poll(struct file *file, poll_table *wait)
{
	poll_wait(file, &idw_read_wq, wait);
	return READ_ONCE(idw_head) != READ_ONCE(idw_tail) ? EPOLLIN | EPOLLRDNORM : 0;
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
			atomic64_inc(&idw_stats.unknown);
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
	if (n.ring_bytes != idw_ring_size) {
		ret = idw_ring_alloc(n.ring_bytes);
		if (ret)
			return ret;
	}
	WRITE_ONCE(idw.cfg.timeout_ms, n.timeout_ms);
	WRITE_ONCE(idw.cfg.fail_action, n.fail_action);
	WRITE_ONCE(idw.cfg.fail_errno, n.fail_errno);
	WRITE_ONCE(idw.cfg.data_max, n.data_max);
	WRITE_ONCE(idw.cfg.ring_bytes, n.ring_bytes);
	WRITE_ONCE(idw.cfg.flags, n.flags);
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
	s->events = atomic64_read(&idw_stats.events);
	s->waited = atomic64_read(&idw_stats.waited);
	s->lost = atomic64_read(&idw_stats.lost);
	s->timeouts = atomic64_read(&idw_stats.timeouts);
	s->denied = atomic64_read(&idw_stats.denied);
	s->killed = atomic64_read(&idw_stats.killed);
	s->rewritten = atomic64_read(&idw_stats.rewritten);
	s->emulated = atomic64_read(&idw_stats.emulated);
	s->watched = atomic_read(&idw_nwatched);
	s->inflight = atomic_read(&idw_inflight);
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
		mutex_lock(&idw_lock);
		ret = idw_set_config(&u.cfg);
		mutex_unlock(&idw_lock);
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
			mutex_lock(&idw_lock);
			ret = idw_hooks_interest(in->mask);
			mutex_unlock(&idw_lock);
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
	spin_lock_irqsave(&idw_ring_lock, flags);
	used = idw_head - idw_tail;
	spin_unlock_irqrestore(&idw_ring_lock, flags);
	seq_printf(m, "version %s\nabi %d\nopener %d\n", IDWRAP_VERSION,
		   IDWRAP_ABI_VERSION, READ_ONCE(idw.opener));
	seq_printf(m, "events %llu\nwaited %llu\nlost %llu\ntimeouts %llu\n",
		   s.events, s.waited, s.lost, s.timeouts);
	seq_printf(m, "denied %llu\nkilled %llu\nrewritten %llu\nemulated %llu\n",
		   s.denied, s.killed, s.rewritten, s.emulated);
	seq_printf(m, "watched %llu\ninflight %llu\nunknown_verdicts %llu\n",
		   s.watched, s.inflight, (u64)atomic64_read(&idw_stats.unknown));
	seq_printf(m, "ring_bytes %u\nring_used %llu\n", idw_ring_size, used);
	return 0;
}

static int __init idw_init(void)
{
	int ret;

	timer_setup(&idw_wake_timer, idw_wake_reader, 0);
	if (!proc_create_single("idwrap", 0400, NULL, idw_proc_show))
		return -ENOMEM;
	ret = misc_register(&idw_misc);
	if (ret) {
		pr_err("cannot register /dev/idwrap: %d\n", ret);
		remove_proc_entry("idwrap", NULL);
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
	/* No session, no ring: nobody arms it; stop a pending expiry. */
	del_timer_sync(&idw_wake_timer);
	/* What callers that outlived their session left (a rewritten register's note). */
	idw_hooks_forget();
	idw_hooks_exit();
	rcu_barrier();	/* kfree_rcu() of watch entries */
	pr_info("unloaded\n");
}

module_init(idw_init);
module_exit(idw_module_exit);

MODULE_AUTHOR("idwrap developers");
MODULE_DESCRIPTION("idwrap: intrusion-detection wrappers, kernel event source");
MODULE_LICENSE("GPL");
MODULE_VERSION(IDWRAP_VERSION);
