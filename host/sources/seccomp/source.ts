/**
 * The seccomp user-notify event source, host side: start a command under
 * idwrap-launch, take its listener fd with pidfd_getfd(2), and serve it on
 * the supervisor thread until the whole tree has exited.
 *
 * @module
 */
import type { Policy } from "../../policy/policy.ts";
import { mergePredicates, predicateSize } from "../../policy/predicates.ts";
import { RuleDecider } from "../../policy/rule_decider.ts";
import {
  ALWAYS_DENIED_SYSCALLS,
  OPEN_SYSCALLS,
  resolveSyscalls,
  syscallName,
  syscallNumber,
} from "../../syscalls/mod.ts";
import type { TraceSinkOptions } from "../../trace/sink.ts";
import { v8Engine } from "../../runtime/engine.ts";
import { loadPolicyWrappers } from "../../runtime/load.ts";
import type { WrapperModule } from "../../runtime/module.ts";
import { defaultStorePath } from "../../store/kv.ts";
import { SECCOMP_CAPABILITIES } from "../capabilities.ts";
import { buildInterest, type Interest } from "../../wss/interest.ts";
import { type ArgumentCheck, type BpfInstruction, buildFilter, encodeFilter } from "./filter.ts";
import { X86_64_NAMES } from "../../syscalls/tables.ts";
import { guardFilter, ownThreads } from "./tamper.ts";
import { launcherPath } from "../launcher.ts";
import { launchAndServe } from "../launch.ts";
import { type SupervisorLoss, withHolder } from "./holder.ts";
import type { SupervisorSummary } from "../../wss/summary.ts";
import { CRED_SYSCALLS } from "./transport.ts";
import { PATH_CALLS } from "./emulate.ts";
import { SupervisorThread } from "./thread.ts";
import type { OnEvents } from "../thread.ts";
import type { StartSidecar } from "../sidecar.ts";

/** How to run a command under the seccomp source. */
export interface SeccompRunOptions {
  policies: Policy[];
  trace?: TraceSinkOptions;
  /** Kernel-side help beside the tree (the network deny programs), given by the layer that chose the source. */
  sidecar?: StartSidecar;
  /** @default true */
  emulateOpens?: boolean;
  /** The wrappers' Deno KV store. @default defaultStorePath() */
  storePath?: string;
  /** Notable events (verdicts, alerts, faults, lifecycle), in batches, for audit. */
  onEvents?: OnEvents;
  /**
   * Told, before the command starts, what the policies put at risk on this source (eintrWarnings), and later what the
   * user should know while it runs (its tree outliving it).
   */
  onWarning?: (message: string) => void;
  /** What the tree gets if this process stops supervising it before it ends (holder.ts). @default "kill" */
  onSupervisorLoss?: SupervisorLoss;
}

/** How a wrapped command ended. */
export interface SeccompRunResult {
  /** Exit code, or 128 + signal number when killed, as a shell reports it. */
  exitCode: number;
  signal?: string;
  summary: SupervisorSummary;
}

/**
 * execve is always notified: the WSS re-evaluates activation at every exec.
 * The fork family is not, unless a rule or wrapper asks for it: a new process
 * is learnt at its first notified call (its pidfd then reports the exit), and
 * a notified call is interruptible until the supervisor has read it — a
 * signal then fails fork() with EINTR where the kernel would restart it
 * (docs/seccomp.md), which shells do not retry ("Cannot fork" under make -j).
 */
const ALWAYS_NOTIFIED = ["execve", "execveat", ...ALWAYS_DENIED_SYSCALLS];

/**
 * A new program's first call on x86-64: its thread pointer (TLS), set before `main` by ld.so, static glibc, musl and Go
 * alike. This source learns what an exec ran, and whether it succeeded, at the new image's first notified call; where a
 * rule or wrapper examines execs (a deny re-checked on the file that runs, an alert on success) this call makes that
 * happen before the program runs its own code, whatever else is notified. No handler is installed yet at that point
 * (exec resets them), so no signal can fail it with EINTR.
 */
const FIRST_CALL = "arch_prctl";

/**
 * Compiles the WSS's interest model (host/wss/interest.ts) into the filter's notify set: every call the interest names
 * in either phase (a seccomp filter can only hold a call before it runs; its result comes from running it here), plus
 * what this source needs for itself: execve and execveat (activation is re-evaluated at every exec), and the credential
 * calls where it runs calls as the caller.
 */
export function compileNotifySet(interest: Interest, emulateOpens: boolean): Set<number> {
  const set = new Set(interest.calls.keys());
  // The credential calls only keep the emulation's cached credentials fresh: none without notified opens or path calls
  // (unlink, chmod, ... run by the supervisor as the caller) or open_by_handle_at.
  const known = [...PATH_CALLS].filter((name) => syscallNumber(name) !== undefined); // fchmodat2 is newer than the table
  const emulated = resolveSyscalls([...OPEN_SYSCALLS, ...known, "open_by_handle_at"]);
  const emulates = emulateOpens && [...set].some((nr) => emulated.has(nr));
  for (const nr of resolveSyscalls([...ALWAYS_NOTIFIED, ...(emulates ? CRED_SYSCALLS : [])])) set.add(nr);
  if ([...resolveSyscalls(["execve", "execveat"])].some((nr) => interest.calls.has(nr))) {
    set.add(syscallNumber(FIRST_CALL)!);
  }
  return set;
}

const EXECS = [...resolveSyscalls(["execve", "execveat"])];
/** The most instructions a call's predicates may take, leaving room for the guard's checks on the same call. */
const MAX_PREDICATE_SIZE = 200;
/** The calls a dynamic program's loader opens its libraries with, and the other opens rules cover with them. */
const LOADER_OPENS = resolveSyscalls([...OPEN_SYSCALLS, "open_by_handle_at"]);

/** The filter's notify set, split by what it looks at (see compileNotify). */
export interface NotifyPlan {
  /** Notified whatever their arguments. */
  always: Set<number>;
  /**
   * Notified when one of these holds (the interest's predicates, `when`): the rules' integer conditions. A call here
   * with no check (a rule it can never match) is not notified. The guard's checks are added on top (buildNotifyFilter).
   */
  checks: ArgumentCheck[];
}

/**
 * compileNotifySet split in two: calls notified whatever their arguments, and calls whose interest carries predicates
 * (host/wss/interest.ts, `when`), notified only when one holds. What this source adds for itself (exec, the credential
 * calls) is unconditional, and so are the opens while anything examines an exec (below).
 */
export function compileNotify(interest: Interest, emulateOpens: boolean): NotifyPlan {
  const always = compileNotifySet(interest, emulateOpens);
  const forced = resolveSyscalls([...ALWAYS_NOTIFIED, ...CRED_SYSCALLS]);
  // An examined exec is checked again, and its success learnt, at the new image's first notified call (docs/seccomp.md,
  // "exec"): for a dynamic program the loader's first open, read-only. Narrowed opens would let a racing exec's
  // program reach its main (tests/sources/seccomp/predicates_test.ts): while anything examines an exec, opens are whole.
  if (EXECS.some((nr) => interest.calls.has(nr))) { for (const nr of LOADER_OPENS) forced.add(nr); }
  const checks: ArgumentCheck[] = [];
  for (const [nr, c] of interest.calls) {
    if (c.when === undefined || forced.has(nr)) continue;
    const merged = mergePredicates(c.when);
    // A call's block must stay within an 8-bit jump (filter.ts): past that, the call is notified whole.
    if (predicateSize(merged) > MAX_PREDICATE_SIZE) continue;
    always.delete(nr);
    for (const p of merged) checks.push({ ...p, nr });
  }
  return { always, checks };
}

/**
 * The filter for a notify plan: the plan's checks and the tamper guard's (`guard`), which are exactly as before — on a
 * call the plan notifies whatever its arguments they are moot, on a call with predicates either notifies it.
 */
export function buildNotifyFilter(plan: NotifyPlan, guard: ArgumentCheck[]): BpfInstruction[] {
  return buildFilter(plan.always, [...guard, ...plan.checks], X86_64_NAMES.length - 1);
}

/**
 * The syscall numbers the filter may notify for these policies and wrappers: their interest, compiled (a call with
 * predicates among them: compileNotify says when).
 */
export function notifiedSyscalls(policies: Policy[], wrappers: WrapperModule[], emulateOpens: boolean): Set<number> {
  // What could reach the supervisor itself (tamper.ts) is in every interest: the guard refuses it whatever the policy.
  return compileNotifySet(buildInterest(policies, wrappers, false, guardFilter(Deno.pid).always), emulateOpens);
}

/**
 * Calls the kernel does not fail with EINTR by themselves (or not when used so), which shells and make issue
 * around SIGCHLD without retrying. Notified, they can: a signal before the supervisor has read the call fails it with
 * EINTR in a program whose handler lacks SA_RESTART (docs/seccomp.md, "Signals and EINTR"). dash then leaks a pipe's
 * end on a failed close and `make -j2` hangs; vsftpd exits on a failed wait4(WNOHANG).
 */
export const EINTR_HAZARDS: readonly string[] = [
  "close",
  "dup",
  "dup2",
  "dup3",
  "fcntl",
  "pipe",
  "pipe2",
  "wait4",
  "waitid",
  "rt_sigaction",
  "rt_sigprocmask",
  "fork",
  "vfork",
  "clone",
  "clone3",
];

/** One warning per wrapper or policy that makes this source notify calls of EINTR_HAZARDS. */
export function eintrWarnings(policies: Policy[], wrappers: WrapperModule[]): string[] {
  const hazards = resolveSyscalls(EINTR_HAZARDS);
  const warnings: string[] = [];
  const check = (who: string, calls: Iterable<number>) => {
    const hit = [...calls].filter((nr) => hazards.has(nr)).map(syscallName);
    if (!hit.length) return;
    warnings.push(
      `${who} makes the seccomp source notify ${hit.join(", ")}: a program that catches a signal without SA_RESTART ` +
        `(dash, GNU make, vsftpd) can get EINTR from them where the kernel would not fail them, and fail or hang ` +
        `(docs/seccomp.md, "Signals and EINTR"); the kernel-module source has no such window`,
    );
  };
  for (const p of policies) check(`policy ${p.name} (${p.file})`, new RuleDecider([p]).syscalls);
  for (const w of wrappers) check(`wrapper ${w.spec.name}`, w.declarations.syscalls.keys());
  return warnings;
}

/**
 * Loads the wrappers for a set of policies and compiles what the filter
 * notifies: everything that can be refused is refused here, before a process
 * runs. The filter itself is built at each launch (launchFilter).
 */
export async function prepareEnforcement(
  policies: Policy[],
  emulateOpens: boolean,
): Promise<{ wrappers: WrapperModule[]; plan: NotifyPlan }> {
  const wrappers = await loadPolicyWrappers(policies, v8Engine, SECCOMP_CAPABILITIES);
  // This process supervises what the filter notifies: the guard's always-notified calls are in every interest.
  const interest = buildInterest(policies, wrappers, false, guardFilter(Deno.pid).always);
  return { wrappers, plan: compileNotify(interest, emulateOpens) };
}

/**
 * The filter for a launch now: this process supervises what it notifies, so its pid and the ids of its threads at
 * this moment are the ones the guard's argument checks name (tamper.ts, guardFilter), with the single-threaded
 * processes that hold its listeners (`holders`: idwrap-holder).
 */
export function launchFilter(plan: NotifyPlan, holders: readonly number[] = []): string {
  return encodeFilter(buildNotifyFilter(plan, guardFilter(Deno.pid, ownThreads(), holders).checks));
}

/** Starts idwrap-launch; it connects to `socketPath` for the handshake. */
export async function spawnLauncher(socketPath: string, filter: string, command: string[]): Promise<Deno.ChildProcess> {
  return new Deno.Command(await launcherPath(), {
    args: [socketPath, filter, "--", ...command],
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
}

/**
 * Runs `command` with every notified call answered by a supervisor thread.
 *
 * @param command the program and its arguments
 * @param options policies and output
 */
export async function runUnderSeccomp(command: string[], options: SeccompRunOptions): Promise<SeccompRunResult> {
  const emulateOpens = options.emulateOpens ?? true;
  const [holder, { thread, plan }] = await withHolder(async (link) => {
    const prepared = await prepareEnforcement(options.policies, emulateOpens);
    for (const warning of eintrWarnings(options.policies, prepared.wrappers)) options.onWarning?.(warning);
    const thread = await SupervisorThread.start({
      policies: options.policies,
      wrappers: prepared.wrappers,
      storePath: options.storePath ?? defaultStorePath(),
      trace: options.trace,
      emulateOpens,
      ...link,
      onEvents: options.onEvents,
    });
    return { thread, plan: prepared.plan };
  });
  const mode = options.onSupervisorLoss ?? "kill";
  // Network deny rules the kernel can decide, where this process can load BPF programs (docs/bpf.md).
  const net = options.sidecar?.(options.policies, {
    source: "seccomp",
    onEvents: options.onEvents,
    trace: options.trace,
    onWarning: options.onWarning,
  });
  try {
    return await launchAndServe(
      command,
      // Built once the supervisor's threads have started: their ids, and the holder's pid, are in the guard's checks.
      (socketPath) => spawnLauncher(socketPath, launchFilter(plan, [holder.pid]), command),
      async (hs) => {
        net?.place(hs.pid);
        holder.hold(0, hs.pid, hs.listener, mode);
        await thread.listen(0, hs.listener);
        // The thread died (its hook watchdog): the holder answers the tree from now on.
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
