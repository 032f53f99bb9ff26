/* SPDX-License-Identifier: GPL-2.0 */
/*
 * idwrap's eBPF event source: the layout shared by the BPF programs
 * (idwrap.bpf.c) and the host (host/sources/bpf/layout.ts mirrors it, and
 * tests/sources/bpf/layout_test.ts compares the two). Little-endian, x86-64.
 *
 * Every record starts with struct idw_head (96 bytes); a record whose flags
 * carry IDW_F_COPIES is a struct idw_copy_rec (head + copied arguments), or,
 * for a call whose only copy is one path, the shorter struct idw_path_rec (its
 * prefix: a third of the bytes for the commonest copying calls, stat and open).
 * The three sizes are fixed; the host tells them apart by the sample's size.
 */
#ifndef IDWRAP_BPF_H
#define IDWRAP_BPF_H

#define IDW_PATH_MAX 256 /* bytes of each copied path, NUL included */
#define IDW_DATA_MAX 512 /* bytes of a copied buffer (write, sockaddr) or exec argv */
#define IDW_MAX_SYSCALLS 512

/* Record kinds. */
#define IDW_ENTER 1 /* sys_enter of a watched task: nr, args, copies */
#define IDW_EXIT 2  /* sys_exit: nr, ret */
#define IDW_FORK 3  /* a watched process made a process: tgid the parent, ret the child */
#define IDW_EXEC 4  /* a watched process ran exec: path the file, data its argv (NUL-separated), args[0..1] its inode, s_dev, args[5] argc */
#define IDW_GONE 5  /* a watched process's last thread exited: ret its wait status */
#define IDW_SKIPPED 6 /* seq filter: ret calls of tgid dropped in the kernel (window known) since its last record */

/* Record flags. */
#define IDW_F_COPIES 0x01     /* the record is a struct idw_copy_rec */
#define IDW_F_COMPAT 0x02     /* an i386 (int 0x80) call: nr is an i386 number */
#define IDW_F_PATH_FAULT 0x04 /* the path argument could not be read */
#define IDW_F_PATH2_FAULT 0x08
#define IDW_F_DATA_FAULT 0x10
#define IDW_F_DATA_TRUNC 0x20 /* the buffer was longer than IDW_DATA_MAX (an argv: more strings or bytes than copied) */
#define IDW_F_UNFOLLOWED 0x40 /* FORK: the child could not be added to the watched set (map full) */
#define IDW_F_EXEC_KILLED 0x80 /* EXEC: the file is in exec_kill; SIGKILL sent before the new image ran (args[2]: rule) */
#define IDW_F_WINDOW 0x100    /* ENTER: ret is the process's call window after this call (IDW_WINDOW_BITS a call) */

/* Interest flags (struct idw_interest.flags). */
#define IDW_I_ENTER 0x01
#define IDW_I_EXIT 0x02
#define IDW_I_WINDOW 0x04     /* the call enters its process's window (the filtering wrapper's declared calls) */
#define IDW_I_FILTERABLE 0x08 /* its only consumer is the filtering wrapper: dropped when the window is known */
#define IDW_I_ARGV 0x10       /* data_arg is an argv (execve's): its strings are copied, NUL-separated, into data */

/* An argv copy (IDW_I_ARGV): at most this many strings (more: IDW_F_DATA_TRUNC), in IDW_DATA_MAX bytes. */
#define IDW_ARGV_MAX 32

/* The filter a wrapper hands the kernel (docs/bpf.md, "Filters a wrapper hands the kernel"). */
#define IDW_WINDOW_BITS 10                    /* per call: its number + 1 (0: no call yet) */
#define IDW_WINDOW_MASK ((1ULL << 60) - 1)    /* the last six calls */

/* How the watched set is kept (struct idw_config.mode). */
#define IDW_MODE_PIDS 0   /* a hash of tgids: fork adds, exit forgets */
#define IDW_MODE_CGROUP 1 /* every task of one cgroup v2 (its id in cgroup_id) */

/* What to copy for one syscall: argument indexes (0-5) or -1. */
struct idw_interest {
	__u8 flags;
	__s8 path_arg;
	__s8 path2_arg;
	__s8 data_arg; /* a buffer whose length is in len_arg, or with IDW_I_ARGV an argv (len_arg -1) */
	__s8 len_arg;
	__u8 pad[3];
};

/* Set before load (.rodata): the verifier prunes the mode not chosen. */
struct idw_config {
	__u32 mode;
	__u32 pad;
	__u64 cgroup_id;
	/* Wake the consumer at once only when this many bytes wait; 0: wake on every record (the default). */
	__u64 wake_bytes;
};

/* A file by identity, as exec_kill's key: the inode number and its superblock's s_dev (kernel encoding). */
struct idw_file {
	__u64 ino;
	__u64 dev;
};

struct idw_head {
	__u64 ktime; /* bpf_ktime_get_ns(): CLOCK_MONOTONIC */
	__u32 kind;
	__u32 flags;
	__u32 tgid;
	__u32 tid;
	__s32 nr;
	__u32 lost; /* records this CPU dropped (ring full) since its previous record */
	__s64 ret;
	__u64 args[6];
	__u32 uid;
	__u32 gid;
};

struct idw_path_rec {
	struct idw_head h;
	__u16 path_len; /* bytes copied, NUL excluded */
	__u16 path2_len; /* 0 */
	__u16 data_len;  /* 0 */
	__u16 pad;
	char path[IDW_PATH_MAX];
};

struct idw_copy_rec {
	struct idw_head h;
	__u16 path_len; /* bytes copied, NUL excluded */
	__u16 path2_len;
	__u16 data_len;
	__u16 pad;
	char path[IDW_PATH_MAX];
	char path2[IDW_PATH_MAX];
	char data[IDW_DATA_MAX];
};

/* seqf_armed (host-written): the filter that applies to a tgid, and the exec generation it was published for. */
struct idw_seqf_arm {
	__u32 filter;
	__u32 gen;
	__u64 mask; /* the filter's window length: k calls of IDW_WINDOW_BITS */
};

/* seqf_state (kernel-written): a tgid's window of its last calls, calls dropped since its last record, execs. */
struct idw_seqf_state {
	__u64 window;
	__u64 skipped;
	__u32 gen;
	__u32 pad;
};

/*
 * seqf_programs' key: an executable file as the host names it: inode, the superblock's s_dev, the inode's generation
 * (a number reused at once for another file gets another) and the mount it was reached through (a bind mount is
 * another path, so another database). Its processes get its filter at exec.
 */
struct idw_seqf_file {
	__u64 ino;
	__u64 dev;
	__u32 gen;
	__u32 mnt_id;
	/* The name it was exec'd by: its directory's inode and FNV-1a of its last component (a rename is another path). */
	__u64 parent;
	__u32 name_hash;
	__u32 pad;
};

/* seqf_known's key: a known window (masked to the filter's k) of one published filter. */
struct idw_seqf_key {
	__u32 filter;
	__u32 pad;
	__u64 window;
};

#endif
