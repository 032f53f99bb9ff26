/**
 * No race on path-checked calls (issue 13, item 3): a thread flips the path
 * between a harmless and a protected name while the main thread unlinks,
 * renames, chmods, chowns, truncates or links it. Unwrapped the protected
 * file is reached many times; under a deny rule on it, never (the supervisor
 * runs each call on the object it checked). Thousands of tries per family.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { IDWRAP, prog, run, writePolicy } from "../../helpers.ts";

const FAMILIES = ["unlink", "rename", "chmod", "chown", "truncate", "link"];
const ROUNDS = "3000";

for (const family of FAMILIES) {
  Deno.test(`a racing thread never gets a denied ${family} onto the protected file`, async () => {
    const dir = await Deno.makeTempDir({ prefix: `idwrap-race-${family}-` });
    const allowed = `${dir}/allowed`, denied = `${dir}/denied`;
    const policy = await writePolicy(`
rules:
  - id: protect
    syscalls: [unlink, unlinkat, rename, renameat, renameat2, chmod, fchmodat, chown, lchown, fchownat, truncate, link, linkat]
    path: "${denied}"
    action: deny
    errno: EACCES
`);
    const fresh = async () => {
      await Deno.writeTextFile(denied, "SECRET\n");
      await Deno.chmod(denied, 0o644);
    };
    // Without idwrap the attack is real (a loaded machine may need a second try).
    await fresh();
    let bare = await run(prog("race_paths"), [family, allowed, denied, ROUNDS]);
    if (bare.code !== 1) {
      await fresh();
      bare = await run(prog("race_paths"), [family, allowed, denied, ROUNDS]);
    }
    assertEquals(bare.code, 1, `the race should reach the protected file unwrapped: ${bare.stdout}${bare.stderr}`);
    await fresh();
    const r = await run(IDWRAP, ["run", "-p", policy, "--", prog("race_paths"), family, allowed, denied, ROUNDS]);
    assert(/calls [1-9]\d* wins 0\n/.test(r.stdout), `${family}: ${r.stdout}${r.stderr.slice(-400)}`);
    assertEquals(r.code, 0);
    assertEquals(await Deno.readTextFile(denied), "SECRET\n");
  });
}
