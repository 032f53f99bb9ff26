/**
 * The FTP workload (the paper's modified WebStone doing anonymous FTP fetches,
 * Table 3): Debian's vsftpd on 127.0.0.1, anonymous, passive mode, serving a
 * fixed file set (the web workload's WebStone-shaped classes); P client loops
 * in parallel, each running one curl per fetch (a new session: connect,
 * anonymous login, PASV, RETR, QUIT) over a fixed order of files for a fixed
 * time. Latency is curl's time_total per fetch (mean, p99); throughput the
 * bytes fetched over the wall time (Mbit/s) and fetches per second.
 *
 * @module
 */
import { join } from "node:path";
import { freePort, freeRange } from "../../tests/loopback.ts";
import { type Config, withCompared, withSources, type WorkloadOptions } from "./configs.ts";
import { type FileSet, publicDir, webstoneFiles } from "./files.ts";
import { writeSharedPolicies } from "./policies.ts";
import { runCommand } from "./processes.ts";
import { median } from "./stats.ts";
import { type RoundsResult, runRounds, type TrainingRun, trainSeqPerSource } from "./rounds.ts";
import { serverRun } from "./server.ts";
import { ftpdPolicy, type FtpSite, VSFTPD, vsftpdConf } from "../../tests/servers.ts";

const CURL = "/usr/bin/curl";
const FILES_PER_CLASS = 5;
const ORDER = 1000;

export interface FtpOptions extends WorkloadOptions {
  seconds: number;
  clients: number;
}

export interface FtpResult extends RoundsResult {
  configs: Config[];
  fileSet: FileSet["summary"];
  training: { runs: TrainingRun[]; error?: string };
  /** The same per extra source (--sources), each in its own store. */
  trainingBySource: Record<string, { runs: TrainingRun[]; error?: string }>;
}

async function makeSite(work: string) {
  const dir = await publicDir(join(work, "vsftpd"));
  for (const sub of ["anon", "empty", "log"]) await publicDir(join(dir, sub));
  const files = await webstoneFiles(join(dir, "anon"), {
    perClass: FILES_PER_CLASS,
    orderLength: ORDER,
    seed: 1000,
    orderSeed: 21000,
    ext: "bin",
    prefix: "",
  });
  const site: FtpSite = { dir, port: freePort(), pasv: freeRange(100), extra: "max_clients=0\nmax_per_ip=0" };
  const conf = join(dir, "vsftpd.conf");
  await Deno.writeTextFile(conf, vsftpdConf(site));
  return { ...site, conf, order: files.order, fileSet: files.summary, command: [VSFTPD, conf] };
}

type Site = Awaited<ReturnType<typeof makeSite>>;

/** P loops of curl, each over the fixed order from its own offset, until `seconds` have passed. */
async function fetchLoop(site: Site, seconds: number, clients: number) {
  const latencies: number[] = [];
  let bytes = 0, errors = 0, lastError = "";
  const t0 = performance.now();
  const end = t0 + seconds * 1000;
  const worker = async (w: number) => {
    let i = Math.floor(w * site.order.length / clients);
    // Until the time is up, and at least one fetch each.
    for (let first = true; first || performance.now() < end; first = false) {
      const file = site.order[i++ % site.order.length];
      const r = await runCommand(
        [
          CURL,
          "-s",
          "-S",
          "-o",
          "/dev/null",
          "--max-time",
          "20",
          "-w",
          "%{time_total} %{size_download}\n",
          `ftp://127.0.0.1:${site.port}/${file}`,
        ],
        { stdout: true, timeoutMs: 30000 },
      );
      const [t, n] = r.stdout.trim().split(" ").map(Number);
      if (r.code !== 0 || !(t > 0)) {
        errors++;
        lastError = `curl ${r.code}: ${r.stderr.trim()}`;
        if (errors > 20 && errors > latencies.length) throw new Error(`curl keeps failing: ${lastError}`);
        continue;
      }
      latencies.push(t * 1000);
      bytes += n;
    }
  };
  await Promise.all(Array.from({ length: clients }, (_, w) => worker(w)));
  const s = (performance.now() - t0) / 1000;
  if (!latencies.length) throw new Error(`no fetch completed (${lastError})`);
  if (errors > Math.max(1, latencies.length * 0.05)) {
    throw new Error(`${errors} failed fetches of ${latencies.length + errors} (last: ${lastError})`);
  }
  const sorted = [...latencies].sort((a, b) => a - b);
  return {
    metrics: {
      latMeanMs: latencies.reduce((a, b) => a + b, 0) / latencies.length,
      latP99Ms: sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))],
      fetchPerS: latencies.length / s,
      mbitPerS: bytes * 8 / s / 1e6,
    },
    notes: { fetches: latencies.length, errors, latMedianMs: median(latencies) },
  };
}

function policyFiles(work: string, site: Site) {
  const ftpd = join(work, "ftp-ftpd.yaml");
  Deno.writeTextFileSync(ftpd, ftpdPolicy(site, { name: "bench-ftpd", response: "alert" }));
  return { ftpd, ...writeSharedPolicies(work, "ftp", "vsftpd") };
}

export async function ftpWorkload(o: FtpOptions): Promise<FtpResult> {
  const site = await makeSite(o.work);
  const p = policyFiles(o.work, site);
  const configs: Config[] = withSources(
    withCompared([
      { id: "bare", label: "bare", kind: "bare", paperRow: "no WSS" },
      { id: "wss", label: "WSS only (idwrap, no wrapper)", kind: "idwrap", policies: [p.empty], paperRow: "WSS only" },
      { id: "seq", label: "seq (detect)", kind: "idwrap", policies: [p.seq], paperRow: "Seq_id" },
      { id: "ftpd", label: "ftpd", kind: "idwrap", policies: [p.ftpd], paperRow: "Ftpd_id" },
      { id: "ftpdSeq", label: "ftpd + seq", kind: "idwrap", policies: [p.ftpd, p.seq], paperRow: "Ftpd_id & Seq_id" },
      { id: "strace", label: "strace -f", kind: "strace" },
      { id: "audit", label: "auditd (all calls of the tree)", kind: "audit" },
    ], o.compare),
    o.sources,
    o.env.IDWRAP_STORE,
  );
  const clearLogs = async () => {
    for (const f of ["xferlog", "vsftpd.log"]) await Deno.remove(join(site.dir, "log", f)).catch(() => {});
  };
  const once = (c: Config) =>
    serverRun({
      config: c,
      command: site.command,
      port: site.port,
      work: o.work,
      env: o.env,
      audit: o.audit,
      auditDir: join(o.work, "audit"),
      idwrapArgs: o.idwrapArgs,
      warmup: () => fetchLoop(site, 1, o.clients).catch(() => undefined),
      load: () => fetchLoop(site, o.seconds, o.clients),
      after: clearLogs,
    });

  const rec: Config = { id: "seqRecord", label: "seq (record)", kind: "idwrap", policies: [p.seqRecord], record: true };
  const { training, bySource: trainingBySource, unavailable } = await trainSeqPerSource("ftp", once, {
    record: rec,
    configs,
    sources: o.sources,
    storeBase: o.env.IDWRAP_STORE,
    seqRows: ["seq", "ftpdSeq"],
    failure: "vsftpd fails under seq",
    rounds: o.trainingRounds,
    deadline: o.deadline,
    retries: 2,
  });
  if (!o.audit) unavailable.audit = `unavailable: ${o.auditUnavailable ?? "no audit"}`;
  const rounds = await runRounds("ftp", configs.filter((c) => !unavailable[c.id]), o.rounds, once, {
    deadline: o.deadline,
  });
  Object.assign(rounds.unavailable, unavailable);
  return { ...rounds, configs, fileSet: site.fileSet, training, trainingBySource };
}
