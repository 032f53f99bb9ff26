/**
 * rt9 M2: `unshare -Urm` in a tree whose policy examines opens writes /proc/self/uid_map from a mount namespace of its
 * own, whose procfs mount the guard cannot place: the open is refused (failed closed), and it is named for what it is
 * (`idwrap.procfs-unplaced`), not as an attempt on the supervisor (`idwrap.supervisor-tamper`). The control: unwrapped,
 * the same command runs.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { IDWRAP, run } from "../../helpers.ts";
import { scratchDir } from "../../temp.ts";

Deno.test("seccomp: an open refused on a procfs mount the guard cannot place is named procfs-unplaced, not supervisor-tamper", async () => {
  const dir = await scratchDir({ prefix: "idwrap-procfs-unplaced-" });
  try {
    const policy = `${dir}/p.yaml`;
    await Deno.writeTextFile(
      policy,
      `rules:\n  - { id: x, syscalls: [open, openat], path: ${dir}/none, action: deny }\n`,
    );
    const bare = await run("unshare", ["-Urm", "id", "-u"]);
    assertEquals(bare.stdout.trim(), "0", bare.stderr);
    const r = await run(IDWRAP, ["run", "-p", policy, "--", "unshare", "-Urm", "id", "-u"]);
    const line = r.stderr.split("\n").find((l) => l.includes("/proc/self/uid_map") && l.includes("<denied>"));
    assert(line, r.stderr);
    assert(line.includes("[idwrap.procfs-unplaced]"), line);
    assert(!r.stderr.includes("idwrap.supervisor-tamper"), r.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
