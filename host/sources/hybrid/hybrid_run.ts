/**
 * `idwrap run|trace --source hybrid`: a command under one WSS fed by two
 * transports (./hybrid.ts). The launcher installs a seccomp filter that
 * notifies only the calls some rule or wrapper may decide (compileHybrid), and
 * the bpf programs watch its pid before it execs the command and report the
 * calls that are only observed. Loading the programs needs what the bpf source
 * needs (./supervise.ts, bpfPrivilegeProblem); everything is checked before a
 * process runs.
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
import { buildInterest } from "../../wss/interest.ts";
import { HYBRID_CAPABILITIES } from "../capabilities.ts";
import type { Enforcement, SupervisorSummary } from "../enforce.ts";
import type { Handshake } from "../handshake.ts";
import { launchAndServe } from "../launch.ts";
import { EINTR_HAZARDS, launchFilter } from "../seccomp/source.ts";
import { launcherPath } from "../launcher.ts";
import { hybridLandlock } from "./landlock.ts";
import { guardFilter } from "../seccomp/tamper.ts";
import { type OnEvents, SourceThread } from "../thread.ts";
import { compileHybrid, type HybridPlan } from "./hybrid.ts";
import type { HybridWorkerConfig } from "./hybrid_worker.ts";
import { bpfPrivilegeProblem, BpfRefusal } from "../bpf/supervise.ts";
import { BPF_OBJECT } from "../bpf/tracer.ts";
import { KernelNetRun } from "../bpf/net_run.ts";
import { type SupervisorLoss, withHolder } from "../seccomp/holder.ts";

/**
 * Why the hybrid source cannot be used here, or undefined when it can: the privilege to load the programs, the built
 * object, the kernel's BTF (tp_btf programs, CO-RE). Cheap: `auto` asks before every run; the programs' load is tried
 * for real when the run starts (and by `idwrap doctor`).
 */
export function hybridProblem(): string | undefined {
  const privilege = bpfPrivilegeProblem();
  if (privilege) return privilege;
  if (!existsSync(BPF_OBJECT)) return `${BPF_OBJECT} is missing (deno task build makes it; docs/bpf.md)`;
  if (!existsSync("/sys/kernel/btf/vmlinux")) return "the kernel has no BTF (/sys/kernel/btf/vmlinux)";
  return undefined;
}

function existsSync(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/**
 * The plan for these policies and wrappers, as the launcher's filter and the worker compile it.
 *
 * @param guardedByKernel the launcher puts the tree in a Landlock domain (./landlock.ts)
 */
export function hybridPlan(
  policies: Policy[],
  wrappers: WrapperModule[],
  emulateOpens: boolean,
  guardedByKernel = false,
): HybridPlan {
  return compileHybrid(
    buildInterest(policies, wrappers, false, guardFilter(Deno.pid).always),
    emulateOpens,
    guardedByKernel,
  );
}

/**
 * Loads the wrappers and builds the filter: what can be refused is refused here, before a process runs.
 *
 * @throws BpfRefusal when this process cannot load the bpf programs; WrapperLoadError for a bad wrapper
 */
export async function prepareHybridEnforcement(
  policies: Policy[],
  emulateOpens: boolean,
  guardedByKernel = false,
): Promise<{ wrappers: WrapperModule[]; plan: HybridPlan }> {
  const privilege = bpfPrivilegeProblem();
  if (privilege) throw new BpfRefusal(`Cannot use the hybrid source: ${privilege}`);
  const wrappers = await loadPolicyWrappers(policies, v8Engine, HYBRID_CAPABILITIES);
  return { wrappers, plan: hybridPlan(policies, wrappers, emulateOpens, guardedByKernel) };
}

/**
 * The calls of EINTR_HAZARDS the filter notifies (docs/seccomp.md, "Signals and EINTR"): on this source only the
 * decided ones wait, so only they have the window.
 */
export function hybridEintrWarning(plan: HybridPlan): string | undefined {
  const hit = [...resolveSyscalls(EINTR_HAZARDS)].filter((nr) => plan.notify.has(nr)).map(syscallName);
  if (!hit.length) return undefined;
  return `the policies may deny ${hit.join(", ")}, so the hybrid source holds them on seccomp: a program that ` +
    `catches a signal without SA_RESTART (dash, GNU make, vsftpd) can get EINTR from them where the kernel would not ` +
    `fail them (docs/seccomp.md, "Signals and EINTR"); calls only observed come through the bpf ring and never wait`;
}

/** How the hybrid thread starts. */
export interface HybridThreadOptions extends Enforcement, HybridWorkerConfig {
  storePath: string;
  trace?: TraceSinkOptions;
  onEvents?: OnEvents;
}

/** The supervisor thread holding the seccomp listeners, the bpf programs and their ring. */
export class HybridThread extends SourceThread {
  /** Loads the programs on a new thread; resolves when it serves. */
  static start(options: HybridThreadOptions): Promise<HybridThread> {
    const { emulateOpens, ringBytes, holderFd, holderPid, guardedByKernel, ...rest } = options;
    const config: HybridWorkerConfig = { emulateOpens, ringBytes, holderFd, holderPid, guardedByKernel };
    const opts = { ...rest, config: config as unknown as Record<string, unknown> };
    return SourceThread.startAt(new HybridThread(new URL("./hybrid_worker.ts", import.meta.url), opts), opts);
  }

  /** Serves a launcher's tree: its listener (the thread owns the fd) and its pid, watched by the programs. */
  serve(session: number, hs: Handshake): Promise<void> {
    return this.attachHandle(session, hs.listener, hs.listener, hs.pid);
  }
}

/** How to run a command under the hybrid source. */
export interface HybridRunOptions {
  policies: Policy[];
  trace?: TraceSinkOptions;
  /** @default true */
  emulateOpens?: boolean;
  storePath?: string;
  onEvents?: OnEvents;
  /** Told what the policies put at risk before the command starts, and what to know while it runs. */
  onWarning?: (message: string) => void;
  /**
   * What the tree gets if this process stops supervising it before it ends (../seccomp/holder.ts): the holder
   * answers the seccomp listener; the bpf programs go with this process, so nothing is observed after. @default "kill"
   */
  onSupervisorLoss?: SupervisorLoss;
}

/** How the command ended. */
export interface HybridRunResult {
  exitCode: number;
  signal?: string;
  summary: SupervisorSummary;
}

/** Runs `command` with its decided calls held on seccomp and its observed calls reported through the bpf ring. */
export async function runUnderHybrid(command: string[], options: HybridRunOptions): Promise<HybridRunResult> {
  const emulateOpens = options.emulateOpens ?? true;
  // Decided once: the launcher's domain and both compilations of the plan must agree.
  const guardedByKernel = hybridLandlock();
  const { wrappers, plan } = await prepareHybridEnforcement(options.policies, emulateOpens, guardedByKernel);
  const warning = hybridEintrWarning(plan);
  if (warning) options.onWarning?.(warning);
  // As on the seccomp source (../seccomp/source.ts): started before the filter is built (its pid is in the guard's
  // checks), it keeps a copy of the listener, so however this process ends the tree gets onSupervisorLoss, not ENOSYS.
  const [holder, thread] = await withHolder((link) =>
    HybridThread.start({
      policies: options.policies,
      wrappers,
      storePath: options.storePath ?? defaultStorePath(),
      trace: options.trace,
      emulateOpens,
      ...link,
      guardedByKernel,
      onEvents: options.onEvents,
    })
  );
  const mode = options.onSupervisorLoss ?? "kill";
  // Network deny rules the kernel can decide: judged again on the address the kernel uses (docs/bpf.md).
  const net = KernelNetRun.start(options.policies, {
    source: "hybrid",
    onEvents: options.onEvents,
    trace: options.trace,
    onWarning: options.onWarning,
  });
  try {
    return await launchAndServe(
      command,
      // Built once the supervisor's threads have started: their ids, and the holder's pid, are in the guard's checks.
      (socketPath) =>
        spawnHybridLauncher(socketPath, launchFilter(plan.filter, [holder.pid]), command, guardedByKernel),
      async (hs) => {
        net?.place(hs.pid);
        holder.hold(0, hs.pid, hs.listener, mode);
        await thread.serve(0, hs);
        // The thread died (its hook watchdog): the holder answers the tree's notified calls from now on.
        thread.ended(0).catch(() => holder.lost(0));
      },
      thread,
      options.onWarning,
    );
  } finally {
    await net?.stop();
    holder.close();
  }
}

/** idwrap-launch with the hybrid's filter, and its Landlock domain when `landlock` (./landlock.ts). */
async function spawnHybridLauncher(
  socketPath: string,
  filter: string,
  command: string[],
  landlock: boolean,
): Promise<Deno.ChildProcess> {
  return new Deno.Command(await launcherPath(), {
    args: [...(landlock ? ["--landlock"] : []), socketPath, filter, "--", ...command],
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
}
