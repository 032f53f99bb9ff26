/**
 * A call newer than idwrap's syscall table could act on a file no rule sees
 * (fchmodat2 is chmod, Linux 6.6): the filter fails every such call with
 * ENOSYS, as a kernel without it would, and the program falls back to the
 * calls the rules cover.
 */
import { scratchDir } from "../../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { idwrap, prog, run, writePolicy } from "../../helpers.ts";

Deno.test("fchmodat2, newer than the table, fails with ENOSYS under idwrap and cannot walk around a chmod rule", async () => {
  const dir = await scratchDir({ prefix: "idwrap-newcall-" });
  const file = `${dir}/protected`;
  await Deno.writeTextFile(file, "x\n");
  await Deno.chmod(file, 0o600);
  // The control: this kernel runs it.
  const bare = await run(prog("fchmodat2"), [file, "4755"]);
  assertEquals(bare.stdout, "fchmodat2: 0\n");
  assertEquals((await Deno.stat(file)).mode! & 0o7777, 0o4755);
  await Deno.chmod(file, 0o600);
  const policy = await writePolicy(
    `rules:\n  - { id: no-chmod, syscalls: [chmod, fchmodat], path: "${file}", action: deny }\n`,
  );
  const r = await idwrap(["run", "-p", policy, "--", prog("fchmodat2"), file, "4755"]);
  assertEquals(r.stdout, "fchmodat2: ENOSYS\n", r.stderr);
  assertEquals((await Deno.stat(file)).mode! & 0o7777, 0o600);
  // chmod(1) (glibc's fchmodat) is the covered way, and it is denied.
  const chmod = await idwrap(["run", "-p", policy, "--", "chmod", "4755", file]);
  assert(chmod.code !== 0, chmod.stderr);
  assertEquals((await Deno.stat(file)).mode! & 0o7777, 0o600);
});
