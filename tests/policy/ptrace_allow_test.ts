/**
 * `ptrace_allow` in the default policy names debuggers by full path (rt9 F4): a copy of any program named `gdb` is no
 * longer exempt from `baseline.process-injection`. The control: the same copy named in `ptrace_allow` by its path is
 * exempt, so the test can tell an exemption from a rule that never fires.
 */
import { ok as assert } from "node:assert/strict";
import { idwrap, prog } from "../helpers.ts";
import { scratchDir } from "../temp.ts";

Deno.test("the default policy's ptrace_allow: a program named gdb outside /usr/bin is alerted; its own path exempts it", async () => {
  const dir = await scratchDir({ prefix: "idwrap-ptrace-allow-" });
  try {
    const gdb = `${dir}/gdb`;
    await Deno.copyFile(prog("baseline_actions"), gdb);
    await Deno.chmod(gdb, 0o755);
    const r = await idwrap(["run", "--", gdb, "ptrace"]);
    assert(r.stderr.includes("baseline.process-injection"), `a copy named gdb was exempt:\n${r.stderr}`);
    const allowed = `${dir}/allowed.yaml`;
    await Deno.writeTextFile(allowed, `wrappers:\n  - name: baseline\n    settings:\n      ptrace_allow: [${gdb}]\n`);
    const control = await idwrap(["run", "-p", allowed, "--", gdb, "ptrace"]);
    assert(!control.stderr.includes("process-injection"), control.stderr);
    const noAllow = `${dir}/none.yaml`;
    await Deno.writeTextFile(noAllow, `wrappers:\n  - name: baseline\n    settings:\n      ptrace_allow: []\n`);
    const fires = await idwrap(["run", "-p", noAllow, "--", gdb, "ptrace"]);
    assert(fires.stderr.includes("baseline.process-injection"), fires.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
