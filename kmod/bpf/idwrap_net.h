/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The network deny table and the denial record of net.bpf.c (docs/bpf.md,
 * "Decisions in the kernel"), mirrored in host/sources/bpf/net_layout.ts and
 * checked against this compiler by tests/sources/bpf/net_layout_test.ts.
 * Fixed sizes, little-endian; addresses and masks in network byte order.
 */
#ifndef IDWRAP_NET_H
#define IDWRAP_NET_H

#define IDW_NET_MAX_RULES 64
#define IDW_NET_MAX_CONDS 64
#define IDW_NET_MAX_PREFIXES 8
#define IDW_NET_MAX_PORTS 8

/* Families, as a condition's mask and a record's family. */
#define IDW_NET_INET 1
#define IDW_NET_INET6 2

/* Hooks, as a record's hook. */
#define IDW_NET_HOOK_CONNECT 0
#define IDW_NET_HOOK_SENDMSG 1
/* A raw socket refused at creation (cgroup/sock_create): the record's family is the socket's AF_*, its addr zero. */
#define IDW_NET_HOOK_SOCKET 2

/* An address prefix: addr & mask == want (inet: word 0 only, words 1-3 zero). */
struct idw_net_prefix {
	__u32 addr[4];
	__u32 mask[4];
	__u32 family;
};

/* Inclusive port range, host order. */
struct idw_net_ports {
	__u16 lo;
	__u16 hi;
};

/*
 * One condition of a rule: every field given holds (family in the mask, the
 * address in one prefix, the port in one range). A rule's match conditions must
 * all hold (negate 0), and none of its `not`/except conditions (negate 1).
 */
struct idw_net_cond {
	__u8 rule;     /* index in the table's rules */
	__u8 negate;   /* 1: a not/except condition */
	__u8 families; /* IDW_NET_INET | IDW_NET_INET6; 0: any */
	__u8 nprefix;  /* 0: any address */
	__u8 nports;   /* 0: any port */
	__u8 pad[3];
	struct idw_net_prefix prefix[IDW_NET_MAX_PREFIXES];
	struct idw_net_ports ports[IDW_NET_MAX_PORTS];
};

/* The whole table: one element of the net_table array. */
struct idw_net_table {
	__u32 nconds;
	__u32 pad;
	__u64 connect_rules; /* bit r: rule r judges connects */
	__u64 sendmsg_rules; /* bit r: rule r judges sends with an address */
	__u64 kill_rules;    /* bit r: rule r kills (with kill_in_kernel: SIGKILL from the program) */
	struct idw_net_cond conds[IDW_NET_MAX_CONDS];
};

/* A denied call, in the net ring. */
struct idw_net_event {
	__u64 ktime;
	__u64 rules; /* bit r: rule r matched (the call was denied) */
	__u32 tgid;
	__u32 tid;
	__u32 uid;
	__u32 gid;
	__u32 addr[4];
	__u16 port;   /* host order */
	__u8 family;  /* IDW_NET_INET or IDW_NET_INET6 */
	__u8 hook;    /* IDW_NET_HOOK_* */
	__u32 sock_type;
	char comm[16];
};

#endif
