// SPDX-License-Identifier: GPL-2.0
/*
 * An experiment, not part of the bpf source: kills from a map (issue 15). The
 * host writes a tgid into kill_pending when it decides a kill; this program
 * sends that process SIGKILL at its next sys_enter (the call still runs; the
 * task dies on its way back to user space). bench/bpf_killmap_bench.ts
 * measured whether that stops a process sooner than the host's kill(2) alone:
 * it does not (docs/bpf.md, "Kills from maps"), so idwrap.bpf.c does not
 * carry it and no watched call pays for the lookup.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

/* tgid -> 1: processes to kill at their next call. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __u32);
} kill_pending SEC(".maps");

SEC("tp_btf/sys_enter")
int BPF_PROG(kill_at_enter, struct pt_regs *regs, long id)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32;

	if (bpf_map_lookup_elem(&kill_pending, &tgid))
		bpf_send_signal(9);
	return 0;
}
