/**
 * The paper's performance tables (Ko et al. 2000, Tables 2 and 3), reproduced
 * on real software beside today's peers: `deno task bench:tables`.
 *
 * - Build: Linux 6.1 (Debian's linux-source-6.1), tinyconfig, `make -j2
 *   TARGET` (bench/tables/build.ts). Rows: bare, WSS only (idwrap with a
 *   policy that activates no wrapper), default policy, seq detect, seq record, strace -f,
 *   auditd.
 * - Web: nginx on loopback, WebStone-shaped file set, wrk (bench/tables/web.ts).
 *   Rows: bare, WSS only, default policy, seq, httpd, httpd + seq, strace -f, auditd.
 * - FTP: vsftpd on loopback, anonymous fetches by curl (bench/tables/ftp.ts).
 *   Rows: bare, WSS only, seq, ftpd, ftpd + seq, strace -f, auditd.
 *
 * seq is trained first (record mode on the same workload, bounded), into a
 * private store. Every workload runs its configurations in rounds, alternating;
 * medians, σ and spread over the rounds; penalties against bare of the same
 * run. Missing Debian packages are installed (tools/bench-deps.sh, as root);
 * what cannot run here is reported as unavailable, with why. Servers,
 * auditd, audit rules and temp directories are cleaned up on exit, failure
 * or Ctrl-C.
 *
 * Output: Markdown tables on stdout (and bench/results/tables.md), raw JSON in
 * bench/results/tables.json (--save-run: also docs/runs/tables-DATE.json, the run the docs quote), the chart in
 * docs/performance.svg (quick runs: bench/results/tables-quick.*, --compare runs: bench/results/tables-compare.*).
 *
 * Options: --quick (a short smoke run), --only build,web,ftp, --rounds N,
 * --build-target DIR/ (default kernel/), --seconds S (web and FTP load per
 * run), --connections C (wrk), --clients P (FTP), --source S (passed to
 * `idwrap run --source`), --sources S1,S2 (each idwrap row a source can run again under that
 * source, in the same rounds: e.g. bpf,hybrid beside seccomp), --no-install, --no-profile (skip the per-call profile,
 * bench/tables/percall.ts), --keep (leave the work directory), --compare
 * PATH (another idwrap, e.g. an older checkout's, whose rows run beside this
 * one's in the same rounds: a before/after on the same machine state).
 *
 * @module
 */
import { scratchDir } from "../tests/temp.ts";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { AuditPeer } from "./tables/audit.ts";
import { type BuildResult, buildWorkload } from "./tables/build.ts";
import { cleanupAll, cleanupOnSignals, onCleanup } from "./tables/cleanup.ts";
import { log } from "./tables/log.ts";
import { ROOT } from "./tables/paths.ts";
import { runCommand } from "./tables/processes.ts";
import { type FtpResult, ftpWorkload } from "./tables/ftp.ts";
import {
  buildTable,
  chart,
  PAPER,
  peerLines,
  type Row,
  rows,
  serverTable,
  targets,
  targetTable,
} from "./tables/report.ts";
import { type WebResult, webWorkload } from "./tables/web.ts";
import { perCall, type PerCallResult, perCallTable } from "./tables/percall.ts";
import { keepResults } from "./_report.ts";

const RESULTS = join(ROOT, "bench", "results");

async function ensurePackages(install: boolean): Promise<string | undefined> {
  const script = join(ROOT, "tools", "bench-deps.sh");
  const check = await runCommand([script, "--check"]);
  if (check.code === 0) return undefined;
  if (!install || Deno.uid() !== 0) return check.stderr.trim();
  log("installing the Debian packages the bench needs (tools/bench-deps.sh --install)");
  const r = await runCommand([script, "--install"], { timeoutMs: 20 * 60 * 1000 });
  if (r.code !== 0) return `tools/bench-deps.sh --install failed: ${r.stderr.trim().split("\n").slice(-3).join(" ")}`;
  return undefined;
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

async function gitDescribe(): Promise<string> {
  const head = await runCommand(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"], { stdout: true });
  const dirty = await runCommand(["git", "-C", ROOT, "status", "--porcelain", "--", "host", "wrappers", "policies"], {
    stdout: true,
  });
  return head.stdout.trim() + (dirty.stdout.trim() ? " (host/wrappers/policies modified)" : "");
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      quick: { type: "boolean" },
      only: { type: "string" },
      rounds: { type: "string" },
      "build-target": { type: "string" },
      seconds: { type: "string" },
      connections: { type: "string" },
      clients: { type: "string" },
      source: { type: "string" },
      sources: { type: "string" },
      compare: { type: "string" },
      "no-profile": { type: "boolean" },
      "no-install": { type: "boolean" },
      "save-run": { type: "boolean" },
      keep: { type: "boolean" },
    },
  });
  const quick = !!values.quick;
  const only = new Set((values.only ?? "build,web,ftp").split(",").map((s) => s.trim()));
  for (const w of only) if (!["build", "web", "ftp"].includes(w)) throw new Error(`--only: unknown workload ${w}`);
  const num = (v: string | undefined, d: number) => {
    const n = v === undefined ? d : Number(v);
    if (!(n > 0)) throw new Error(`not a positive number: ${v}`);
    return n;
  };
  const cfg = {
    buildRounds: num(values.rounds, quick ? 1 : 3),
    serverRounds: num(values.rounds, quick ? 2 : 4),
    buildTarget: values["build-target"] ?? (quick ? "kernel/time/" : "kernel/"),
    seconds: num(values.seconds, quick ? 2 : 6),
    connections: num(values.connections, 32),
    clients: num(values.clients, 2),
  };
  // Time budgets per workload: after two rounds, no new round starts past them.
  const budgetMin = quick ? { build: 1.5, web: 1, ftp: 1 } : { build: 9, web: 5, ftp: 5 };
  const idwrapArgs = values.source ? ["--source", values.source] : [];
  const kmod = exists("/dev/idwrap");
  const started = new Date();
  const loadStart = Deno.loadavg();
  cleanupOnSignals();

  const missing = await ensurePackages(!values["no-install"]);
  if (missing) log(`bench: some packages are missing; what needs them is skipped:\n${missing}`);
  const build = await runCommand([join(ROOT, "node_modules", ".bin", "deno"), "task", "build"], { cwd: ROOT });
  if (build.code !== 0) throw new Error(`deno task build failed:\n${build.stderr.slice(-2000)}`);

  const shm = exists("/dev/shm");
  const work = await scratchDir({ prefix: "idwrap-tables-", ...(shm ? { dir: "/dev/shm" } : {}) });
  await Deno.chmod(work, 0o755);
  const workHandle = onCleanup(async () => {
    if (values.keep) log(`work directory kept: ${work}`);
    else await Deno.remove(work, { recursive: true }).catch(() => {});
  });
  void workHandle;
  // A private store: seq's databases and every run's audit records stay in the work directory.
  const env = { IDWRAP_STORE: join(work, "store.kv") };
  const policy = (name: string, text: string) => {
    const p = join(work, name);
    Deno.writeTextFileSync(p, text);
    return p;
  };
  const policies = {
    empty: policy("empty.yaml", "version: 1\nname: bench-empty\n"),
    seq: policy("seq.yaml", "version: 1\nname: bench-seq\nwrappers:\n  - name: seq\n"),
    seqRecord: policy(
      "seq-record.yaml",
      "version: 1\nname: bench-seq-record\nwrappers:\n  - name: seq\n    settings: { mode: record }\n",
    ),
  };

  const auditDir = join(work, "audit");
  let audit: AuditPeer | undefined;
  let auditUnavailable: string | undefined;
  if (Deno.uid() !== 0) auditUnavailable = "needs root (auditctl, auditd)";
  else if (!exists("/sbin/auditctl") && !exists("/usr/sbin/auditctl")) auditUnavailable = "auditctl missing (auditd)";
  else {
    const a = await AuditPeer.start(auditDir);
    if (typeof a === "string") auditUnavailable = a;
    else audit = a;
  }
  if (auditUnavailable) log(`audit: unavailable: ${auditUnavailable}`);

  let buildRes: BuildResult | undefined, webRes: WebResult | undefined, ftpRes: FtpResult | undefined;
  const skipped: Record<string, string> = {};
  const common = (rounds: number, budget: number) => ({
    work,
    rounds,
    env,
    audit,
    auditDir,
    auditUnavailable,
    idwrapArgs,
    deadline: Date.now() + budget * 60000,
    trainingRounds: quick ? 1 : 3,
    compare: values.compare,
    sources: values.sources?.split(",").map((x) => x.trim()).filter(Boolean),
  });
  const need = (paths: string[]) => paths.filter((p) => !exists(p));
  try {
    if (only.has("build")) {
      const miss = need(["/usr/bin/make", "/usr/bin/gcc", "/usr/bin/flex", "/usr/bin/bison"]);
      if (miss.length) skipped.build = `missing ${miss.join(", ")}`;
      else {
        buildRes = await buildWorkload({
          ...common(cfg.buildRounds, budgetMin.build),
          target: cfg.buildTarget,
          policies,
          warmup: !quick,
        }).catch((e) => {
          skipped.build = (e as Error).message;
          return undefined;
        });
      }
    }
    if (only.has("web")) {
      const miss = need(["/usr/sbin/nginx", "/usr/bin/wrk"]);
      if (miss.length) skipped.web = `missing ${miss.join(", ")}`;
      else {
        webRes = await webWorkload({
          ...common(cfg.serverRounds, budgetMin.web),
          seconds: cfg.seconds,
          connections: cfg.connections,
        }).catch((e) => {
          skipped.web = (e as Error).message;
          return undefined;
        });
      }
    }
    if (only.has("ftp")) {
      const miss = need(["/usr/sbin/vsftpd", "/usr/bin/curl"]);
      if (miss.length) skipped.ftp = `missing ${miss.join(", ")}`;
      else if (Deno.uid() !== 0) skipped.ftp = "vsftpd needs root (it chroots anonymous sessions)";
      else {
        ftpRes = await ftpWorkload({
          ...common(cfg.serverRounds, budgetMin.ftp),
          seconds: cfg.seconds,
          clients: cfg.clients,
        }).catch((e) => {
          skipped.ftp = (e as Error).message;
          return undefined;
        });
      }
    }
  } finally {
    await audit?.stop();
  }
  // Where a notified call's time goes (the hot path), after the workloads so it does not disturb them.
  let profile: PerCallResult | undefined;
  if (!values["no-profile"]) {
    log("per-call profile (bench/tables/percall.ts)");
    profile = await perCall(work, quick ? 5000 : 20000, quick ? 1 : 3).catch((e) => {
      skipped.profile = (e as Error).message;
      return undefined;
    });
  }
  for (const [w, why] of Object.entries(skipped)) log(`${w}: skipped: ${why}`);

  const buildRows: Row[] | undefined = buildRes && rows(buildRes.configs, buildRes, ["timeS"], kmod);
  const serverMetrics = ["latMeanMs", "latP99Ms", "mbitPerS"];
  const webRows = webRes && rows(webRes.configs, webRes, [...serverMetrics, "reqPerS"], kmod);
  const ftpRows = ftpRes && rows(ftpRes.configs, ftpRes, [...serverMetrics, "fetchPerS"], kmod);
  const ts = targets(buildRows, webRows, ftpRows);

  const loadEnd = Deno.loadavg();
  const machine = `Linux ${Deno.osRelease()}, ${navigator.hardwareConcurrency} CPUs, load ${
    loadStart.map((l) => l.toFixed(2)).join("/")
  } at start, ${loadEnd.map((l) => l.toFixed(2)).join("/")} at end`;
  const commit = await gitDescribe();
  const startup = buildRes?.startupMs.length
    ? [...buildRes.startupMs].sort((a, b) => a - b)[buildRes.startupMs.length >> 1]
    : undefined;
  const md: string[] = [];
  md.push(`# idwrap: the paper's tables${quick ? " (quick run: smoke test, not a measurement)" : ""}`);
  md.push("");
  md.push(`${started.toISOString()}, commit ${commit}; ${machine}.`);
  md.push("");
  if (buildRows) {
    md.push(
      `## Build: Linux ${buildRes!.source.split("/").pop()} tinyconfig (x86_64), make -j2 ${buildRes!.target} ` +
        `(${cfg.buildRounds} rounds requested)`,
    );
    md.push("");
    md.push(buildTable(buildRows));
    md.push("");
    if (startup !== undefined) {
      md.push(
        `idwrap's fixed cost per run (idwrap run -p empty -- /bin/true, median): ${(startup / 1000).toFixed(3)} s, ` +
          `included in every idwrap row.`,
      );
      md.push("");
    }
  } else if (only.has("build")) md.push(`## Build\n\nnot run: ${skipped.build ?? "?"}\n`);
  if (webRows) {
    md.push(
      `## Web: nginx (1 worker) on loopback, wrk -c${cfg.connections}, ${cfg.seconds} s per run, ` +
        `${webRes!.fileSet.files} files (WebStone classes), one request per connection`,
    );
    md.push("");
    md.push(serverTable(webRows, "web"));
    md.push("");
  } else if (only.has("web")) md.push(`## Web\n\nnot run: ${skipped.web ?? "?"}\n`);
  if (ftpRows) {
    md.push(
      `## FTP: vsftpd on loopback, ${cfg.clients} curl loops (one anonymous session per fetch), ` +
        `${cfg.seconds} s per run`,
    );
    md.push("");
    md.push(serverTable(ftpRows, "ftp"));
    md.push("");
  } else if (only.has("ftp")) md.push(`## FTP\n\nnot run: ${skipped.ftp ?? "?"}\n`);
  md.push("## Targets (issue 7)");
  md.push("");
  md.push(targetTable(ts));
  md.push("");
  md.push("## Peers");
  md.push("");
  md.push(...peerLines({ build: buildRows, web: webRows, ftp: ftpRows }));
  md.push("");
  if (profile) {
    md.push(`## Per-call profile (getppid loop, ${profile.calls} calls, ${profile.rounds} rounds)`);
    md.push("");
    md.push(perCallTable(profile));
    md.push("");
  }
  const text = md.join("\n");
  console.log(text);

  await Deno.mkdir(RESULTS, { recursive: true });
  const stem = quick ? "tables-quick" : values.compare ? "tables-compare" : "tables";
  await Deno.writeTextFile(join(RESULTS, `${stem}.md`), text + "\n");
  const json = {
    date: started.toISOString(),
    finished: new Date().toISOString(),
    commit,
    quick,
    loadavg: { start: loadStart, end: loadEnd },
    kmodPresent: kmod,
    config: cfg,
    skipped,
    auditUnavailable,
    paper: PAPER,
    build: buildRes && { ...buildRes, rows: buildRows },
    web: webRes && { ...webRes, rows: webRows },
    ftp: ftpRes && { ...ftpRes, rows: ftpRows },
    targets: ts,
    profile,
  };
  await keepResults(ROOT, stem, json);
  const svgPath = quick || values.compare ? join(RESULTS, `${stem}.svg`) : join(ROOT, "docs", "performance.svg");
  await Deno.writeTextFile(
    svgPath,
    chart(
      { build: buildRows, web: webRows, ftp: ftpRows },
      `${started.toISOString().slice(0, 16)}Z, ${machine}${quick ? " (quick run)" : ""}`,
    ),
  );
  log(`raw numbers: ${join(RESULTS, `${stem}.json`)}; tables: ${join(RESULTS, `${stem}.md`)}; chart: ${svgPath}`);
}

if (import.meta.main) {
  let code = 0;
  try {
    await main();
  } catch (e) {
    console.error(`bench:tables: ${(e as Error).stack ?? e}`);
    code = 1;
  } finally {
    await cleanupAll();
  }
  Deno.exit(code);
}
