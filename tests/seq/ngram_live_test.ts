/**
 * The ngram wrapper (docs/detect.md) live, under the seccomp source through
 * `./idwrap run -p POLICY`, as tests/seq/live_test.ts does for seq: record
 * mode learns /bin/ls listing a directory (the model keyed by the
 * executable path, in a private Deno KV store); detect mode then raises
 * nothing on the same run and raises an ngram alert when ls behaves
 * differently (`ls -l`: user and group lookups, a stat per entry). The
 * control inside the test: the same detect policy on the learned run. The
 * second test does the same as an ordinary user, with that user's own store.
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { ensureUser, idwrapAsUser, parseJsonLines, reports, traced, writePolicy } from "../helpers.ts";

const dir = await scratchDir({ prefix: "idwrap-ngram-live-" });
await Deno.mkdir(`${dir}/d`);
for (const name of ["a", "b", "c"]) await Deno.writeTextFile(`${dir}/d/${name}`, `${name}\n`);
const env = { IDWRAP_STORE: `${dir}/store.kv` };

const record = await writePolicy("wrappers:\n  - name: ngram\n    settings: { mode: record }\n");
const detect = await writePolicy("wrappers:\n  - name: ngram\n    settings: { mode: detect, threshold: 40 }\n");

const audits = (r: Awaited<ReturnType<typeof traced>>) =>
  reports(r.events, "audit").filter((a) => a.wrapper === "ngram" && a.message.includes("program=/usr/bin/ls"));
const maxFrame = (message: string) => Number(/ max_frame_millibits=(\d+)$/.exec(message)![1]) / 1000;

Deno.test("ngram live: record ls, then detect: the same run is quiet, ls -l raises an ngram alert", async () => {
  for (let i = 0; i < 3; i++) {
    const r = await traced("run", ["-p", record], ["/bin/ls", `${dir}/d`], { env });
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stdout, "a\nb\nc\n");
    assertEquals(reports(r.events, "fault"), []);
    const [audit] = audits(r);
    assert(audit, "no ngram record summary for /usr/bin/ls");
    const m = / calls=(\d+) new=(\d+) model=(\d+)$/.exec(audit.message)!;
    assert(Number(m[1]) > 20 && Number(m[3]) > 20, audit.message);
  }

  const same = await traced("run", ["-p", detect], ["/bin/ls", `${dir}/d`], { env });
  assertEquals(same.stdout, "a\nb\nc\n");
  assertEquals(reports(same.events, "fault"), []);
  assertEquals(reports(same.events, "alert"), [], "the learned behaviour raised an alert");
  const [quiet] = audits(same);
  assert(quiet, "no ngram detect summary for /usr/bin/ls");
  console.log(`learned run: ${quiet.message}`);

  const other = await traced("run", ["-p", detect], ["/bin/ls", "-l", `${dir}/d`], { env });
  assertEquals(other.code, 0, other.stderr);
  assertEquals(reports(other.events, "fault"), []);
  const [loud] = audits(other);
  console.log(`ls -l: ${loud.message}`);
  const alerts = reports(other.events, "alert").filter((a) => a.wrapper === "ngram");
  assert(alerts.length >= 1, "ls -l raised no ngram alert");
  assertEquals(alerts[0].severity, 3);
  assert(/bits of surprisal in the last 20 calls \(threshold 40\)/.test(alerts[0].message), alerts[0].message);
  assert(maxFrame(loud.message) >= 40 && maxFrame(quiet.message) < 40);
});

Deno.test("ngram live as an ordinary user: record ls, then the same run is quiet and ls -l raises an ngram alert", async () => {
  const uid = await ensureUser("idwrap-alice");
  await Deno.chmod(dir, 0o755); // the listed directory, readable by the user
  const home = `${dir}/alice`;
  const asUser = async (policy: string, command: string[]) => {
    const out = `${home}/events-${crypto.randomUUID()}.jsonl`;
    const r = await idwrapAsUser(uid, home, ["run", "--json", "-o", out, "-p", policy, "--", ...command]);
    const events = parseJsonLines(await Deno.readTextFile(out).catch(() => ""));
    return { ...r, events };
  };
  await Deno.mkdir(home, { recursive: true });
  await Deno.chown(home, uid, null);
  const policies = [record, detect].map((_p, i) => `${home}/policy-${i}.yaml`);
  for (const [i, p] of [record, detect].entries()) await Deno.copyFile(p, policies[i]);
  for (let i = 0; i < 2; i++) {
    const r = await asUser(policies[0], ["/bin/ls", `${dir}/d`]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stdout, "a\nb\nc\n");
    assertEquals(reports(r.events, "fault"), []);
  }
  const same = await asUser(policies[1], ["/bin/ls", `${dir}/d`]);
  assertEquals(same.stdout, "a\nb\nc\n");
  assertEquals(reports(same.events, "alert"), [], "the learned behaviour raised an alert");
  assert(audits(same).length === 1, "no ngram detect summary for /usr/bin/ls: " + same.stderr);
  const other = await asUser(policies[1], ["/bin/ls", "-l", `${dir}/d`]);
  assertEquals(other.code, 0, other.stderr);
  assert(reports(other.events, "alert").some((a) => a.wrapper === "ngram"), "ls -l raised no ngram alert");
});
