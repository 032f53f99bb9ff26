/**
 * `idwrap daemon`: the long-running WSS. It holds the policies, the wrapper
 * store and the audit log, serves every wrapped tree that `idwrap run`
 * hands it on one supervisor thread, and answers operators (ps, wrappers,
 * reload, audit tail) on per-user control sockets.
 *
 * @module
 */
import { join } from "node:path";
import type { JournalMarks } from "../audit/journal.ts";
import { daemonLog, daemonLogAt, type LogLevel } from "../log.ts";
import { AuditLog } from "../audit/log.ts";
import { toAuditRecords } from "../audit/record.ts";
import { serveTail } from "../audit/stream.ts";
import type { HostEvent } from "../events.ts";
import { loadPolicy, parsePolicy, type Policy } from "../policy/policy.ts";
import type { WrapperModule } from "../runtime/module.ts";
import { readTaskStatus } from "../wss/procfs.ts";
import { receiveHandshake } from "../sources/handshake.ts";
import { eintrWarnings, launchFilter, type NotifyPlan, prepareEnforcement } from "../sources/seccomp/source.ts";
import { hardenSupervisorProcess } from "../wss/tamper.ts";
import { libc } from "../unsafe/libc.ts";
import { SupervisorThread } from "../sources/seccomp/thread.ts";
import { ListenerHolder, type SupervisorLoss } from "../sources/seccomp/holder.ts";
import { KmodThread } from "../sources/kmod/source.ts";
import { openDevice } from "../sources/kmod/device.ts";
import { type LivePeer, livePeers, peerCredentials } from "./peer.ts";
import { controlSocket, type LaunchUpdate, readLines, type Request, type Response, sendLine } from "./protocol.ts";
import type { SupervisorSummary } from "../wss/summary.ts";
import type { OutputConfig } from "../outputs/config.ts";
import type { FleetConfig } from "../outputs/config.ts";
import { FleetPolicies, type FleetPolicy, type PolicyCheckResult } from "./fleet_policy.ts";
import { Outputs } from "../outputs/output.ts";
import { DaemonMetrics, serveMetrics } from "./metrics.ts";
import {
  checkRestartCommand,
  currentCommand,
  execInPlace,
  type Inheritance,
  type InheritedSession,
  keepCopy,
  type RestartCommand,
} from "./reexec.ts";

/** `0`: a restart ends the kernel module's session instead of carrying it (the behaviour before; for comparison). */
export const KMOD_CARRY_ENV = "IDWRAP_DAEMON_KMOD_CARRY";

/** How the daemon runs. */
export interface DaemonOptions {
  policyFiles: string[];
  /** uids that may hand processes to the daemon; root (0) always may, and alone administers. */
  users: number[];
  runDir: string;
  storePath: string;
  retentionDays: number;
  /**
   * Reload when a policy file changes. Off by default: a root program of a wrapped tree that can write a policy file
   * would then change the policies that hold it (the control socket's reload checks who asks). @default false
   */
  watch?: boolean;
  /**
   * Where the daemon says what it does, each line with its level (its outputs' lines come without one: host/log.ts,
   * daemonLevel). @default standard error, text or JSON (--log-format)
   */
  log?: (line: string, level?: LogLevel) => void;
  /**
   * Also hold the kernel module's device for every process on the host: each
   * execve waits for the WSS, and a program whose activation criteria some
   * loaded wrapper matches is wrapped from that exec on (the paper's WSS).
   */
  systemWide?: boolean;
  /** Where audit records go besides the store (host/outputs/, docs/audit.md "Outputs"). */
  outputs?: OutputConfig[];
  /** Serve Prometheus metrics on this address (docs/daemon.md, "Metrics"). */
  metrics?: { hostname: string; port: number };
  /** Also take policies from a JetStream KV bucket (./fleet_policy.ts, docs/fleet.md). */
  fleet?: FleetConfig;
  /** How `idwrap policy check` checks a set of files: each fleet policy is checked so before it is loaded. */
  checkPolicies?: (files: string[]) => Promise<PolicyCheckResult[]>;
  /**
   * What the trees still running get once the daemon is gone (stopped, crashed, SIGKILLed): idwrap-holder kills them
   * or fails their notified calls with EPERM (docs/daemon.md, "Losing the supervisor"). @default "kill"
   */
  onSupervisorLoss?: SupervisorLoss;
  /**
   * What this process was serving before it re-executed itself (`idwrap daemon --restart`, ./reexec.ts): its holder
   * and its sessions' listeners, served on from here (docs/daemon.md, "Restarts and upgrades").
   */
  inherited?: Inheritance;
}

interface Enforcement {
  policies: Policy[];
  wrappers: WrapperModule[];
  /** What the filter notifies; the filter itself is built at each launch (launchFilter: the daemon's threads now). */
  plan: NotifyPlan;
}

const HANDSHAKE_TIMEOUT_MS = 30_000;
/** How long an ended session's summary waits for its `run` to resume after a hand-off. */
const RESUME_KEEP_MS = 60_000;
/** How often the daemon removes journals it rotated (their records are in the store by then). */
const JOURNAL_REPLAY_MS = 60_000;
/** Events on their way to one `run` beyond which it is sent no more until it catches up. */
const TRACE_BACKLOG = 10_000;

/** A running daemon. */
export class Daemon {
  readonly #opts: DaemonOptions;
  /** The outputs' lines (they name no level). */
  readonly #log: (line: string) => void;
  /** The daemon's own lines, each at the level it names. */
  readonly #say: (level: LogLevel, line: string) => void;
  readonly #servers: Deno.Listener[] = [];
  readonly #clients = new Map<number, Deno.Conn>(); // session → the `run` that asked for it
  /** session → events on their way to its `run`, and events it was not sent because it fell behind. */
  readonly #traceBacklog = new Map<number, { inFlight: number; missed: number }>();
  readonly #sessionOf = new Map<number, number>(); // pid → session
  readonly #uidOf = new Map<number, number>(); // session → uid
  /** session → this process's own copy of its listener (the thread closes its own), kept for a restart's exec. */
  readonly #listeners = new Map<number, Omit<InheritedSession, "session" | "uid">>();
  readonly #disabled = new Set<string>();
  readonly #started = Date.now();
  #files: string[];
  /** The fleet's policies in force (./fleet_policy.ts), loaded after the daemon's own, from their text. */
  #fleetPolicies: FleetPolicy[] = [];
  #fleet: FleetPolicies | undefined;
  #enforcement!: Enforcement;
  #thread!: SupervisorThread;
  /** Keeps a copy of every session's listener, for when this process is gone (holder.ts). */
  #holder!: ListenerHolder;
  /** With systemWide: the kernel module's thread. */
  #kmod: KmodThread | undefined;
  /**
   * With systemWide: this process's own copy of /dev/idwrap (the thread closes its own), which holds the module's
   * session open; a restart's exec keeps it, so the session and its watched processes go on.
   */
  #kmodFd: number | undefined;
  #audit!: AuditLog;
  #outputs: Outputs | undefined;
  readonly #metrics = new DaemonMetrics();
  #metricsServer: Deno.HttpServer | undefined;
  #nextSession = 1;
  /** Re-executing (`idwrap daemon --restart`): the sessions go on in the next program; their ends are not ours. */
  #handingOff = false;
  /** Launches between their request and their session's start: a restart waits for them (their listeners go on). */
  readonly #launching = new Set<Promise<void>>();
  /** session → how it ended, kept a minute for a `run` that resumes after a hand-off. */
  readonly #endedSessions = new Map<number, { uid: number; summary: SupervisorSummary }>();
  #poller: ReturnType<typeof setInterval> | undefined;
  /** Indexes and removes rotated journals (host/audit/journal_sink.ts) while the daemon runs. */
  #replayer: ReturnType<typeof setInterval> | undefined;

  private constructor(opts: DaemonOptions) {
    this.#opts = opts;
    this.#files = [...opts.policyFiles];
    const log = opts.log;
    this.#log = log ?? daemonLog; // text or JSON lines with levels (--log-format)
    this.#say = log ? (level, line) => log(line, level) : daemonLogAt;
  }

  /**
   * Loads the policies and their wrappers as a daemon with `opts` would, and nothing else: `idwrap daemon --restart`
   * checks so before it asks the running daemon to become it.
   *
   * @throws the first policy or wrapper that does not load, with its precise message
   */
  static async check(opts: DaemonOptions): Promise<void> {
    const d = new Daemon(opts);
    await d.#prepare(d.#files, []);
  }

  /** Loads the policies (refusing to start on a bad one), opens the store and audit log, listens. */
  static async start(opts: DaemonOptions): Promise<Daemon> {
    const d = new Daemon(opts);
    hardenSupervisorProcess();
    const inherited = opts.inherited;
    // First, so that its pid is known before any filter is built. After a restart, the same holder: the trees'
    // filters name its pid. Closed on failure only if ours alone (an inherited one may serve the previous program).
    d.#holder = inherited
      ? ListenerHolder.inherited(inherited.holder.pid, inherited.holder.fd)
      : await ListenerHolder.start();
    const closeHolder = () => inherited || d.#holder.close();
    try {
      d.#enforcement = await d.#prepare(d.#files, []);
    } catch (e) {
      closeHolder();
      throw e;
    }
    d.#audit = await AuditLog.open(opts.storePath, { retentionDays: opts.retentionDays });
    d.#outputs = new Outputs(d.#audit, opts.outputs ?? [], d.#log);
    for (const o of opts.outputs ?? []) {
      d.#say("info", `output ${o.name}: ${o.type}, ${o.format}, queues ${o.queues.join(",")}`);
    }
    d.#thread = await SupervisorThread.start({
      policies: d.#enforcement.policies,
      wrappers: d.#enforcement.wrappers,
      storePath: opts.storePath,
      emulateOpens: true,
      holderFd: d.#holder.socket,
      holderPid: d.#holder.pid,
      onEvents: (events, marks) => d.#onEvents(events, marks),
    });
    const inheritedKmod = inherited?.kmod?.fd;
    if (opts.systemWide) {
      try {
        d.#kmodFd = inheritedKmod ?? openDevice();
        d.#kmod = await KmodThread.start({
          policies: d.#enforcement.policies,
          wrappers: d.#enforcement.wrappers,
          storePath: opts.storePath,
          systemWide: true,
          deviceFd: keepCopy(d.#kmodFd), // the thread closes its copy
          onEvents: (events, marks) => d.#onEvents(events, marks),
        });
      } catch (e) {
        await d.#thread.stop();
        closeHolder();
        // An inherited device is left open to the previous program, which goes on serving it.
        if (d.#kmodFd !== undefined && inheritedKmod === undefined) libc.symbols.close(d.#kmodFd);
        await d.#audit.close();
        throw new Error(`--system-wide needs the kernel module: ${(e as Error).message}`);
      }
      // If the thread dies, our copy goes too: every waiting call gets the fail action at once, as before the copy.
      d.#kmod.failed.then((e) => {
        if (d.#kmodFd === undefined) return;
        libc.symbols.close(d.#kmodFd);
        d.#kmodFd = undefined;
        d.#say("error", `system-wide: the kernel module's session ended: ${e.message}`);
      });
      d.#say(
        "info",
        inheritedKmod === undefined
          ? "system-wide: the kernel module reports every execve; matching programs are wrapped"
          : "system-wide: the kernel module's session goes on (its watched processes are known again from their " +
            "next call); every execve is reported; matching programs are wrapped",
      );
    }
    try {
      // Owner-only; users the daemon serves besides root may pass through to their own 0600 sockets, never list them.
      const mode = opts.users.some((u) => u !== 0) ? 0o711 : 0o700;
      await Deno.mkdir(join(opts.runDir, "sessions"), { recursive: true, mode });
      await Deno.chmod(opts.runDir, mode);
      await Deno.chmod(join(opts.runDir, "sessions"), mode);
      if (opts.watch) {
        d.#say("info", "watching the policy files: a change is loaded, whoever makes it (--watch)");
        d.#watch();
      }
      if (opts.fleet) await d.#startFleet(opts.fleet);
      if (opts.metrics) {
        d.#metricsServer = await serveMetrics(opts.metrics, () => d.#metricsText());
        d.#say("info", `metrics on http://${opts.metrics.hostname}:${opts.metrics.port}/metrics`);
      }
      // The sessions a restart handed over, once nothing else can fail: a call the thread has read must be answered
      // by this program (the next one, if this one cannot start, could not see it: it would wait for ever).
      if (inherited) await d.#inherit(inherited);
      // A device the previous program held but this one does not want: its session ends here (the fail action). Last:
      // if this program could not start, the previous one would go on with it.
      if (inheritedKmod !== undefined && !opts.systemWide) {
        libc.symbols.close(inheritedKmod);
        d.#say("warning", "warning: restarted without --system-wide: the kernel module's session ends");
      }
    } catch (e) {
      // Calls read so far are answered as the thread stops; an inherited holder is left to the previous program.
      await d.stop({ keepHolder: inherited !== undefined, keepKmod: inheritedKmod !== undefined }).catch(() => {});
      throw e;
    }
    // Last: a control socket answers once the daemon serves in full (`--restart` waits for that answer).
    for (const uid of new Set([0, ...opts.users])) d.#listen(uid);
    d.#replayer = setInterval(() => {
      d.#audit.replay().catch((e) => d.#say("error", `cannot index the audit journals: ${(e as Error).message}`));
    }, JOURNAL_REPLAY_MS);
    d.#say(
      "info",
      `serving users ${[...new Set([0, ...opts.users])].join(", ")} on ${opts.runDir}; policies: ${
        d.#allFiles().join(", ")
      }`,
    );
    return d;
  }

  /** The daemon's policy files, then the fleet's. */
  #allFiles(): string[] {
    return [...this.#files, ...this.#fleetPolicies.map((p) => p.file)];
  }

  /**
   * Follows the fleet's bucket; waits (its timeout at most) for the policies it holds now, so a daemon that can reach
   * the bucket serves nothing before the fleet's policies are in force.
   */
  async #startFleet(config: FleetConfig): Promise<void> {
    const check = this.#opts.checkPolicies;
    if (!check) throw new Error("fleet policies need the policy check (DaemonOptions.checkPolicies)");
    const fleet = new FleetPolicies(config, join(this.#opts.runDir, "fleet"), {
      localFiles: () => this.#files,
      check,
      apply: (policies) => this.reload(this.#files, policies),
      record: (r) => this.#audit.append([r]),
      log: (line, level) => this.#say(level, line),
    });
    this.#fleet = fleet;
    fleet.start();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const waited = await Promise.race([
      fleet.synced.then(() => true),
      new Promise<false>((r) => timer = setTimeout(() => r(false), config.timeoutMs)),
    ]).finally(() => clearTimeout(timer));
    if (!waited) {
      this.#say(
        "warning",
        `fleet: ${config.bucket} not reached within ${config.timeoutMs} ms: serving the local policies`,
      );
    }
  }

  async #metricsText(): Promise<string> {
    const processes: Record<string, number> = { seccomp: (await this.#thread.processes()).length };
    const hooks = { seccomp: this.#thread.hookTimes(), ...this.#kmod ? { kmod: this.#kmod.hookTimes() } : {} };
    const notified = {
      seccomp: this.#thread.notifiedCalls(),
      ...this.#kmod ? { kmod: this.#kmod.notifiedCalls() } : {},
    };
    if (this.#kmod) processes.kmod = (await this.#kmod.processes()).length;
    return this.#metrics.render({
      sessions: this.#uidOf.size,
      processes,
      auditBacklog: this.#audit.backlog,
      outputs: this.#outputs?.stats() ?? [],
      hooks,
      notified,
    });
  }

  /** The daemon's files read, the fleet's policies parsed from the bucket's text (a file could be rewritten since). */
  async #prepare(files: string[], fleet: FleetPolicy[]): Promise<Enforcement> {
    const loaded = [...files.map(loadPolicy), ...fleet.map((p) => parsePolicy(p.text, p.file))];
    const policies = loaded.map((p) => ({
      ...p,
      wrappers: p.wrappers.filter((w) => !this.#disabled.has(w.name)),
    }));
    const { wrappers, plan } = await prepareEnforcement(policies, true);
    // Sessions handed over by `idwrap run` are served on the seccomp source.
    for (const warning of eintrWarnings(policies, wrappers)) this.#say("warning", `warning: ${warning}`);
    return { policies, wrappers, plan };
  }

  /** Re-reads the policy files; on any error the old enforcement stays and the error is returned. */
  async reload(files = this.#files, fleet = this.#fleetPolicies): Promise<void> {
    let next: Enforcement;
    try {
      next = await this.#prepare(files, fleet);
    } catch (e) {
      this.#say("error", `reload refused, the previous policies stay in force: ${(e as Error).message}`);
      throw e;
    }
    await this.#thread.reload({ policies: next.policies, wrappers: next.wrappers });
    await this.#kmod?.reload({ policies: next.policies, wrappers: next.wrappers });
    this.#enforcement = next;
    this.#files = files;
    this.#fleetPolicies = fleet;
    this.#say(
      "info",
      `reloaded: ${next.policies.map((p) => p.name).join(", ")}; wrappers: ${
        next.wrappers.map((w) => w.spec.name).join(", ") || "none"
      }`,
    );
  }

  /**
   * Reloads when a policy file changes. Each file's identity and content
   * stamp (device, inode, size, mtime) is compared once a second: an inotify
   * watch on a file is lost when an editor saves by renaming a new file over
   * it, and can miss events; a stat per file per second cannot.
   */
  #watch(): void {
    const stamp = () =>
      this.#files.map((f) => {
        try {
          const s = Deno.statSync(f);
          return `${s.dev}:${s.ino}:${s.size}:${s.mtime?.getTime()}`;
        } catch {
          return "missing";
        }
      }).join("|");
    let last = stamp();
    let settling = false;
    this.#poller = setInterval(() => {
      const now = stamp();
      if (now === last || settling) return;
      // Editors write in several steps: reload once the file has been still for a moment.
      settling = true;
      setTimeout(() => {
        settling = false;
        last = stamp();
        this.#say("info", "a policy file changed: reloading");
        this.reload().catch(() => {});
      }, 200);
    }, 1000);
  }

  #listen(uid: number): void {
    const path = controlSocket(this.#opts.runDir, uid);
    try {
      Deno.removeSync(path);
    } catch { /* not there */ }
    const server = Deno.listen({ transport: "unix", path });
    Deno.chownSync(path, uid, null);
    Deno.chmodSync(path, 0o600);
    this.#servers.push(server);
    (async () => {
      for await (const conn of server) {
        this.#handle(conn, uid).catch((e) => this.#say("error", `uid ${uid}: ${e.message}`));
      }
    })().catch(() => {});
  }

  async #handle(conn: Deno.Conn, uid: number): Promise<void> {
    const lines = readLines<Request>(conn);
    const first = await lines.next();
    if (first.done) return conn.close();
    const req = first.value;
    const admin = uid === 0;
    const refuse = (error: string) =>
      sendLine(conn, { ok: false, error } satisfies Response).finally(() => conn.close());
    try {
      switch (req.op) {
        case "launch":
          if (this.#handingOff) {
            return await refuse(
              "the daemon is restarting (idwrap daemon --restart): run the command again in a moment",
            );
          }
          return await this.#launch(conn, uid, req.command);
        case "ps": {
          const all = [...await this.#thread.processes(), ...await this.#kmod?.processes() ?? []];
          const processes = admin ? all : all.filter((p) => this.#uidOf.get(p.session) === uid);
          await sendLine(conn, { ok: true, processes } satisfies Response);
          break;
        }
        case "status": {
          // Outputs' details (names, errors) are the administrator's: not another user's, not a wrapped program's.
          const outputs = admin && !await this.#wrappedPeer(uid, true, false)
            ? this.#outputs?.stats() ?? []
            : undefined;
          await sendLine(
            conn,
            {
              ok: true,
              pid: Deno.pid,
              uptime: (Date.now() - this.#started) / 1000,
              sessions: this.#uidOf.size,
              users: [...new Set([0, ...this.#opts.users])],
              policies: this.#allFiles(),
              store: this.#opts.storePath,
              ...outputs ? { outputs } : {},
              ...this.#opts.inherited?.failed ? { restartFailed: this.#opts.inherited.failed } : {},
            } satisfies Response,
          );
          break;
        }
        case "wrappers":
          await sendLine(conn, this.#wrapperList());
          break;
        case "load":
        case "unload":
        case "reload": {
          if (!admin) return await refuse(`uid ${uid} may not change the daemon's policies (only root may)`);
          const wrapped = await this.#wrappedPeer(uid);
          if (wrapped) return await refuse(wrapped);
          if (req.op === "load") {
            const file = req.policy;
            if (!this.#files.includes(file)) await this.reload([...this.#files, file]);
            else await this.reload();
          } else if (req.op === "unload") {
            if (!this.#enforcement.wrappers.some((w) => w.spec.name === req.wrapper)) {
              return await refuse(`no wrapper "${req.wrapper}" is loaded`);
            }
            this.#disabled.add(req.wrapper);
            await this.reload();
          } else await this.reload();
          await sendLine(conn, this.#wrapperList());
          break;
        }
        case "restart": {
          if (!admin) return await refuse(`uid ${uid} may not restart the daemon (only root may)`);
          const wrapped = await this.#wrappedPeer(uid);
          if (wrapped) return await refuse(wrapped);
          const checked = checkRestartCommand({ runtime: req.runtime, args: req.args });
          if ("why" in checked) return await refuse(checked.why);
          if (this.#handingOff) return await refuse("restart: the daemon is restarting already");
          return await this.#reexec(conn, checked.command);
        }
        case "resume":
          return await this.#resume(conn, uid, req.session);
        case "tail": {
          if (!admin) return await refuse(`uid ${uid} may not read the audit stream (only root may)`);
          const wrapped = await this.#wrappedPeer(uid, false, false);
          if (wrapped) return await refuse(wrapped);
          return await serveTail(conn, { queues: req.queues }, this.#audit); // answers and closes
        }
        default:
          return await refuse(`unknown op ${JSON.stringify((req as { op?: unknown }).op)}`);
      }
    } catch (e) {
      return await refuse((e as Error).message);
    }
    conn.close();
  }

  /**
   * Why a request on the control socket may not administer the daemon: a process the daemon wraps (or a
   * descendant of one) is connected to it, or the daemon cannot tell who is (fail closed). A root program under the
   * daemon's own policies would otherwise unload them. Deno does not say which accepted socket a connection is, so
   * every peer connected at that moment is looked at: a wrapped one connected beside an administrator gets the
   * administrator refused too (retry). SO_PEERCRED names the process that connected, not the one that holds the
   * socket now: a connector that has exited may have passed the socket (SCM_RIGHTS) to a wrapped process, and its pid
   * may since name another process, so a peer whose connector no longer runs is refused.
   */
  async #wrappedPeer(uid: number, quiet = false, changes = true): Promise<string | undefined> {
    const refused = (message: string) => {
      if (!quiet) this.#say("warning", `refused: ${message}`);
      return message;
    };
    const wrapped = new Set(
      [...await this.#thread.processes(), ...await this.#kmod?.processes() ?? []].map((p) => p.pid),
    );
    let peers: LivePeer[];
    try {
      peers = livePeers(controlSocket(this.#opts.runDir, uid));
    } catch (e) {
      return refused(`cannot tell which processes are asking (${(e as Error).message})`);
    }
    try {
      for (const peer of peers) {
        const why = this.#peerWrapped(peer, wrapped) ?? (changes ? filteredPeer(peer.pid) : undefined);
        if (why) return refused(why);
      }
      return undefined;
    } finally {
      for (const peer of peers) peer.close();
    }
  }

  /** Why this one peer may not administer the daemon, if it may not. */
  #peerWrapped(peer: LivePeer, wrapped: Set<number>): string | undefined {
    const gone = `the process that connected (pid ${peer.pid}) has exited, so the daemon cannot tell whether a ` +
      `process it wraps holds the socket: connect from the process that sends the request`;
    if (peer.pid <= 0 || !peer.alive()) return gone;
    for (let p = peer.pid, hops = 0; p > 1; hops++) {
      if (wrapped.has(p)) {
        return `pid ${peer.pid} runs under this daemon's policies (pid ${p} is wrapped): it may not change them`;
      }
      const status = hops < 4096 ? readTaskStatus(p) : undefined;
      if (!status) return `cannot read the ancestry of pid ${peer.pid} (at pid ${p}): refused`;
      p = status.ppid;
    }
    // The walk read the connector's ancestry only if the pid still named the connector after it.
    return peer.alive() ? undefined : gone;
  }

  #wrapperList(): Response {
    return {
      ok: true,
      policies: this.#allFiles(),
      wrappers: this.#enforcement.wrappers.map((w) => ({
        name: w.spec.name,
        policy: this.#enforcement.policies.find((p) => p.wrappers.includes(w.spec))?.file ?? "",
        module: w.path,
      })),
    };
  }

  /** A `run` hands its command over: a session socket only that user can reach, then the tree is ours. */
  async #launch(conn: Deno.Conn, uid: number, command: string[]): Promise<void> {
    const id = this.#nextSession++;
    const path = join(this.#opts.runDir, "sessions", `${id}.sock`);
    let launched!: () => void;
    const launching = new Promise<void>((r) => launched = r);
    this.#launching.add(launching);
    let server: Deno.UnixListener | undefined;
    try {
      server = Deno.listen({ transport: "unix", path });
      Deno.chownSync(path, uid, null);
      Deno.chmodSync(path, 0o600);
      await sendLine(
        conn,
        {
          ok: true,
          session: id,
          socket: path,
          filter: launchFilter(this.#enforcement.plan, [this.#holder.pid]),
        } satisfies Response,
      );
      let timer: ReturnType<typeof setTimeout> | undefined;
      const accepted = await Promise.race([
        server.accept(),
        new Promise<undefined>((r) => timer = setTimeout(() => r(undefined), HANDSHAKE_TIMEOUT_MS)),
      ]).finally(() => clearTimeout(timer));
      if (!accepted) throw new Error(`session ${id}: no launcher connected within ${HANDSHAKE_TIMEOUT_MS / 1000} s`);
      // Who connected, as the kernel says, checked before any fd is copied from the pid the launcher names.
      const peer = peerCredentials(path);
      const hs = await receiveHandshake(accepted, (pid) => {
        if (peer.uid !== uid) return `the launcher runs as uid ${peer.uid}, not ${uid}`;
        if (pid !== peer.pid) return `the launcher says it is pid ${pid}; the kernel says ${peer.pid}`;
      });
      if (hs.uid !== uid) {
        await hs.refuse(`the launcher runs as uid ${hs.uid}, not ${uid}`);
        throw new Error(`session ${id}: launcher uid ${hs.uid} is not the requester's ${uid}`);
      }
      const mode = this.#opts.onSupervisorLoss ?? "kill";
      this.#clients.set(id, conn);
      this.#uidOf.set(id, uid);
      this.#listeners.set(id, { pid: hs.pid, listener: keepCopy(hs.listener), mode });
      this.#holder.hold(id, hs.pid, hs.listener, mode);
      await this.#thread.listen(id, hs.listener);
      this.#metrics.sessionStarted("seccomp");
      await hs.go();
      this.#say("info", `session ${id}: uid ${uid} runs ${command.join(" ")} (pid ${hs.pid})`);
    } finally {
      server?.close();
      await Deno.remove(path).catch(() => {});
      this.#launching.delete(launching);
      launched();
    }
    await this.#serveSession(id);
  }

  /** Waits for a session's tree to end and tells its `run` (the one connected now: it may have resumed). */
  async #serveSession(id: number): Promise<void> {
    const summary = await this.#thread.ended(id).catch((e) => {
      // The supervisor thread died (its hook watchdog): the holder answers the tree from now on.
      if (!this.#handingOff) this.#holder.lost(id);
      throw e;
    });
    const conn = this.#clients.get(id);
    if (this.#handingOff) return conn?.close(); // the next program serves the tree; its run resumes there
    const copy = this.#listeners.get(id);
    if (copy) libc.symbols.close(copy.listener);
    this.#listeners.delete(id);
    this.#metrics.sessionEnded("seccomp", summary);
    this.#clients.delete(id);
    const missed = this.#traceBacklog.get(id)?.missed;
    this.#traceBacklog.delete(id);
    if (missed) {
      this.#say(
        "warning",
        `session ${id}: ${missed} events were not sent to its run (it fell behind); the store has them`,
      );
    }
    const uid = this.#uidOf.get(id) ?? 0;
    this.#uidOf.delete(id);
    this.#endedSessions.set(id, { uid, summary });
    setTimeout(() => this.#endedSessions.delete(id), RESUME_KEEP_MS);
    if (!conn) return;
    await sendLine(conn, { done: summary } satisfies LaunchUpdate).catch(() => {});
    conn.close();
  }

  /**
   * `idwrap daemon --restart` asks, having loaded its policies and wrappers (so a bad one leaves this daemon serving):
   * this daemon stops — its store flushed and closed, its outputs' cursors kept — but keeps its holder, answers, and
   * re-executes `command` in this process, which serves the same sessions from their listeners' copies. The pid the
   * trees' filters name stays the daemon's. If the exec fails, the program this process ran goes on instead.
   */
  async #reexec(conn: Deno.Conn, command: RestartCommand): Promise<void> {
    this.#handingOff = true;
    // A launch under way ends first (its handshake's timeout at most): its session is then one that goes on.
    await Promise.all(this.#launching);
    const previous = currentCommand();
    const sessions: InheritedSession[] = [...this.#listeners].map(([session, l]) => ({
      session,
      uid: this.#uidOf.get(session) ?? 0,
      ...l,
    }));
    this.#say(
      "info",
      `restarting as ${[...command.runtime, ...command.args].join(" ")}: ${sessions.length} sessions go on ` +
        `(their calls wait meanwhile)`,
    );
    // The module's session goes on in the next program, unless IDWRAP_DAEMON_KMOD_CARRY=0 (the behaviour before).
    const carryKmod = this.#kmodFd !== undefined && Deno.env.get(KMOD_CARRY_ENV) !== "0";
    if (this.#kmodFd !== undefined) {
      this.#say(
        carryKmod ? "info" : "warning",
        carryKmod
          ? "system-wide: the kernel module's session goes on; its calls wait meanwhile, each within the module's " +
            "timeout (then its fail action)"
          : `warning: --system-wide: ${KMOD_CARRY_ENV}=0: the kernel module's session ends at the restart (calls ` +
            "waiting in it get the fail action); the next program opens a new one, which does not know the " +
            "processes this one wrapped",
      );
    }
    await this.stop({ keepHolder: true, keepKmod: carryKmod });
    await sendLine(conn, { ok: true, pid: Deno.pid, restarting: sessions.length } satisfies Response).catch(() => {});
    conn.close();
    const inheritance: Inheritance = {
      holder: { pid: this.#holder.pid, fd: this.#holder.socket },
      next: this.#nextSession,
      sessions,
      ...carryKmod ? { kmod: { fd: this.#kmodFd! } } : {},
    };
    const failed = execInPlace(command, { ...inheritance, previous });
    this.#say("error", `restart: ${failed}: going on as ${[...previous.runtime, ...previous.args].join(" ")}`);
    const again = execInPlace(previous, { ...inheritance, failed });
    // Neither program runs here: the holder gives the trees on_supervisor_loss once this process is gone.
    this.#say("error", `restart: ${again}: the daemon stops`);
    this.#holder.close();
    if (this.#kmodFd !== undefined) libc.symbols.close(this.#kmodFd);
    Deno.exit(1);
  }

  /** Serves the sessions this process served before it re-executed itself (`#reexec`). */
  async #inherit(inherited: Inheritance): Promise<void> {
    this.#nextSession = Math.max(this.#nextSession, inherited.next);
    for (const s of inherited.sessions) {
      this.#listeners.set(s.session, { pid: s.pid, listener: s.listener, mode: s.mode });
      this.#uidOf.set(s.session, s.uid);
      await this.#thread.listen(s.session, keepCopy(s.listener)); // the thread closes its copy
      this.#metrics.sessionStarted("seccomp");
      this.#serveSession(s.session).catch((e) => this.#say("error", `session ${s.session}: ${(e as Error).message}`));
    }
    this.#say("info", `restarted in place (pid ${Deno.pid}): serving the ${inherited.sessions.length} sessions on`);
  }

  /** A `run` whose daemon handed its session over reconnects here, for the rest of its reports. */
  async #resume(conn: Deno.Conn, uid: number, session: number): Promise<void> {
    const ended = this.#endedSessions.get(session);
    if (ended && ended.uid === uid) {
      await sendLine(conn, { ok: true, resumed: session } satisfies Response);
      await sendLine(conn, { done: ended.summary } satisfies LaunchUpdate).catch(() => {});
      return conn.close();
    }
    if (this.#uidOf.get(session) !== uid) {
      await sendLine(conn, { ok: false, error: `no session ${session} of uid ${uid} here` } satisfies Response);
      return conn.close();
    }
    this.#clients.get(session)?.close();
    this.#clients.set(session, conn);
    await sendLine(conn, { ok: true, resumed: session } satisfies Response);
  }

  /** Settles when the events are in the store and sent to their `run`s (the supervisor's back-pressure waits on it). */
  /**
   * Stores the events and sends each to the `run` whose tree it is. Settles when they are in the store: the
   * supervisor's back-pressure waits on that, never on a `run` (one that stops reading would hold every tree). A
   * `run` that falls more than TRACE_BACKLOG events behind is sent no more until it catches up; what it missed is
   * counted and logged (the store has it all).
   */
  #onEvents(events: HostEvent[], marks?: JournalMarks): Promise<unknown> {
    for (const e of events) {
      if (e.kind === "spawn" && e.session !== undefined) this.#sessionOf.set(e.pid, e.session);
      const session = this.#sessionOf.get(e.pid);
      const client = session === undefined ? undefined : this.#clients.get(session);
      if (client && session !== undefined) this.#sendTrace(session, client, e);
      if (e.kind === "exit") this.#sessionOf.delete(e.pid);
    }
    const groups = events.map(toAuditRecords);
    for (const records of groups) this.#metrics.records(records);
    this.#audit.appendJournaled(groups, marks);
    return this.#audit.flush();
  }

  #sendTrace(session: number, client: Deno.Conn, e: HostEvent): void {
    const t = this.#traceBacklog.get(session) ?? { inFlight: 0, missed: 0 };
    this.#traceBacklog.set(session, t);
    if (t.inFlight >= TRACE_BACKLOG) {
      if (t.missed++ === 0) {
        this.#say("warning", `session ${session}: its run does not keep up; events not sent are in the store`);
      }
      return;
    }
    t.inFlight++;
    sendLine(client, { event: e } satisfies LaunchUpdate).catch(() => {}).finally(() => t.inFlight--);
  }

  /**
   * Stops serving: sessions still running lose their supervisor (on_supervisor_loss: killed, or EPERM), unless the
   * holder is kept (a restart: the next program serves them).
   */
  async stop(opts: { keepHolder?: boolean; keepKmod?: boolean } = {}): Promise<void> {
    await this.#fleet?.stop();
    clearInterval(this.#poller);
    clearInterval(this.#replayer);
    for (const s of this.#servers) {
      try {
        s.close();
      } catch { /* closed */ }
    }
    // Ours only if we listened (a daemon that failed to start never did: the sockets may be another's).
    for (const uid of this.#servers.length ? new Set([0, ...this.#opts.users]) : []) {
      await Deno.remove(controlSocket(this.#opts.runDir, uid)).catch(() => {});
    }
    await this.#thread.stop();
    // The trees still running get on_supervisor_loss from the holder now, not ENOSYS.
    if (!opts.keepHolder) this.#holder.close();
    await this.#kmod?.stop();
    // The module's session ends with our copy (every waiting call gets the fail action), unless the next program is
    // to serve it (a restart).
    if (this.#kmodFd !== undefined && !opts.keepKmod) {
      libc.symbols.close(this.#kmodFd);
      this.#kmodFd = undefined;
    }
    // Each output delivers what it holds (5 s at most) and keeps where it got to in the store, then the log closes.
    await this.#audit.flush().catch(() => {});
    await this.#outputs?.stop();
    await this.#audit.close();
    await this.#metricsServer?.shutdown();
    this.#say("info", "stopped");
  }
}

/**
 * Why a peer may not change or restart the daemon although no tree of this daemon holds it: it runs under a seccomp
 * filter — the tree of another supervisor (a standalone `idwrap run`), whose root could otherwise restart this daemon
 * into a module of its own and leave its filter behind (red team rt10 F4). A service manager's own filter
 * (SystemCallFilter=) is refused too: administer the daemon from outside it.
 */
function filteredPeer(pid: number): string | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(`/proc/${pid}/status`);
  } catch {
    return `cannot read pid ${pid}'s status: refused`;
  }
  const mode = text.match(/^Seccomp:\s*(\d+)$/m)?.[1];
  if (mode === undefined) return `cannot tell whether pid ${pid} runs under a seccomp filter: refused`;
  return mode === "0" ? undefined : `pid ${pid} runs under a seccomp filter (a wrapped tree's, maybe another ` +
    `supervisor's): it may not change or restart the daemon`;
}
