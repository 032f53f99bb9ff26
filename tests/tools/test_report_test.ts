/**
 * tools/test_report.ts on a real report: `deno test --junit-path` of a
 * fixture with a pass, a skip, a skipped step and a failure.
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert, throws as assertThrows } from "node:assert/strict";
import { allowance, readAllowed, readReport } from "../../tools/test_report.ts";
import { ROOT } from "../helpers.ts";

const dir = await scratchDir({ prefix: "idwrap-report-" });
const report = `${dir}/report.xml`;
await new Deno.Command(`${ROOT}node_modules/.bin/deno`, {
  args: ["test", `--junit-path=${report}`, "tests/tools/fixtures/skips_fixture.ts"],
  cwd: ROOT,
  stdout: "null",
  stderr: "null",
}).output();
const FILE = "./tests/tools/fixtures/skips_fixture.ts";

Deno.test("readReport() finds passes, failures, skipped tests and skipped steps", async () => {
  const cases = readReport(await Deno.readTextFile(report));
  assertEquals(
    cases.map((c) => [c.file, c.name, c.outcome]).sort(),
    [
      [FILE, "passes", "passed"],
      [FILE, "skipped for a reason", "skipped"],
      [FILE, "has a step", "passed"],
      [FILE, "has a step > skipped step", "skipped"],
      [FILE, "fails", "failed"],
    ].sort(),
  );
});

Deno.test("allowance() matches file and name; an unlisted skip has none", async () => {
  const allowed = readAllowed(`- { file: "${FILE}", test: "^skipped for", reason: "why" }\n`, "a.yaml");
  const cases = readReport(await Deno.readTextFile(report));
  const skipped = cases.find((c) => c.name === "skipped for a reason")!;
  const step = cases.find((c) => c.name === "has a step > skipped step")!;
  assertEquals(allowance(skipped, allowed)?.reason, "why");
  assertEquals(allowance(step, allowed), undefined);
  assertEquals(allowance({ ...skipped, file: "./other_test.ts" }, allowed), undefined);
});

Deno.test("readAllowed() names the entry and field that is wrong", () => {
  assertThrows(
    () => readAllowed(`- { file: x, test: y }\n`, "a.yaml"),
    /a\.yaml: entry 0: reason: expected a non-empty string/,
  );
  assertThrows(() => readAllowed(`file: x\n`, "a.yaml"), /a\.yaml: expected a list/);
  assertThrows(() => readAllowed(`- { file: x, test: "(", reason: r }\n`, "a.yaml"), /Invalid regular expression/);
});

Deno.test("the command fails on an unexpected skip and prints every skip with its reason", async () => {
  const allowed = `${dir}/allowed.yaml`;
  await Deno.writeTextFile(allowed, `- { file: "${FILE}", test: "skipped", reason: "fixture" }\n`);
  const run = (list: string) =>
    new Deno.Command(`${ROOT}node_modules/.bin/deno`, {
      args: ["run", "--allow-read", "--allow-env", `${ROOT}tools/test_report.ts`, report, list],
    }).output();
  const ok = await run(allowed);
  const out = new TextDecoder().decode(ok.stdout);
  assertEquals(ok.code, 0, out);
  assert(out.includes(`skipped: ${FILE} › has a step > skipped step — fixture`), out);
  assert(out.includes("2 passed, 1 failed, 2 skipped"), out);
  await Deno.writeTextFile(allowed, "[]\n");
  const bad = await run(allowed);
  assertEquals(bad.code, 1);
  assert(new TextDecoder().decode(bad.stdout).includes("UNEXPECTED SKIP"));
});
