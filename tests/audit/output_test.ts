/**
 * An output's delivery: a full buffer drops its oldest records, counted and logged, never silently; a file output
 * keeps `keep` rotated files; syslog over UDP to a loopback collector; an output still failing when the daemon stops
 * counts what it could not deliver; a bad configuration names file, line and field.
 *
 * @module
 */
import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import dgram from "node:dgram";
import { AuditLog } from "../../host/audit/log.ts";
import { toAuditRecords } from "../../host/audit/record.ts";
import type { AuditRecord } from "../../host/audit/record.ts";
import { ConfigError, type OutputConfig, parseConfig } from "../../host/outputs/config.ts";
import { Output } from "../../host/outputs/output.ts";
import type { Transport } from "../../host/outputs/transports.ts";
import { waitFor } from "../daemon/daemon_helpers.ts";

const dir = await Deno.makeTempDir({ prefix: "idwrap-output-" });
let n = 0;

async function openLog(): Promise<AuditLog> {
  return await AuditLog.open(`${dir}/store-${n++}.kv`);
}

function alert(i: number): AuditRecord {
  return toAuditRecords({
    kind: "alert",
    source: "seccomp",
    time: Date.now(),
    pid: 1000 + i,
    wrapper: "baseline",
    severity: 3,
    message: `baseline.credential-read: /etc/shadow read by /usr/bin/cat #${i} (T1003.008)`,
    program: { exe: "/usr/bin/cat", argv0: "cat", uid: 0, gid: 0 },
  })[0];
}

function config(over: Partial<OutputConfig> & Pick<OutputConfig, "type">): OutputConfig {
  return parseConfig(JSON.stringify({ outputs: [over] }), "test.yaml").outputs[0];
}

Deno.test("a full buffer drops its oldest records, counted and logged; what it kept is delivered", async () => {
  const log = await openLog();
  const said: string[] = [];
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  const got: number[] = [];
  const stuck: Transport = {
    async deliver(records) {
      await gate;
      got.push(...records.map((r) => r["event.sequence"]!));
    },
    close: () => Promise.resolve(),
  };
  const out = new Output(
    log,
    { ...config({ type: "file", path: `${dir}/unused` }), buffer: 5 },
    (l) => said.push(l),
    stuck,
  );
  log.append([alert(0)]); // taken at once, stuck in delivery
  await new Promise((r) => setTimeout(r, 50));
  log.append(Array.from({ length: 20 }, (_, i) => alert(i + 1)));
  assertEquals(out.stats().queued, 6);
  assertEquals(out.stats().dropped, 15);
  release();
  await waitFor("delivery", () => got.length === 6 || undefined);
  assertEquals(got, [1, 17, 18, 19, 20, 21]); // the first, then the newest five
  assert(
    said.some((l) => l === "output file-0: dropped 15 records, its buffer was full (the store has them)"),
    said.join("\n"),
  );
  assertEquals(out.stats().delivered, 6);
  await log.close();
  await out.stop(100);
});

Deno.test("a file output rotates by size and keeps `keep` files, the newest records, in order", async () => {
  const log = await openLog();
  const path = `${dir}/rot.jsonl`;
  const out = new Output(log, config({ type: "file", path, max_bytes: 4096, keep: 2 } as never), () => {});
  log.append(Array.from({ length: 100 }, (_, i) => alert(i)));
  await waitFor("delivery", () => out.stats().delivered === 100 || undefined);
  const exists = (p: string) => Deno.stat(p).then(() => true, () => false);
  assert(await exists(`${path}.2`) && !(await exists(`${path}.3`)), "path, path.1, path.2 and no more");
  const seqs: number[] = [];
  for (const f of [`${path}.2`, `${path}.1`, path]) {
    assert((await Deno.stat(f)).size <= 4096, f);
    for (const l of (await Deno.readTextFile(f)).split("\n").filter(Boolean)) {
      seqs.push(JSON.parse(l)["event.sequence"]);
    }
  }
  assertEquals(seqs[seqs.length - 1], 100);
  assertEquals(seqs, Array.from({ length: seqs.length }, (_, i) => 101 - seqs.length + i));
  await log.close();
  await out.stop();
});

Deno.test("syslog over UDP to a loopback collector: RFC 5424, the record as message", async () => {
  const server = dgram.createSocket("udp4");
  const got: string[] = [];
  server.on("message", (m) => got.push(m.toString()));
  await new Promise<void>((r) => server.bind(0, "127.0.0.1", () => r()));
  const port = server.address().port;
  const log = await openLog();
  const out = new Output(
    log,
    config({ type: "syslog", address: `127.0.0.1:${port}`, facility: "local3" } as never),
    () => {},
  );
  log.append([alert(0), alert(1)]);
  await waitFor("two datagrams", () => got.length === 2 || undefined);
  // local3 (19) * 8 + err (3: a high-severity alert)
  const m = /^<155>1 \S+ \S+ idwrap \d+ alerts - (\{.*\})$/.exec(got[0]);
  assert(m, got[0]);
  assertEquals(JSON.parse(m[1])["threat.technique.subtechnique.id"], "T1003.008");
  await log.close();
  await out.stop();
  server.close();
});

Deno.test("an output still failing when it stops counts what it could not deliver", async () => {
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (closed.addr as Deno.NetAddr).port;
  closed.close(); // nothing listens there
  const log = await openLog();
  const said: string[] = [];
  const out = new Output(
    log,
    config({ type: "webhook", url: `http://127.0.0.1:${port}/` } as never),
    (l) => said.push(l),
  );
  log.append([alert(0), alert(1), alert(2)]);
  await waitFor("a failure", () => out.stats().failures > 0 || undefined);
  await log.close();
  await out.stop(300);
  const s = out.stats();
  assertEquals([s.delivered, s.dropped, s.queued], [0, 3, 0]);
  assert(said.some((l) => l.includes("stopped with 3 records undelivered")), said.join("\n"));
});

Deno.test("a bad configuration names file, line, field and what was expected", () => {
  const bad: [string, RegExp][] = [
    ["outputs:\n  - type: kafka\n", /^f\.yaml:2: outputs\[0\]\.type: expected file, syslog or webhook, got "kafka"$/],
    ["outputs:\n  - type: file\n", /^f\.yaml:2: outputs\[0\]\.path: expected a non-empty string$/],
    [
      "outputs:\n  - type: file\n    path: /x\n    keep: -1\n",
      /^f\.yaml:4: outputs\[0\]\.keep: expected a whole number from 0 to 1000, got -1$/,
    ],
    ["outputs:\n  - type: syslog\n", /^f\.yaml:2: outputs\[0\]: expected one of socket .* or address/],
    [
      "outputs:\n  - type: file\n    path: /x\n    format: ocsf\n    queues: all\n",
      /^f\.yaml:5: outputs\[0\]\.queues: an ocsf output carries alerts and verdicts only/,
    ],
    ["outputs:\n  - type: file\n    path: /x\n    colour: red\n", /^f\.yaml:4: outputs\[0\]\.colour: unknown field/],
    ["output: []\n", /^f\.yaml:1: output: unknown field, expected outputs$/],
    [
      "outputs:\n  - {type: file, path: /a}\n  - {type: file, path: /b, name: file-0}\n",
      /^f\.yaml:3: outputs\[1\]\.name: "file-0" names another output too$/,
    ],
  ];
  for (const [text, want] of bad) {
    throws(() => parseConfig(text, "f.yaml"), (e: unknown) => e instanceof ConfigError && want.test(e.message));
  }
  assertEquals(parseConfig("", "f.yaml"), { outputs: [] });
});
