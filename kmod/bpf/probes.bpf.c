// SPDX-License-Identifier: GPL-2.0
/*
 * One tiny program per BPF feature the bpf source (or its next steps) may use,
 * for `idwrap doctor` (host/sources/bpf/probe.ts): each is loaded alone and
 * attached, so the answer is the kernel's, not a guess from its config. The
 * programs do nothing, except probe_send_signal, which sends `signal_sig` to
 * the process `signal_tgid` (a child the probe starts) at its next call.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>

char LICENSE[] SEC("license") = "GPL";

const volatile __u32 signal_tgid = 0;
const volatile __u32 signal_sig = 0;

SEC("tp_btf/sys_enter")
int BPF_PROG(probe_tp_btf, struct pt_regs *regs, long id)
{
	return 0;
}

SEC("raw_tp/sys_enter")
int probe_raw_tp(void *ctx)
{
	return 0;
}

SEC("lsm/file_open")
int BPF_PROG(probe_lsm, struct file *file)
{
	return 0;
}

SEC("fentry/do_unlinkat")
int BPF_PROG(probe_fentry)
{
	return 0;
}

SEC("cgroup/connect4")
int probe_connect4(struct bpf_sock_addr *ctx)
{
	return 1; /* allow */
}

SEC("tp_btf/sys_enter")
int BPF_PROG(probe_send_signal, struct pt_regs *regs, long id)
{
	if (signal_tgid && bpf_get_current_pid_tgid() >> 32 == signal_tgid)
		bpf_send_signal(signal_sig);
	return 0;
}
