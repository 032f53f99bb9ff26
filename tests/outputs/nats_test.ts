/**
 * The `nats` output's transport against a real `nats-server -js` (loopback, a temp store), and its configuration:
 * records land on `<prefix>.<host>.<queue>` in a stream it creates; a batch published again (its acknowledgements
 * lost) is stored once, where the same messages without their ids are stored twice (the control); a dead server
 * fails the delivery (nothing counted delivered) and the same transport publishes once the server is up; the
 * configuration's errors name file, line and field.
 *
 * @module
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert, rejects, throws } from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import type { AuditRecord } from "../../host/audit/record.ts";
import { ConfigError, type NatsOutputConfig, parseConfig } from "../../host/outputs/config.ts";
import { NatsTransport } from "../../host/outputs/nats.ts";
import { freePort, NATS_SERVER, sayIfSkipped, startNats } from "./nats_helpers.ts";

sayIfSkipped("tests/outputs/nats_test.ts");

function natsConfig(url: string, over: Record<string, unknown> = {}): NatsOutputConfig {
  const text = JSON.stringify({ outputs: [{ type: "nats", url, queues: "all", host: "h1", ...over }] });
  return parseConfig(text, "test.yaml").outputs[0] as NatsOutputConfig;
}

function records(n: number, queue: AuditRecord["idwrap.queue"] = "alerts"): AuditRecord[] {
  return Array.from({ length: n }, (_, i) => ({
    "@timestamp": new Date().toISOString(),
    "ecs.version": "8.11.0",
    "event.kind": "alert",
    "event.category": ["intrusion_detection"],
    "event.type": ["info"],
    "event.action": "openat",
    "event.outcome": "success",
    "event.module": "idwrap",
    "event.dataset": `idwrap.${queue}`,
    "event.sequence": i + 1,
    message: `record ${i + 1}`,
    "process.pid": 1,
    "agent.id": "agent-test",
    "idwrap.queue": queue,
    "idwrap.source": "seccomp",
  }));
}

Deno.test({
  name: "nats: records on <prefix>.<host>.<queue>; a batch published twice is stored once (without ids: twice)",
  ignore: !NATS_SERVER,
}, async () => {
  const dir = await scratchDir({ prefix: "idwrap-nats-out-" });
  const port = freePort();
  const server = await startNats(port, dir);
  const url = `nats://127.0.0.1:${port}`;
  const nc = await connect({ servers: url });
  const transport = new NatsTransport(natsConfig(url, { stream: "DEDUP" }));
  try {
    const batch = [
      ...records(20),
      ...records(5, "faults").map((r) => ({ ...r, "event.sequence": 100 + r["event.sequence"]! })),
    ];
    await transport.deliver(batch);
    await transport.deliver(batch); // as after a failure part way: every acknowledgement lost
    const jsm = await jetstreamManager(nc);
    const info = await jsm.streams.info("DEDUP", { subjects_filter: ">" });
    assertEquals(info.config.subjects, ["idwrap.>"]);
    assertEquals(info.state.subjects, { "idwrap.h1.alerts": 20, "idwrap.h1.faults": 5 });
    const first = (await jsm.streams.getMessage("DEDUP", { seq: 1 }))!;
    assertEquals(first.header.get("Nats-Msg-Id"), "agent-test:1");
    assertEquals(first.json<AuditRecord>().message, "record 1");

    // The control: the same messages published twice without their ids are both kept.
    const js = jetstream(nc);
    for (let round = 0; round < 2; round++) {
      for (const r of records(20)) await js.publish("idwrap.control.alerts", JSON.stringify(r));
    }
    const after = await jsm.streams.info("DEDUP", { subjects_filter: ">" });
    assertEquals(after.state.subjects?.["idwrap.control.alerts"], 40);
  } finally {
    await transport.close();
    await nc.close();
    server.kill("SIGTERM");
    await server.status;
  }
});

Deno.test({
  name: "nats: a dead server fails the delivery; the same transport publishes once the server is up",
  ignore: !NATS_SERVER,
}, async () => {
  const dir = await scratchDir({ prefix: "idwrap-nats-out-" });
  const port = freePort();
  const url = `nats://127.0.0.1:${port}`;
  const transport = new NatsTransport(natsConfig(url, { timeout_ms: 500 }));
  await rejects(transport.deliver(records(3)), /NATS nats:\/\/127\.0\.0\.1:\d+: /);
  const server = await startNats(port, dir);
  try {
    await transport.deliver(records(3));
    const nc = await connect({ servers: url });
    const info = await (await jetstreamManager(nc)).streams.info("IDWRAP");
    assertEquals(info.state.messages, 3);
    await nc.close();
    // Killed: the next delivery fails (a publish waits at most timeout_ms), and nothing of it is counted delivered.
    server.kill("SIGKILL");
    await server.status;
    const started = Date.now();
    await rejects(transport.deliver(records(3)));
    assert(Date.now() - started < 5000, "a dead server is given up on within the timeouts");
  } finally {
    await transport.close();
    try {
      server.kill("SIGTERM");
    } catch { /* killed */ }
  }
});

Deno.test("nats and fleet configuration: defaults, and errors naming file, line and field", () => {
  const c = natsConfig("nats://n1:4222", { host: undefined, queues: undefined });
  assertEquals(c.servers, ["nats://n1:4222"]);
  assertEquals([c.stream, c.subjectPrefix, c.batch, c.timeoutMs, c.maxBackoffMs], [
    "IDWRAP",
    "idwrap",
    100,
    5000,
    30000,
  ]);
  assertEquals(c.host, Deno.hostname().replace(/[^A-Za-z0-9_-]/g, "_"));
  const fleet = parseConfig("fleet:\n  url: [nats://a:1, tls://b:2]\n  bucket: pol\n", "f.yaml").fleet;
  assertEquals(fleet, { servers: ["nats://a:1", "tls://b:2"], bucket: "pol", prefix: "policies.", timeoutMs: 5000 });
  const bad: [string, RegExp][] = [
    ["outputs:\n  - type: nats\n", /^f\.yaml:2: outputs\[0\]\.url: expected a nats:\/\/host:port URL/],
    [
      "outputs:\n  - type: nats\n    url: http://x\n",
      /^f\.yaml:3: outputs\[0\]\.url: expected a nats:\/\/ or tls:\/\/ URL/,
    ],
    [
      "outputs:\n  - type: nats\n    url: nats://x:1\n    stream: a.b\n",
      /^f\.yaml:4: outputs\[0\]\.stream: expected letters, digits, - and _ only, got "a\.b"$/,
    ],
    [
      "outputs:\n  - type: nats\n    url: nats://x:1\n    subject_prefix: a.*\n",
      /^f\.yaml:4: outputs\[0\]\.subject_prefix: expected dot-separated tokens/,
    ],
    ["outputs:\n  - type: nats\n    url: nats://x:1\n    host: a.b\n", /^f\.yaml:4: outputs\[0\]\.host: /],
    ["outputs:\n  - type: nats\n    url: nats://x:1\n    path: /x\n", /^f\.yaml:4: outputs\[0\]\.path: unknown field/],
    ["fleet:\n  bucket: b\n", /^f\.yaml:2: fleet: expected url/],
    ["fleet:\n  url: nats://x:1\n  bucket: a.b\n", /^f\.yaml:3: fleet\.bucket: expected a bucket name/],
    ["fleet:\n  url: nats://x:1\n  bucket: b\n  prefix: 'a b'\n", /^f\.yaml:4: fleet\.prefix: expected a key prefix/],
    ["fleet:\n  url: [nats://x:1, 'ftp://y']\n  bucket: b\n", /^f\.yaml:2: fleet\.url\[1\]: expected a nats:\/\//],
    ["fleet:\n  url: nats://x:1\n  bucket: b\n  watch: yes\n", /^f\.yaml:4: fleet\.watch: unknown field/],
    ["fleet: [1]\n", /^f\.yaml:1: fleet: expected a mapping/],
  ];
  for (const [text, want] of bad) {
    throws(() => parseConfig(text, "f.yaml"), (e: unknown) => e instanceof ConfigError && want.test(e.message), text);
  }
});
