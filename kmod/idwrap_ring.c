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

/*
 * The ring's state is struct idw_ring in the device (idwrap.h). Observe
 * records wake the reader at once only past a watermark; below it a timer
 * wakes it within IDW_WAKE_DELAY, so a busy observed process costs a few
 * reader wakeups per tick instead of one per call. The timer is armed only
 * under the ring's lock while a ring exists: once the session's end has
 * freed the ring nobody can arm it, and del_timer_sync() after that stops
 * it (a caller still in flight emits into no ring); module exit shuts it
 * down for good after the last caller has gone.
 */
#define IDW_WAKE_DELAY	msecs_to_jiffies(idw_test_wake_delay_ms() ?: 2)

static void idw_ring_copy_in(u64 at, const void *src, u32 len)
{
	u32 off = at & (idw->ring.size - 1);
	u32 first = min(len, idw->ring.size - off);

	memcpy(idw->ring.buf + off, src, first);
	memcpy(idw->ring.buf, src + first, len - first);
}

bool idw_ring_room(u32 size)
{
	return idw->ring.size - (idw->ring.head - idw->ring.tail) >= size;
}

/* Under idw->ring.lock: the LOST record owed, then @r (if any). False if no room. */
bool idw_ring_put(struct idw_rec *r)
{
	struct idwrap_event lost = {};
	u32 need = r ? r->len : 0;

	if (idw->ring.lost_pending)
		need += sizeof(lost);
	if (!idw_ring_room(need))
		return false;
	if (idw->ring.lost_pending) {
		lost.size = sizeof(lost);
		lost.type = IDWRAP_EV_LOST;
		lost.id = atomic64_inc_return(&idw->ring.next_id);
		lost.time_ns = ktime_get_real_ns();
		lost.lost = idw->ring.lost_pending;
		idw_ring_copy_in(idw->ring.head, &lost, sizeof(lost));
		idw->ring.head += sizeof(lost);
		idw->ring.lost_pending = 0;
	}
	if (r) {
		idw_ring_copy_in(idw->ring.head, r->ev, r->len);
		idw->ring.head += r->len;
	}
	return true;
}

void idw_rec_finish(struct idw_rec *r)
{
	u32 padded = ALIGN(r->len, 8);

	memset((u8 *)r->ev + r->len, 0, padded - r->len);
	r->len = padded;
	r->ev->size = padded;
	r->ev->id = atomic64_inc_return(&idw->ring.next_id);
	atomic64_inc(&idw->stats.events);
}

void idw_wake_reader(struct timer_list *t)
{
	struct idw_ring *ring = from_timer(ring, t, wake_timer);

	wake_up(&ring->read_wq);
}

/* Module init: an empty ring, no buffer until a session opens. */
void idw_ring_init(struct idw_ring *ring)
{
	spin_lock_init(&ring->lock);
	mutex_init(&ring->read_lock);
	init_waitqueue_head(&ring->read_wq);
	init_waitqueue_head(&ring->room_wq);
	timer_setup(&ring->wake_timer, idw_wake_reader, 0);
}

/* Atomic context: into the ring or dropped and counted. */
void idw_emit_observe(struct idw_rec *r)
{
	bool ok, now = false;
	unsigned long flags;

	idw_rec_finish(r);
	spin_lock_irqsave(&idw->ring.lock, flags);
	ok = idw->ring.buf && idw_ring_put(r);
	if (!ok) {
		idw->ring.lost_pending++;
		atomic64_inc(&idw->stats.lost);
	} else if (idw->ring.head - idw->ring.tail >= idw->ring.size / 8) {
		now = true;
	} else if (!timer_pending(&idw->ring.wake_timer)) {
		mod_timer(&idw->ring.wake_timer, jiffies + IDW_WAKE_DELAY);
	}
	spin_unlock_irqrestore(&idw->ring.lock, flags);
	if (now && wq_has_sleeper(&idw->ring.read_wq))
		wake_up(&idw->ring.read_wq);
}

/* A record that could not be built: reported like a dropped one. */
void idw_count_lost(void)
{
	unsigned long flags;

	spin_lock_irqsave(&idw->ring.lock, flags);
	idw->ring.lost_pending++;
	spin_unlock_irqrestore(&idw->ring.lock, flags);
	atomic64_inc(&idw->stats.lost);
}

int idw_ring_alloc(u32 size)
{
	u8 *ring = idw_vmalloc("ring", size), *old;
	unsigned long flags;

	if (!ring)
		return -ENOMEM;
	spin_lock_irqsave(&idw->ring.lock, flags);
	if (idw->ring.buf && idw->ring.head != idw->ring.tail) {
		spin_unlock_irqrestore(&idw->ring.lock, flags);
		vfree(ring);
		return -EBUSY;
	}
	old = idw->ring.buf;
	idw->ring.buf = ring;
	idw->ring.size = size;
	idw->ring.head = idw->ring.tail = 0;
	spin_unlock_irqrestore(&idw->ring.lock, flags);
	vfree(old);
	return 0;
}

void idw_ring_free(void)
{
	unsigned long flags;
	u8 *old;

	spin_lock_irqsave(&idw->ring.lock, flags);
	old = idw->ring.buf;
	idw->ring.buf = NULL;
	idw->ring.head = idw->ring.tail = idw->ring.lost_pending = 0;
	spin_unlock_irqrestore(&idw->ring.lock, flags);
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
	if (mutex_lock_interruptible(&idw->ring.read_lock))
		return -ERESTARTSYS;
	for (;;) {
		spin_lock_irqsave(&idw->ring.lock, flags);
		tail = idw->ring.tail;
		avail = idw->ring.head - idw->ring.tail;
		/* Whole records only: walk their size fields. */
		while (n < avail) {
			u32 size = *(u32 *)(idw->ring.buf + ((tail + n) & (idw->ring.size - 1)));

			if (n + size > count)
				break;
			n += size;
		}
		spin_unlock_irqrestore(&idw->ring.lock, flags);
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
		ret = wait_event_interruptible(idw->ring.read_wq,
					       READ_ONCE(idw->ring.head) != READ_ONCE(idw->ring.tail));
		if (ret)
			goto out;
	}
	/* Producers never write between tail and head: copy without the lock. */
	off = tail & (idw->ring.size - 1);
	first = min_t(u64, n, idw->ring.size - off);
	if (copy_to_user(buf, idw->ring.buf + off, first) ||
	    copy_to_user(buf + first, idw->ring.buf, n - first)) {
		ret = -EFAULT;
		goto out;
	}
	spin_lock_irqsave(&idw->ring.lock, flags);
	idw->ring.tail += n;
	/* Say what was lost now, not at the next record, which may never come. */
	if (idw->ring.lost_pending)
		idw_ring_put(NULL);
	spin_unlock_irqrestore(&idw->ring.lock, flags);
	wake_up_all(&idw->ring.room_wq);
	ret = n;
out:
	mutex_unlock(&idw->ring.read_lock);
	return ret;
}

__poll_t idw_poll(struct file *file, poll_table *wait)
{
	poll_wait(file, &idw->ring.read_wq, wait);
	return READ_ONCE(idw->ring.head) != READ_ONCE(idw->ring.tail) ? EPOLLIN | EPOLLRDNORM : 0;
}
