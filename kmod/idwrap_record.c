// SPDX-License-Identifier: GPL-2.0-only
/*
 * idwrap: building records (per-syscall argument layout, the copies of
 * user memory).
 *
 * execve and execveat carry their argv in the SYSCALL record's data (the
 * strings NUL-separated, cut at data_max like EXEC records), copied once
 * with the path, so the host decides on these bytes and never reads the
 * caller's memory for them.
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
const struct idw_argspec idw_spec[IDWRAP_MAX_SYSCALLS] = {
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
const char * const idw_names[IDWRAP_MAX_SYSCALLS] = {
#include <asm/syscalls_64.h>
};
#undef __SYSCALL_NORETURN
#undef __SYSCALL

bool idw_is_open(long nr)
{
	return nr == __NR_open || nr == __NR_openat || nr == __NR_creat;
}

/* ---- building records ---------------------------------------------------- */

/* Per-CPU scratch records for probes (preemption is off in a probe). */
void **idw_scratch;

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

void idw_add_data(struct idw_rec *r, unsigned long uaddr, u64 len, bool atomic)
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
u32 idw_rec_cap(long nr, u32 data_max)
{
	const struct idw_argspec *s = &idw_spec[nr];

	return sizeof(struct idwrap_event) + 8 + (s->path ? PATH_MAX : 0) +
	       (s->path2 ? PATH_MAX : 0) + (s->data || s->argv ? data_max : 0);
}

/* The session's data_max, read once per record. */
u32 idw_data_max(void)
{
	return min_t(u32, READ_ONCE(idw->cfg.data_max), IDW_DATA_MAX);
}

void idw_rec_syscall(struct idw_rec *r, u16 flags, long nr,
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
struct idw_rec idw_scratch_rec(void)
{
	return (struct idw_rec){ .ev = idw_scratch[smp_processor_id()], .cap = IDW_REC_MAX,
				 .data_max = idw_data_max() };
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
