/**
 * `idwrap trace [--json] [-o FILE] [-e LIST] -- CMD…`: print every notified
 * call of a command's tree, one per line.
 *
 * @module
 */
import type { Command } from "commander";
import type { Policy } from "../policy/policy.ts";
import { resolveSyscalls } from "../syscalls/mod.ts";
import { BpfRefusal, parseSourceChoice, runUnder } from "../sources/run.ts";
import { parseArgument, UsageError } from "./exit.ts";

/** Options of `idwrap trace`. */
export interface TraceCliOptions {
  json?: boolean;
  output?: string;
  syscalls: string;
  emulate: boolean;
  source?: string;
  verbose?: boolean;
}

/** Adds the trace command to the CLI. */
export function registerTrace(program: Command): void {
  program.command("trace")
    .description("run a command and print every notified system call of its process tree")
    .option("--json", "one JSON object per line")
    .option("-o, --output <file>", "write the trace to a file instead of standard error")
    .option("-e, --syscalls <list>", "comma-separated syscalls or %groups to notify", "%file,%process,%net")
    .option("--no-emulate", "seccomp: let the kernel run open calls instead of the supervisor (no post results)")
    .option(
      "--source <source>",
      "the event source: auto (the kernel module if loaded, else seccomp), kmod, seccomp, hybrid (root) or bpf " +
        "(root)",
      "auto",
    )
    .option("-v, --verbose", "say which event source was chosen and why")
    .argument("<command...>", "the command to run, after --")
    .action(async (command: string[], opts: TraceCliOptions) => {
      const observe = opts.syscalls.split(",").map((s) => s.trim()).filter(Boolean);
      parseArgument(() => resolveSyscalls(observe), `-e ${opts.syscalls}: `); // unknown names fail before anything runs
      const policy: Policy = { name: "trace", file: "(command line)", observe, rules: [], wrappers: [] };
      const result = await runUnder(parseArgument(() => parseSourceChoice(opts.source)), command, {
        policies: [policy],
        trace: { format: opts.json ? "json" : "text", output: opts.output },
        emulateOpens: opts.emulate,
        // auto: not the hybrid, whose ring cannot fault in a path strace would print (docs/bpf.md).
        autoPrefers: "seccomp",
        onChoice: (source, why) => opts.verbose && console.error(`idwrap: event source ${source}: ${why}`),
      }).catch((e) => {
        // Refused before the command started (who runs idwrap): bad usage, exit 2.
        throw e instanceof BpfRefusal ? new UsageError(e.message) : e;
      });
      Deno.exitCode = result.exitCode;
    });
}
