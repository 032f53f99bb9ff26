/**
 * The daemon's control protocol: newline-delimited JSON over Unix stream
 * sockets, one socket per allowed user (`RUN_DIR/UID.sock`, owned by that
 * user, mode 0600), so the kernel decides who may connect and the socket a
 * connection arrived on says who it is. docs/daemon.md describes it.
 *
 * @module
 */
import type { OutputStats } from "../outputs/output.ts";
import { join } from "node:path";
import { eventJsonReplacer, type HostEvent } from "../events.ts";
import type { ProcessEntry, SupervisorSummary } from "../wss/summary.ts";

/** Where the daemon's sockets live unless told: `$IDWRAP_RUN_DIR`, else /run/idwrap. */
export function defaultRunDir(): string {
  return Deno.env.get("IDWRAP_RUN_DIR") ?? "/run/idwrap";
}

/** The control socket of one user. */
export function controlSocket(runDir: string, uid: number): string {
  return join(runDir, `${uid}.sock`);
}

/** Requests a client may send. */
export type Request =
  | { op: "launch"; command: string[] }
  | { op: "ps" }
  | { op: "status" }
  | { op: "wrappers" }
  | { op: "load"; policy: string }
  | { op: "unload"; wrapper: string }
  | { op: "reload" }
  | { op: "tail"; queues?: string[] | "all" }
  | { op: "restart"; runtime: string[]; args: string[] }
  | { op: "resume"; session: number };

/** The first answer to every request. */
export type Response =
  | { ok: false; error: string }
  | { ok: true; session: number; socket: string; filter: string } // launch
  | { ok: true; processes: ProcessEntry[] } // ps
  | { ok: true; wrappers: { name: string; policy: string; module: string }[]; policies: string[] } // wrappers, load, unload, reload
  | {
    ok: true;
    pid: number;
    uptime: number;
    sessions: number;
    users: number[];
    policies: string[];
    store: string;
    /** Each output's counters (host/outputs/output.ts). */
    outputs?: OutputStats[];
    /** The last `--restart` did not happen (why): this process went back to the command it ran before. */
    restartFailed?: string;
  } // status
  | { ok: true; pid: number; restarting: number } // restart: the daemon (pid) re-executes, its sessions go on
  | { ok: true; resumed: number } // resume
  | { ok: true }; // tail

/** What follows a launch's answer on the same connection. */
export type LaunchUpdate = { event: HostEvent } | { done: SupervisorSummary };

const encoder = new TextEncoder();

/** Writes one JSON line. */
export async function sendLine(conn: Deno.Conn, value: unknown): Promise<void> {
  const bytes = encoder.encode(JSON.stringify(value, eventJsonReplacer) + "\n");
  for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
}

/** Reads JSON lines until the peer closes. */
export async function* readLines<T>(conn: Deno.Conn): AsyncGenerator<T> {
  const decoder = new TextDecoder();
  const buf = new Uint8Array(64 * 1024);
  let pending = "";
  for (;;) {
    const n = await conn.read(buf).catch(() => null);
    if (n === null) return;
    pending += decoder.decode(buf.subarray(0, n), { stream: true });
    let nl: number;
    while ((nl = pending.indexOf("\n")) >= 0) {
      const line = pending.slice(0, nl).trim();
      pending = pending.slice(nl + 1);
      if (line) yield JSON.parse(line) as T;
    }
  }
}

/** A connection to the daemon as the current user. */
export class DaemonClient {
  private constructor(readonly conn: Deno.Conn, readonly lines: AsyncGenerator<unknown>) {}

  /**
   * Connects to this user's control socket.
   *
   * @returns undefined when no daemon listens for this user
   */
  static async connect(runDir = defaultRunDir()): Promise<DaemonClient | undefined> {
    const path = controlSocket(runDir, Deno.uid() ?? 0);
    try {
      const conn = await Deno.connect({ transport: "unix", path });
      return new DaemonClient(conn, readLines(conn));
    } catch {
      return undefined;
    }
  }

  /** Sends a request and reads its first answer; throws the daemon's error. */
  async request<R extends Response & { ok: true }>(req: Request): Promise<R> {
    await sendLine(this.conn, req);
    const first = await this.lines.next();
    if (first.done) throw new Error("The idwrap daemon closed the connection");
    const res = first.value as Response;
    if (!res.ok) throw new Error(res.error);
    return res as R;
  }

  close(): void {
    try {
      this.conn.close();
    } catch { /* closed */ }
  }
}

/**
 * Whether a daemon seems to run here, for a clear refusal: root's control socket exists (the daemon always serves
 * root). Found by name: the run directory is not listable by other users (0711 or 0700).
 */
export function daemonPresent(runDir = defaultRunDir()): boolean {
  try {
    return Deno.statSync(controlSocket(runDir, 0)).isSocket === true;
  } catch {
    return false; // no daemon, or one that serves root alone (its run directory is 0700)
  }
}
