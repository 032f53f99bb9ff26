/**
 * The rules library (policies/library/, docs/policy.md "The rules library"): every file is valid alone and beside
 * the default policy, every rule has an ATT&CK id, tags and a policy test that names it, the tests pass, and a
 * broken rule fails them.
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { parse } from "yaml";
import { idwrap, ROOT } from "../helpers.ts";

const LIBRARY = `${ROOT}policies/library`;
const TESTS = `${ROOT}policies/tests/library`;

function libraryFiles(): string[] {
  return [...Deno.readDirSync(LIBRARY)].filter((e) => e.name.endsWith(".yaml")).map((e) => e.name).sort();
}

interface LibraryRule {
  id: string;
  action?: string;
  attack?: string | string[];
  tags?: string[];
}

Deno.test("library: policy check passes on the library, and on the library loaded beside the default policy", async () => {
  const alone = await idwrap(["policy", "check", "policies/library/"], { cwd: ROOT });
  assertEquals(alone.code, 0, `${alone.stdout}\n${alone.stderr}`);
  const files = libraryFiles().map((f) => `policies/library/${f}`);
  assert(files.length >= 6, files.join(" "));
  const set = await idwrap(["policy", "check", "policies/default.yaml", ...files], { cwd: ROOT });
  assertEquals(set.code, 0, `${set.stdout}\n${set.stderr}`);
  for (const f of files) {
    assert(new RegExp(`^ok ${f} \\(\\d+ rules?, 0 wrappers\\)$`, "m").test(set.stdout), set.stdout);
  }
});

Deno.test("library: every rule alerts (a library is loaded beside a site's policy), has an ATT&CK id and tags, and a test names it", () => {
  const tested = libraryFiles().map((f) => Deno.readTextFileSync(`${TESTS}/${f}`)).join("\n");
  const ids = new Set<string>();
  for (const file of libraryFiles()) {
    const doc = parse(Deno.readTextFileSync(`${LIBRARY}/${file}`)) as { version: number; rules: LibraryRule[] };
    assertEquals(doc.version, 2, file);
    for (const rule of doc.rules) {
      assert(!ids.has(rule.id), `${rule.id} twice`);
      ids.add(rule.id);
      assert(rule.id.startsWith("lib-"), rule.id);
      assertEquals(rule.action ?? "alert", "alert", rule.id);
      const attack = [rule.attack ?? []].flat();
      assert(attack.length && attack.every((t) => /^T\d{4}(\.\d{3})?$/.test(t)), `${rule.id}: attack ${attack}`);
      assert(rule.tags?.length, `${rule.id}: no tags`);
      assert(new RegExp(`alert: (\\[[^\\]]*)?\\b${rule.id}\\b`).test(tested), `${rule.id}: no policy test expects it`);
    }
  }
  assert(ids.size >= 25, `${ids.size} rules`);
});

Deno.test("library: its policy tests pass", async () => {
  const r = await idwrap(["policy", "test", "policies/tests/library/"], { cwd: ROOT });
  assertEquals(r.code, 0, `${r.stdout}\n${r.stderr}`);
  for (const f of libraryFiles()) assert(new RegExp(`^ok +policies/tests/library/${f}: `, "m").test(r.stdout), f);
  assert(/\d+ passed, 0 failed$/m.test(r.stdout), r.stdout);
});

/** Runs a library file's tests against a changed copy of it; returns the result. */
async function testCopy(file: string, change: (yaml: string) => string) {
  const dir = await scratchDir({ prefix: "idwrap-library-" });
  try {
    const original = await Deno.readTextFile(`${LIBRARY}/${file}`);
    const changed = change(original);
    assert(changed !== original, `the change does not apply to ${file} any more`);
    await Deno.mkdir(`${dir}/library`);
    await Deno.mkdir(`${dir}/tests/library`, { recursive: true });
    await Deno.writeTextFile(`${dir}/library/${file}`, changed);
    const tests = (await Deno.readTextFile(`${TESTS}/${file}`)).replaceAll(
      "../recordings/library/",
      `${ROOT}policies/tests/recordings/library/`,
    );
    await Deno.writeTextFile(`${dir}/tests/library/${file}`, tests);
    return await idwrap(["policy", "test", `${dir}/tests/`]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("library: a broken rule fails its tests (a path typo; a lost exception), the unchanged copy passes", async () => {
  const same = await testCopy("system-files.yaml", (y) => y + "\n");
  assertEquals(same.code, 0, `${same.stdout}\n${same.stderr}`);
  // A typo in the cron rule's list: the cron job written is no longer seen.
  const typo = await testCopy("system-files.yaml", (y) => y.replace(`"/etc/cron.*/**"`, `"/etc/crond.*/**"`));
  assertEquals(typo.code, 1, `${typo.stdout}\n${typo.stderr}`);
  assert(
    /openat "\/etc\/cron\.d\/idwrap-lib" = 3 .*expected alert lib-write-below-etc, lib-cron-write, got alert lib-write-below-etc/
      .test(typo.stdout),
    typo.stdout,
  );
  // The debuggers' exception lost: strace's own ptrace calls now fire.
  const noExcept = await testCopy(
    "privilege.yaml",
    (y) => y.replace("values: [$debuggers]", "values: [/usr/bin/nodebugger]"),
  );
  assertEquals(noExcept.code, 1, `${noExcept.stdout}\n${noExcept.stderr}`);
  assert(
    /ptrace \(\/usr\/bin\/strace\): expected nothing, got alert lib-process-injection/.test(noExcept.stdout),
    noExcept.stdout,
  );
  // A `when: success` exec rule made to fire at every attempt: the failed PATH tries of the payload's shell fire too.
  const attempt = await testCopy(
    "execution.yaml",
    (y) => y.replace(`    macro: started_by_service\n`, `    macro: started_by_service\n    when: attempt\n`),
  );
  assertEquals(attempt.code, 1, `${attempt.stdout}\n${attempt.stderr}`);
  assert(/execve "\/nonexistent-a\/sh" .*got alert lib-shell-from-service/.test(attempt.stdout), attempt.stdout);
});
