/**
 * Policy test files (`idwrap policy test`, docs/policy.md "Testing a
 * policy"): a YAML file names policies and, per test, a recording and the
 * outcomes expected of its events. Every test is replayed (./replay.ts) and
 * each expectation checked; by default anything else that fired (a verdict
 * other than allow, an alert, a wrapper fault) is a mismatch too.
 *
 * ```yaml
 * policies: [../default.yaml]          # relative to this file
 * tests:
 *   - name: cat of /etc/shadow is a credential read
 *     recording: recordings/cat-shadow.jsonl   # idwrap trace --json (or strace -f output: format: strace)
 *     expect:
 *       - call: {syscall: openat, path: /etc/shadow}
 *         alert: [credential-read, baseline.credential-read]
 *       - exec: {exe: /usr/bin/cat}
 *         nothing: true
 *     others: nothing                  # or any: do not check events no expectation names
 * ```
 *
 * @module
 */
import { dirname, join, resolve } from "node:path";
import picomatch from "picomatch";
import { isMap, LineCounter, parseDocument } from "yaml";
import { errnoNumber } from "../errno.ts";
import type { LifecycleEvent, SyscallEvent } from "../events.ts";
import { readRecording, type RecordingFormat } from "../trace/recording.ts";
import { syscallNumber } from "../syscalls/mod.ts";
import { loadPolicy, type Policy } from "../policy/policy.ts";
import { fired, type Outcome, replay } from "./replay.ts";

/** A test file that cannot be used: file, line, field and what was expected. */
export class PolicyTestError extends Error {}

/** Which recorded events an expectation is about. */
export interface Selector {
  kind: "call" | "spawn" | "exec" | "exit";
  syscall?: string;
  /** The decoded path (as recorded: resolved where the source resolves); a glob where it has *, ?, { or [. */
  path?: string;
  /** The program's executable (glob as `path`). */
  exe?: string;
  pid?: number;
  phase?: "pre" | "post";
}

/** What is expected of the events a selector names. */
export interface Expectation {
  line: number;
  select: Selector;
  alerts: string[];
  /** "allow", "deny" (any errno), "deny EACCES", "kill". */
  verdict: string;
  /** How many recorded events it must name, where given. */
  count?: number;
  /** `nothing: true`: no alert at all, whatever `others` says. */
  nothing: boolean;
}

/** One test of a file. */
export interface PolicyTestCase {
  name: string;
  line: number;
  recording: string;
  format?: RecordingFormat;
  expect: Expectation[];
  others: "nothing" | "any";
}

/** A parsed test file. */
export interface PolicyTestFile {
  file: string;
  policies: string[];
  tests: PolicyTestCase[];
}

/** One mismatch, readable. */
export interface Mismatch {
  /** "recording:line" of the event, or the test file's line of the expectation. */
  where: string;
  event?: string;
  expected: string;
  got: string;
}

/** The result of one test. */
export interface CaseResult {
  file: string;
  name: string;
  events: number;
  expectations: number;
  mismatches: Mismatch[];
}

/** Parses a test file; `undefined` when `optional` and the YAML, valid, has no `tests` (a policy file met in a directory). */
export function parseTestFile(text: string, file: string, optional = false): PolicyTestFile | undefined {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  if (doc.errors.length) {
    // Even met in a directory: a test file that does not parse must not pass by being skipped.
    throw new PolicyTestError(
      `${file}:${lines.linePos(doc.errors[0].pos[0]).line}: (syntax): ${doc.errors[0].message}`,
    );
  }
  const lineOf = (path: (string | number)[]): number => {
    for (let p = path;; p = p.slice(0, -1)) {
      const node = (p.length ? doc.getIn(p, true) : doc.contents) as { range?: [number] } | undefined;
      if (node?.range) return lines.linePos(node.range[0]).line;
      if (p.length === 0) return 1;
    }
  };
  const fail = (path: (string | number)[], detail: string): never => {
    const field = path.map((p) => typeof p === "number" ? `[${p}]` : `.${p}`).join("").replace(/^\./, "") ||
      "(document)";
    throw new PolicyTestError(`${file}:${lineOf(path)}: ${field}: ${detail}`);
  };
  const root = isMap(doc.contents) ? doc.toJS() as Record<string, unknown> : undefined;
  if (!root || !("tests" in root)) {
    if (optional) return undefined;
    return fail([], "expected a mapping with policies and tests");
  }
  unknownKeys(root, ["policies", "tests"], [], fail);
  const policies = typeof root.policies === "string" ? [root.policies] : root.policies;
  if (!Array.isArray(policies) || !policies.length || !policies.every((p) => typeof p === "string")) {
    fail(["policies"], "expected a policy file or a list of them (relative to this file)");
  }
  if (!Array.isArray(root.tests) || !root.tests.length) fail(["tests"], "expected a list of tests");
  const here = dirname(file);
  const tests = (root.tests as unknown[]).map((raw, i): PolicyTestCase => {
    const at = ["tests", i];
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
      fail(at, "expected a mapping with name, recording and expect");
    }
    const t = raw as Record<string, unknown>;
    unknownKeys(t, ["name", "recording", "format", "expect", "others"], at, fail);
    if (typeof t.name !== "string" || !t.name) fail([...at, "name"], "expected a name");
    if (typeof t.recording !== "string") fail([...at, "recording"], "expected a recording file (idwrap trace --json)");
    if (t.format !== undefined && t.format !== "json" && t.format !== "strace") {
      fail([...at, "format"], `expected json or strace, got ${JSON.stringify(t.format)}`);
    }
    if (t.others !== undefined && t.others !== "nothing" && t.others !== "any") {
      fail([...at, "others"], `expected nothing or any, got ${JSON.stringify(t.others)}`);
    }
    if (!Array.isArray(t.expect)) fail([...at, "expect"], "expected a list of expectations");
    return {
      name: t.name as string,
      line: lineOf(at),
      recording: resolve(here, t.recording as string),
      format: t.format as RecordingFormat | undefined,
      expect: (t.expect as unknown[]).map((e, j) => expectation(e, [...at, "expect", j], lineOf, fail)),
      others: (t.others as "nothing" | "any" | undefined) ?? "nothing",
    };
  });
  return { file, policies: (policies as string[]).map((p) => resolve(here, p)), tests };
}

type Fail = (path: (string | number)[], detail: string) => never;

function unknownKeys(o: Record<string, unknown>, known: string[], at: (string | number)[], fail: Fail): void {
  for (const k of Object.keys(o)) {
    if (!known.includes(k)) fail([...at, k], `unknown field; expected ${known.join(", ")}`);
  }
}

const SELECTOR_KINDS = ["call", "spawn", "exec", "exit"] as const;

function expectation(
  raw: unknown,
  at: (string | number)[],
  lineOf: (p: (string | number)[]) => number,
  fail: Fail,
): Expectation {
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    fail(at, "expected a mapping: call/spawn/exec/exit, then alert, deny, kill or nothing");
  }
  const e = raw as Record<string, unknown>;
  unknownKeys(e, [...SELECTOR_KINDS, "alert", "deny", "kill", "nothing", "count"], at, fail);
  const kinds = SELECTOR_KINDS.filter((k) => k in e);
  if (kinds.length !== 1) fail(at, "expected exactly one of call, spawn, exec, exit (which events)");
  const kind = kinds[0];
  const s = e[kind];
  if (typeof s !== "object" || s === null || Array.isArray(s)) fail([...at, kind], "expected a mapping of fields");
  const sel = s as Record<string, unknown>;
  unknownKeys(sel, ["syscall", "path", "exe", "pid", "phase"], [...at, kind], fail);
  if (sel.syscall !== undefined && (typeof sel.syscall !== "string" || syscallNumber(sel.syscall) === undefined)) {
    fail([...at, kind, "syscall"], `expected an x86_64 system call name, got ${JSON.stringify(sel.syscall)}`);
  }
  for (const f of ["path", "exe"]) {
    if (sel[f] !== undefined && typeof sel[f] !== "string") fail([...at, kind, f], "expected a path or a glob");
  }
  if (sel.pid !== undefined && !Number.isInteger(sel.pid)) fail([...at, kind, "pid"], "expected an integer");
  if (sel.phase !== undefined && sel.phase !== "pre" && sel.phase !== "post") {
    fail([...at, kind, "phase"], "expected pre or post");
  }
  const alerts = e.alert === undefined ? [] : Array.isArray(e.alert) ? e.alert : [e.alert];
  if (!alerts.every((a) => typeof a === "string" && a)) fail([...at, "alert"], "expected an alert id or a list");
  let verdict = "allow";
  if (e.deny !== undefined) {
    if (e.deny === true) verdict = "deny";
    else if (typeof e.deny === "string" && errnoNumber(e.deny) !== undefined) verdict = `deny ${e.deny}`;
    else fail([...at, "deny"], `expected true or an errno name (EACCES), got ${JSON.stringify(e.deny)}`);
  }
  if (e.kill !== undefined) {
    if (e.kill !== true) fail([...at, "kill"], "expected true");
    if (verdict !== "allow") fail([...at, "kill"], "expected deny or kill, not both");
    verdict = "kill";
  }
  if (e.nothing !== undefined && (e.nothing !== true || alerts.length || verdict !== "allow")) {
    fail([...at, "nothing"], "expected true, and no alert, deny or kill beside it");
  }
  if (!alerts.length && verdict === "allow" && e.nothing === undefined) {
    fail(at, "expected an outcome: alert, deny, kill, or nothing: true");
  }
  if (e.count !== undefined && (!Number.isInteger(e.count) || (e.count as number) < 0)) {
    fail([...at, "count"], "expected a whole number of events");
  }
  return {
    line: lineOf(at),
    select: { kind, ...sel } as Selector,
    alerts: alerts as string[],
    verdict,
    count: e.count as number | undefined,
    nothing: e.nothing === true,
  };
}

/** Whether a recorded event is one a selector names. */
export function selects(s: Selector, e: SyscallEvent | LifecycleEvent): boolean {
  if (s.kind === "call" ? e.kind !== "syscall" : e.kind !== s.kind) return false;
  if (s.pid !== undefined && e.pid !== s.pid) return false;
  if (s.exe !== undefined && !globMatch(s.exe, e.program.exe)) return false;
  if (e.kind !== "syscall") return s.syscall === undefined && s.path === undefined && s.phase === undefined;
  if (s.syscall !== undefined && e.syscall !== s.syscall) return false;
  if (s.phase !== undefined && e.phase !== s.phase) return false;
  if (s.path !== undefined) {
    const paths = [e.decoded.path, e.decoded.rawPath].filter((p): p is string => p !== undefined);
    if (!paths.some((p) => globMatch(s.path!, p))) return false;
  }
  return true;
}

function globMatch(pattern: string, value: string): boolean {
  return /[*?{[]/.test(pattern) ? picomatch.isMatch(value, pattern, { dot: true }) : pattern === value;
}

/**
 * Whether an expected alert id names a got alert: a rule's id as is; a wrapper's alert ("wrapper: message") by the
 * wrapper's name, or by the id its message starts with ("baseline.credential-read: …").
 */
export function alertMatches(expected: string, got: string): boolean {
  if (got === expected || got.startsWith(`${expected}:`)) return true;
  const colon = got.indexOf(": ");
  if (colon < 0) return false;
  const message = got.slice(colon + 2);
  return message === expected || message.startsWith(`${expected}:`);
}

/** Checks a test's outcomes against its expectations. */
export function check(test: PolicyTestCase, file: string, outcomes: Outcome[]): Mismatch[] {
  const out: Mismatch[] = [];
  const covered = new Set<number>();
  for (const x of test.expect) {
    // A call recorded before and with its result is one call (its pre event's outcome has both), unless the
    // expectation names a phase.
    const named = outcomes.filter((o) =>
      !o.skipped && selects(x.select, o.recorded) && (o.resultOf === undefined || x.select.phase !== undefined)
    );
    if (x.count !== undefined && named.length !== x.count) {
      out.push({
        where: `${file}:${x.line}`,
        expected: `${x.count} event(s) named by ${describeSelector(x.select)}`,
        got: `${named.length}${named.length ? ` (${named.map(whereOf).join(", ")})` : ""}`,
      });
    } else if (!named.length) {
      out.push({
        where: `${file}:${x.line}`,
        expected: `an event named by ${describeSelector(x.select)}`,
        got: "none",
      });
    }
    for (const o of named) {
      covered.add(o.index);
      const verdictOk = x.verdict === "deny" ? o.verdict.startsWith("deny") : o.verdict === x.verdict;
      const missing = x.alerts.filter((a) => !o.alerts.some((g) => alertMatches(a, g)));
      const extra = test.others === "nothing" || x.nothing
        ? o.alerts.filter((g) => !x.alerts.some((a) => alertMatches(a, g)))
        : [];
      if (verdictOk && !missing.length && !extra.length && !o.faults.length) continue;
      out.push({
        where: whereOf(o),
        event: describeOutcome(o),
        expected: describeExpected(x),
        got: describeGot(o),
      });
    }
  }
  if (test.others === "nothing") {
    for (const o of outcomes) {
      if (covered.has(o.index) || !fired(o)) continue;
      out.push({ where: whereOf(o), event: describeOutcome(o), expected: "nothing", got: describeGot(o) });
    }
  } else {
    // Faults are never "any": a wrapper that fails is a broken test.
    for (const o of outcomes) {
      if (!covered.has(o.index) && o.faults.length) {
        out.push({ where: whereOf(o), event: describeOutcome(o), expected: "no fault", got: describeGot(o) });
      }
    }
  }
  return out;

  function whereOf(o: Outcome): string {
    return `${test.recording}:${o.line}`;
  }
}

function describeSelector(s: Selector): string {
  const fields = Object.entries(s).filter(([k]) => k !== "kind").map(([k, v]) => `${k}: ${JSON.stringify(v)}`);
  return `${s.kind} {${fields.join(", ")}}`;
}

function describeExpected(x: Expectation): string {
  const parts = x.verdict === "allow" ? [] : [x.verdict];
  if (x.alerts.length) parts.push(`alert ${x.alerts.join(", ")}`);
  return parts.join(" + ") || "nothing";
}

function describeGot(o: Outcome): string {
  const parts = o.verdict === "allow" ? [] : [`${o.verdict}${o.rules.length ? ` (rule ${o.rules.join(", ")})` : ""}`];
  if (o.alerts.length) parts.push(`alert ${o.alerts.join(" | ")}`);
  if (o.faults.length) parts.push(`fault ${o.faults.join(" | ")}`);
  return parts.join(" + ") || "nothing";
}

/** A recorded event in a line, with its recorded result: `1179 openat "/etc/shadow" = 3 (/usr/bin/cat)`. */
export function describeOutcome(o: Outcome): string {
  const e = o.recorded;
  if (e.kind !== "syscall") return `${e.pid} +++ ${e.kind} ${e.program.exe || "?"}`;
  const what = e.decoded.path !== undefined ? ` ${JSON.stringify(e.decoded.path)}` : "";
  const result = e.phase === "post" ? { ret: e.ret ?? 0, errno: e.errno } : o.result;
  const ret = result ? ` = ${result.ret}${result.errno ? ` ${result.errno}` : ""}` : "";
  return `${e.pid} ${e.syscall}${what}${ret} (${e.program.exe || "?"})`;
}

/** Test files among paths: files as given; in a directory, every *.yaml/*.yml below it that has `tests`. */
export async function findTestFiles(paths: string[]): Promise<PolicyTestFile[]> {
  const out: PolicyTestFile[] = [];
  for (const path of paths) {
    let stat: Deno.FileInfo;
    try {
      stat = await Deno.stat(path);
    } catch (e) {
      throw new PolicyTestError(`${path}: cannot read: ${(e as Error).message}`);
    }
    if (!stat.isDirectory) {
      out.push(parseTestFile(await Deno.readTextFile(path), path)!);
      continue;
    }
    for (const file of (await walkYaml(path)).sort()) {
      const t = parseTestFile(await Deno.readTextFile(file), file, true);
      if (t) out.push(t);
    }
  }
  return out;
}

async function walkYaml(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) out.push(...await walkYaml(path));
    else if (/\.ya?ml$/.test(entry.name)) out.push(path);
  }
  return out;
}

/** Runs every test of a file (its policies loaded once, each test's recording replayed). */
export async function runTestFile(t: PolicyTestFile): Promise<CaseResult[]> {
  const policies: Policy[] = t.policies.map((p) => loadPolicy(p));
  const results: CaseResult[] = [];
  for (const test of t.tests) {
    const events = await readRecording(test.recording, test.format);
    const outcomes = await replay(policies, events);
    results.push({
      file: t.file,
      name: test.name,
      events: events.length,
      expectations: test.expect.length,
      mismatches: check(test, t.file, outcomes),
    });
  }
  return results;
}
