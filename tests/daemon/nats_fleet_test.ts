/**
 * The fleet on a real NATS JetStream server (`nats-server -js`, started here on a free loopback port, its store in a
 * temp dir): two daemons as two hosts (stores, run dirs and subject host names of their own) publish the alerts of
 * real wrapped programs, and one durable consumer receives both hosts' alerts, in order per host, each once; a
 * policy put in the KV bucket reaches both daemons and its deny holds on a real program (as root and as an ordinary
 * user; the same program reads the file before it is put); a broken revision is refused by both, reported (a faults
 * record on the stream, a log line) and the last good policy holds; the server killed, programs run and alert while
 * it is down (not held up), and restarted on the same store loses nothing: every record published after it is back,
 * none twice. Skipped, saying why, only when nats-server is not installed (tools/debian-deps.sh installs it).
 *
 * @module
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { AckPolicy, type Consumer, jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { ensureUser, idwrap, idwrapAsUser, prog } from "../helpers.ts";
import { startDaemon, type TestDaemon, waitFor } from "./daemon_helpers.ts";
import { freePort, NATS_SERVER, sayIfSkipped, startNats } from "../outputs/nats_helpers.ts";

type Rec = Record<string, unknown>;

sayIfSkipped("tests/daemon/nats_fleet_test.ts");

const BUCKET = "idwrap-policies";
const N = 40; // alerts per host while the server runs
const M = 30; // alerts per host while it is down

/** The durable consumer's messages so far, parsed, with their subjects. */
async function fetchAll(consumer: Consumer, into: { subject: string; rec: Rec; id: string }[]): Promise<void> {
  const batch = await consumer.fetch({ max_messages: 500, expires: 1000 });
  for await (const m of batch) {
    into.push({ subject: m.subject, rec: m.json<Rec>(), id: m.headers?.get("Nats-Msg-Id") ?? "" });
    m.ack();
  }
}

Deno.test({
  name:
    "fleet on NATS JetStream: two hosts' alerts in order, bucket policies reach both, a server restart loses nothing",
  ignore: !NATS_SERVER,
  sanitizeResources: false,
  sanitizeOps: false,
}, async (t) => {
  const dir = await scratchDir({ prefix: "idwrap-nats-" });
  await Deno.chmod(dir, 0o755);
  const watched = `${dir}/watched.txt`;
  const secret = `${dir}/secret.txt`;
  await Deno.writeTextFile(watched, "w\n");
  await Deno.writeTextFile(secret, "the secret\n");
  await Deno.chmod(secret, 0o644);
  const policy = `${dir}/alert.yaml`;
  await Deno.writeTextFile(
    policy,
    `rules:\n  - id: watched-open\n    syscalls: [openat]\n    path: ${watched}\n    action: alert\n`,
  );
  const port = freePort();
  const url = `nats://127.0.0.1:${port}`;
  let server = await startNats(port, `${dir}/jetstream`);
  const uid = await ensureUser("idwrap-alice");
  const daemons: TestDaemon[] = [];
  let nc: NatsConnection | undefined;
  try {
    for (const host of ["host-a", "host-b"]) {
      const config = `${dir}/${host}.yaml`;
      await Deno.writeTextFile(
        config,
        `outputs:
  - type: nats
    name: fleet
    url: ${url}
    host: ${host}
    queues: [alerts, faults]
    batch: 20
    timeout_ms: 1000
    max_backoff_ms: 500
fleet:
  url: ${url}
  bucket: ${BUCKET}
  timeout_ms: 5000
`,
      );
      daemons.push(
        await startDaemon(["--policy", policy, "--no-watch", "--config", config, "--allow", "idwrap-alice"]),
      );
    }
    const [a, b] = daemons;
    const both = (what: string, pred: (log: string) => boolean) =>
      waitFor(what, () => daemons.every((d) => pred(d.log())) || undefined, 30000);
    await both("both daemons following the bucket", (l) => l.includes(`fleet: following ${BUCKET}`));

    nc = await connect({ servers: url });
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    const kv = await new Kvm(nc).open(BUCKET);
    const got: { subject: string; rec: Rec; id: string }[] = [];
    const alertsOf = (host: string) =>
      got.filter((g) => g.subject === `idwrap.${host}.alerts` && g.rec["rule.name"] === "watched-open")
        .map((g) => g.rec["event.sequence"] as number);
    const raise = (d: TestDaemon, n: number) =>
      idwrap(["run", "--", prog("open_many"), watched, String(n)], { env: d.env });
    let goodRev = 0;
    const catUnder = (d: TestDaemon) => idwrap(["run", "--", "/bin/cat", secret], { env: d.env });
    const catAsUser = (d: TestDaemon) =>
      idwrapAsUser(uid, `${dir}/alice`, ["run", "--", "/bin/cat", secret], { env: d.env });

    await t.step("both hosts' alerts reach one consumer, in order per host, once each", async () => {
      for (const r of await Promise.all([raise(a, N), raise(b, N)])) assertEquals(r.code, 0, r.stderr);
      await waitFor("the stream", () => jsm.streams.info("IDWRAP").catch(() => undefined));
      await jsm.consumers.add("IDWRAP", { durable_name: "siem", ack_policy: AckPolicy.Explicit });
      const consumer = await js.consumers.get("IDWRAP", "siem");
      await waitFor("N alerts of each host", async () => {
        await fetchAll(consumer, got);
        return alertsOf("host-a").length >= N && alertsOf("host-b").length >= N || undefined;
      }, 30000);
      for (const host of ["host-a", "host-b"]) {
        const seqs = alertsOf(host);
        assertEquals(seqs.length, N, `${host}: each alert once`);
        assertEquals(seqs, [...seqs].sort((x, y) => x - y), `${host}: in order`);
        const rec = got.find((g) => g.subject === `idwrap.${host}.alerts`)!.rec;
        assertEquals(rec["rule.name"], "watched-open");
      }
      const agents = new Set(got.map((g) => g.rec["agent.id"]));
      assertEquals(agents.size, 2, "two agents (stores)");
      for (const g of got) assertEquals(g.id, `${g.rec["agent.id"]}:${g.rec["event.sequence"]}`);
    });

    await t.step("a policy put in the bucket reaches both daemons; its deny holds for root and a user", async () => {
      // The control: the same programs read the file under both daemons before the policy is put.
      for (const d of daemons) {
        const r = await catUnder(d);
        assertEquals(r.code, 0, r.stderr);
        assertEquals(r.stdout, "the secret\n");
      }
      const u = await catAsUser(a);
      assertEquals(u.stdout, "the secret\n", u.stderr);
      const rev = goodRev = await kv.put(
        "policies.deny-secret",
        `version: 1\nname: fleet-deny\nrules:\n  - id: deny-secret\n    syscalls: [openat]\n    path: ${secret}\n` +
          `    action: deny\n    errno: EACCES\n`,
      );
      await both(
        "the policy in force on both",
        (l) => l.includes(`fleet: policies.deny-secret revision ${rev} in force`),
      );
      for (const d of daemons) {
        const r = await catUnder(d);
        assert(r.code !== 0, `cat read the file under ${d.runDir}`);
        assert(!r.stdout.includes("the secret"), r.stdout);
      }
      const u2 = await catAsUser(a);
      assert(u2.code !== 0 && !u2.stdout.includes("the secret"), `the user read it: ${u2.stdout} ${u2.stderr}`);
    });

    await t.step("a broken revision is refused by both, reported, and the last good policy holds", async () => {
      const rev = await kv.put("policies.deny-secret", "version: 1\nrules:\n  - id: broken\n    action: explode\n");
      await both("the refusal on both", (l) => l.includes(`fleet: policies.deny-secret revision ${rev} refused`));
      for (const d of daemons) {
        const r = await catUnder(d);
        assert(r.code !== 0 && !r.stdout.includes("the secret"), `the last good deny no longer holds: ${r.stdout}`);
      }
      const consumer = await js.consumers.get("IDWRAP", "siem");
      const refusals = await waitFor("a refusal record from each host", async () => {
        await fetchAll(consumer, got);
        const f = got.filter((g) => g.rec["event.action"] === "fleet-policy-refused");
        return new Set(f.map((g) => g.subject)).size === 2 ? f : undefined;
      }, 30000);
      assertEquals(new Set(refusals.map((g) => g.subject)), new Set(["idwrap.host-a.faults", "idwrap.host-b.faults"]));
      for (const g of refusals) {
        assertEquals(g.rec["rule.ruleset"], `${BUCKET}/policies.deny-secret`);
        assert(
          /deny-secret\.yaml:\d+: rules\[0\]/.test(String(g.rec["error.message"])),
          String(g.rec["error.message"]),
        );
      }
    });

    await t.step(
      "a program the daemon wraps rewrites its fleet policy's file: the deny stays at the next change",
      async () => {
        const file = `${a.runDir}/fleet/r${goodRev}/deny-secret.yaml`;
        const bucketText = await Deno.readTextFile(file);
        const lift = `${dir}/lift.yaml`;
        await Deno.writeTextFile(
          lift,
          `version: 1\nname: fleet-deny\nrules:\n  - id: noop\n    syscalls: [openat]\n    path: /nonexistent\n` +
            `    action: alert\n`,
        );
        await Deno.chmod(lift, 0o644);
        // An ordinary user cannot reach it (the fleet folder is root's, 0700)…
        const user = await idwrapAsUser(uid, `${dir}/alice`, ["run", "--", "/bin/cp", lift, file], { env: a.env });
        assert(user.code !== 0, "the user wrote the fleet policy's file");
        assertEquals(await Deno.readTextFile(file), bucketText);
        // …root, wrapped, can: the write goes through (the attack's first half succeeds).
        const root = await idwrap(["run", "--", "/bin/cp", lift, file], { env: a.env });
        assertEquals(root.code, 0, root.stderr);
        assertEquals(await Deno.readTextFile(file), await Deno.readTextFile(lift));
        // Any change in the bucket reloads the policies: the fleet's come from the bucket's text, not the file.
        const rev = await kv.put(
          "policies.other",
          `version: 1\nname: other\nrules:\n  - id: other\n    syscalls: [openat]\n    path: ${dir}/other.txt\n` +
            `    action: alert\n`,
        );
        await both(
          "the other policy in force on both",
          (l) => l.includes(`fleet: policies.other revision ${rev} in force`),
        );
        for (const d of daemons) {
          const r = await catUnder(d);
          assert(r.code !== 0 && !r.stdout.includes("the secret"), `the rewritten file lifted the deny: ${r.stdout}`);
        }
        assertEquals(await Deno.readTextFile(file), bucketText, "the file is written again from the bucket");
      },
    );

    await t.step(
      "the server killed and restarted: nothing lost, nothing twice, enforcement never held up",
      async () => {
        server.kill("SIGKILL");
        await server.status;
        const began = Date.now();
        for (const r of await Promise.all([raise(a, M), raise(b, M)])) assertEquals(r.code, 0, r.stderr);
        const down = Date.now() - began;
        assert(down < 15000, `runs took ${down} ms with the server down`);
        for (const d of daemons) {
          const r = await catUnder(d); // the bucket's deny still holds while the bucket is unreachable
          assert(r.code !== 0 && !r.stdout.includes("the secret"), r.stdout);
        }
        server = await startNats(port, `${dir}/jetstream`);
        nc!.close().catch(() => {});
        nc = await connect({ servers: url });
        const consumer = await jetstream(nc).consumers.get("IDWRAP", "siem");
        await waitFor("N+M alerts of each host", async () => {
          await fetchAll(consumer, got);
          return alertsOf("host-a").length >= N + M && alertsOf("host-b").length >= N + M || undefined;
        }, 60000);
        await new Promise((r) => setTimeout(r, 1500));
        await fetchAll(consumer, got); // anything more would be a duplicate
        for (const host of ["host-a", "host-b"]) {
          const seqs = alertsOf(host);
          assertEquals(seqs.length, N + M, `${host}: every alert once`);
          assertEquals(seqs, [...seqs].sort((x, y) => x - y), `${host}: in order`);
        }
        assertEquals(new Set(got.map((g) => g.id)).size, got.length, "no message twice on the stream");
        for (const d of daemons) assert(d.log().includes("output fleet: cannot deliver, retrying"), "it did retry");
        // And the bucket again: deleting the key unloads the policy on both (the watch resumed).
        const kv2 = await new Kvm(nc).open(BUCKET);
        await kv2.delete("policies.deny-secret");
        await both("the policy unloaded on both", (l) => /fleet: policies\.deny-secret revision \d+ deleted/.test(l));
        for (const d of daemons) assertEquals((await catUnder(d)).stdout, "the secret\n");
      },
    );
  } catch (e) {
    for (const d of daemons) console.error(`--- daemon ${d.runDir}:\n${d.log()}`);
    throw e;
  } finally {
    await nc?.close().catch(() => {});
    for (const d of daemons) await d.stop();
    try {
      server.kill("SIGTERM");
    } catch { /* gone */ }
    await server.status;
  }
});

Deno.test({
  name: "fleet: a bucket unreachable at start leaves the local policies in force; the fleet's load once it is up",
  ignore: !NATS_SERVER,
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const dir = await scratchDir({ prefix: "idwrap-nats-late-" });
  await Deno.chmod(dir, 0o755);
  const secret = `${dir}/secret.txt`;
  await Deno.writeTextFile(secret, "the secret\n");
  const policy = `${dir}/local.yaml`;
  await Deno.writeTextFile(
    policy,
    `rules:\n  - id: local\n    syscalls: [openat]\n    path: ${dir}/none.txt\n    action: alert\n`,
  );
  const port = freePort();
  const url = `nats://127.0.0.1:${port}`;
  const config = `${dir}/idwrap.yaml`;
  await Deno.writeTextFile(config, `fleet:\n  url: ${url}\n  bucket: ${BUCKET}\n  timeout_ms: 500\n`);
  const d = await startDaemon(["--policy", policy, "--no-watch", "--config", config]);
  let server: Deno.ChildProcess | undefined;
  let nc: NatsConnection | undefined;
  try {
    assert(d.log().includes(`fleet: ${BUCKET} not reached within 500 ms: serving the local policies`), d.log());
    assertEquals((await idwrap(["run", "--", "/bin/cat", secret], { env: d.env })).stdout, "the secret\n");
    server = await startNats(port, `${dir}/jetstream`);
    nc = await connect({ servers: url });
    const kv = await new Kvm(nc).create(BUCKET, { history: 5 });
    const rev = await kv.put(
      "policies.deny-secret",
      `version: 1\nname: fleet-deny\nrules:\n  - id: deny-secret\n    syscalls: [openat]\n    path: ${secret}\n` +
        `    action: deny\n    errno: EACCES\n`,
    );
    await waitFor(
      "the policy in force",
      () => d.log().includes(`policies.deny-secret revision ${rev} in force`) || undefined,
      30000,
    );
    const r = await idwrap(["run", "--", "/bin/cat", secret], { env: d.env });
    assert(r.code !== 0 && !r.stdout.includes("the secret"), r.stdout);
  } catch (e) {
    console.error(`--- daemon:\n${d.log()}`);
    throw e;
  } finally {
    await nc?.close().catch(() => {});
    await d.stop();
    try {
      server?.kill("SIGTERM");
    } catch { /* gone */ }
    await server?.status;
  }
});
