// SPDX-License-Identifier: GPL-2.0
/*
 * idwrap's eBPF event source (docs/bpf.md): observes the system calls and the
 * lifecycle of watched processes and hands them to the host through one ring
 * buffer. Observation only: nothing here waits for the host, denies or kills.
 *
 * Programs: tp_btf/sys_enter and tp_btf/sys_exit (the calls; the host attaches
 * sys_exit only while some call's exit is of interest, since every task on the
 * host runs each attached sys_* program), and the sched
 * tracepoints fork (follow), exec (what runs now) and exit (forget). tp_btf,
 * not raw_tp: typed arguments read without bpf_probe_read, and no trampoline
 * is needed (it loads where fentry/lsm are refused; docs/bpf.md, "Measured").
 *
 * Which tasks: `watched` (tgid -> session; fork adds, exit removes) or, with
 * IDW_MODE_CGROUP, every task of one cgroup v2 (one compare). Which calls and
 * which argument copies: `interest`, by syscall number, written by the host.
 *
 * The ring: a record is submitted with BPF_RB_NO_WAKEUP, except the one that
 * takes the waiting bytes across wake_bytes (BPF_RB_FORCE_WAKEUP): a wake-up
 * per record costs as much as a seccomp round trip; the host's consumer also
 * polls on a timer (a crossing two CPUs race past is picked up there). A record
 * that does not fit is counted per CPU: the CPU's next record carries the
 * count (idw_head.lost) and `lost` keeps the total, which the host reads at
 * the end, so a loss always reaches the host.
 *
 * Decisions the kernel takes alone (docs/bpf.md, "Decisions in the kernel:
 * exec"): an exec of a file in `exec_kill` (by inode and device, filled by the
 * host from a policy's exec rules) is killed at sched_process_exec, after the
 * point of no return and before the new image runs, by
 * bpf_send_signal(SIGKILL): the signal is pending before the task returns to
 * user space. (Kills from a map at the next sys_enter were measured no sooner
 * than the host's kill(2) and are not here: kmod/bpf/killmap.bpf.c.)
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "idwrap_bpf.h"

char LICENSE[] SEC("license") = "GPL";

#define TS_COMPAT 0x0002 /* arch/x86/include/asm/thread_info.h: the task is in an i386 syscall */

const volatile struct idw_config cfg = {
	.mode = IDW_MODE_PIDS,
};

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32);   /* tgid */
	__type(value, __u32); /* session */
} watched SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, IDW_MAX_SYSCALLS);
	__type(key, __u32);
	__type(value, struct idw_interest);
} interest SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20); /* the host may resize it before load */
} events SEC(".maps");

/* [0]: dropped since this CPU's last record (reset when reported); [1]: dropped in all. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, __u64);
} lost SEC(".maps");

/* Files whose exec kills the process: identity -> the rule's index in the host's list. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct idw_file);
	__type(value, __u32);
} exec_kill SEC(".maps");

#define IDW_SIGKILL 9

static __always_inline bool is_watched(__u32 tgid)
{
	if (cfg.mode == IDW_MODE_CGROUP)
		return bpf_get_current_cgroup_id() == cfg.cgroup_id;
	return bpf_map_lookup_elem(&watched, &tgid) != NULL;
}

static __always_inline void *reserve(__u64 size)
{
	void *r = bpf_ringbuf_reserve(&events, size, 0);
	if (!r) {
		__u32 pending = 0, total = 1;
		__u64 *n = bpf_map_lookup_elem(&lost, &pending);
		if (n)
			__sync_fetch_and_add(n, 1);
		n = bpf_map_lookup_elem(&lost, &total);
		if (n)
			__sync_fetch_and_add(n, 1);
	}
	return r;
}

static __always_inline void fill_head(struct idw_head *h, __u32 kind, __u32 flags, __u32 tgid, __u32 tid)
{
	__u32 k = 0;
	__u64 *pending = bpf_map_lookup_elem(&lost, &k);
	__u64 ug = bpf_get_current_uid_gid();

	h->ktime = bpf_ktime_get_ns();
	h->kind = kind;
	h->flags = flags;
	h->tgid = tgid;
	h->tid = tid;
	h->nr = -1;
	h->lost = pending && *pending ? (__u32)__sync_lock_test_and_set(pending, 0) : 0;
	h->ret = 0;
	h->uid = (__u32)ug;
	h->gid = ug >> 32;
}

/*
 * Wakes the consumer once, when this record takes the waiting bytes across wake_bytes; otherwise not at all (its
 * poll timeout collects the rest). Forcing a wake-up for every record above the threshold would cost each one an
 * irq_work while a slow consumer catches up (measured: worse than the default's wake-up per record).
 */
static __always_inline void submit(void *r, __u64 size)
{
	__u64 flags = 0, avail;
	if (cfg.wake_bytes) {
		avail = bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA);
		flags = avail >= cfg.wake_bytes && avail < cfg.wake_bytes + size ? BPF_RB_FORCE_WAKEUP : BPF_RB_NO_WAKEUP;
	}
	bpf_ringbuf_submit(r, flags);
}

static __always_inline bool compat_call(void)
{
	struct task_struct *t = bpf_get_current_task_btf();
	return t->thread_info.status & TS_COMPAT;
}

static __always_inline void read_args(struct pt_regs *regs, __u64 *a, bool compat)
{
	if (compat) { /* i386: ebx, ecx, edx, esi, edi, ebp; the kernel uses their low 32 bits (a 64-bit caller may set more) */
		a[0] = (__u32)regs->bx, a[1] = (__u32)regs->cx, a[2] = (__u32)regs->dx;
		a[3] = (__u32)regs->si, a[4] = (__u32)regs->di, a[5] = (__u32)regs->bp;
	} else { /* x86_64: rdi, rsi, rdx, r10, r8, r9 */
		a[0] = regs->di, a[1] = regs->si, a[2] = regs->dx;
		a[3] = regs->r10, a[4] = regs->r8, a[5] = regs->r9;
	}
}

static __always_inline __u64 arg_at(const __u64 *a, __s8 i)
{
	switch (i) { /* a switch: the verifier cannot bound an index computed from a map value */
	case 0: return a[0];
	case 1: return a[1];
	case 2: return a[2];
	case 3: return a[3];
	case 4: return a[4];
	case 5: return a[5];
	}
	return 0;
}

/* min(len, IDW_DATA_MAX), in a form the verifier can bound (it loses the bound through clang's min). */
static __always_inline __u32 data_take(__u64 len)
{
	__u32 t = len > IDW_DATA_MAX ? IDW_DATA_MAX : (__u32)len;
	asm volatile("%[t] &= 0x3ff" : [t] "+r"(t));
	if (t > IDW_DATA_MAX)
		t = IDW_DATA_MAX;
	return t;
}

/* Scratch for an argv copy: a string may be read up to IDW_DATA_MAX bytes from any offset below IDW_DATA_MAX. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, char[2 * IDW_DATA_MAX]);
} argv_buf SEC(".maps");

/*
 * Copies execve's argv (at its enter: the caller's memory) into data, NUL-separated: at most IDW_ARGV_MAX strings and
 * IDW_DATA_MAX bytes, IDW_F_DATA_TRUNC past either. A pointer or string that cannot be read (a page not resident: a
 * tracepoint cannot fault it in) sets IDW_F_DATA_FAULT: the host then knows the argv, never an empty one, is missing.
 */
static __always_inline void copy_argv(struct idw_copy_rec *r, __u64 argv)
{
	__u32 zero = 0, off = 0;
	char *buf = bpf_map_lookup_elem(&argv_buf, &zero);
	const char *arg;
	long n;
	int i;

	if (!argv) /* execve(path, NULL, …): the kernel runs it with an empty argv */
		return;
	if (!buf) {
		r->h.flags |= IDW_F_DATA_FAULT;
		return;
	}
	for (i = 0; i < IDW_ARGV_MAX; i++) {
		if (bpf_probe_read_user(&arg, sizeof(arg), (void *)(argv + i * sizeof(arg)))) {
			r->h.flags |= IDW_F_DATA_FAULT;
			break;
		}
		if (!arg)
			break;
		if (off >= IDW_DATA_MAX) {
			r->h.flags |= IDW_F_DATA_TRUNC;
			break;
		}
		asm volatile("%[o] &= 0x1ff" : [o] "+r"(off)); /* off < IDW_DATA_MAX, in a form the verifier keeps */
		n = bpf_probe_read_user_str(buf + off, IDW_DATA_MAX, arg);
		if (n <= 0) {
			r->h.flags |= IDW_F_DATA_FAULT;
			break;
		}
		if (n == IDW_DATA_MAX) { /* cut by the size (or exactly that long: taken as cut): left unterminated */
			r->h.flags |= IDW_F_DATA_TRUNC;
			off += n - 1;
			break;
		}
		off += n;
	}
	if (i == IDW_ARGV_MAX) { /* all taken: one more string is a truncation */
		if (bpf_probe_read_user(&arg, sizeof(arg), (void *)(argv + i * sizeof(arg))) || arg)
			r->h.flags |= IDW_F_DATA_TRUNC;
	}
	if (off > IDW_DATA_MAX) {
		off = IDW_DATA_MAX;
		r->h.flags |= IDW_F_DATA_TRUNC;
	}
	if (off && bpf_probe_read_kernel(r->data, IDW_DATA_MAX, buf) == 0)
		r->data_len = off;
}

/* Copies the interest's path and buffer arguments; the caller's pages may be out (then a fault flag). */
static __always_inline void copy_args(struct idw_copy_rec *r, const struct idw_interest *in)
{
	long n;

	r->path_len = r->path2_len = r->data_len = 0;
	r->pad = 0;
	if (in->path_arg >= 0) {
		n = bpf_probe_read_user_str(r->path, IDW_PATH_MAX, (void *)arg_at(r->h.args, in->path_arg));
		if (n > 0)
			r->path_len = n - 1;
		else
			r->h.flags |= IDW_F_PATH_FAULT;
	}
	if (in->path2_arg >= 0) {
		n = bpf_probe_read_user_str(r->path2, IDW_PATH_MAX, (void *)arg_at(r->h.args, in->path2_arg));
		if (n > 0)
			r->path2_len = n - 1;
		else
			r->h.flags |= IDW_F_PATH2_FAULT;
	}
	if (in->data_arg >= 0 && (in->flags & IDW_I_ARGV)) {
		copy_argv(r, arg_at(r->h.args, in->data_arg));
	} else if (in->data_arg >= 0 && in->len_arg >= 0) {
		__u64 len = arg_at(r->h.args, in->len_arg);
		__u32 take = data_take(len);
		if (len > IDW_DATA_MAX)
			r->h.flags |= IDW_F_DATA_TRUNC;
		if (take && bpf_probe_read_user(r->data, take, (void *)arg_at(r->h.args, in->data_arg)) == 0)
			r->data_len = take;
		else if (take)
			r->h.flags |= IDW_F_DATA_FAULT;
	}
}

/*
 * The exec'd file is one a rule kills: SIGKILL to the exec'ing task (current), which is past the point of no return
 * and has not yet returned to user space, so the signal is taken before the new image's first instruction (ld.so's,
 * for a dynamic program). Returns the rule's index + 1, or 0.
 */
static __always_inline __u32 exec_verdict(struct linux_binprm *bprm)
{
	struct idw_file key = {
		.ino = bprm->file->f_inode->i_ino,
		.dev = bprm->file->f_inode->i_sb->s_dev,
	};
	__u32 *rule = bpf_map_lookup_elem(&exec_kill, &key);

	if (!rule)
		return 0;
	bpf_send_signal(IDW_SIGKILL);
	return *rule + 1;
}

#define IDW_NR_MMAP 9
#define IDW_PROT_EXEC 0x4
#define IDW_MAP_ANONYMOUS 0x20

/*
 * An executable mapping of a file in exec_kill is that program run another way: `ld.so PROG` execs only the loader,
 * which maps PROG (red team rt8 F9). SIGKILL to the caller at the mmap's sys_enter: the signal is taken when the call
 * returns to user space, before the loader can jump into the mapping. The file is the fd's in the caller's table
 * (current->files->fdt->fd[fd]). Returns the rule's index + 1, or 0.
 */
static __always_inline __u32 mmap_verdict(struct pt_regs *regs)
{
	struct task_struct *t = bpf_get_current_task_btf();
	struct fdtable *fdt;
	struct file **fds;
	struct file *f = NULL;
	struct idw_file key = {};
	__u32 *rule;
	int fd = (int)regs->r8;

	if (!(regs->dx & IDW_PROT_EXEC) || (regs->r10 & IDW_MAP_ANONYMOUS) || fd < 0)
		return 0;
	fdt = BPF_CORE_READ(t, files, fdt);
	if (!fdt || (unsigned int)fd >= BPF_CORE_READ(fdt, max_fds))
		return 0;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]) || !f)
		return 0;
	key.ino = BPF_CORE_READ(f, f_inode, i_ino);
	key.dev = BPF_CORE_READ(f, f_inode, i_sb, s_dev);
	rule = bpf_map_lookup_elem(&exec_kill, &key);
	if (!rule)
		return 0;
	bpf_send_signal(IDW_SIGKILL);
	return *rule + 1;
}

/*
 * Filters a wrapper hands the kernel (docs/bpf.md): seq needs nothing for a call whose window of the last k calls is
 * in its database. Per watched tgid the kernel keeps the window of its IDW_I_WINDOW calls (seqf_state); once the host
 * has armed the tgid with a published filter (seqf_armed, for the tgid's current exec generation), a call marked
 * IDW_I_FILTERABLE whose window is in seqf_known is counted as skipped and not reported. The next reported call of the
 * tgid is preceded by an IDW_SKIPPED record with the count, and carries the window (IDW_F_WINDOW, in ret) so the
 * wrapper's own window follows the kernel's. Threads of one process share the window, updated by compare-and-swap:
 * it is their calls in one order (the order of the swaps, not always the ring's), and the wrapper, which takes the
 * window from each record, judges that sequence.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32); /* tgid */
	__type(value, struct idw_seqf_state);
} seqf_state SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, __u32); /* tgid */
	__type(value, struct idw_seqf_arm);
} seqf_armed SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1 << 20);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct idw_seqf_key);
	__type(value, __u8);
} seqf_known SEC(".maps");

/*
 * seqf_programs (host-written): the filter published for an executable file, so that a process that execs it is armed
 * by the kernel at once (filter and mask; gen unused), and a fork inherits its parent's arm: a make build's thousands
 * of short processes need no round trip to the host before their calls can be dropped.
 */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 4096);
	__type(key, struct idw_seqf_file);
	__type(value, struct idw_seqf_arm);
} seqf_programs SEC(".maps");

/* A fresh window for a tgid (a new process: a reused pid's stale filter never applies). */
static __always_inline void seqf_reset(__u32 tgid, __u32 gen)
{
	struct idw_seqf_state st;

	/* Field by field: a constant initializer would land in .rodata, which holds the config alone. */
	__builtin_memset(&st, 0, sizeof(st));
	st.gen = gen;

	bpf_map_delete_elem(&seqf_armed, &tgid);
	bpf_map_update_elem(&seqf_state, &tgid, &st, BPF_ANY);
}

/* What seqf_step decided for a call. */
enum seqf_step {
	SEQF_NO_WINDOW, /* report it, without a window (no state for the tgid: its map is full) */
	SEQF_REPORT,    /* report it with *window, after *skipped dropped calls */
	SEQF_DROP,      /* dropped: counted as skipped */
};

/* Steps tgid's window with call nr; *window is the window after it, *skipped the calls dropped before it (taken). */
static __always_inline enum seqf_step seqf_step(__u32 tgid, __u32 nr, __u8 flags, __u64 *window, __u64 *skipped)
{
	struct idw_seqf_state *st = bpf_map_lookup_elem(&seqf_state, &tgid);
	struct idw_seqf_arm *arm;
	struct idw_seqf_key key;
	__u64 w = 0, old;
	bool contended;

	__builtin_memset(&key, 0, sizeof(key));
	if (!st) {
		struct idw_seqf_state fresh;
		__builtin_memset(&fresh, 0, sizeof(fresh));
		bpf_map_update_elem(&seqf_state, &tgid, &fresh, BPF_NOEXIST);
		st = bpf_map_lookup_elem(&seqf_state, &tgid);
		if (!st)
			return SEQF_NO_WINDOW;
	}
	/*
	 * Threads of one process share the window: a compare-and-swap makes it the sequence of their calls in one order,
	 * none lost. Under contention past a few tries the call is stored plainly (a racing call may be lost from the
	 * window) and never dropped.
	 */
	contended = true;
#pragma clang loop unroll(full)
	for (int i = 0; i < 4; i++) {
		old = *(volatile __u64 *)&st->window;
		w = ((old << IDW_WINDOW_BITS) | (nr + 1)) & IDW_WINDOW_MASK;
		if (__sync_val_compare_and_swap(&st->window, old, w) == old) {
			contended = false;
			break;
		}
	}
	if (contended)
		st->window = w;
	*window = w;
	*skipped = 0;
	if ((flags & IDW_I_FILTERABLE) && !contended) {
		arm = bpf_map_lookup_elem(&seqf_armed, &tgid);
		if (arm && arm->gen == st->gen) {
			key.filter = arm->filter;
			key.window = w & arm->mask;
			if (bpf_map_lookup_elem(&seqf_known, &key)) {
				__sync_fetch_and_add(&st->skipped, 1);
				return SEQF_DROP;
			}
		}
	}
	if (st->skipped)
		*skipped = __sync_lock_test_and_set(&st->skipped, 0);
	return SEQF_REPORT;
}

/* Reports the calls dropped before this one; if the ring is full they go back to the state for the next record. */
static __always_inline void seqf_report_skipped(__u32 tgid, __u32 tid, __u64 skipped)
{
	struct idw_head *h = reserve(sizeof(*h));

	if (!h) {
		struct idw_seqf_state *st = bpf_map_lookup_elem(&seqf_state, &tgid);
		if (st)
			__sync_fetch_and_add(&st->skipped, skipped);
		return;
	}
	fill_head(h, IDW_SKIPPED, 0, tgid, tid);
	h->ret = skipped;
	submit(h, sizeof(*h));
}

/* The window and skipped count of a reported call, for the record's head. */
static __always_inline void seqf_mark(struct idw_head *h, bool windowed, __u64 window)
{
	if (windowed) {
		h->flags |= IDW_F_WINDOW;
		h->ret = window;
	}
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(seqf_on_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 ptgid = parent->tgid, ctgid = child->tgid;

	if (child->pid != ctgid)
		return 0;
	struct idw_seqf_state *pst;
	struct idw_seqf_arm *parm, arm;

	if (!is_watched(ptgid))
		return 0;
	seqf_reset(ctgid, 0);
	/* The child runs its parent's program, with a window of its own from 0 (a fresh instance of the wrapper). */
	pst = bpf_map_lookup_elem(&seqf_state, &ptgid);
	parm = bpf_map_lookup_elem(&seqf_armed, &ptgid);
	if (pst && parm && parm->gen == pst->gen) {
		arm = *parm;
		arm.gen = 0;
		bpf_map_update_elem(&seqf_armed, &ctgid, &arm, BPF_ANY);
	}
	return 0;
}

/* Scratch for a dentry's name (too large for the stack beside the rest). */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, char[256]);
} seqf_name SEC(".maps");

/* FNV-1a (32-bit) of the exec'd file's last path component, as the host hashes the basename of the path it names. */
static __always_inline __u32 seqf_name_hash(struct dentry *d)
{
	__u32 zero = 0, h = 0x811c9dc5;
	char *buf = bpf_map_lookup_elem(&seqf_name, &zero);
	long n;

	if (!buf)
		return 0;
	n = bpf_probe_read_kernel_str(buf, 256, BPF_CORE_READ(d, d_name.name));
	if (n <= 1)
		return 0;
	for (int i = 0; i < 255; i++) {
		if (i >= n - 1)
			break;
		h = (h ^ (__u8)buf[i]) * 0x01000193;
	}
	return h;
}

/* The exec'd file as seqf_programs keys it (and as the exec record reports it). */
static __always_inline void seqf_file_of(struct linux_binprm *bprm, struct idw_seqf_file *file)
{
	/* real_mount(): the vfsmount is embedded in its struct mount (the field's offset relocated by CO-RE). */
	struct mount *m = (void *)bprm->file->f_path.mnt - bpf_core_field_offset(struct mount, mnt);

	file->ino = bprm->file->f_inode->i_ino;
	file->dev = bprm->file->f_inode->i_sb->s_dev;
	file->gen = bprm->file->f_inode->i_generation;
	file->mnt_id = BPF_CORE_READ(m, mnt_id);
	file->parent = 0;
	file->name_hash = 0;
	file->pad = 0;
}

/* With the name: the key seq_on_exec looks up (the exec record leaves it to the host, which names the path itself). */
static __always_inline void seqf_name_of(struct linux_binprm *bprm, struct idw_seqf_file *file)
{
	struct dentry *d = bprm->file->f_path.dentry;

	file->parent = BPF_CORE_READ(d, d_parent, d_inode, i_ino);
	file->name_hash = seqf_name_hash(d);
}

/* A new image: a new window, and a new generation (a filter published for the old program no longer applies). */
SEC("tp_btf/sched_process_exec")
int BPF_PROG(seqf_on_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 tgid = p->tgid, gen = 1;
	struct idw_seqf_state *st;
	struct idw_seqf_file file;
	struct idw_seqf_arm *known, arm;
	bool filtering = false;

	if (!is_watched(tgid))
		return 0;
	st = bpf_map_lookup_elem(&seqf_state, &tgid);
	if (st) {
		filtering = bpf_map_lookup_elem(&seqf_armed, &tgid) != NULL;
		bpf_map_delete_elem(&seqf_armed, &tgid);
		st->window = 0;
		st->skipped = 0;
		gen = ++st->gen;
	} else {
		seqf_reset(tgid, 1);
	}
	seqf_file_of(bprm, &file);
	seqf_name_of(bprm, &file);
	/*
	 * The host names a program by its path: a file with several names (a hard link made since the filter was published)
	 * may run under another path's database, so it is never armed by its file here (red team rt9 F6).
	 */
	known = bprm->file->f_inode->__i_nlink == 1 ? bpf_map_lookup_elem(&seqf_programs, &file) : NULL;
	if (known) {
		arm = *known;
		arm.gen = gen;
		bpf_map_update_elem(&seqf_armed, &tgid, &arm, BPF_ANY);
	} else if (filtering) {
		/*
		 * A filtered process runs a program the host has not armed yet: its calls all leave the kernel until the host
		 * reads this exec and the wrapper publishes. Wake the consumer now (an empty IDW_SKIPPED record) rather than at
		 * its next timer, so a short program is armed sooner.
		 */
		struct idw_head *h = reserve(sizeof(*h));
		if (h) {
			fill_head(h, IDW_SKIPPED, 0, tgid, p->pid);
			h->ret = 0;
			bpf_ringbuf_submit(h, BPF_RB_FORCE_WAKEUP);
		}
	}
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(seqf_on_exit, struct task_struct *p)
{
	__u32 tgid = p->tgid;

	if (p->signal->live.counter != 0)
		return 0;
	bpf_map_delete_elem(&seqf_state, &tgid);
	bpf_map_delete_elem(&seqf_armed, &tgid);
	return 0;
}

/*
 * The path argument of the i386 calls that open a file (open 5, creat 8, openat 295, openat2 437), or -1: their
 * records carry the path, so rules on the file judge them (this source observes them: it cannot refuse them).
 */
static __always_inline int compat_path_arg(__u32 nr)
{
	switch (nr) {
	case 5:
	case 8:
		return 0;
	case 295:
	case 437:
		return 1;
	default:
		return -1;
	}
}

SEC("tp_btf/sys_enter")
int BPF_PROG(on_sys_enter, struct pt_regs *regs, long id)
{
	__u64 pt = bpf_get_current_pid_tgid();
	__u32 tgid = pt >> 32, nr = (__u32)id;
	struct idw_interest *in;
	bool compat, windowed = false;
	__u64 window = 0, skipped = 0;

	if (!is_watched(tgid))
		return 0;
	compat = compat_call();
	if (!compat && nr == IDW_NR_MMAP) {
		__u32 killed = mmap_verdict(regs);

		if (killed) { /* reported whatever the interest: the kill is the rule's (args as called, rule in ret) */
			struct idw_head *h = reserve(sizeof(*h));

			if (!h)
				return 0;
			fill_head(h, IDW_ENTER, IDW_F_EXEC_KILLED, tgid, (__u32)pt);
			h->nr = nr;
			read_args(regs, h->args, false);
			h->ret = killed - 1;
			submit(h, sizeof(*h));
			return 0;
		}
	}
	/* An i386 call is always reported (its number is not in the x86_64 table the interest follows). */
	if (!compat) {
		if (nr >= IDW_MAX_SYSCALLS)
			return 0;
		in = bpf_map_lookup_elem(&interest, &nr);
		if (!in || !(in->flags & IDW_I_ENTER))
			return 0;
		if (in->flags & IDW_I_WINDOW) {
			enum seqf_step step = seqf_step(tgid, nr, in->flags, &window, &skipped);
			if (step == SEQF_DROP)
				return 0;
			windowed = step == SEQF_REPORT;
			if (skipped)
				seqf_report_skipped(tgid, (__u32)pt, skipped);
		}
		if (in->path_arg >= 0 && in->path2_arg < 0 && in->data_arg < 0) {
			struct idw_path_rec *r = reserve(sizeof(*r));
			long n;
			if (!r)
				return 0;
			fill_head(&r->h, IDW_ENTER, IDW_F_COPIES, tgid, (__u32)pt);
			r->h.nr = nr;
			seqf_mark(&r->h, windowed, window);
			read_args(regs, r->h.args, false);
			r->path_len = r->path2_len = r->data_len = r->pad = 0;
			n = bpf_probe_read_user_str(r->path, IDW_PATH_MAX, (void *)arg_at(r->h.args, in->path_arg));
			if (n > 0)
				r->path_len = n - 1;
			else
				r->h.flags |= IDW_F_PATH_FAULT;
			submit(r, sizeof(*r));
			return 0;
		}
		if (in->path_arg >= 0 || in->path2_arg >= 0 || in->data_arg >= 0) {
			struct idw_copy_rec *r = reserve(sizeof(*r));
			if (!r)
				return 0;
			fill_head(&r->h, IDW_ENTER, IDW_F_COPIES, tgid, (__u32)pt);
			r->h.nr = nr;
			seqf_mark(&r->h, windowed, window);
			read_args(regs, r->h.args, false);
			copy_args(r, in);
			submit(r, sizeof(*r));
			return 0;
		}
	}
	if (compat && compat_path_arg(nr) >= 0) {
		struct idw_path_rec *r = reserve(sizeof(*r));
		long n;

		if (!r)
			return 0;
		fill_head(&r->h, IDW_ENTER, IDW_F_COMPAT | IDW_F_COPIES, tgid, (__u32)pt);
		r->h.nr = nr;
		read_args(regs, r->h.args, true);
		r->path_len = r->path2_len = r->data_len = r->pad = 0;
		n = bpf_probe_read_user_str(r->path, IDW_PATH_MAX, (void *)arg_at(r->h.args, compat_path_arg(nr)));
		if (n > 0)
			r->path_len = n - 1;
		else
			r->h.flags |= IDW_F_PATH_FAULT;
		submit(r, sizeof(*r));
		return 0;
	}
	struct idw_head *h = reserve(sizeof(*h));
	if (!h)
		return 0;
	fill_head(h, IDW_ENTER, compat ? IDW_F_COMPAT : 0, tgid, (__u32)pt);
	h->nr = nr;
	seqf_mark(h, windowed, window);
	read_args(regs, h->args, compat);
	submit(h, sizeof(*h));
	return 0;
}

SEC("tp_btf/sys_exit")
int BPF_PROG(on_sys_exit, struct pt_regs *regs, long ret)
{
	__u64 pt = bpf_get_current_pid_tgid();
	__u32 tgid = pt >> 32, nr;
	struct idw_interest *in;
	bool compat;

	if (!is_watched(tgid))
		return 0;
	nr = (__u32)regs->orig_ax;
	compat = compat_call();
	if (!compat) {
		if (nr >= IDW_MAX_SYSCALLS)
			return 0;
		in = bpf_map_lookup_elem(&interest, &nr);
		if (!in || !(in->flags & IDW_I_EXIT))
			return 0;
	}
	struct idw_head *h = reserve(sizeof(*h));
	if (!h)
		return 0;
	fill_head(h, IDW_EXIT, compat ? IDW_F_COMPAT : 0, tgid, (__u32)pt);
	h->nr = nr;
	h->ret = ret;
	read_args(regs, h->args, compat);
	submit(h, sizeof(*h));
	return 0;
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(on_fork, struct task_struct *parent, struct task_struct *child)
{
	__u32 ptgid = parent->tgid, ctgid = child->tgid, flags = 0;

	if (child->pid != ctgid) /* a new thread: its process is watched already */
		return 0;
	if (cfg.mode == IDW_MODE_CGROUP) {
		if (bpf_get_current_cgroup_id() != cfg.cgroup_id)
			return 0;
	} else {
		__u32 *session = bpf_map_lookup_elem(&watched, &ptgid);
		__u32 s;
		if (!session)
			return 0;
		s = *session;
		/* The child runs only after this tracepoint, so it is watched from its first call. */
		if (bpf_map_update_elem(&watched, &ctgid, &s, BPF_ANY))
			flags |= IDW_F_UNFOLLOWED;
	}
	struct idw_head *h = reserve(sizeof(*h));
	if (!h)
		return 0;
	fill_head(h, IDW_FORK, flags, ptgid, parent->pid);
	h->ret = ctgid;
	submit(h, sizeof(*h));
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(on_exec, struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
{
	__u32 tgid = p->tgid;
	struct idw_copy_rec *r;
	unsigned long start, end;
	__u32 killed;
	long n;

	if (!is_watched(tgid))
		return 0;
	killed = exec_verdict(bprm);
	r = reserve(sizeof(*r));
	if (!r)
		return 0;
	fill_head(&r->h, IDW_EXEC, IDW_F_COPIES | (killed ? IDW_F_EXEC_KILLED : 0), tgid, p->pid);
	r->h.args[2] = killed ? killed - 1 : 0;
	r->h.ret = old_pid;
	/* The file that runs, by identity: the host names it by /proc/PID/exe, or checks a path against this. */
	r->h.args[0] = bprm->file->f_inode->i_ino;
	r->h.args[1] = bprm->file->f_inode->i_sb->s_dev;
	{
		/* The rest of its identity, for the host's arm of seq's filter by file (seqf_programs). */
		struct idw_seqf_file file;

		seqf_file_of(bprm, &file);
		r->h.args[3] = file.gen;
		r->h.args[4] = file.mnt_id;
	}
	r->h.args[5] = bprm->argc; /* how many strings argv had (data may hold fewer) */
	r->path_len = r->path2_len = r->data_len = r->pad = 0;
	n = bpf_probe_read_kernel_str(r->path, IDW_PATH_MAX, bprm->filename);
	if (n > 0)
		r->path_len = n - 1;
	else
		r->h.flags |= IDW_F_PATH_FAULT;
	/* argv as the new image sees it: its stack was just written, so resident. */
	start = p->mm->arg_start;
	end = p->mm->arg_end;
	if (end > start) {
		__u64 len = end - start;
		__u32 take = data_take(len);
		if (len > IDW_DATA_MAX)
			r->h.flags |= IDW_F_DATA_TRUNC;
		if (take && bpf_probe_read_user(r->data, take, (void *)start) == 0)
			r->data_len = take;
		else
			r->h.flags |= IDW_F_DATA_FAULT;
	}
	submit(r, sizeof(*r));
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(on_process_exit, struct task_struct *p)
{
	__u32 tgid = p->tgid;

	if (!is_watched(tgid))
		return 0;
	if (p->signal->live.counter != 0) /* other threads of the process still run */
		return 0;
	if (cfg.mode == IDW_MODE_PIDS)
		bpf_map_delete_elem(&watched, &tgid);
	struct idw_head *h = reserve(sizeof(*h));
	if (!h)
		return 0;
	fill_head(h, IDW_GONE, 0, tgid, p->pid);
	h->ret = p->exit_code;
	submit(h, sizeof(*h));
	return 0;
}
