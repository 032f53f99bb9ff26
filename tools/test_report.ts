/**
 * Reads the JUnit report of `deno test` (build/test-report.xml) and says what
 * ran: every skipped test with its reason, and a plain closing line
 * "N passed, N failed, N skipped". A skip that `.ci/allowed-skips.yaml` does
 * not list (a test CI is expected to run) fails the run: a missing install
 * step must not pass as a green build.
 *
 *   deno run --allow-read tools/test_report.ts REPORT.xml ALLOWED.yaml
 *
 * Exit status: 0 when every skip is allowed, 1 otherwise, 2 on bad input.
 *
 * @module
 */
import { XMLParser } from "fast-xml-parser";
import { parse as parseYaml } from "yaml";

/** One test case of the report. */
export interface TestCase {
  file: string;
  name: string;
  outcome: "passed" | "failed" | "skipped";
}

/** A skip CI accepts, with why. */
export interface AllowedSkip {
  /** The test file, as Deno names it (`./tests/…_test.ts`). */
  file: string;
  /** A regular expression the test's name must match (steps: "test > step"). */
  test: string;
  reason: string;
}

/** The test cases of a JUnit report written by `deno test --junit-path`. */
export function readReport(xml: string): TestCase[] {
  type Node = Record<string, unknown>;
  const doc = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: "" }).parse(xml);
  const suites = [doc.testsuites?.testsuite ?? []].flat() as Node[];
  return suites.flatMap((suite) =>
    ([suite.testcase ?? []].flat() as Node[]).map((c): TestCase => ({
      file: String(c.classname ?? suite.name),
      name: String(c.name),
      outcome: "failure" in c || "error" in c ? "failed" : "skipped" in c ? "skipped" : "passed",
    }))
  );
}

/** Parses the allowed-skips file; throws naming the entry and field that is wrong. */
export function readAllowed(text: string, path: string): AllowedSkip[] {
  const list = parseYaml(text) ?? [];
  if (!Array.isArray(list)) throw new Error(`${path}: expected a list of {file, test, reason}`);
  return list.map((e, i) => {
    for (const field of ["file", "test", "reason"]) {
      if (typeof e?.[field] !== "string" || e[field] === "") {
        throw new Error(`${path}: entry ${i}: ${field}: expected a non-empty string`);
      }
    }
    new RegExp(e.test); // a bad pattern fails here, with the entry's text in the message
    return { file: e.file, test: e.test, reason: e.reason };
  });
}

/** The allowed entry covering a skipped case, if any. */
export function allowance(c: TestCase, allowed: AllowedSkip[]): AllowedSkip | undefined {
  return allowed.find((a) => a.file === c.file && new RegExp(a.test).test(c.name));
}

if (import.meta.main) {
  const [reportPath, allowedPath] = Deno.args;
  if (!reportPath || !allowedPath) {
    console.error("usage: test_report.ts REPORT.xml ALLOWED.yaml");
    Deno.exit(2);
  }
  let cases: TestCase[], allowed: AllowedSkip[];
  try {
    cases = readReport(Deno.readTextFileSync(reportPath));
    allowed = readAllowed(Deno.readTextFileSync(allowedPath), allowedPath);
  } catch (e) {
    console.error(`test_report: ${(e as Error).message}`);
    Deno.exit(2);
  }
  const count = (o: TestCase["outcome"]) => cases.filter((c) => c.outcome === o).length;
  let unexpected = 0;
  for (const c of cases.filter((c) => c.outcome === "skipped")) {
    const a = allowance(c, allowed);
    if (a) console.log(`skipped: ${c.file} › ${c.name} — ${a.reason}`);
    else {
      unexpected++;
      console.log(`UNEXPECTED SKIP: ${c.file} › ${c.name} — not in ${allowedPath}: install what it needs`);
    }
  }
  console.log(`${count("passed")} passed, ${count("failed")} failed, ${count("skipped")} skipped`);
  if (unexpected) console.log(`${unexpected} unexpected skip(s): failing the run`);
  Deno.exit(unexpected ? 1 : 0);
}
