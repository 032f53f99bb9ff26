/**
 * `idwrap run|trace --source bpf`: the bpf transport under the one WSS, on its
 * own supervisor thread (./worker.ts), started as the kmod source's is
 * (idwrap-launch --no-filter holds the command until its pid is watched).
 * Observation only: before anything runs, a policy whose rules or wrappers
 * may deny, kill or rewrite a call before it runs is refused with the rule or
 * wrapper and the calls named — never downgraded to an alert — and so is a
 * user who cannot load BPF programs.
 *
 * @module
 */
import type { Policy } from "../../policy/policy.ts";
import { v8Engine } from "../../runtime/engine.ts";
import { loadPolicyWrappers } from "../../runtime/load.ts";
import type { WrapperModule } from "../../runtime/module.ts";
import { defaultStorePath } from "../../store/kv.ts";
import { resolveSyscalls, syscallName } from "../../syscalls/mod.ts";
import type { TraceSinkOptions } from "../../trace/sink.ts";
import { BPF_CAPABILITIES } from "../capabilities.ts";
import type { Enforcement, SupervisorSummary } from "../enforce.ts";
import { launchAndServe } from "../launch.ts";
import { spawnUnfilteredLauncher } from "../launcher.ts";
import { type OnEvents, SourceThread } from "../thread.ts";
import type { BpfWorkerConfig } from "./worker.ts";
import { compileKernelNet, KERNEL_NET_CALLS } from "../../policy/net_kernel.ts";
import { kernelNetProblem, KernelNetRun } from "./net_run.ts";
import { undecidableOnBpf } from "./refusals.ts";

import { bpfPrivilegeProblem, BpfRefusal } from "./privilege.ts";

export { bpfPrivilegeProblem, BpfRefusal, undecidableOnBpf };

/**
 * Loads the policies' wrappers for the bpf source and refuses what it cannot serve: everything is checked here,
 * before a process runs.
 *
 * @throws BpfRefusal naming each rule and wrapper that may deny, kill or rewrite a call before it runs, or why this
 * process cannot load the programs; WrapperLoadError for a bad wrapper
 */
export async function prepareBpfEnforcement(policies: Policy[]): Promise<WrapperModule[]> {
  const wrappers = await loadPolicyWrappers(policies, v8Engine, BPF_CAPABILITIES);
  const undecidable = undecidableOnBpf(policies, wrappers);
  if (undecidable.length) {
    throw new BpfRefusal(
      "The bpf source only observes (a call is reported after it started, a kill lands late), and these may deny, " +
        `kill or rewrite a call before it runs:\n  ${undecidable.join("\n  ")}\n` +
        "Use --source seccomp or kmod, or a policy that only observes (rules that alert, wrappers without DENY, exec " +
        "rules that deny or kill by literal program paths, which the kernel enforces at exec): docs/bpf.md.",
    );
  }
  const privilege = bpfPrivilegeProblem();
  if (privilege) throw new BpfRefusal(`Cannot use the bpf source: ${privilege}`);
  return wrappers;
}

/** How the bpf thread starts. */
export interface BpfThreadOptions extends Enforcement, BpfWorkerConfig {
  storePath: string;
  trace?: TraceSinkOptions;
  onEvents?: OnEvents;
  /** Told what the user should know while the command runs (its tree outliving it). */
  onWarning?: (message: string) => void;
}

/** The supervisor thread holding the bpf programs and their ring. */
export class BpfThread extends SourceThread {
  /** Loads the programs on a new thread; resolves when it serves. */
  static start(options: BpfThreadOptions): Promise<BpfThread> {
    const { ringBytes, ...rest } = options;
    const config: BpfWorkerConfig = { ringBytes };
    const opts = { ...rest, config: config as Record<string, unknown> };
    return SourceThread.startAt(new BpfThread(new URL("./worker.ts", import.meta.url), opts), opts);
  }

  /** Watches a launcher's pid (and the processes it makes) as session `session`. */
  watch(session: number, pid: number): Promise<void> {
    return this.attachHandle(session, pid);
  }
}

/** How to run a command under the bpf source. */
export interface BpfRunOptions {
  policies: Policy[];
  trace?: TraceSinkOptions;
  storePath?: string;
  onEvents?: OnEvents;
  /** Told what the user should know while the command runs (its tree outliving it). */
  onWarning?: (message: string) => void;
}

/** How an observed command ended. */
export interface BpfRunResult {
  exitCode: number;
  signal?: string;
  summary: SupervisorSummary;
}

/**
 * The policies split for the bpf source: the network deny rules the kernel decides whole (every call of the rule is a
 * connect or a send with an address, and it compiles exactly: host/policy/net_kernel.ts) go to the kernel's programs;
 * the rest stay with the WSS, which refuses what it cannot serve. Empty `kernel` where the programs cannot be loaded.
 */
export function splitForBpf(policies: Policy[]): { wss: Policy[]; kernel: Policy[] } {
  const plan = kernelNetProblem() ? undefined : compileKernelNet(policies);
  const whole = new Set(
    plan?.rules.filter((k) =>
      [...resolveSyscalls(k.rule.syscalls)].every((nr) => KERNEL_NET_CALLS.has(syscallName(nr)))
    )
      .map((k) => k.rule) ?? [],
  );
  return {
    wss: policies.map((p) => ({ ...p, rules: p.rules.filter((r) => !whole.has(r)) })),
    kernel: policies.map((p) => ({ ...p, rules: p.rules.filter((r) => whole.has(r)) })),
  };
}

/** Runs `command` with its calls observed by the bpf source under the WSS. */
export async function runUnderBpf(command: string[], options: BpfRunOptions): Promise<BpfRunResult> {
  const { wss, kernel } = splitForBpf(options.policies);
  const wrappers = await prepareBpfEnforcement(wss);
  const net = KernelNetRun.start(kernel, {
    source: "bpf",
    onEvents: options.onEvents,
    trace: options.trace,
    onWarning: options.onWarning,
    required: true,
  });
  try {
    const thread = await BpfThread.start({
      policies: wss,
      wrappers,
      storePath: options.storePath ?? defaultStorePath(),
      trace: options.trace,
      onEvents: options.onEvents,
    });
    return await launchAndServe(
      command,
      (socketPath) => spawnUnfilteredLauncher(socketPath, command),
      (hs) => {
        net?.place(hs.pid);
        return thread.watch(0, hs.pid);
      },
      thread,
      options.onWarning,
    );
  } finally {
    await net?.stop();
  }
}
