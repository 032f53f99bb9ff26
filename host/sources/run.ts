/**
 * Runs a command under the chosen event source (`--source auto|kmod|seccomp|bpf`):
 * one entry point for `idwrap run`, `idwrap trace` and `idwrap doctor`. `auto`
 * never chooses bpf: it only observes (docs/bpf.md, "Choosing the source").
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
import { runUnderBpf } from "./bpf/supervise.ts";
import { runUnderHybrid } from "./bpf/hybrid_run.ts";

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
   * Told what the policies put at risk on the chosen source, before the command starts, and what the user should know
   * while it runs.
   */
  onWarning?: (message: string) => void;
}

/** How the command ended, and under which source. */
export interface SourceRunResult {
  source: ChosenSource;
  exitCode: number;
  signal?: string;
  summary: SupervisorSummary;
}

/** Runs `command` under the source `choice` resolves to. */
export async function runUnder(
  choice: SourceChoice,
  command: string[],
  options: SourceRunOptions,
): Promise<SourceRunResult> {
  const { onChoice: _, emulateOpens, ...common } = options;
  if (choice === "bpf") {
    options.onChoice?.("bpf", "asked for (--source bpf): observation only");
    hardenSupervisorProcess();
    return { source: "bpf", ...await runUnderBpf(command, common) };
  }
  if (choice === "hybrid") {
    options.onChoice?.("hybrid", "asked for (--source hybrid): decided calls on seccomp, observed ones on bpf");
    hardenSupervisorProcess();
    return { source: "hybrid", ...await runUnderHybrid(command, { ...common, emulateOpens }) };
  }
  const { source, why } = chooseSource(choice);
  options.onChoice?.(source, why);
  hardenSupervisorProcess();
  if (source === "kmod") return { source, ...await runUnderKmod(command, common) };
  return { source, ...await runUnderSeccomp(command, { ...common, emulateOpens }) };
}

/** Parses a --source value. */
export function parseSourceChoice(value: string | undefined): SourceChoice {
  const v = value ?? "auto";
  if (v !== "auto" && v !== "kmod" && v !== "seccomp" && v !== "bpf" && v !== "hybrid") {
    throw new Error(`--source: expected auto, kmod, seccomp, hybrid or bpf, got "${v}"`);
  }
  return v;
}
