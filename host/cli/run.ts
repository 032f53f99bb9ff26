/**
 * `idwrap run [--policy FILE]… -- CMD…`: run a command under policies and
 * report what they flagged. With a daemon listening for this user (and no
 * --policy), the daemon serves the command under its policies; otherwise
 * idwrap supervises it itself.
 *
 * @module
 */
import type { Command } from "commander";
import { fileURLToPath as fromFileUrl } from "node:url";
import { AuditLog } from "../audit/log.ts";
import { toAuditRecords } from "../audit/record.ts";
import { DaemonClient, daemonPresent, defaultRunDir, type LaunchUpdate, type Response } from "../daemon/protocol.ts";
import { loadPolicy } from "../policy/policy.ts";
import type { SupervisorSummary } from "../wss/summary.ts";
import { exitCodeOf, forwardSignals } from "../sources/launch.ts";
import { spawnLauncher } from "../sources/seccomp/source.ts";
import { autoSourceFromEnv, BpfRefusal, parseSourceChoice, runUnder, type SourceChoice } from "../sources/run.ts";
import { defaultStorePath } from "../store/kv.ts";
import { TraceSink, type TraceSinkOptions } from "../trace/sink.ts";
import { EXIT_NOPERM, EXIT_SUPERVISION_LOST, parseArgument, UsageError } from "./exit.ts";
import { parseSupervisorLoss, type SupervisorLoss } from "../sources/seccomp/holder.ts";
import { log, printable } from "../log.ts";
import { hookLines, summaryCounts, type SummaryRecord } from "./summary.ts";

/** The policy `run` uses when none is given. */
export const DEFAULT_POLICY = fromFileUrl(new URL("../../policies/default.yaml", import.meta.url));

/** Options of `idwrap run`. */
export interface RunCliOptions {
  policy?: string[];
  json?: boolean;
  output?: string;
  verbose?: boolean;
  standalone?: boolean;
  source?: string;
  runDir: string;
  onSupervisorLoss: string;
}

/** How a run ended, either way. */
interface Outcome {
  exitCode: number;
  signal?: string;
  summary?: SupervisorSummary;
  /** The daemon stopped serving the tree before it ended (its holder gave the tree on_supervisor_loss). */
  lost?: boolean;
}

/** How long a report from the daemon may wait before it is written (batching a burst into one write). */
const DAEMON_FLUSH_MS = 100;

/** How long `run` waits for a daemon to take its tree over after its own stopped (`idwrap daemon --restart`). */
const RESUME_WAIT_MS = 30_000;

/**
 * Reconnects to whichever daemon serves `runDir` now and resumes the session's reports there.
 *
 * @returns undefined when no daemon serves the session within RESUME_WAIT_MS
 */
async function resume(runDir: string, session: number, stop: AbortSignal): Promise<DaemonClient | undefined> {
  const deadline = Date.now() + RESUME_WAIT_MS;
  while (Date.now() < deadline && !stop.aborted) {
    const client = await DaemonClient.connect(runDir);
    if (client) {
      try {
        await client.request({ op: "resume", session });
        return client;
      } catch {
        client.close(); // not (yet) the daemon that took it over
      }
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return undefined;
}

/** How long `run` tries a launch again that the daemon refused because it was restarting (`daemon --restart`). */
const RESTART_RETRY_MS = 30_000;
/** The daemon's refusal of a launch while it restarts (host/daemon/daemon.ts). */
const RESTARTING = "the daemon is restarting";

/**
 * Asks the daemon to launch `command`; while it refuses because it is restarting, asks again (a new connection every
 * 250 ms, for RESTART_RETRY_MS at most, said once). Nothing runs before an answer: a launch asked again never runs twice.
 *
 * @returns the launch's answer, and the connection it came on
 */
async function requestLaunch(
  client: DaemonClient,
  command: string[],
  runDir: string,
): Promise<{ client: DaemonClient; launch: Extract<Response, { session: number }> }> {
  const deadline = Date.now() + RESTART_RETRY_MS;
  let said = false;
  for (;;) {
    try {
      return { client, launch: await client.request({ op: "launch", command }) };
    } catch (e) {
      const why = (e as Error).message;
      client.close();
      if (!why.startsWith(RESTARTING)) throw e;
      if (!said) log("info", `${RESTARTING}: asking again for up to ${RESTART_RETRY_MS / 1000} s`);
      said = true;
      let next: DaemonClient | undefined;
      while (!next && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 250));
        next = await DaemonClient.connect(runDir);
      }
      if (!next) throw new Error(`${why} (asked again for ${RESTART_RETRY_MS / 1000} s)`);
      client = next;
    }
  }
}

/** Hands the command to the daemon; prints what the daemon reports about its tree. */
async function runViaDaemon(
  first: DaemonClient,
  command: string[],
  trace: TraceSinkOptions,
  runDir: string,
): Promise<Outcome> {
  const { client, launch } = await requestLaunch(first, command, runDir);
  const child = await spawnLauncher(launch.socket, launch.filter, command);
  const stop = forwardSignals(child);
  const sink = new TraceSink(trace);
  let summary: SupervisorSummary | undefined;
  /** The daemon went away and no other has resumed the session (yet). */
  let disconnected = false;
  // A service's run lives as long as the service: what it reports is written within DAEMON_FLUSH_MS (journald, a
  // log file), not held until 64 KiB have gathered or the service stops.
  let flushTimer: ReturnType<typeof setTimeout> | undefined;
  let current = client;
  const giveUp = new AbortController();
  const reports = (async () => {
    for (;;) {
      for await (const update of current.lines as AsyncGenerator<LaunchUpdate>) {
        if ("event" in update) {
          sink.emit(update.event);
          flushTimer ??= setTimeout(() => {
            flushTimer = undefined;
            sink.flush();
          }, DAEMON_FLUSH_MS);
        } else {
          summary = update.done;
          break;
        }
      }
      if (summary) break;
      // The daemon went away (restarted, stopped, crashed, killed) while the tree ran: said at once, for the journal.
      disconnected = true;
      log(
        "warning",
        `the daemon stopped serving ${command[0]} before its tree ended; waiting up to ` +
          `${RESUME_WAIT_MS / 1000} s for a daemon to take it over (idwrap daemon --restart)`,
      );
      const next = await resume(runDir, launch.session, giveUp.signal);
      if (!next) {
        log(
          "error",
          `no daemon took ${command[0]} over: the tree got the daemon's on_supervisor_loss answer (killed, ` +
            `or EPERM for every notified call); exiting ${EXIT_SUPERVISION_LOST} when it ends`,
        );
        break;
      }
      current.close();
      current = next;
      disconnected = false;
      log("info", `the daemon serves ${command[0]} again (restarted in place: idwrap daemon --restart)`);
    }
    clearTimeout(flushTimer);
    sink.flush();
  })();
  const status = await child.status;
  stop();
  // The daemon says "done" once the whole tree is gone; a daemonised child may outlive us.
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([reports, new Promise((r) => timer = setTimeout(r, 2000))]);
  clearTimeout(timer);
  giveUp.abort(); // the tree is gone: no daemon will take it over now
  current.close();
  return {
    exitCode: exitCodeOf(status),
    signal: status.signal ?? undefined,
    summary,
    lost: !summary && disconnected,
  };
}

/** Supervises the command here, keeping the audit records in the store. */
async function runStandalone(
  command: string[],
  policyFiles: string[],
  trace: TraceSinkOptions,
  source: SourceChoice,
  verbose: boolean,
  onSupervisorLoss: SupervisorLoss,
): Promise<Outcome> {
  const policies = policyFiles.map(loadPolicy);
  for (const warning of policies.flatMap((p) => p.warnings ?? [])) log("warning", warning);
  const storePath = defaultStorePath();
  const audit = await AuditLog.open(storePath);
  try {
    return await runUnder(source, command, {
      policies,
      trace,
      storePath,
      // Kept once in Deno KV: until then the events count against the supervisor's back-pressure.
      onEvents: (events, marks) => {
        audit.appendJournaled(events.map(toAuditRecords), marks);
        return audit.flush();
      },
      onChoice: (s, why) => verbose && log("info", `event source ${s}: ${why}`),
      onWarning: (message) => log("warning", message),
      onSupervisorLoss,
    });
  } catch (e) {
    // Refused before the command started (what the policies need, who runs idwrap): bad usage, exit 2.
    if (e instanceof BpfRefusal) throw new UsageError(e.message);
    throw e;
  } finally {
    await audit.close();
  }
}

/** Adds the run command to the CLI. */
export function registerRun(program: Command): void {
  program.command("run")
    .description("run a command under policies; report denials, kills, alerts and process lifecycle")
    .option(
      "-p, --policy <file>",
      "a policy file (repeatable; implies --standalone)",
      (v: string, acc: string[] = []) => [
        ...acc,
        v,
      ],
    )
    .option("--json", "report as JSON lines")
    .option("-o, --output <file>", "write the report to a file instead of standard error")
    .option("-v, --verbose", "report every notified call, not only the notable ones")
    .option("--standalone", "supervise here even if a daemon is running")
    .option(
      "--source <source>",
      "the event source: auto (the kernel module where /dev/idwrap opens, else seccomp; IDWRAP_AUTO_SOURCE=" +
        "hybrid: the hybrid where BPF loads, =bpf: bpf for a policy that only observes, else the hybrid), kmod, seccomp, hybrid (root: calls a policy may deny wait on seccomp, the rest are observed " +
        "through eBPF) or bpf (observation only, root: policies that deny, kill or rewrite are refused); any but " +
        "auto implies --standalone",
    )
    .option("--run-dir <dir>", "the daemon's control sockets", defaultRunDir())
    .option(
      "--on-supervisor-loss <kill|deny>",
      "supervised here (seccomp, hybrid): what the tree gets if idwrap dies before it ends: kill (the default) or " +
        "deny (every notified call fails with EPERM); under the daemon, the daemon's setting",
      "kill",
    )
    .argument("<command...>", "the command to run, after --")
    .action(async (command: string[], opts: RunCliOptions) => {
      const trace: TraceSinkOptions = {
        format: opts.json ? "json" : "text",
        output: opts.output,
        allSyscalls: !!opts.verbose,
        notableOnly: !opts.verbose,
      };
      const source = parseArgument(() => parseSourceChoice(opts.source));
      parseArgument(autoSourceFromEnv); // a wrong IDWRAP_AUTO_SOURCE fails before anything runs
      const onSupervisorLoss = parseArgument(() => parseSupervisorLoss(opts.onSupervisorLoss, "--on-supervisor-loss"));
      const standalone = opts.standalone || opts.policy !== undefined || source !== "auto";
      const client = standalone ? undefined : await DaemonClient.connect(opts.runDir);
      if (!standalone && !client && daemonPresent(opts.runDir)) {
        log(
          "error",
          `the idwrap daemon at ${opts.runDir} does not accept uid ${Deno.uid()}; ` +
            "ask its operator to allow you (idwrap daemon --allow), or use --standalone",
        );
        Deno.exit(EXIT_NOPERM);
      }
      const result = client ? await runViaDaemon(client, command, trace, opts.runDir) : await runStandalone(
        command,
        opts.policy ?? [DEFAULT_POLICY],
        trace,
        source,
        !!opts.verbose,
        onSupervisorLoss,
      );
      const s = result.summary;
      if (opts.json && s) {
        // The report's last line: after the run, the events' writer (the supervisor thread) is done with the file.
        const record: SummaryRecord = { kind: "summary", command, exitCode: result.exitCode, ...s };
        if (result.signal) record.signal = result.signal;
        if (client) record.daemon = true;
        const line = new TextEncoder().encode(JSON.stringify(record) + "\n");
        if (opts.output) Deno.writeFileSync(opts.output, line, { append: true });
        else for (let off = 0; off < line.length;) off += Deno.stderr.writeSync(line.subarray(off));
      } else if (!opts.json) {
        const how = result.signal ? `on ${result.signal}` : `with ${result.exitCode}`;
        const counts = summaryCounts(s);
        console.error(
          printable(`idwrap: ${command[0]} exited ${how}${client ? " (served by the daemon)" : ""}${counts}`),
        );
        if (opts.verbose) { for (const line of hookLines(s)) console.error(`idwrap: ${line}`); }
      }
      // The service manager is told: the tree ran without its supervisor at the end (docs/daemon.md).
      Deno.exitCode = result.lost ? EXIT_SUPERVISION_LOST : result.exitCode;
    });
}
