/**
 * Runs a command under the chosen event source (`--source auto|kmod|seccomp|hybrid|bpf`):
 * one entry point for `idwrap run`, `idwrap trace` and `idwrap doctor`. `auto`
 * chooses kmod, else seccomp, or what IDWRAP_AUTO_SOURCE names (seccomp, hybrid,
 * or bpf for a run that only observes: docs/bpf.md, "Choosing the source").
 *
 * @module
 */
import { hardenSupervisorProcess } from "../wss/tamper.ts";
import type { OnEvents } from "./thread.ts";
import type { Policy } from "../policy/policy.ts";
import type { TraceSinkOptions } from "../trace/sink.ts";
import type { SupervisorSummary } from "./enforce.ts";
import { chooseSource, runUnderKmod } from "./kmod/source.ts";
import type { SourceChoice as KmodOrSeccompChoice } from "./kmod/source.ts";
import { runUnderSeccomp } from "./seccomp/source.ts";
import type { SupervisorLoss } from "./seccomp/holder.ts";
import { runUnderBpf } from "./bpf/supervise.ts";
import { KernelNetRun } from "./bpf/net_run.ts";
import { hybridProblem, runUnderHybrid } from "./hybrid/hybrid_run.ts";
import { undecidableOnBpf } from "./bpf/refusals.ts";
import { loadPolicyWrappers } from "../runtime/load.ts";
import { v8Engine } from "../runtime/engine.ts";
import { HYBRID_CAPABILITIES } from "./capabilities.ts";

export { BpfRefusal } from "./bpf/supervise.ts";

/** Which source `--source` asks for. */
export type SourceChoice = KmodOrSeccompChoice | "bpf" | "hybrid";

/** The sources a run can end up on. */
export type ChosenSource = "kmod" | "seccomp" | "bpf" | "hybrid";

/** How to run a command. */
export interface SourceRunOptions {
  policies: Policy[];
  trace?: TraceSinkOptions;
  storePath?: string;
  onEvents?: OnEvents;
  /** seccomp only. @default true */
  emulateOpens?: boolean;
  /** Told which source was chosen and why. */
  onChoice?: (source: ChosenSource, why: string) => void;
  /**
   * What `auto` may choose besides kmod (idwrap trace passes "seccomp" unless IDWRAP_AUTO_SOURCE names another: it
   * promises every path as strace prints it, and the bpf programs cannot fault a page in, so a path in one not yet
   * mapped is lost).
   * @default defaultAutoPrefers()
   */
  autoPrefers?: AutoPreference;
  /**
   * Told what the policies put at risk on the chosen source, before the command starts, and what the user should know
   * while it runs.
   */
  onWarning?: (message: string) => void;
  /** seccomp: what the tree gets if idwrap stops supervising it before it ends. @default "kill" */
  onSupervisorLoss?: SupervisorLoss;
}

/** How the command ended, and under which source. */
export interface SourceRunResult {
  source: ChosenSource;
  exitCode: number;
  signal?: string;
  summary: SupervisorSummary;
}

/**
 * What `auto` may pick after kmod: "seccomp"; "hybrid" where the bpf programs load; "bpf" for a run whose policies only
 * observe (no rule or wrapper may deny, kill before the call or rewrite: the bpf source would refuse them), else the
 * hybrid.
 */
export type AutoPreference = "seccomp" | "hybrid" | "bpf";

/** The variable that sets what `auto` picks after kmod (the test suites run on each source through it). */
export const AUTO_SOURCE_VARIABLE = "IDWRAP_AUTO_SOURCE";

/**
 * What IDWRAP_AUTO_SOURCE asks `auto` for, if set; "" counts as unset.
 *
 * @throws Error naming the variable, its value and the values expected
 */
export function autoSourceFromEnv(): AutoPreference | undefined {
  const v = Deno.env.get(AUTO_SOURCE_VARIABLE);
  if (v === undefined || v === "") return undefined;
  if (v !== "seccomp" && v !== "hybrid" && v !== "bpf") {
    throw new Error(
      `${AUTO_SOURCE_VARIABLE}=${v}: expected seccomp, hybrid or bpf (what --source auto picks after kmod)`,
    );
  }
  return v;
}

/**
 * What `auto` picks after kmod: seccomp, unless IDWRAP_AUTO_SOURCE names another. Not the hybrid by default yet
 * (docs/bpf.md, "Choosing the source"): watchers that may only kill late (seq, Com_id) lose the wait that made their
 * kill land before the process got far (a killed imapd exits by itself first), and under the default policy it adds the
 * programs' cost and moves almost nothing to the ring.
 */
export function defaultAutoPrefers(): AutoPreference {
  return autoSourceFromEnv() ?? "seccomp";
}

/**
 * Which source `choice` resolves to, and why. `auto`: the kernel module where /dev/idwrap opens; else, when
 * `autoPrefers` is "hybrid" or "bpf" and this process can load the bpf programs, the hybrid (decided calls wait on
 * seccomp as they would anyway, observed ones never wait: no round trip and no EINTR window for them), or bpf alone when
 * `autoPrefers` is "bpf" and `mayDecide` is empty (what the run's policies need that bpf alone cannot give: what may
 * deny, kill before the call or rewrite, as undecidableOnBpf names it; undefined: not known, as
 * for doctor); else seccomp.
 */
export function resolveSource(
  choice: SourceChoice,
  autoPrefers: AutoPreference = defaultAutoPrefers(),
  mayDecide?: string[],
): { source: ChosenSource; why: string } {
  if (choice === "bpf") return { source: "bpf", why: "asked for (--source bpf): observation only" };
  if (choice === "hybrid") {
    return { source: "hybrid", why: "asked for (--source hybrid): decided calls on seccomp, observed ones on bpf" };
  }
  const chosen = chooseSource(choice);
  if (choice !== "auto" || chosen.source === "kmod") return chosen;
  const problem = hybridProblem();
  if (autoPrefers === "seccomp") {
    return problem ? chosen : {
      ...chosen,
      why: `${chosen.why} (the hybrid can be used here: --source hybrid, or ${AUTO_SOURCE_VARIABLE}=hybrid for auto; ` +
        "docs/bpf.md)",
    };
  }
  if (problem) return { source: "seccomp", why: `${chosen.why}; the hybrid cannot be used (${problem})` };
  const noModule = chosen.why.replace(/: seccomp user-notify$/, "");
  if (autoPrefers === "bpf" && mayDecide?.length === 0) {
    return {
      source: "bpf",
      why:
        `${noModule}; ${AUTO_SOURCE_VARIABLE}=bpf and the policies only observe (no rule or wrapper may deny, kill ` +
        "before the call or rewrite): bpf alone, nothing of the tree waits for idwrap",
    };
  }
  const asked = autoPrefers === "bpf"
    ? `${AUTO_SOURCE_VARIABLE}=bpf, but ${
      mayDecide === undefined
        ? "a run whose policies may deny needs more than bpf"
        : `the policies need more than bpf (${mayDecide.join("; ")})`
    }: `
    : "BPF can be loaded here: ";
  return {
    source: "hybrid",
    why: `${noModule}; ${asked}the hybrid (calls a rule or wrapper may deny wait on seccomp user-notify, calls only ` +
      "observed come through the bpf ring and never wait)",
  };
}

/**
 * What the policies need that bpf alone cannot give (empty: they only observe, and bpf sees all they match), asked only
 * where `auto` may pick bpf: it loads the wrappers to read their declarations. A wrapper that does not load leaves it
 * unknown (the hybrid is picked, and its own load reports the error).
 */
async function mayDecideOnBpf(
  choice: SourceChoice,
  autoPrefers: AutoPreference,
  policies: Policy[],
): Promise<string[] | undefined> {
  if (choice !== "auto" || autoPrefers !== "bpf") return undefined;
  try {
    const wrappers = await loadPolicyWrappers(policies, v8Engine, HYBRID_CAPABILITIES);
    return undecidableOnBpf(policies, wrappers);
  } catch {
    return undefined;
  }
}

/** Runs `command` under the source `choice` resolves to. */
export async function runUnder(
  choice: SourceChoice,
  command: string[],
  options: SourceRunOptions,
): Promise<SourceRunResult> {
  const { onChoice: _, emulateOpens, autoPrefers = defaultAutoPrefers(), ...common } = options;
  const mayDecide = await mayDecideOnBpf(choice, autoPrefers, options.policies);
  const { source, why } = resolveSource(choice, autoPrefers, mayDecide);
  options.onChoice?.(source, why);
  hardenSupervisorProcess();
  switch (source) {
    case "bpf":
      return { source, ...await runUnderBpf(command, common) };
    case "hybrid":
      return { source, ...await runUnderHybrid(command, { ...common, emulateOpens }) };
    case "kmod":
      return { source, ...await runUnderKmod(command, common) };
    case "seccomp":
      return { source, ...await runUnderSeccomp(command, { ...common, emulateOpens, sidecar: KernelNetRun.start }) };
  }
}

/** Parses a --source value. */
export function parseSourceChoice(value: string | undefined): SourceChoice {
  const v = value ?? "auto";
  if (v !== "auto" && v !== "kmod" && v !== "seccomp" && v !== "bpf" && v !== "hybrid") {
    throw new Error(`--source: expected auto, kmod, seccomp, hybrid or bpf, got "${v}"`);
  }
  return v;
}
