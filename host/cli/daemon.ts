/**
 * The daemon and the commands that talk to it: `idwrap daemon`, `idwrap ps`,
 * `idwrap wrappers list|load|unload|reload`.
 *
 * @module
 */
import type { Command } from "commander";
import { resolve } from "node:path";
import { Daemon, type DaemonOptions } from "../daemon/daemon.ts";
import { currentCommand, execInPlace, takeInheritance } from "../daemon/reexec.ts";
import { DaemonClient, defaultRunDir, type Response } from "../daemon/protocol.ts";
import { defaultStorePath } from "../store/kv.ts";
import { lookupId } from "../policy/nss.ts";
import { DEFAULT_POLICY } from "./run.ts";
import { EXIT_FAILED, EXIT_NO_DAEMON, parseArgument, UsageError } from "./exit.ts";
import { parseSupervisorLoss } from "../sources/seccomp/holder.ts";
import { ConfigError, type DaemonConfig, DEFAULT_CONFIG, loadConfig } from "../outputs/config.ts";
import { parseMetricsAddress } from "../daemon/metrics.ts";
import { checkPolicies } from "./policy.ts";
import { log } from "../log.ts";

/** A user name or uid → uid. */
export function uidOf(user: string): number {
  if (/^[0-9]+$/.test(user)) return Number(user);
  const uid = lookupId("passwd", user);
  if (uid === undefined) throw new Error(`Unknown user "${user}" (not found by getent passwd)`);
  return uid;
}

const collect = (v: string, acc: string[] = []) => [...acc, v];

/** Connects or exits with a clear message. */
async function client(runDir: string): Promise<DaemonClient> {
  const c = await DaemonClient.connect(runDir);
  if (!c) {
    log("error", `no idwrap daemon answers for uid ${Deno.uid()} at ${runDir}; start one with \`idwrap daemon\``);
    Deno.exit(EXIT_NO_DAEMON);
  }
  return c;
}

async function ask<R extends Response & { ok: true }>(
  runDir: string,
  req: Parameters<DaemonClient["request"]>[0],
): Promise<R> {
  const c = await client(runDir);
  try {
    return await c.request<R>(req);
  } finally {
    c.close();
  }
}

type WrapperList = Extract<Response, { wrappers: unknown }>;

function printWrappers(r: WrapperList, json: boolean | undefined): void {
  if (json) return console.log(JSON.stringify(r.wrappers));
  if (!r.wrappers.length) return console.log("no wrappers loaded");
  for (const w of r.wrappers) console.log(`${w.name.padEnd(20)} ${w.module}  (${w.policy})`);
}

/** How long `--restart` waits for the daemon to serve again (it stops, flushes its store and outputs, re-executes). */
const RESTART_WAIT_MS = 120_000;

/**
 * `idwrap daemon --restart`: loads the policies and wrappers these options name (a bad one leaves the running daemon
 * untouched), then asks the daemon on `runDir` to re-execute this installation with these options in its own process,
 * and waits until it serves again. The daemon's pid does not change (systemd's main pid; every tree's tamper guard).
 */
async function restart(options: DaemonOptions, runDir: string): Promise<void> {
  const fail = (message: string): never => {
    log("error", `--restart: ${message}`);
    Deno.exit(EXIT_FAILED);
  };
  try {
    await Daemon.check(options);
  } catch (e) {
    fail(`the running daemon goes on unchanged: ${(e as Error).message}`);
  }
  const now = currentCommand();
  const command = { runtime: now.runtime, args: now.args.filter((a) => a !== "--restart") };
  const asked = Date.now();
  const r = await ask<Extract<Response, { restarting: number }>>(runDir, { op: "restart", ...command })
    .catch((e) => fail(`the daemon refused: ${(e as Error).message}`));
  const deadline = asked + RESTART_WAIT_MS;
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 200));
    const c = await DaemonClient.connect(runDir);
    const s = await c?.request<Extract<Response, { uptime: number }>>({ op: "status" }).catch(() => undefined);
    c?.close();
    // The same process, started again since we asked.
    if (s && s.pid === r.pid && s.uptime * 1000 <= Date.now() - asked) {
      if (s.restartFailed) {
        fail(`${s.restartFailed}; the daemon (pid ${r.pid}) went back to what it ran before`);
      }
      log("info", `the daemon (pid ${r.pid}) restarted in place; its ${r.restarting} sessions go on`);
      Deno.exit(0);
    }
  }
  fail(`the daemon (pid ${r.pid}) does not serve ${RESTART_WAIT_MS / 1000} s after it restarted`);
}

/** Adds daemon, ps and wrappers to the CLI. */
export function registerDaemon(program: Command): void {
  program.command("daemon")
    .description("run the long-lived supervisor that `idwrap run` hands processes to")
    .option("-p, --policy <file>", "a policy file (repeatable)", collect)
    .option("-u, --allow <user>", "a user who may hand processes to the daemon (repeatable; root always may)", collect)
    .option("--run-dir <dir>", "where the control sockets live", defaultRunDir())
    .option("--store <path>", "the Deno KV store for wrappers and audit", defaultStorePath())
    .option("--retention <days>", "how long audit records are kept", "30")
    .option(
      "--watch",
      "reload when a policy file changes (off by default: whoever can write a policy file then changes the policies, " +
        "a root program the daemon wraps included)",
    )
    .option("--no-watch", "do not reload when a policy file changes (the default; kept for scripts that say it)")
    .option("--config <file>", `the daemon's configuration: outputs (default: ${DEFAULT_CONFIG} if it exists)`)
    .option("--metrics <host:port>", "serve Prometheus metrics at http://HOST:PORT/metrics")
    .option(
      "--system-wide",
      "with the kernel module: wrap any program on the host whose activation criteria match at its execve",
    )
    .option(
      "--on-supervisor-loss <kill|deny>",
      "what wrapped trees get if the daemon stops or dies while they run: kill (the default; their service manager " +
        "restarts them) or deny (every notified call fails with EPERM)",
      "kill",
    )
    .option(
      "--restart",
      "check these options' policies, then have the daemon running on --run-dir re-execute this installation with " +
        "them in its own process (same pid): its trees go on, their calls wait meanwhile, none fails",
    )
    .action(async (opts: {
      policy?: string[];
      allow?: string[];
      runDir: string;
      store: string;
      retention: string;
      watch?: boolean;
      systemWide?: boolean;
      config?: string;
      metrics?: string;
      onSupervisorLoss: string;
      restart?: boolean;
    }) => {
      // First: what this process served before it re-executed itself (`--restart`), if it did.
      const inherited = takeInheritance();
      const onSupervisorLoss = parseArgument(() => parseSupervisorLoss(opts.onSupervisorLoss, "--on-supervisor-loss"));
      const retentionDays = Number(opts.retention);
      if (!(retentionDays > 0)) {
        throw new Error(`--retention: expected a positive number of days, got "${opts.retention}"`);
      }
      let metrics: { hostname: string; port: number } | undefined;
      try {
        metrics = opts.metrics === undefined ? undefined : parseMetricsAddress(opts.metrics);
      } catch (e) {
        throw new UsageError((e as Error).message);
      }
      let configFile = opts.config;
      if (configFile === undefined) {
        try {
          Deno.statSync(DEFAULT_CONFIG);
          configFile = DEFAULT_CONFIG;
        } catch { /* no configuration: no outputs */ }
      }
      let config: DaemonConfig = { outputs: [] };
      try {
        if (configFile !== undefined) config = loadConfig(configFile);
      } catch (e) {
        if (e instanceof ConfigError) throw new UsageError(`invalid configuration: ${e.message}`);
        throw e;
      }
      const options: DaemonOptions = {
        policyFiles: (opts.policy ?? [DEFAULT_POLICY]).map((p) => resolve(p)),
        users: (opts.allow ?? []).map(uidOf),
        runDir: opts.runDir,
        storePath: opts.store,
        retentionDays,
        watch: opts.watch,
        systemWide: opts.systemWide,
        outputs: config.outputs,
        fleet: config.fleet,
        checkPolicies,
        metrics,
        onSupervisorLoss,
      };
      if (opts.restart) return await restart(options, opts.runDir);
      let daemon: Daemon;
      try {
        daemon = await Daemon.start({ ...options, inherited });
      } catch (e) {
        // Restarted into a program that cannot serve: back to the one this process ran before, if it can.
        if (!inherited?.previous) throw e;
        const failed = `the restarted daemon could not start: ${(e as Error).message}`;
        log("error", `${failed}: going back to the previous one`);
        log(
          "error",
          `cannot go back: ${execInPlace(inherited.previous, { ...inherited, previous: undefined, failed })}`,
        );
        throw e;
      }
      const stop = async () => {
        await daemon.stop();
        Deno.exit(0);
      };
      Deno.addSignalListener("SIGTERM", stop);
      Deno.addSignalListener("SIGINT", stop);
      Deno.addSignalListener("SIGHUP", () => daemon.reload().catch(() => {}));
      await new Promise(() => {}); // until a signal
    });

  program.command("ps")
    .description("list the processes the daemon wraps, with their wrappers")
    .option("--json", "print JSON")
    .option("--run-dir <dir>", "the daemon's control sockets", defaultRunDir())
    .action(async (opts: { json?: boolean; runDir: string }) => {
      const r = await ask<Extract<Response, { processes: unknown }>>(opts.runDir, { op: "ps" });
      if (opts.json) return console.log(JSON.stringify(r.processes));
      console.log(
        "PID".padStart(7) + " " + "PPID".padStart(7) + " SESSION UID   PROGRAM                        WRAPPERS",
      );
      for (const p of r.processes.sort((a, b) => a.pid - b.pid)) {
        console.log(
          `${String(p.pid).padStart(7)} ${String(p.ppid).padStart(7)} ${String(p.session).padStart(7)} ` +
            `${String(p.program.uid).padEnd(5)} ${p.program.exe.padEnd(30)} ${p.wrappers.join(",") || "-"}`,
        );
      }
    });

  const wrappers = program.command("wrappers").description("list, load and unload the daemon's wrappers");
  wrappers.command("list")
    .description("the wrappers the daemon has loaded")
    .option("--json", "print JSON")
    .option("--run-dir <dir>", "the daemon's control sockets", defaultRunDir())
    .action(async (opts: { json?: boolean; runDir: string }) => {
      printWrappers(await ask<WrapperList>(opts.runDir, { op: "wrappers" }), opts.json);
    });
  wrappers.command("load")
    .description("add a policy file and load its wrappers (root only)")
    .argument("<policy>", "a policy file")
    .option("--json", "print JSON")
    .option("--run-dir <dir>", "the daemon's control sockets", defaultRunDir())
    .action(async (policy: string, opts: { json?: boolean; runDir: string }) => {
      printWrappers(await ask<WrapperList>(opts.runDir, { op: "load", policy: resolve(policy) }), opts.json);
    });
  wrappers.command("unload")
    .description("unload a wrapper from every process (root only)")
    .argument("<name>", "the wrapper's name")
    .option("--json", "print JSON")
    .option("--run-dir <dir>", "the daemon's control sockets", defaultRunDir())
    .action(async (name: string, opts: { json?: boolean; runDir: string }) => {
      printWrappers(await ask<WrapperList>(opts.runDir, { op: "unload", wrapper: name }), opts.json);
    });
  wrappers.command("reload")
    .description(
      "re-read the policy files (root only, from outside a wrapped tree; also on SIGHUP, and with --watch when a file changes)",
    )
    .option("--json", "print JSON")
    .option("--run-dir <dir>", "the daemon's control sockets", defaultRunDir())
    .action(async (opts: { json?: boolean; runDir: string }) => {
      printWrappers(await ask<WrapperList>(opts.runDir, { op: "reload" }), opts.json);
    });
}
