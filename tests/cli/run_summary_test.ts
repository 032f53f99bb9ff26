/**
 * `idwrap run`'s summary (docs/audit.md, "The run's summary"): one line by default, a line of hook counts per
 * wrapper with -v, one JSON record ending the report with --json; the counts are the wrapper's on a real process
 * under a real seccomp filter, a denying wrapper's deny among them (its control: the same wrapper on another file).
 */
import { scratchFile } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { idwrap, parseSummary, writePolicy } from "../helpers.ts";

const POLICY = await writePolicy(
  "version: 1\nname: t\nwrappers:\n  - name: deny_path\n    settings: { path: /etc/passwd }\n",
);
const CAT = Deno.realPathSync("/bin/cat");

Deno.test("run summary: -v adds a line of hook counts per wrapper; the default stays one line", async () => {
  const quiet = await idwrap(["run", "-p", POLICY, "--", CAT, "/etc/hostname"]);
  assertEquals(quiet.code, 0, quiet.stderr);
  const lines = quiet.stderr.trim().split("\n");
  assert(/^idwrap: \S+ exited with 0; \d+ calls notified, 0 denied, 0 killed, \d+ opens emulated$/.test(lines.at(-1)!));
  assert(!quiet.stderr.includes("hooks of"), quiet.stderr);
  const verbose = await idwrap(["run", "-v", "-p", POLICY, "--", CAT, "/etc/hostname"]);
  const m =
    /^idwrap: hooks of deny_path: (\d+) pre, 0 post, 0 lifecycle, 0 abstract; 0 non-allow verdicts, 0 alerts, 0 faults$/m
      .exec(verbose.stderr);
  assert(m, verbose.stderr);
  // cat's opens: ld.so.cache, libc and /etc/hostname at least.
  assert(Number(m[1]) >= 3, m[0]);
});

Deno.test("run summary: --json ends the report with the summary record, a wrapper's deny counted", async () => {
  const out = await scratchFile({ suffix: ".jsonl" });
  try {
    for (const [file, code, verdicts] of [["/etc/passwd", 1, 1], ["/etc/hostname", 0, 0]] as const) {
      const r = await idwrap(["run", "--json", "-o", out, "-p", POLICY, "--", CAT, file]);
      assertEquals(r.code, code, r.stderr);
      const text = await Deno.readTextFile(out);
      assertEquals(JSON.parse(text.trim().split("\n").at(-1)!).kind, "summary", "the last line");
      const s = parseSummary(text)!;
      assertEquals([s.command, s.exitCode, s.denied], [[CAT, file], code, verdicts]);
      assertEquals(s.hooks.map((h) => [h.wrapper, h.verdicts, h.alerts, h.faults]), [
        ["deny_path", verdicts, verdicts, 0],
      ]);
      assert(s.hooks[0].pre >= 3, JSON.stringify(s.hooks));
    }
    // Without -o the record is the last line on standard error.
    const r = await idwrap(["run", "--json", "-p", POLICY, "--", CAT, "/etc/hostname"]);
    assertEquals(parseSummary(r.stderr.split("\n").filter((l) => l.startsWith("{")).join("\n"))?.exitCode, 0);
  } finally {
    await Deno.remove(out);
  }
});

Deno.test("run: a tree that outlives its command is served until it exits, and idwrap says why it has not returned", async () => {
  const marker = await scratchFile();
  const t0 = performance.now();
  // The command exits at once with 3; the process it left writes the marker 2 s later: a call idwrap still serves.
  const r = await idwrap(["run", "-p", POLICY, "--", "/bin/sh", "-c", `(sleep 2; echo late > ${marker}) & exit 3`]);
  const took = performance.now() - t0;
  assertEquals(r.code, 3, r.stderr);
  assert(took >= 2000, `returned after ${took} ms, before the tree was gone`);
  assertEquals(await Deno.readTextFile(marker), "late\n");
  assert(
    r.stderr.includes(
      "/bin/sh exited with 3; processes it started are still running: idwrap serves them until they exit",
    ),
    r.stderr,
  );
  // A command whose tree ends with it says nothing of the kind.
  const quick = await idwrap(["run", "-p", POLICY, "--", CAT, "/etc/hostname"]);
  assert(!quick.stderr.includes("still running"), quick.stderr);
  await Deno.remove(marker);
});
