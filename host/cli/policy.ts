/**
 * `idwrap policy check [--json] PATH…`: validate policy files without
 * running anything — each file on its own (loadPolicy, then its wrappers
 * loaded as `run` loads them: read, checked, instrumented, compiled), then
 * the set (wrapper names must be unique across the files, as `run`
 * requires).
 *
 * @module
 */
import type { Command } from "commander";
import { loadPolicy, PolicyError } from "../policy/policy.ts";
import { v8Engine } from "../runtime/engine.ts";
import { loadPolicyWrappers } from "../runtime/load.ts";
import { WrapperLoadError } from "../runtime/module.ts";
import { KMOD_CAPABILITIES } from "../sources/capabilities.ts";
import { EXIT_USAGE } from "./exit.ts";
import { registerPolicyTest } from "./policy_replay.ts";

/** The verdict on one file. */
export interface PolicyCheck {
  file: string;
  ok: boolean;
  /** Why it is refused: the PolicyError's message, or a clash with an earlier file. */
  error?: string;
  /** Counts, when the file parsed. */
  rules?: number;
  wrappers?: number;
}

/** Exit code when some file is invalid (as for a bad policy elsewhere). */

/**
 * Checks policy files in order. A file whose wrapper name an earlier valid file already uses is refused with the
 * message `run` would give.
 */
export async function checkPolicies(files: string[]): Promise<PolicyCheck[]> {
  const seen = new Map<string, string>();
  const out: PolicyCheck[] = [];
  for (const file of files) out.push(await checkOne(file, seen));
  return out;
}

async function checkOne(file: string, seen: Map<string, string>): Promise<PolicyCheck> {
  let policy;
  try {
    policy = loadPolicy(file);
  } catch (e) {
    if (!(e instanceof PolicyError)) throw e;
    return { file, ok: false, error: e.message };
  }
  const counts = { rules: policy.rules.length, wrappers: policy.wrappers.length };
  try {
    // What `run` does next (the capabilities of the source that can do most: what needs more is refused).
    await loadPolicyWrappers([policy], v8Engine, KMOD_CAPABILITIES);
  } catch (e) {
    if (!(e instanceof WrapperLoadError || e instanceof RangeError)) throw e;
    return { file, ok: false, error: `${file}: ${e.message}`, ...counts };
  }
  for (const spec of policy.wrappers) {
    const first = seen.get(spec.name);
    if (first !== undefined) {
      const error = new WrapperLoadError(spec.name, `it is named by both ${first} and ${file}`).message;
      return { file, ok: false, error, ...counts };
    }
  }
  for (const spec of policy.wrappers) seen.set(spec.name, file);
  return { file, ok: true, ...counts };
}

/** Adds `policy check` to the CLI. */
export function registerPolicy(program: Command): void {
  const policy = program.command("policy").description("work with policy files");
  policy.command("check")
    .description("validate policy files: report each one's first error, or its rule and wrapper counts")
    .option("--json", "print a JSON array of {file, ok, error?, rules?, wrappers?}")
    .argument("<paths...>", "policy files")
    .action(async (paths: string[], opts: { json?: boolean }) => {
      const results = await checkPolicies(paths);
      if (opts.json) {
        console.log(JSON.stringify(results, null, 2));
      } else {
        for (const r of results) {
          if (r.ok) console.log(`ok ${r.file} (${plural(r.rules!, "rule")}, ${plural(r.wrappers!, "wrapper")})`);
          else console.error(r.error);
        }
      }
      Deno.exitCode = results.every((r) => r.ok) ? 0 : EXIT_USAGE;
    });
  registerPolicyTest(policy);
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}
