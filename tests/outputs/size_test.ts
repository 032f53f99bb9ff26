/**
 * A record too big for its transport (rt9 F1): a wrapped program's argv of CJK text (one UTF-16 unit, three UTF-8
 * bytes a character) passes the store's size limit and makes a syslog datagram over 64 KiB. It is cut to fit and says
 * so (`idwrap.truncated`); one that cannot be cut is dropped, counted and logged. Never retried for good: every later
 * record still arrives, at a real loopback UDP collector and a real nats-server with a small max_payload.
 *
 * @module
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import dgram from "node:dgram";
import { connect } from "@nats-io/transport-node";
import { jetstreamManager } from "@nats-io/jetstream";
import { AuditLog } from "../../host/audit/log.ts";
import { type AuditRecord, toAuditRecords } from "../../host/audit/record.ts";
import { type OutputConfig, parseConfig } from "../../host/outputs/config.ts";
import { Output } from "../../host/outputs/output.ts";
import { MAX_DATAGRAM } from "../../host/outputs/transports.ts";
import { waitFor } from "../daemon/daemon_helpers.ts";
import { freePort, NATS_SERVER, sayIfSkipped, startNats } from "./nats_helpers.ts";
import { scratchDir } from "../temp.ts";

sayIfSkipped("tests/outputs/size_test.ts (its nats test)");

function config(over: Record<string, unknown>): OutputConfig {
  return parseConfig(JSON.stringify({ outputs: [{ queues: "all", ...over }] }), "test.yaml").outputs[0];
}

/** An exec alert of `/bin/echo` with `args` as its argv after the program, as a rule whose message quotes argv. */
function execAlert(marker: string, args: string[] = []): AuditRecord {
  const r = toAuditRecords({
    kind: "alert",
    source: "seccomp",
    time: Date.now(),
    pid: 4242,
    wrapper: "policy",
    severity: 2,
    message: `policy.exec-alert: /bin/echo ${marker} ${args.join(" ")}`,
    program: { exe: "/bin/echo", argv0: "echo", uid: 999, gid: 999 },
  })[0];
  return { ...r, "process.args": ["/bin/echo", marker, ...args] };
}

/** The PoC's argument: 40 arguments of 1,000 × U+4E00 (40,000 characters; 120,000 UTF-8 bytes). */
const CJK = Array.from({ length: 40 }, () => "\u4e00".repeat(1000));

/** A record nothing can be cut from (one object field of 20 KB), small enough for the store. */
function uncuttable(marker: string): AuditRecord {
  return { ...execAlert(marker), "labels": { blob: "x".repeat(20_000) } } as unknown as AuditRecord;
}

Deno.test("syslog over UDP: a CJK record too big for a datagram is cut to fit, marked truncated; the later ones arrive", async () => {
  const dir = await scratchDir({ prefix: "idwrap-size-" });
  const server = dgram.createSocket("udp4");
  const got: Uint8Array[] = [];
  server.on("message", (m) => got.push(new Uint8Array(m)));
  await new Promise<void>((r) => server.bind(0, "127.0.0.1", () => r()));
  const log = await AuditLog.open(`${dir}/store.kv`);
  const said: string[] = [];
  const out = new Output(
    log,
    config({ type: "syslog", name: "udp", address: `127.0.0.1:${server.address().port}` }),
    (l) => said.push(l),
  );
  try {
    log.append([execAlert("before")]);
    await waitFor("the control's datagram", () => got.length === 1 || undefined);
    log.append([execAlert("poison", CJK), execAlert("after1"), execAlert("after2")]);
    await waitFor("the later records", () => got.length === 4 || undefined, 15_000);
    const text = got.map((d) => new TextDecoder().decode(d));
    const markers = text.map((t) => /"\/bin\/echo","([a-z0-9]+)"/.exec(t)?.[1]);
    assertEquals(markers, ["before", "poison", "after1", "after2"]);
    assert(got.every((d) => d.length <= MAX_DATAGRAM), got.map((d) => d.length).join(","));
    const poison = JSON.parse(text[1].slice(text[1].indexOf("{")));
    assertEquals(poison["idwrap.truncated"], true);
    assert(poison.message.startsWith("policy.exec-alert: /bin/echo poison \u4e00"), "the message is kept, cut");
    assertEquals([out.stats().delivered, out.stats().dropped, out.stats().failures], [4, 0, 0]);
  } finally {
    await out.stop();
    await log.close();
    server.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name: "nats: a record over the server's max_payload is cut to fit; one that cannot be is dropped, counted",
  ignore: !NATS_SERVER,
}, async () => {
  const dir = await scratchDir({ prefix: "idwrap-size-nats-" });
  await Deno.writeTextFile(`${dir}/nats.conf`, "max_payload: 16384\n");
  const port = freePort();
  const server = await startNats(port, `${dir}/js`, ["-c", `${dir}/nats.conf`]);
  const url = `nats://127.0.0.1:${port}`;
  const log = await AuditLog.open(`${dir}/store.kv`);
  const said: string[] = [];
  const out = new Output(log, config({ type: "nats", name: "n", url, host: "h1" }), (l) => said.push(l));
  const nc = await connect({ servers: url });
  try {
    await new Promise((r) => setTimeout(r, 100));
    log.append([execAlert("before"), execAlert("poison", CJK), uncuttable("whole"), execAlert("after")]);
    await waitFor("the later record", () => out.stats().delivered === 3 || undefined, 15_000);
    const jsm = await jetstreamManager(nc);
    assertEquals((await jsm.streams.info("IDWRAP")).state.messages, 3);
    const cut = (await jsm.streams.getMessage("IDWRAP", { seq: 2 }))!.json<AuditRecord>();
    assertEquals([cut["process.args"]?.[1], cut["idwrap.truncated"]], ["poison", true]);
    assertEquals(
      (await jsm.streams.getMessage("IDWRAP", { seq: 3 }))!.json<AuditRecord>()["process.args"]?.[1],
      "after",
    );
    assertEquals(out.stats().dropped, 1);
    assert(said.some((l) => /more than max_payload allows; dropped/.test(l)), said.join("\n"));
  } finally {
    await out.stop();
    await log.close();
    await nc.close();
    server.kill("SIGTERM");
    await server.status;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("webhook: a batch over the collector's body limit (HTTP 413) is split until it fits; every record delivered", async () => {
  const dir = await scratchDir({ prefix: "idwrap-size-hook-" });
  const got: string[] = [];
  const LIMIT = 200_000; // bytes of body the collector takes (nginx's client_max_body_size, smaller)
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const body = new Uint8Array(await req.arrayBuffer());
    if (body.length > LIMIT) return new Response("too large", { status: 413 });
    got.push(...(JSON.parse(new TextDecoder().decode(body)) as AuditRecord[]).map((r) => r["process.args"]![1]));
    return new Response("ok");
  });
  const log = await AuditLog.open(`${dir}/store.kv`);
  const url = `http://127.0.0.1:${(server.addr as Deno.NetAddr).port}/`;
  const out = new Output(log, config({ type: "webhook", name: "w", url, batch: 50 }), () => {});
  try {
    await new Promise((r) => setTimeout(r, 50));
    // Ten records of ~90 KB of UTF-8 each (the store's limit, counted in UTF-16 units): one batch of ~900 KB.
    const big = Array.from({ length: 30 }, () => "\u4e00".repeat(1000));
    log.append(Array.from({ length: 10 }, (_, i) => execAlert(`r${i}`, big)));
    await waitFor("ten delivered", () => got.length === 10 || undefined, 15_000);
    assertEquals(got.sort(), Array.from({ length: 10 }, (_, i) => `r${i}`));
    assertEquals(out.stats().dropped, 0);
  } finally {
    await out.stop();
    await log.close();
    await server.shutdown();
    await Deno.remove(dir, { recursive: true });
  }
});
