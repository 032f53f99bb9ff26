/**
 * Audit through the daemon, end to end: alerts reach `audit tail` live and
 * `audit query` afterwards; a daemon killed and restarted has lost none of
 * the stored records; a consumer that stops reading neither blocks the
 * wrapped program nor goes untold of what it missed.
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { IDWRAP, idwrap, prog } from "../helpers.ts";
import { startDaemon, waitFor } from "../daemon/daemon_helpers.ts";
import { readLines, sendLine } from "../../host/daemon/protocol.ts";

const dir = await scratchDir({ prefix: "idwrap-audit-e2e-" });
await Deno.writeTextFile(`${dir}/watched.txt`, "w\n");
const policy = `${dir}/audit.yaml`;
await Deno.writeTextFile(
  policy,
  `rules:\n  - id: watched-open\n    syscalls: [openat]\n    path: ${dir}/watched.txt\n    action: alert\n`,
);

type Rec = Record<string, unknown>;
const queryAlerts = async (env: Record<string, string>): Promise<Rec[]> => {
  const q = await idwrap(["audit", "query", "--queue", "alerts", "--json"], { env });
  assertEquals(q.code, 0, q.stderr);
  return q.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l));
};

Deno.test("alerts reach audit tail live and audit query later; a killed daemon loses no stored record", async () => {
  const d = await startDaemon(["--policy", policy, "--no-watch"]);
  const tail = new Deno.Command(IDWRAP, {
    args: ["audit", "tail", "--json", "--queue", "alerts"],
    env: d.env,
    stdout: "piped",
    stderr: "piped",
    stdin: "null",
  }).spawn();
  try {
    const seen: Rec[] = [];
    (async () => {
      const decoder = new TextDecoder();
      let buf = "";
      for await (const chunk of tail.stdout) {
        buf += decoder.decode(chunk);
        for (let nl; (nl = buf.indexOf("\n")) >= 0; buf = buf.slice(nl + 1)) seen.push(JSON.parse(buf.slice(0, nl)));
      }
    })();
    await new Promise((r) => setTimeout(r, 500)); // the tail is connected
    const r = await idwrap(["run", "--", "/bin/cat", `${dir}/watched.txt`], { env: d.env });
    assertEquals(r.code, 0, r.stderr);
    const live = await waitFor("the alert on audit tail", () => seen.find((x) => x["rule.name"] === "watched-open"));
    assertEquals(live["file.path"], `${dir}/watched.txt`);
    assertEquals(live["process.executable"], "/usr/bin/cat");

    const stored = await waitFor("the alert in the store", async () => {
      const all = await queryAlerts(d.env);
      return all.length ? all : undefined;
    });
    assertEquals(stored.map((x) => x["event.sequence"]), [live["event.sequence"]]);

    await d.stop("SIGKILL");
    const again = await startDaemon(["--policy", policy, "--no-watch"], { runDir: d.runDir, store: d.store });
    try {
      const r2 = await idwrap(["run", "--", "/bin/cat", `${dir}/watched.txt`], { env: d.env });
      assertEquals(r2.code, 0, r2.stderr);
      const after = await waitFor("the second alert", async () => {
        const all = await queryAlerts(d.env);
        return all.length === 2 ? all : undefined;
      });
      // The first run's record survived the kill; sequences keep increasing.
      assertEquals(after[0]["event.sequence"], live["event.sequence"]);
      assert((after[1]["event.sequence"] as number) > (live["event.sequence"] as number));
    } finally {
      await again.stop();
    }
  } finally {
    try {
      tail.kill();
    } catch { /* gone */ }
    await tail.status;
    await d.stop();
  }
});

Deno.test("a consumer that stops reading does not block the wrapped program and is told what it missed", async () => {
  const d = await startDaemon(["--policy", policy, "--no-watch"]);
  try {
    const stuck = await Deno.connect({ transport: "unix", path: `${d.runDir}/0.sock` });
    await sendLine(stuck, { op: "tail", queues: ["alerts"] });
    // The consumer reads nothing while 15000 alerts are raised.
    const r = await idwrap(["run", "--", prog("open_many"), `${dir}/watched.txt`, "15000"], { env: d.env });
    assertEquals(r.code, 0, r.stderr);
    await new Promise((resolve) => setTimeout(resolve, 1000));
    let records = 0, missed = 0;
    const lines = readLines<Rec>(stuck);
    const deadline = Date.now() + 20000;
    for await (const line of lines) {
      if ("missed" in line) missed += line.missed as number;
      else if (line["rule.name"] === "watched-open") records++;
      if (records + missed >= 15000 || Date.now() > deadline) break;
    }
    stuck.close();
    assert(missed > 0, `told of no missed record (${records} records)`);
    assertEquals(records + missed, 15000);
    // The store is complete regardless.
    const stored = await waitFor("all 15000 alerts stored", async () => {
      const n = (await queryAlerts(d.env)).length;
      return n === 15000 ? n : undefined;
    });
    assertEquals(stored, 15000);
  } finally {
    await d.stop();
  }
});
