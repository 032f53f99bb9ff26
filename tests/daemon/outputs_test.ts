/**
 * Outputs and metrics of a real daemon serving a real run: alerts reach a syslog socket the test binds (RFC 5424), a
 * file (JSON lines, rotated by size, nothing lost or doubled across the files), and a loopback HTTP server that
 * fails its first requests (OCSF findings: every alert arrives once after the retries, the failures counted); the
 * Prometheus endpoint is scraped while the run is alive and after.
 *
 * @module
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { IDWRAP, idwrap, prog, ROOT } from "../helpers.ts";
import { startDaemon, waitFor } from "./daemon_helpers.ts";
import { readLines, sendLine } from "../../host/daemon/protocol.ts";

type Rec = Record<string, unknown>;

const dir = await scratchDir({ prefix: "idwrap-outputs-" });
await Deno.writeTextFile(`${dir}/watched.txt`, "w\n");
const policy = `${dir}/alert.yaml`;
await Deno.writeTextFile(
  policy,
  `rules:\n  - id: watched-open\n    syscalls: [openat]\n    path: ${dir}/watched.txt\n    action: alert\n`,
);
const N = 60;

/** A Unix datagram socket bound at `path` (python3, a real receiver): every datagram, one per line. */
function syslogReceiver(path: string): { lines: string[]; stop: () => Promise<void> } {
  const child = new Deno.Command("python3", {
    args: [
      "-u",
      "-c",
      `import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("ready", flush=True)
while True:
    d = s.recv(1 << 20)
    sys.stdout.write(d.decode() + "\\n"); sys.stdout.flush()`,
      path,
    ],
    stdout: "piped",
    stderr: "inherit",
    stdin: "null",
  }).spawn();
  const lines: string[] = [];
  (async () => {
    let buf = "";
    for await (const chunk of child.stdout.pipeThrough(new TextDecoderStream())) {
      buf += chunk;
      for (let nl; (nl = buf.indexOf("\n")) >= 0; buf = buf.slice(nl + 1)) lines.push(buf.slice(0, nl));
    }
  })();
  return {
    lines,
    stop: async () => {
      child.kill();
      await child.status;
    },
  };
}

/** Scrapes the daemon's metrics: `name{labels}` → value. */
async function scrape(port: number): Promise<Map<string, number>> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  assertEquals(res.status, 200);
  assert(res.headers.get("content-type")?.startsWith("text/plain; version=0.0.4"));
  const out = new Map<string, number>();
  for (const line of (await res.text()).split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const i = line.lastIndexOf(" ");
    out.set(line.slice(0, i), Number(line.slice(i + 1)));
  }
  return out;
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

Deno.test("alerts reach syslog, a rotated file and a failing-then-recovering webhook; metrics during the run", async () => {
  const sock = `${dir}/syslog.sock`;
  const syslog = syslogReceiver(sock);
  await waitFor("the syslog receiver", () => syslog.lines[0] === "ready" || undefined);

  // The webhook refuses its first 3 requests (503), then takes everything.
  const posts: unknown[][] = [];
  let refused = 0;
  const hook = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const body = await req.json();
    if (refused < 3) {
      refused++;
      return new Response("busy", { status: 503 });
    }
    posts.push(body);
    return new Response("ok");
  });
  const hookPort = (hook.addr as Deno.NetAddr).port;
  const metricsPort = freePort();

  const file = `${dir}/alerts.jsonl`;
  const config = `${dir}/idwrap.yaml`;
  await Deno.writeTextFile(
    config,
    `outputs:
  - type: syslog
    name: local-syslog
    socket: ${sock}
    facility: authpriv
  - type: file
    name: alerts-file
    path: ${file}
    max_bytes: 16384
    keep: 50
  - type: webhook
    name: siem
    url: http://127.0.0.1:${hookPort}/ingest
    format: ocsf
    batch: 25
    max_backoff_ms: 500
`,
  );
  const d = await startDaemon([
    "--policy",
    policy,
    "--policy",
    `${ROOT}policies/default.yaml`, // the baseline wrapper: its hooks are timed
    "--no-watch",
    "--config",
    config,
    "--metrics",
    `127.0.0.1:${metricsPort}`,
  ]);
  try {
    // A run that raises N alerts, then stays alive while the metrics are scraped.
    const running = new Deno.Command(IDWRAP, {
      args: ["run", "--", "/bin/sh", "-c", `${prog("open_many")} ${dir}/watched.txt ${N} && sleep 4`],
      env: d.env,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const live = await waitFor("the alerts counted while the tree runs", async () => {
      const m = await scrape(metricsPort);
      return m.get('idwrap_alerts_total{rule="watched-open",source="seccomp"}') === N ? m : undefined;
    });
    assertEquals(live.get("idwrap_sessions"), 1);
    assert((live.get('idwrap_processes{source="seccomp"}') ?? 0) >= 1, "a wrapped process is alive");
    assertEquals(live.get('idwrap_sessions_total{source="seccomp"}'), 1);
    assert((live.get('idwrap_calls_notified_total{source="seccomp"}') ?? 0) >= N, "calls counted while they run");
    assertEquals((await running.status).code, 0);

    // Syslog: N RFC 5424 messages, authpriv (10) and warning (4) for a rule's alert, the ECS record as message.
    const messages = await waitFor("N syslog messages", () => {
      const m = syslog.lines.slice(1);
      return m.length >= N ? m : undefined;
    });
    assertEquals(messages.length, N);
    for (const line of messages) {
      const m = /^<84>1 (\S+) (\S+) idwrap (\d+) alerts - (\{.*\})$/.exec(line);
      assert(m, line.slice(0, 200));
      assertEquals(m[2], Deno.hostname());
      const rec = JSON.parse(m[4]) as Rec;
      assertEquals(rec["rule.name"], "watched-open");
      assertEquals(rec["@timestamp"], m[1]);
    }

    // The file: rotated (16 KiB each), every alert once, in order across path.K … path.1, path.
    const seqs = await waitFor("N records across the rotated files", async () => {
      const files: string[] = [];
      for (let k = 50; k >= 1; k--) {
        if (await Deno.stat(`${file}.${k}`).then(() => true, () => false)) files.push(`${file}.${k}`);
      }
      files.push(file);
      const out: number[] = [];
      for (const f of files) {
        assert((await Deno.stat(f)).size <= 16384, `${f} is over max_bytes`);
        for (const l of (await Deno.readTextFile(f)).split("\n").filter(Boolean)) {
          out.push((JSON.parse(l) as Rec)["event.sequence"] as number);
        }
      }
      return out.length >= N ? { out, files } : undefined;
    });
    assert(seqs.files.length >= 3, `rotated: ${seqs.files.join(", ")}`);
    assertEquals(seqs.out.length, N);
    assertEquals(seqs.out, [...seqs.out].sort((a, b) => a - b));
    assertEquals(new Set(seqs.out).size, N);
    assertEquals((await Deno.stat(file)).mode! & 0o777, 0o600);

    // The webhook: after 3 refusals, every alert once, as OCSF Detection Findings.
    const findings = await waitFor("N findings posted", () => {
      const all = posts.flat() as Rec[];
      return all.length >= N ? all : undefined;
    });
    assertEquals(refused, 3);
    assertEquals(findings.length, N);
    const uids = new Set(findings.map((f) => (f.finding_info as Rec).uid));
    assertEquals(uids.size, N, "no finding twice");
    const f = findings[0];
    assertEquals([f.class_uid, f.category_uid, f.type_uid, f.activity_id], [2004, 2, 200401, 1]);
    assertEquals(((f.finding_info as Rec).analytic as Rec).name, "watched-open");
    assertEquals((f.device as Rec).hostname, Deno.hostname());
    assertEquals(((f.actor as Rec).process as Rec).name, "open_many");
    assertEquals((f.metadata as Rec).version, "1.3.0");

    const after = await waitFor("the outputs' counters", async () => {
      const m = await scrape(metricsPort);
      return m.get('idwrap_output_delivered_total{output="siem",type="webhook"}') === N ? m : undefined;
    });
    assertEquals(after.get('idwrap_output_failures_total{output="siem",type="webhook"}'), 3);
    assertEquals(after.get('idwrap_output_dropped_total{output="siem",type="webhook"}'), 0);
    assertEquals(after.get('idwrap_output_delivered_total{output="local-syslog",type="syslog"}'), N);
    assertEquals(after.get('idwrap_output_delivered_total{output="alerts-file",type="file"}'), N);
    assertEquals(after.get('idwrap_output_queue{output="siem",type="webhook"}'), 0);
    assert(
      after.get('idwrap_calls_notified_total{source="seccomp"}')! >=
        live.get('idwrap_calls_notified_total{source="seccomp"}')!,
    );
    const hookCalls = after.get('idwrap_hook_seconds_count{wrapper="baseline",source="seccomp"}') ?? 0;
    const hookSeconds = after.get('idwrap_hook_seconds_sum{wrapper="baseline",source="seccomp"}') ?? 0;
    assert(hookCalls >= N && hookSeconds > 0 && hookSeconds < 60, `baseline's hooks: ${hookCalls}, ${hookSeconds} s`);
    assertEquals(after.get("idwrap_sessions"), 0);
    assert(d.log().includes("output siem: cannot deliver, retrying: "), d.log());

    // The status request carries the same counters.
    const conn = await Deno.connect({ transport: "unix", path: `${d.runDir}/0.sock` });
    await sendLine(conn, { op: "status" });
    const status = (await readLines<Rec>(conn).next()).value as Rec;
    conn.close();
    const outs = status.outputs as Rec[];
    assertEquals(outs.map((o) => [o.name, o.delivered, o.dropped]), [
      ["local-syslog", N, 0],
      ["alerts-file", N, 0],
      ["siem", N, 0],
    ]);
  } finally {
    await d.stop();
    await hook.shutdown();
    await syslog.stop();
  }
});

Deno.test("a bad output configuration stops the daemon before it starts, naming file, line and field", async () => {
  const config = `${dir}/bad.yaml`;
  await Deno.writeTextFile(config, `outputs:\n  - type: webhook\n    url: ftp://x/\n`);
  const r = await idwrap(["daemon", "--policy", policy, "--config", config], {
    env: { IDWRAP_RUN_DIR: `${dir}/bad-run`, IDWRAP_STORE: `${dir}/bad.kv` },
    timeoutMs: 60_000,
  });
  assertEquals(r.code, 2, r.stderr);
  assert(
    r.stderr.includes(`invalid configuration: ${config}:3: outputs[0].url: expected an http:// or https:// URL`),
    r.stderr,
  );
  const m = await idwrap(["daemon", "--policy", policy, "--metrics", "localhost"], {
    env: { IDWRAP_RUN_DIR: `${dir}/bad-run`, IDWRAP_STORE: `${dir}/bad.kv` },
    timeoutMs: 60_000,
  });
  assertEquals(m.code, 2, m.stderr);
  assert(m.stderr.includes('--metrics: expected HOST:PORT, got "localhost"'), m.stderr);
});

Deno.test("a daemon killed while its webhook is down delivers every alert once restarted", async () => {
  let healthy = false;
  const got: Rec[] = [];
  const hook = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    const body = await req.json() as Rec[];
    if (!healthy) return new Response("down", { status: 503 });
    got.push(...body);
    return new Response("ok");
  });
  const config = `${dir}/crash.yaml`;
  await Deno.writeTextFile(
    config,
    `outputs:\n  - type: webhook\n    name: siem\n    url: http://127.0.0.1:${
      (hook.addr as Deno.NetAddr).port
    }/\n    max_backoff_ms: 300\n`,
  );
  const d = await startDaemon(["--policy", policy, "--no-watch", "--config", config]);
  let again: Awaited<ReturnType<typeof startDaemon>> | undefined;
  try {
    const r = await idwrap(["run", "--", prog("open_many"), `${dir}/watched.txt`, "30"], { env: d.env });
    assertEquals(r.code, 0, r.stderr);
    await waitFor("a failed delivery", () => d.log().includes("output siem: cannot deliver") || undefined);
    await d.stop("SIGKILL"); // what the output held was only in its memory
    healthy = true;
    again = await startDaemon(["--policy", policy, "--no-watch", "--config", config], d);
    const seqs = await waitFor("every alert", () => {
      const s = new Set(got.filter((x) => x["rule.name"] === "watched-open").map((x) => x["event.sequence"]));
      return s.size >= 30 ? s : undefined;
    });
    assertEquals(seqs.size, 30);
    assert(again.log().includes("output siem: delivered 30 records kept while it was not running"), again.log());
  } finally {
    await again?.stop();
    await d.stop();
    await hook.shutdown();
  }
});
