/**
 * An output's delivery: a full buffer drops its oldest records, counted and logged, never silently; a file output
 * keeps `keep` rotated files; syslog over UDP to a loopback collector; an output still failing when the daemon stops
 * counts what it could not deliver; a bad configuration names file, line and field.
 *
 * @module
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import dgram from "node:dgram";
import { AuditLog } from "../../host/audit/log.ts";
import { toAuditRecords } from "../../host/audit/record.ts";
import type { AuditRecord } from "../../host/audit/record.ts";
import { ConfigError, type OutputConfig, parseConfig } from "../../host/outputs/config.ts";
import { Output } from "../../host/outputs/output.ts";
import type { Transport } from "../../host/outputs/transports.ts";
import { waitFor } from "../daemon/daemon_helpers.ts";

const dir = await scratchDir({ prefix: "idwrap-output-" });
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

/** A transport that holds every delivery until released, recording what it delivered. */
function gated(): { transport: Transport; got: number[]; release: () => void } {
  let release!: () => void;
  const gate = new Promise<void>((r) => release = r);
  const got: number[] = [];
  return {
    got,
    release,
    transport: {
      async deliver(records) {
        await gate;
        got.push(...records.map((r) => r["event.sequence"]!));
      },
      close: () => Promise.resolve(),
    },
  };
}

Deno.test("a full buffer reads what it missed back from the store: every record delivered, in order", async () => {
  const log = await openLog();
  const said: string[] = [];
  const g = gated();
  const out = new Output(
    log,
    { ...config({ type: "file", path: `${dir}/unused` }), buffer: 5 },
    (l) => said.push(l),
    g.transport,
  );
  await new Promise((r) => setTimeout(r, 50)); // its cursor is read
  log.append([alert(0)]); // taken at once, stuck in delivery
  await new Promise((r) => setTimeout(r, 50));
  log.append(Array.from({ length: 20 }, (_, i) => alert(i + 1)));
  assertEquals(out.stats().queued, 6);
  g.release();
  await waitFor("delivery", () => g.got.length === 21 || undefined);
  assertEquals(g.got, Array.from({ length: 21 }, (_, i) => i + 1));
  const s = out.stats();
  assertEquals([s.delivered, s.recovered, s.dropped], [21, 15, 0]);
  assert(said.includes("output file-0: its buffer was full; read 15 records back from the store"), said.join("\n"));
  await out.stop(100);
  await log.close();
});

Deno.test("records missed live and gone from the store (expired) are counted dropped and logged", async () => {
  const path = `${dir}/store-${n++}.kv`;
  const log = await AuditLog.open(path);
  const said: string[] = [];
  const g = gated();
  const out = new Output(
    log,
    { ...config({ type: "file", path: `${dir}/unused` }), buffer: 5 },
    (l) => said.push(l),
    g.transport,
  );
  await new Promise((r) => setTimeout(r, 50));
  log.append([alert(0)]);
  await new Promise((r) => setTimeout(r, 50));
  log.append(Array.from({ length: 20 }, (_, i) => alert(i + 1)));
  await log.flush();
  // As if records 2 to 16 had expired.
  const kv = await Deno.openKv(path);
  for (let seq = 2n; seq <= 16n; seq++) await kv.delete(["audit", "seq", seq]);
  kv.close();
  g.release();
  await waitFor("delivery", () => g.got.length === 6 || undefined);
  assertEquals(g.got, [1, 17, 18, 19, 20, 21]);
  assertEquals([out.stats().recovered, out.stats().dropped], [0, 15]);
  assert(said.includes("output file-0: dropped 15 records, no longer in the store"), said.join("\n"));
  await out.stop(100);
  await log.close();
});

Deno.test("an output resumes where it got to: what came while it was not running is delivered first", async () => {
  const log = await openLog();
  const seen: number[] = [];
  const collect: Transport = {
    deliver: (records) => Promise.resolve(void seen.push(...records.map((r) => r["event.sequence"]!))),
    close: () => Promise.resolve(),
  };
  log.append([alert(0)]); // before the output ever ran: not its business
  const cfg = config({ type: "file", path: `${dir}/unused`, name: "resume" } as never);
  let out = new Output(log, cfg, () => {}, collect);
  await new Promise((r) => setTimeout(r, 50));
  log.append([alert(1), alert(2)]);
  await waitFor("two", () => seen.length === 2 || undefined);
  await out.stop();
  log.append([alert(3), alert(4), alert(5)]); // while no output runs
  out = new Output(log, cfg, () => {}, collect);
  await new Promise((r) => setTimeout(r, 50));
  log.append([alert(6)]);
  await waitFor("all", () => seen.length === 6 || undefined);
  assertEquals(seen, [2, 3, 4, 5, 6, 7]);
  await out.stop();
  await log.close();
});

Deno.test("a file output rotates by size and keeps `keep` files, the newest records, in order", async () => {
  const log = await openLog();
  const path = `${dir}/not-yet/rot.jsonl`; // its folder is made
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

/** A TCP syslog collector on loopback: octet-counted frames (RFC 6587), each connection's messages in order. */
function tcpCollector() {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const got: string[] = [];
  const conns: Deno.Conn[] = [];
  const serve = async () => {
    for await (const conn of listener) {
      conns.push(conn);
      (async () => {
        let buf = new Uint8Array(0);
        const chunk = new Uint8Array(65536);
        for (;;) {
          const n = await conn.read(chunk).catch(() => null);
          if (n === null) return;
          buf = new Uint8Array([...buf, ...chunk.subarray(0, n)]);
          for (;;) {
            const sp = buf.indexOf(0x20);
            if (sp < 0) break;
            const len = Number(new TextDecoder().decode(buf.subarray(0, sp)));
            if (buf.length < sp + 1 + len) break;
            got.push(new TextDecoder().decode(buf.subarray(sp + 1, sp + 1 + len)));
            buf = buf.subarray(sp + 1 + len);
          }
        }
      })();
    }
  };
  const done = serve().catch(() => {});
  return {
    port: (listener.addr as Deno.NetAddr).port,
    got,
    /** Ends the connections made so far (a collector restart, as the sender sees it). */
    drop: () => conns.splice(0).forEach((c) => c.close()),
    stop: async () => {
      conns.forEach((c) => c.close());
      listener.close();
      await done;
    },
  };
}

Deno.test("syslog over TCP to a loopback collector: octet-counted RFC 5424 frames, reconnecting after a drop", async () => {
  const collector = tcpCollector();
  const log = await openLog();
  const out = new Output(
    log,
    config({ type: "syslog", address: `127.0.0.1:${collector.port}`, protocol: "tcp", facility: "local3" } as never),
    () => {},
  );
  log.append([alert(0), alert(1)]);
  await waitFor("two frames", () => collector.got.length === 2 || undefined);
  const m = /^<155>1 \S+ \S+ idwrap \d+ alerts - (\{.*\})$/.exec(collector.got[0]);
  assert(m, collector.got[0]);
  assertEquals(JSON.parse(m[1])["threat.technique.subtechnique.id"], "T1003.008");
  // The collector restarts (drops the connection): the next records go over a new one, none lost.
  collector.drop();
  await new Promise((r) => setTimeout(r, 200));
  log.append([alert(2)]);
  await waitFor("the third frame", () => collector.got.length >= 3 || undefined, 20_000);
  assertEquals(collector.got.map((g) => JSON.parse(/(\{.*\})$/.exec(g)![1])["event.sequence"]), [1, 2, 3]);
  await log.close();
  await out.stop();
  await collector.stop();
});

Deno.test("an output still failing when it stops leaves what it holds for its next start", async () => {
  const closed = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (closed.addr as Deno.NetAddr).port;
  closed.close(); // nothing listens there
  const path = `${dir}/store-${n++}.kv`;
  let log = await AuditLog.open(path);
  const said: string[] = [];
  const cfg = config({ type: "webhook", url: `http://127.0.0.1:${port}/`, name: "dead" } as never);
  const out = new Output(log, cfg, (l) => said.push(l));
  await new Promise((r) => setTimeout(r, 50));
  log.append([alert(0), alert(1), alert(2)]);
  await waitFor("a failure", () => out.stats().failures > 0 || undefined);
  await out.stop(300);
  const s = out.stats();
  assertEquals([s.delivered, s.undelivered, s.dropped, s.queued], [0, 3, 0, 0]);
  assert(said.some((l) => l.includes("stopping with records undelivered; it delivers them when it next starts")));
  await log.close();

  // The next start (a working receiver now) delivers them from the store.
  log = await AuditLog.open(path);
  const seen: number[] = [];
  const again = new Output(log, cfg, () => {}, {
    deliver: (records) => Promise.resolve(void seen.push(...records.map((r) => r["event.sequence"]!))),
    close: () => Promise.resolve(),
  });
  await waitFor("the three", () => seen.length === 3 || undefined);
  assertEquals(seen, [1, 2, 3]);
  await again.stop();
  await log.close();
});

Deno.test("a bad configuration names file, line, field and what was expected", () => {
  const bad: [string, RegExp][] = [
    [
      "outputs:\n  - type: kafka\n",
      /^f\.yaml:2: outputs\[0\]\.type: expected file, syslog, webhook or nats, got "kafka"$/,
    ],
    ["outputs:\n  - type: file\n", /^f\.yaml:2: outputs\[0\]\.path: expected a non-empty string$/],
    [
      "outputs:\n  - type: file\n    path: /x\n    keep: -1\n",
      /^f\.yaml:4: outputs\[0\]\.keep: expected a whole number from 0 to 1000, got -1$/,
    ],
    ["outputs:\n  - type: syslog\n", /^f\.yaml:2: outputs\[0\]: expected one of socket .* or address/],
    [
      "outputs:\n  - type: syslog\n    socket: /dev/log\n    protocol: tcp\n",
      /^f\.yaml:4: outputs\[0\]\.protocol: tcp needs an address/,
    ],
    [
      "outputs:\n  - type: syslog\n    address: 127.0.0.1:514\n    protocol: sctp\n",
      /^f\.yaml:4: outputs\[0\]\.protocol: expected udp or tcp, got "sctp"$/,
    ],
    [
      "outputs:\n  - type: file\n    path: /x\n    format: ocsf\n    queues: all\n",
      /^f\.yaml:5: outputs\[0\]\.queues: an ocsf output carries alerts and verdicts only/,
    ],
    ["outputs:\n  - type: file\n    path: /x\n    colour: red\n", /^f\.yaml:4: outputs\[0\]\.colour: unknown field/],
    ["output: []\n", /^f\.yaml:1: output: unknown field, expected outputs or fleet$/],
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

Deno.test("an output whose store breaks stops alone, said, and the process goes on", async () => {
  const log = await openLog();
  const said: string[] = [];
  const g = gated();
  const out = new Output(
    log,
    { ...config({ type: "file", path: `${dir}/unused` }), buffer: 2 },
    (l) => said.push(l),
    g.transport,
  );
  await new Promise((r) => setTimeout(r, 50));
  log.append([alert(0)]);
  await new Promise((r) => setTimeout(r, 50));
  log.append(Array.from({ length: 10 }, (_, i) => alert(i + 1))); // 8 missed: to be read back from the store…
  await log.close(); // …which is gone
  g.release();
  await out.stop(1000);
  assert(said.some((l) => l.startsWith("output file-0: stopped by an error;")), said.join("\n"));
  assert(out.stats().lastError);
});

Deno.test("a record the webhook refuses for good (HTTP 400) is dropped alone, counted; the others go through", async () => {
  const got: number[] = [];
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const body = await req.json() as Record<string, unknown>[];
    if (body.some((r) => r["process.pid"] === 1005)) return new Response("bad record", { status: 400 });
    got.push(...body.map((r) => r["event.sequence"] as number));
    return new Response("ok");
  });
  const log = await openLog();
  const said: string[] = [];
  const url = `http://127.0.0.1:${(server.addr as Deno.NetAddr).port}/`;
  const out = new Output(log, config({ type: "webhook", url, batch: 50 } as never), (l) => said.push(l));
  await new Promise((r) => setTimeout(r, 50));
  log.append(Array.from({ length: 10 }, (_, i) => alert(i))); // pids 1000…1009; 1005 is record 6
  await waitFor("nine delivered", () => got.length === 9 || undefined);
  assertEquals(got.sort((a, b) => a - b), [1, 2, 3, 4, 5, 7, 8, 9, 10]);
  assertEquals([out.stats().delivered, out.stats().dropped], [9, 1]);
  assert(said.some((l) => l.includes("record 6 refused") && l.includes("HTTP 400")), said.join("\n"));
  await out.stop();
  await log.close();
  await server.shutdown();
});
