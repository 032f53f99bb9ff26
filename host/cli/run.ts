/**
 * `idwrap run [--policy FILE]… -- CMD…`: run a command under policies and
 * report what they flagged.
 *
 * @module
 */
import type { Command } from "commander";
import { fileURLToPath as fromFileUrl } from "node:url";
import { loadPolicy } from "../policy/policy.ts";
import { runUnderSeccomp } from "../sources/seccomp/source.ts";

/** The policy `run` uses when none is given. */
export const DEFAULT_POLICY = fromFileUrl(new URL("../../policies/default.yaml", import.meta.url));

/** Options of `idwrap run`. */
export interface RunCliOptions {
  policy?: string[];
  json?: boolean;
  output?: string;
  verbose?: boolean;
}

/** Adds the run command to the CLI. */
export function registerRun(program: Command): void {
  program.command("run")
    .description("run a command under policies; report denials, kills, alerts and process lifecycle")
    .option("-p, --policy <file>", "a policy file (repeatable)", (v: string, acc: string[] = []) => [...acc, v])
    .option("--json", "report as JSON lines")
    .option("-o, --output <file>", "write the report to a file instead of standard error")
    .option("-v, --verbose", "report every notified call, not only the notable ones")
    .argument("<command...>", "the command to run, after --")
    .action(async (command: string[], opts: RunCliOptions) => {
      const policies = (opts.policy ?? [DEFAULT_POLICY]).map(loadPolicy);
      const result = await runUnderSeccomp(command, {
        policies,
        trace: {
          format: opts.json ? "json" : "text",
          output: opts.output,
          allSyscalls: !!opts.verbose,
          notableOnly: !opts.verbose,
        },
      });
      const s = result.summary;
      if (!opts.json) {
        console.error(
          `idwrap: ${command[0]} exited ${result.signal ? `on ${result.signal}` : `with ${result.exitCode}`}; ` +
            `${s.notifications} calls notified, ${s.denied} denied, ${s.killed} killed, ${s.emulated} opens emulated`,
        );
      }
      Deno.exitCode = result.exitCode;
    });
}
