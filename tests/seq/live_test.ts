/**
 * The seq wrapper (Seq_id) live, under the seccomp source through
 * `./idwrap run -p POLICY`: record mode learns /bin/ls listing a directory
 * (the database keyed by the executable path, in a private Deno KV store),
 * then detect mode raises nothing on the same run and raises a seq alert
 * (severity 3, the locality frame count) when ls behaves differently
 * (`ls -l`: user and group lookups, a stat per entry).
 *
 * Record and detect runs keep the same standard streams (pipes): ls makes
 * an extra ioctl when its output is /dev/null, which is, rightly, a
 * different behaviour.
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { reports, ROOT, traced, writePolicy } from "../helpers.ts";

const dir = await scratchDir({ prefix: "idwrap-seq-live-" });
await Deno.mkdir(`${dir}/d`);
for (const name of ["a", "b", "c"]) await Deno.writeTextFile(`${dir}/d/${name}`, `${name}\n`);
const store = `${dir}/store.kv`;
const env = { IDWRAP_STORE: store };

const record = await writePolicy("wrappers:\n  - name: seq\n    settings: { mode: record }\n");
const detect = await writePolicy("wrappers:\n  - name: seq\n    settings: { mode: detect, threshold: 3 }\n");

const audits = (r: Awaited<ReturnType<typeof traced>>) =>
  reports(r.events, "audit").filter((a) => a.wrapper === "seq" && a.message.includes("program=/usr/bin/ls"));

Deno.test("seq live: record ls, then detect: the same run is quiet, ls -l raises a seq alert", async () => {
  for (let i = 0; i < 3; i++) {
    const r = await traced("run", ["-p", record], ["/bin/ls", `${dir}/d`], { env });
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stdout, "a\nb\nc\n");
    assertEquals(reports(r.events, "fault"), []);
    const [audit] = audits(r);
    assert(audit, "no seq record summary for /usr/bin/ls");
    const m = / calls=(\d+) new=(\d+) db=(\d+)$/.exec(audit.message)!;
    assert(Number(m[1]) > 20, audit.message);
    // The first run learns; the next ones add nothing (ls is deterministic here).
    if (i === 0) assert(Number(m[2]) > 20, audit.message);
    else assertEquals(Number(m[2]), 0, audit.message);
  }

  const same = await traced("run", ["-p", detect], ["/bin/ls", `${dir}/d`], { env });
  assertEquals(same.stdout, "a\nb\nc\n");
  assertEquals(reports(same.events, "fault"), []);
  assertEquals(reports(same.events, "alert"), [], "the learned behaviour raised an alert");
  const [quiet] = audits(same);
  assert(/ mismatches=0 max_lfc=0$/.test(quiet.message), quiet.message);

  const other = await traced("run", ["-p", detect], ["/bin/ls", "-l", `${dir}/d`], { env });
  assertEquals(other.code, 0, other.stderr);
  assertEquals(reports(other.events, "fault"), []);
  const alerts = reports(other.events, "alert").filter((a) => a.wrapper === "seq");
  assert(alerts.length >= 1, "ls -l raised no seq alert");
  assertEquals(alerts[0].severity, 3);
  assert(/locality frame count \d+, threshold 3/.test(alerts[0].message), alerts[0].message);
  const [loud] = audits(other);
  const lfc = Number(/ max_lfc=(\d+)$/.exec(loud.message)![1]);
  assert(lfc >= 3, loud.message);
});

Deno.test("seq live: only_trained (policies/seq-trained.yaml): an untrained program is inert, the trained ls is still checked", async () => {
  // Runs after the test above, on its store: ls has a database, cat none.
  const trained = `${ROOT}policies/seq-trained.yaml`;
  const cat = ["/bin/cat", `${dir}/d/a`];
  const inert = await traced("run", ["-p", trained], cat, { env });
  assertEquals(inert.stdout, "a\n");
  assertEquals(reports(inert.events, "fault"), []);
  // (The launcher, recorded above with ls, is trained: its one call is accounted as before.)
  const ofCat = reports(inert.events).filter((a) => a.wrapper === "seq" && a.message.includes("/usr/bin/cat"));
  assertEquals(ofCat, [], "an untrained program was compared");
  assertEquals(reports(inert.events, "alert"), []);
  // The same program without only_trained: every sequence is new, so it is alerted.
  const loud = await traced("run", ["-p", detect], cat, { env });
  assert(reports(loud.events, "alert").some((a) => a.wrapper === "seq"), "untrained cat raised no alert");
  // A trained program is compared as before.
  const same = await traced("run", ["-p", trained], ["/bin/ls", `${dir}/d`], { env });
  assertEquals(reports(same.events, "alert"), []);
  assert(audits(same).some((a) => / mismatches=0 max_lfc=0$/.test(a.message)), JSON.stringify(audits(same)));
  const other = await traced("run", ["-p", trained], ["/bin/ls", "-l", `${dir}/d`], { env });
  assert(reports(other.events, "alert").some((a) => a.wrapper === "seq"), "ls -l raised no seq alert");
});
