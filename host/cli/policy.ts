/**
 * `idwrap policy check [--json] PATH…`: validate policy files without
 * running anything — each file on its own (loadPolicy, then its wrappers
 * loaded as `run` loads them: read, checked, instrumented, compiled), then
 * the set. Files named on the command line are a set `run -p` loads
 * together: a wrapper name two of them use is an error naming both files
 * and lines. A directory stands for its policy files (*.yaml, *.yml; not
 * *.test.yaml), which are alternatives (seq.yaml or ngram.yaml): each is
 * checked alone, and names they share are reported as a note.
 *
 * @module
 */
import type { Command } from "commander";
import { isMap, isSeq, LineCounter, parseDocument } from "yaml";
import { loadPolicy, PolicyError } from "../policy/policy.ts";
import { v8Engine } from "../runtime/engine.ts";
import { loadPolicyWrappers } from "../runtime/load.ts";
import { WrapperLoadError, WrapperSettingsError } from "../runtime/module.ts";
import { KMOD_CAPABILITIES } from "../sources/capabilities.ts";
import { EXIT_USAGE } from "./exit.ts";
import { registerPolicyTest } from "./policy_replay.ts";

/** The verdict on one file. */
export interface PolicyCheck {
  file: string;
  ok: boolean;
  /** Why it is refused: the PolicyError's message, or a clash with an earlier file. */
  error?: string;
  /** Wrapper names it shares with files it may be loaded with instead (a directory's alternatives). */
  notes?: string[];
  /** Valid but likely holes (a deny's exception by a program's base name): the policy's warnings. */
  warnings?: string[];
  /** Counts, when the file parsed. */
  rules?: number;
  wrappers?: number;
}

/** Exit code when some file is invalid (as for a bad policy elsewhere). */

/**
 * Checks policy files in order. A file whose wrapper name an earlier valid file already uses is refused with the
 * message `run` would give.
 */
export async function checkPolicies(paths: string[]): Promise<PolicyCheck[]> {
  const seen = new Map<string, string>();
  const alternatives = new Map<string, string>();
  const out: PolicyCheck[] = [];
  for (const path of paths) {
    const dir = policyFilesIn(path);
    if (dir === undefined) out.push(await checkOne(path, seen));
    else {
      // Alternatives: each alone, against the files given as a set, noting names shared within the directory.
      for (const file of dir) {
        const r = await checkOne(file, new Map(seen));
        if (r.ok) {
          for (const [name, line] of wrapperLines(file)) {
            const first = alternatives.get(name);
            const here = `${file}:${line}`;
            if (first !== undefined) {
              (r.notes ??= []).push(
                `wrapper "${name}" at ${here} is also named at ${first}: these files cannot be loaded together`,
              );
            } else alternatives.set(name, here);
          }
        }
        out.push(r);
      }
    }
  }
  return out;
}

/** A directory's policy files, sorted; undefined when `path` is not a directory. */
function policyFilesIn(path: string): string[] | undefined {
  try {
    if (!Deno.statSync(path).isDirectory) return undefined;
  } catch {
    return undefined;
  }
  const files: string[] = [];
  for (const e of Deno.readDirSync(path)) {
    if (e.isFile && /\.ya?ml$/.test(e.name) && !/\.test\.ya?ml$/.test(e.name)) files.push(e.name);
  }
  return files.sort().map((f) => `${path.replace(/\/+$/, "")}/${f}`);
}

/** The line of each wrapper entry of a (valid) policy file, by the wrapper's name. */
export function wrapperLines(file: string): Map<string, number> {
  const out = new Map<string, number>();
  const lines = new LineCounter();
  const doc = parseDocument(Deno.readTextFileSync(file), { lineCounter: lines });
  const wrappers = isMap(doc.contents) ? doc.get("wrappers", true) : undefined;
  if (!isSeq(wrappers)) return out;
  for (const item of wrappers.items) {
    const node = item as { range?: [number]; toJSON?: () => unknown };
    const value = (item as { toJSON(): unknown }).toJSON();
    const w = value as string | { name?: string; module?: string };
    const name = typeof w === "string"
      ? w
      : w.name ?? (typeof w.module === "string" ? w.module.replace(/^.*\//, "").replace(/\.wasm$/, "") : undefined);
    if (name && node.range && !out.has(name)) out.set(name, lines.linePos(node.range[0]).line);
  }
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
  const counts = {
    rules: policy.rules.length,
    wrappers: policy.wrappers.length,
    ...(policy.warnings ? { warnings: policy.warnings } : {}),
  };
  let modules;
  try {
    // What `run` does next (the capabilities of the source that can do most: what needs more is refused).
    modules = await loadPolicyWrappers([policy], v8Engine, KMOD_CAPABILITIES);
  } catch (e) {
    if (!(e instanceof WrapperLoadError || e instanceof RangeError)) throw e;
    // A settings error names the file and line itself.
    return {
      file,
      ok: false,
      error: e instanceof WrapperSettingsError ? e.message : `${file}: ${e.message}`,
      ...counts,
    };
  }
  const lines = wrapperLines(file);
  const unchecked = modules.filter((m) => m.settings === undefined).map((m) =>
    `wrapper "${m.spec.name}" at ${file}:${lines.get(m.spec.name) ?? 1} was built for hook ABI 1.${m.abiMinor}, ` +
    "which declares no settings schema: its settings are not checked"
  );

  for (const spec of policy.wrappers) {
    const first = seen.get(spec.name);
    if (first !== undefined) {
      const here = `${file}:${lines.get(spec.name) ?? 1}`;
      const error = new WrapperLoadError(spec.name, `it is named by both ${first} and ${here}`).message;
      return { file, ok: false, error, ...counts };
    }
  }
  for (const spec of policy.wrappers) seen.set(spec.name, `${file}:${lines.get(spec.name) ?? 1}`);
  return { file, ok: true, ...counts, ...(unchecked.length ? { notes: unchecked } : {}) };
}

/** Adds `policy check` to the CLI. */
export function registerPolicy(program: Command): void {
  const policy = program.command("policy").description("work with policy files");
  policy.command("check")
    .description(
      "validate policy files (and directories of them): report each one's first error, or its rule and wrapper counts",
    )
    .option("--json", "print a JSON array of {file, ok, error?, notes?, warnings?, rules?, wrappers?}")
    .argument("<paths...>", "policy files (a set, as run -p loads them) or directories (of alternatives)")
    .action(async (paths: string[], opts: { json?: boolean }) => {
      const results = await checkPolicies(paths);
      if (opts.json) {
        console.log(JSON.stringify(results, null, 2));
      } else {
        for (const r of results) {
          if (r.ok) console.log(`ok ${r.file} (${plural(r.rules!, "rule")}, ${plural(r.wrappers!, "wrapper")})`);
          else console.error(r.error);
          for (const note of r.notes ?? []) console.log(`note: ${note}`);
          for (const warning of r.warnings ?? []) console.error(`warning: ${warning}`);
        }
      }
      Deno.exitCode = results.every((r) => r.ok) ? 0 : EXIT_USAGE;
    });
  registerPolicyTest(policy);
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}
