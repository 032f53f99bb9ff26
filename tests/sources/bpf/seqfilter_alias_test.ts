/**
 * Red team rt9 F6: seq's kernel window filter is armed at exec by the exec'd file, with the filter published for the
 * path that file first ran under. `wide` (a copy of ls trained on `ls -lR` and `ls -R`) runs, so its filter is
 * published; then `narrow` (trained only on `ls /`) is made a hard link of it, a burst of observed calls puts a backlog
 * ahead of narrow's exec record, and `narrow -lR` runs: a deviation for narrow's database. The kernel armed it with
 * wide's filter and dropped windows normal for wide as matches for narrow (4,293 mismatches without the filter, 1
 * with it). The arm's key is now the file exactly as the publishing process ran it (inode, device, inode generation,
 * mount) and the kernel never arms a file with several links: seq must count the same mismatches for narrow with the
 * filter as without it. The same with `narrow` made by renaming `wide` (the name and directory are in the key too).
 * The unfiltered run is the control (it alerts). As root and with the tree run by an ordinary user who owns the files.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { bpfPrivilegeProblem } from "../../../host/sources/bpf/supervise.ts";
import { compileC } from "../../../tools/build.ts";
import { ensureUser, reports, ROOT, traced, writePolicy } from "../../helpers.ts";
import { scratchDir } from "../../temp.ts";

const BURST = `${ROOT}build/tests/getppid_loop`;
await Deno.mkdir(`${ROOT}build/tests`, { recursive: true });
await compileC(`${ROOT}tests/sources/bpf/fixtures/getppid_loop.c`, BURST);

const TREE = "/usr/share/zoneinfo";
const RUNS = 2;

Deno.test({
  name:
    "seq's kernel filter on bpf: a hard link of a published program runs under its own database's filter, not the first path's (rt9 F6), as root and as an ordinary user",
  ignore: bpfPrivilegeProblem() !== undefined,
  async fn() {
    const dir = await scratchDir({ prefix: "idwrap-seqalias-" });
    try {
      await Deno.chmod(dir, 0o755);
      const env = { IDWRAP_STORE: `${dir}/store.kv` };
      const policy = (settings: string) => writePolicy(`wrappers:\n  - name: seq\n    settings: ${settings}\n`);
      const record = await policy("{ mode: record }");
      const filtered = await policy("{ mode: detect, threshold: 3 }");
      const unfiltered = await policy("{ mode: detect, threshold: 3, kernel_filter: false }");
      const wide = `${dir}/wide`, narrow = `${dir}/narrow`;
      const sh = async (p: string, script: string, as: readonly string[] = []) => {
        const r = await traced("run", ["--source", "bpf", "-p", p], [...as, "/bin/sh", "-c", script], { env });
        assertEquals(r.code, 0, r.stderr);
        return r;
      };
      // Training: wide on ls -lR and ls -R, narrow on ls / only (its own copy, removed after).
      await Deno.copyFile("/bin/ls", wide);
      for (let i = 0; i < 2; i++) await sh(record, `${wide} -lR ${TREE} >/dev/null; ${wide} -R ${TREE} >/dev/null`);
      await Deno.copyFile("/bin/ls", narrow);
      for (let i = 0; i < 2; i++) await sh(record, `${narrow} / >/dev/null; ${narrow} /tmp >/dev/null`);
      await Deno.remove(narrow);

      const uid = await ensureUser("idwrap-alice");
      const as = ["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "--"];
      const outcomes: string[] = [];
      for (const [who, prefix] of [["root", []], ["idwrap-alice", as]] as const) {
        // The user owns the program and its directory (a hard link of another's file is refused: protected_hardlinks).
        await Deno.chown(dir, who === "root" ? 0 : uid, null);
        await Deno.chown(wide, who === "root" ? 0 : uid, null);
        for (const [i, op] of [...Array(RUNS).fill("ln"), "mv"].entries()) {
          const totals: Record<string, string> = {};
          for (const [name, p] of [["unfiltered", unfiltered], ["filtered", filtered]] as const) {
            await Deno.remove(narrow).catch(() => {});
            const r = await sh(
              p,
              `${wide} -R ${TREE} >/dev/null; sleep 1; ${op} ${wide} ${narrow}; ${BURST} 150000 >/dev/null; ` +
                `${narrow} -lR ${TREE} >/dev/null` + (op === "mv" ? `; mv ${narrow} ${wide}` : ""),
              prefix,
            );
            const line = reports(r.events, "audit").map((a) => a.message)
              .find((m) => m.startsWith(`seq detect program=${narrow} `));
            assert(line, `no seq account of ${narrow}: ${r.stderr}`);
            totals[name] = / mismatches=\d+ max_lfc=\d+/.exec(line)![0];
            const alerts = reports(r.events, "alert").filter((a) => a.wrapper === "seq" && a.message.includes(narrow));
            totals[name] += ` alerts=${alerts.length}`;
          }
          outcomes.push(`${who} run ${i} (${op}): without the filter ${totals.unfiltered}; with it ${totals.filtered}`);
          assert(/ alerts=[1-9]/.test(totals.unfiltered), `the control did not alert:\n${outcomes.join("\n")}`);
          assertEquals(
            totals.filtered,
            totals.unfiltered,
            `the filter hid narrow's deviation:\n${outcomes.join("\n")}`,
          );
        }
      }
      console.log(outcomes.join("\n"));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
