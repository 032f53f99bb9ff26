/**
 * Runs a command under the chosen event source (`--source auto|kmod|seccomp|hybrid|bpf`):
 * one entry point for `idwrap run`, `idwrap trace` and `idwrap doctor`. `auto`
 * chooses kmod, else seccomp (the hybrid with IDWRAP_AUTO_HYBRID=1); never bpf
 * alone: it only observes (docs/bpf.md, "Choosing the source").
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
   * What `auto` may choose besides kmod: "hybrid" or "seccomp" only (idwrap trace, which promises every path as strace
   * prints it: the bpf programs cannot fault a page in, so a path in one not yet mapped is lost).
   * @default defaultAutoPrefers()
   */
  autoPrefers?: "hybrid" | "seccomp";
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
 * What `auto` picks after kmod: seccomp, unless IDWRAP_AUTO_HYBRID=1 asks for the hybrid where it can be used. Not the
 * hybrid by default yet (docs/bpf.md, "Choosing the source"): watchers that may only kill late (seq, Com_id) lose the
 * wait that made their kill land before the process got far (a killed imapd exits by itself first), and under the
 * default policy it adds the programs' cost and moves almost nothing to the ring.
 */
export function defaultAutoPrefers(): "hybrid" | "seccomp" {
  return Deno.env.get("IDWRAP_AUTO_HYBRID") === "1" ? "hybrid" : "seccomp";
}

/**
 * Which source `choice` resolves to, and why. `auto`: the kernel module where /dev/idwrap opens; else, when
 * `autoPrefers` is "hybrid" and this process can load the bpf programs, the hybrid (decided calls wait on seccomp as
 * they would anyway, observed ones never wait: no round trip and no EINTR window for them); else seccomp. bpf alone is
 * never chosen: it cannot deny.
 */
export function resolveSource(
  choice: SourceChoice,
  autoPrefers: "hybrid" | "seccomp" = defaultAutoPrefers(),
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
      why:
        `${chosen.why} (the hybrid can be used here: --source hybrid, or IDWRAP_AUTO_HYBRID=1 for auto; docs/bpf.md)`,
    };
  }
  if (problem) return { source: "seccomp", why: `${chosen.why}; the hybrid cannot be used (${problem})` };
  return {
    source: "hybrid",
    why: `${chosen.why.replace(/: seccomp user-notify$/, "")}; BPF can be loaded here: the hybrid (calls a rule or ` +
      "wrapper may deny wait on seccomp user-notify, calls only observed come through the bpf ring and never wait)",
  };
}

/** Runs `command` under the source `choice` resolves to. */
export async function runUnder(
  choice: SourceChoice,
  command: string[],
  options: SourceRunOptions,
): Promise<SourceRunResult> {
  const { onChoice: _, emulateOpens, autoPrefers, ...common } = options;
  const { source, why } = resolveSource(choice, autoPrefers);
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
