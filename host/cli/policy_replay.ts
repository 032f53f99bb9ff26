/**
 * `idwrap policy test FILE|DIR…`: replays each test file's recordings through
 * its policies offline (host/replay/replay_cases.ts) and prints one line per
 * test, and per mismatch the event, the expected and the got. Exit 0 when
 * every test passes, 1 on a mismatch, 2 on a test file, recording or policy
 * that cannot be used.
 *
 * @module
 */
import { relative } from "node:path";
import type { Command } from "commander";
import { PolicyError } from "../policy/policy.ts";
import { type CaseResult, findTestFiles, PolicyTestError, runTestFile } from "../replay/replay_cases.ts";
import { WrapperLoadError } from "../runtime/module.ts";
import { RecordingError } from "../trace/recording.ts";
import { EXIT_FAILED, UsageError } from "./exit.ts";

/** Runs the test files under `paths`; bad input throws a UsageError (exit 2). */
export async function runPolicyTests(paths: string[]): Promise<CaseResult[]> {
  try {
    const files = await findTestFiles(paths);
    if (!files.length) throw new PolicyTestError(`no policy test files (YAML with tests:) in ${paths.join(", ")}`);
    const results: CaseResult[] = [];
    for (const f of files) results.push(...await runTestFile(f));
    return results;
  } catch (e) {
    if (e instanceof PolicyError) throw new UsageError(`invalid policy: ${e.message}`);
    if (e instanceof PolicyTestError || e instanceof RecordingError || e instanceof WrapperLoadError) {
      throw new UsageError(e.message);
    }
    throw e;
  }
}

/** The results as text, one line per test and one per mismatch. */
export function formatResults(results: CaseResult[]): string {
  const lines: string[] = [];
  const rel = (p: string) => p.startsWith("/") ? relative(Deno.cwd(), p) || p : p;
  for (const r of results) {
    const counts = `${r.expectations} expectation${r.expectations === 1 ? "" : "s"}, ${r.events} events`;
    lines.push(`${r.mismatches.length ? "FAIL" : "ok  "} ${rel(r.file)}: ${r.name} (${counts})`);
    for (const m of r.mismatches) {
      const where = m.where.replace(/^(.*)(:\d+)$/, (_, f, l) => rel(f) + l);
      lines.push(`     ${where}: ${m.event ? `${m.event}: ` : ""}expected ${m.expected}, got ${m.got}`);
    }
  }
  const failed = results.filter((r) => r.mismatches.length).length;
  lines.push(`${results.length - failed} passed, ${failed} failed`);
  return lines.join("\n");
}

/** Adds `policy test` to the policy command. */
export function registerPolicyTest(policy: Command): void {
  policy.command("test")
    .description("replay recorded activity (idwrap trace --json, strace -f) through policies; check expected outcomes")
    .option("--json", "print a JSON array of {file, name, events, expectations, mismatches}")
    .argument("<paths...>", "test files, or directories to search for them")
    .action(async (paths: string[], opts: { json?: boolean }) => {
      const results = await runPolicyTests(paths);
      console.log(opts.json ? JSON.stringify(results, null, 2) : formatResults(results));
      Deno.exitCode = results.every((r) => !r.mismatches.length) ? 0 : EXIT_FAILED;
    });
}
