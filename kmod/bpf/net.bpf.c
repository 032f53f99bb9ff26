// SPDX-License-Identifier: GPL-2.0
/*
 * Network deny rules decided in the kernel (issue 15; docs/bpf.md, "Decisions
 * in the kernel"): cgroup/connect4, connect6, sendmsg4 and sendmsg6 programs,
 * attached to the watched tree's own cgroup v2, judge the address the kernel
 * is about to use (its own copy, after the call copied it from the caller:
 * nothing another thread writes can change it any more) against the policy's
 * network deny rules that host/policy/net_kernel.ts compiled into net_table.
 * A match returns 0 (the call fails with EPERM) and writes a record to
 * net_events for the host to report; anything else returns 1 (allowed: the
 * seccomp path, where it is attached, still judges the call as before).
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "idwrap_net.h"

char LICENSE[] SEC("license") = "GPL";

/*
 * Set by the host before load where the kernel lets a cgroup/sock_addr program call bpf_send_signal (probed: the
 * host loads with it, and again without on a refusal): a kill rule's match then SIGKILLs the caller before it
 * returns to user space. Without it the verifier never walks the call, and the host kills when it reads the record.
 */
const volatile __u8 kill_in_kernel = 0;

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct idw_net_table);
} net_table SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} net_events SEC(".maps");

/*
 * The watched tree's cgroup (its id, the inode number of its directory, and its depth below the v2 root), written by
 * the host before it attaches the programs. They are attached at the cgroup v2 root (multi-attach links, beside anyone
 * else's) and judge only calls made by a task in the tree's cgroup or below it: the caller, not the socket's cgroup
 * (which is where the socket was made). A socket made outside and inherited or received over SCM_RIGHTS is judged
 * when the tree uses it, and one made in the tree and handed to an unwatched process is not judged there (rt8 F2, F3).
 */
struct idw_net_tree {
	__u64 id;
	__u32 level;
	__u32 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct idw_net_tree);
} net_tree SEC(".maps");

/* Denials whose record did not fit in the ring (the call was denied all the same). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} net_lost SEC(".maps");

static __always_inline int prefix_holds(const struct idw_net_prefix *p, __u32 family, const __u32 *addr)
{
	if (p->family != family)
		return 0;
	return (((addr[0] ^ p->addr[0]) & p->mask[0]) | ((addr[1] ^ p->addr[1]) & p->mask[1]) |
		((addr[2] ^ p->addr[2]) & p->mask[2]) | ((addr[3] ^ p->addr[3]) & p->mask[3])) == 0;
}

/*
 * A v4-mapped IPv6 address (::ffff:a.b.c.d) reaches the IPv4 host, through connect6 (tcp_v6_connect hands it to
 * tcp_v4_connect without the connect4 hook): it is judged as both forms, inet6 and its inet address (rt8 F1), as
 * host/policy/match.ts does.
 */
static __always_inline int cond_holds(const struct idw_net_cond *c, __u32 family, const __u32 *addr, int mapped,
				      __u16 port)
{
	__u32 v4[4] = { addr[3], 0, 0, 0 };
	if (c->families && !(c->families & family) && !(mapped && (c->families & IDW_NET_INET)))
		return 0;
	if (c->nprefix) {
		int any = 0;
		for (int j = 0; j < IDW_NET_MAX_PREFIXES; j++) {
			if (j >= c->nprefix)
				break;
			if (prefix_holds(&c->prefix[j], family, addr) ||
			    (mapped && prefix_holds(&c->prefix[j], IDW_NET_INET, v4))) {
				any = 1;
				break;
			}
		}
		if (!any)
			return 0;
	}
	if (c->nports) {
		int any = 0;
		for (int j = 0; j < IDW_NET_MAX_PORTS; j++) {
			if (j >= c->nports)
				break;
			if (port >= c->ports[j].lo && port <= c->ports[j].hi) {
				any = 1;
				break;
			}
		}
		if (!any)
			return 0;
	}
	return 1;
}

/*
 * Whether the calling task is in the watched tree's cgroup or below it. The level is the host's count below the v2
 * mount, which is the hierarchy's root here; where the mount is a namespaced subtree (a container) the level is off,
 * and the exact id still catches the tree's own cgroup (only root could make cgroups below it, and root can leave).
 */
static __always_inline int in_tree(void)
{
	__u32 zero = 0;
	const struct idw_net_tree *tree = bpf_map_lookup_elem(&net_tree, &zero);
	if (!tree || !tree->id)
		return 0;
	return bpf_get_current_cgroup_id() == tree->id || bpf_get_current_ancestor_cgroup_id(tree->level) == tree->id;
}

static __always_inline void lost(void)
{
	__u32 zero = 0;
	__u64 *n = bpf_map_lookup_elem(&net_lost, &zero);
	if (n)
		__sync_fetch_and_add(n, 1);
}

static __always_inline int judge(struct bpf_sock_addr *ctx, __u32 family, __u8 hook)
{
	__u32 zero = 0;
	if (!in_tree())
		return 1;
	const struct idw_net_table *t = bpf_map_lookup_elem(&net_table, &zero);
	if (!t)
		return 1;
	__u64 rules = hook == IDW_NET_HOOK_CONNECT ? t->connect_rules : t->sendmsg_rules;
	if (!rules)
		return 1;
	__u32 addr[4] = {};
	if (family == IDW_NET_INET) {
		addr[0] = ctx->user_ip4;
	} else {
		addr[0] = ctx->user_ip6[0];
		addr[1] = ctx->user_ip6[1];
		addr[2] = ctx->user_ip6[2];
		addr[3] = ctx->user_ip6[3];
	}
	int mapped = family == IDW_NET_INET6 && addr[0] == 0 && addr[1] == 0 && addr[2] == bpf_htonl(0xffff);
	__u16 port = bpf_ntohs((__u16)ctx->user_port);
	__u64 failed = 0, excluded = 0;
	for (int i = 0; i < IDW_NET_MAX_CONDS; i++) {
		if (i >= t->nconds)
			break;
		const struct idw_net_cond *c = &t->conds[i];
		__u64 bit = 1ULL << (c->rule & 63);
		if (!(rules & bit))
			continue;
		int holds = cond_holds(c, family, addr, mapped, port);
		if (c->negate) {
			if (holds)
				excluded |= bit;
		} else if (!holds) {
			failed |= bit;
		}
	}
	__u64 fired = rules & ~failed & ~excluded;
	if (!fired)
		return 1;
	if (kill_in_kernel && (fired & t->kill_rules))
		bpf_send_signal(9 /* SIGKILL */);
	struct idw_net_event *e = bpf_ringbuf_reserve(&net_events, sizeof(*e), 0);
	if (!e) {
		lost();
		return 0;
	}
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 uid_gid = bpf_get_current_uid_gid();
	e->ktime = bpf_ktime_get_ns();
	e->rules = fired;
	e->tgid = pid_tgid >> 32;
	e->tid = (__u32)pid_tgid;
	e->uid = (__u32)uid_gid;
	e->gid = uid_gid >> 32;
	e->addr[0] = addr[0];
	e->addr[1] = addr[1];
	e->addr[2] = addr[2];
	e->addr[3] = addr[3];
	e->port = port;
	e->family = family;
	e->hook = hook;
	e->sock_type = ctx->type;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}

SEC("cgroup/connect4")
int net_connect4(struct bpf_sock_addr *ctx)
{
	return judge(ctx, IDW_NET_INET, IDW_NET_HOOK_CONNECT);
}

SEC("cgroup/connect6")
int net_connect6(struct bpf_sock_addr *ctx)
{
	return judge(ctx, IDW_NET_INET6, IDW_NET_HOOK_CONNECT);
}

SEC("cgroup/sendmsg4")
int net_sendmsg4(struct bpf_sock_addr *ctx)
{
	return judge(ctx, IDW_NET_INET, IDW_NET_HOOK_SENDMSG);
}

SEC("cgroup/sendmsg6")
int net_sendmsg6(struct bpf_sock_addr *ctx)
{
	return judge(ctx, IDW_NET_INET6, IDW_NET_HOOK_SENDMSG);
}

/*
 * A raw inet or inet6 socket (SOCK_RAW) builds its own headers: no sock_addr hook sees where its packets go (rt8 F4:
 * root sent a hand-made UDP datagram to a denied port). While network deny rules are in the kernel, the tree cannot
 * create one: EPERM, reported with the rules it would have bypassed (docs/bpf.md). The hook runs for inet and inet6
 * sockets only (inet_create, inet6_create): AF_PACKET (root only) is not refused here.
 */
SEC("cgroup/sock_create")
int net_sock_create(struct bpf_sock *sk)
{
	__u32 zero = 0;
	if (sk->type != SOCK_RAW)
		return 1;
	if (!in_tree())
		return 1;
	const struct idw_net_table *t = bpf_map_lookup_elem(&net_table, &zero);
	if (!t || !(t->connect_rules | t->sendmsg_rules))
		return 1;
	struct idw_net_event *e = bpf_ringbuf_reserve(&net_events, sizeof(*e), 0);
	if (!e) {
		lost();
		return 0;
	}
	__u64 pid_tgid = bpf_get_current_pid_tgid();
	__u64 uid_gid = bpf_get_current_uid_gid();
	__builtin_memset(e, 0, sizeof(*e));
	e->ktime = bpf_ktime_get_ns();
	e->rules = t->connect_rules | t->sendmsg_rules;
	e->tgid = pid_tgid >> 32;
	e->tid = (__u32)pid_tgid;
	e->uid = (__u32)uid_gid;
	e->gid = uid_gid >> 32;
	e->port = sk->protocol;
	e->family = sk->family;
	e->hook = IDW_NET_HOOK_SOCKET;
	e->sock_type = sk->type;
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	bpf_ringbuf_submit(e, 0);
	return 0;
}
