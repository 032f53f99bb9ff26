/**
 * mount's three strings (source, target, type) on the bpf source: the programs copy two path arguments, and `path2`
 * is the last one as decodeArgs keeps it on every source — the type, which baseline's mount rule names
 * (wrappers/baseline/system.ts). The bpf source copied the target there (found by running tests/baseline/ with
 * IDWRAP_AUTO_SOURCE=bpf: baseline.mount named the mount point as the type). Control: the seccomp source, in the same
 * test, decodes the same call.
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { calls, traced } from "../../helpers.ts";
import { scratchDir } from "../../temp.ts";

Deno.test({
  name: "bpf: mount's path2 is its type, as on seccomp",
  ignore: Deno.uid() !== 0,
  fn: async () => {
    const dir = await scratchDir({ prefix: "idwrap-bpf-mount-" });
    try {
      for (const source of ["seccomp", "bpf"]) {
        const t = await traced("trace", ["--source", source, "-e", "mount"], [
          "mount",
          "-t",
          "idwrap-no-such-fs",
          "none",
          dir,
        ]);
        const mounts = calls(t.events, "pre").filter((e) => e.syscall === "mount");
        assertEquals(mounts.length > 0, true, `${source}: no mount call\n${t.stderr}`);
        for (const m of mounts) {
          assertEquals([m.decoded.path, m.decoded.path2], ["none", "idwrap-no-such-fs"], source);
        }
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
