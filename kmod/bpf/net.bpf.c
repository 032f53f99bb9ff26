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

static __always_inline int judge(struct bpf_sock_addr *ctx, __u32 family, __u8 hook)
{
	__u32 zero = 0;
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
		__u64 *lost = bpf_map_lookup_elem(&net_lost, &zero);
		if (lost)
			__sync_fetch_and_add(lost, 1);
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
