// SPDX-License-Identifier: GPL-2.0-only
/*
 * idwrap: the session's stream of records, read through /dev/idwrap.
 *
 * The stream: one vmalloc'd byte ring of whole records under a spinlock.
 * Observe records are built in atomic context and dropped (counted, then
 * reported by an IDWRAP_EV_LOST record) when the ring is full; waiting
 * records come from sleepable context and wait for room within their
 * timeout. read() hands out whole records; one reader at a time copies
 * from the ring outside the spinlock, producers never touch the bytes
 * between tail and head.
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

/* ---- the stream ---------------------------------------------------------- */

DEFINE_SPINLOCK(idw_ring_lock);
static DEFINE_MUTEX(idw_read_lock);
DECLARE_WAIT_QUEUE_HEAD(idw_read_wq);
DECLARE_WAIT_QUEUE_HEAD(idw_room_wq);
u8 *idw_ring;
u32 idw_ring_size;		/* a power of two */
u64 idw_head, idw_tail;		/* free-running byte counters */
static u64 idw_lost_pending;		/* dropped since the last LOST record */
atomic64_t idw_next_id;
/*
 * Observe records wake the reader at once only past a watermark; below it a
 * timer wakes it within IDW_WAKE_DELAY, so a busy observed process costs a
 * few reader wakeups per tick instead of one per call. The timer is armed
 * only under idw_ring_lock while a ring exists: once the session's end has
 * freed the ring nobody can arm it, and del_timer_sync() after that stops
 * it for good (a caller still in flight emits into no ring).
 */
#define IDW_WAKE_DELAY	msecs_to_jiffies(2)
struct timer_list idw_wake_timer;

static void idw_ring_copy_in(u64 at, const void *src, u32 len)
{
	u32 off = at & (idw_ring_size - 1);
	u32 first = min(len, idw_ring_size - off);

	memcpy(idw_ring + off, src, first);
	memcpy(idw_ring, src + first, len - first);
}

bool idw_ring_room(u32 size)
{
	return idw_ring_size - (idw_head - idw_tail) >= size;
}

/* Under idw_ring_lock: the LOST record owed, then @r (if any). False if no room. */
bool idw_ring_put(struct idw_rec *r)
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

void idw_rec_finish(struct idw_rec *r)
{
	u32 padded = ALIGN(r->len, 8);

	memset((u8 *)r->ev + r->len, 0, padded - r->len);
	r->len = padded;
	r->ev->size = padded;
	r->ev->id = atomic64_inc_return(&idw_next_id);
	atomic64_inc(&idw_stats.events);
}

void idw_wake_reader(struct timer_list *t)
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

int idw_ring_alloc(u32 size)
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

void idw_ring_free(void)
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

ssize_t idw_read(struct file *file, char __user *buf, size_t count,
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

__poll_t idw_poll(struct file *file, poll_table *wait)
{
	poll_wait(file, &idw_read_wq, wait);
	return READ_ONCE(idw_head) != READ_ONCE(idw_tail) ? EPOLLIN | EPOLLRDNORM : 0;
}
