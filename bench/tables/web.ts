/**
 * The web workload (the paper's WebStone runs, Table 2): Debian's nginx (one
 * worker) on 127.0.0.1 serving a fixed file set shaped like WebStone 2's
 * (500 B 35%, 5 KB 50%, 50 KB 14%, 500 KB 0.9%, 5 MB 0.1%), loaded by wrk from
 * another process: a fixed request order, one request per connection
 * (`Connection: close`, as WebStone's HTTP/1.0 clients), C concurrent
 * connections. Latency (mean, p99) and throughput (requests/s, Mbit/s) as wrk
 * measures them.
 *
 * @module
 */
import { join } from "node:path";
import { freePort } from "../../tests/loopback.ts";
import { type Config, withCompared, withSources, type WorkloadOptions } from "./configs.ts";
import { type FileSet, publicDir, webstoneFiles } from "./files.ts";
import { DEFAULT_POLICY } from "./paths.ts";
import { writeSharedPolicies } from "./policies.ts";
import { runCommand } from "./processes.ts";
import { type RoundsResult, runRounds, type TrainingRun, trainSeqPerSource } from "./rounds.ts";
import { serverRun } from "./server.ts";
import { httpdPolicy, nginxCommand, nginxConf } from "../../tests/servers.ts";

const WRK = "/usr/bin/wrk";
const FILES_PER_CLASS = 10;
const REQUESTS_IN_ORDER = 2000;

export interface WebOptions extends WorkloadOptions {
  seconds: number;
  connections: number;
}

export interface WebResult extends RoundsResult {
  configs: Config[];
  fileSet: FileSet["summary"];
  training: { runs: TrainingRun[]; error?: string };
  /** The same per extra source (--sources), each in its own store. */
  trainingBySource: Record<string, { runs: TrainingRun[]; error?: string }>;
}

interface Site {
  dir: string;
  port: number;
  conf: string;
  script: string;
  command: string[];
}

async function makeSite(work: string): Promise<Site & { fileSet: FileSet["summary"] }> {
  const dir = await publicDir(join(work, "nginx"));
  for (const sub of ["www", "logs", "tmp"]) await publicDir(join(dir, sub));
  const files = await webstoneFiles(join(dir, "www"), {
    perClass: FILES_PER_CLASS,
    orderLength: REQUESTS_IN_ORDER,
    seed: 1,
    orderSeed: 20000,
    ext: "html",
    prefix: "/",
  });
  const order = files.order;
  const port = freePort();
  const conf = join(dir, "nginx.conf");
  await Deno.writeTextFile(
    conf,
    nginxConf({ dir, port, http: "sendfile on;", workerConnections: 1024, backlog: 1024 }),
  );
  // wrk: each connection walks the fixed order from its own offset; one request per connection.
  const script = join(dir, "load.lua");
  await Deno.writeTextFile(
    script,
    `local paths = {${order.map((p) => `"${p}"`).join(",")}}
local n = 0
request = function()
  n = n % #paths + 1
  return wrk.format("GET", paths[n], { ["Connection"] = "close" })
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'IDWRAP_WRK {"requests":%d,"bytes":%d,"durationUs":%d,"errors":%d,"meanUs":%.3f,"stdevUs":%.3f,"p50Us":%d,"p99Us":%d,"maxUs":%d}\\n',
    summary.requests, summary.bytes, summary.duration, e.connect + e.read + e.write + e.status + e.timeout,
    latency.mean, latency.stdev, latency:percentile(50), latency:percentile(99), latency.max))
end
`,
  );
  const command = nginxCommand(dir);
  return { dir, port, conf, script, command, fileSet: files.summary };
}

async function wrk(site: Site, seconds: number, connections: number) {
  const r = await runCommand(
    [
      WRK,
      "-t1",
      `-c${connections}`,
      `-d${seconds}s`,
      "--timeout",
      "10s",
      "-s",
      site.script,
      `http://127.0.0.1:${site.port}/`,
    ],
    { stdout: true, timeoutMs: (seconds + 30) * 1000 },
  );
  const line = r.stdout.split("\n").find((l) => l.startsWith("IDWRAP_WRK "));
  if (r.code !== 0 || !line) throw new Error(`wrk failed (${r.code}): ${r.stdout.slice(-500)} ${r.stderr.slice(-500)}`);
  const w = JSON.parse(line.slice("IDWRAP_WRK ".length));
  if (w.requests === 0) throw new Error("wrk completed no request");
  if (w.errors > Math.max(1, w.requests * 0.01)) throw new Error(`wrk: ${w.errors} errors in ${w.requests} requests`);
  const s = w.durationUs / 1e6;
  return {
    metrics: {
      latMeanMs: w.meanUs / 1000,
      latP99Ms: w.p99Us / 1000,
      reqPerS: w.requests / s,
      mbitPerS: w.bytes * 8 / s / 1e6,
    },
    notes: { requests: w.requests, errors: w.errors, latStdevMs: w.stdevUs / 1000 },
  };
}

function policyFiles(work: string, site: Site) {
  const httpd = join(work, "web-httpd.yaml");
  Deno.writeTextFileSync(httpd, httpdPolicy(site, { name: "bench-httpd", response: "alert" }));
  return { httpd, ...writeSharedPolicies(work, "web", "nginx") };
}

export async function webWorkload(o: WebOptions): Promise<WebResult> {
  const site = await makeSite(o.work);
  const p = policyFiles(o.work, site);
  const configs: Config[] = withSources(
    withCompared([
      { id: "bare", label: "bare", kind: "bare", paperRow: "no WSS" },
      { id: "wss", label: "WSS only (idwrap, no wrapper)", kind: "idwrap", policies: [p.empty], paperRow: "WSS only" },
      // Issue 8: what `idwrap run` applies with no --policy (baseline wrapper).
      { id: "default", label: "default policy", kind: "idwrap", policies: [DEFAULT_POLICY] },
      { id: "seq", label: "seq (detect)", kind: "idwrap", policies: [p.seq], paperRow: "Seq_id" },
      { id: "httpd", label: "httpd", kind: "idwrap", policies: [p.httpd], paperRow: "Http_id" },
      {
        id: "httpdSeq",
        label: "httpd + seq",
        kind: "idwrap",
        policies: [p.httpd, p.seq],
        paperRow: "Http_id & Seq_id",
      },
      { id: "strace", label: "strace -f", kind: "strace" },
      { id: "audit", label: "auditd (all calls of the tree)", kind: "audit" },
    ], o.compare),
    o.sources,
    o.env.IDWRAP_STORE,
  );
  const truncateLogs = async () => {
    for (const f of ["access.log", "error.log"]) await Deno.remove(join(site.dir, "logs", f)).catch(() => {});
  };
  const once = (c: Config, seconds = o.seconds) =>
    serverRun({
      config: c,
      command: site.command,
      port: site.port,
      work: o.work,
      env: o.env,
      audit: o.audit,
      auditDir: join(o.work, "audit"),
      idwrapArgs: o.idwrapArgs,
      warmup: () => wrk(site, 1, o.connections).catch(() => undefined),
      load: () => wrk(site, seconds, o.connections),
      after: truncateLogs,
    });

  // seq's normal database: record runs under the same load, then a detect run to check (bounded).
  const rec: Config = { id: "seqRecord", label: "seq (record)", kind: "idwrap", policies: [p.seqRecord], record: true };
  const { training, bySource: trainingBySource, unavailable } = await trainSeqPerSource("web", once, {
    record: rec,
    configs,
    sources: o.sources,
    storeBase: o.env.IDWRAP_STORE,
    seqRows: ["seq", "httpdSeq"],
    failure: "nginx fails under seq",
    rounds: o.trainingRounds,
    deadline: o.deadline,
    retries: 2,
  });
  if (!o.audit) unavailable.audit = `unavailable: ${o.auditUnavailable ?? "no audit"}`;
  const rounds = await runRounds("web", configs.filter((c) => !unavailable[c.id]), o.rounds, (c) => once(c), {
    deadline: o.deadline,
  });
  Object.assign(rounds.unavailable, unavailable);
  return { ...rounds, configs, fileSet: site.fileSet, training, trainingBySource };
}
