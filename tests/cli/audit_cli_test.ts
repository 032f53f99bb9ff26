/**
 * `audit query --store` reads the store it names (not $IDWRAP_STORE); `audit tail --run-dir` asks the daemon there and
 * exits 69 (EX_UNAVAILABLE, as every command that needs the daemon) when none answers.
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { idwrap } from "../helpers.ts";

Deno.test("audit query --store reads the named store, not $IDWRAP_STORE", async () => {
  const dir = await scratchDir({ prefix: "idwrap-audit-cli-" });
  const watched = `${dir}/watched`, policy = `${dir}/p.yaml`, store = `${dir}/named.kv`;
  await Deno.writeTextFile(watched, "w\n");
  await Deno.writeTextFile(
    policy,
    `rules:\n  - id: cli-store\n    syscalls: [open, openat]\n    path: ${watched}\n    action: alert\n`,
  );
  const ran = await idwrap(["run", "--policy", policy, "--", "cat", watched], { env: { IDWRAP_STORE: store } });
  assertEquals(ran.code, 0, ran.stderr);
  const other = { IDWRAP_STORE: `${dir}/other.kv` };
  const named = await idwrap(["audit", "query", "--store", store, "--json", "--wrapper", "cli-store"], { env: other });
  assertEquals(named.code, 0, named.stderr);
  assertEquals(named.stdout.trim().split("\n").filter(Boolean).length, 1, named.stdout);
  const fromEnv = await idwrap(["audit", "query", "--json", "--wrapper", "cli-store"], { env: other });
  assertEquals(fromEnv.stdout.trim(), "", "the environment's store has no such record");
});

Deno.test("audit tail --run-dir with no daemon there exits 69 and names the socket", async () => {
  const dir = await scratchDir({ prefix: "idwrap-audit-cli-run-" });
  const r = await idwrap(["audit", "tail", "--run-dir", dir]);
  assertEquals(r.code, 69, r.stderr);
  assert(r.stderr.includes(dir), r.stderr);
});
