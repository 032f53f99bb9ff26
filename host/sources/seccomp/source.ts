/**
 * The seccomp user-notify event source, host side: start a command under
 * idwrap-launch, take its listener fd with pidfd_getfd(2), and serve it on a
 * dedicated Worker thread until the whole tree has exited.
 *
 * @module
 */
import { constants } from "node:os";
import { join } from "node:path";
import type { Policy } from "../../policy/policy.ts";
import { RuleDecider } from "../../policy/rule_decider.ts";
import { ALWAYS_DENIED_SYSCALLS, LIFECYCLE_SYSCALLS, resolveSyscalls } from "../../syscalls/mod.ts";
import type { TraceSinkOptions } from "../../trace/sink.ts";
import { v8Engine } from "../../runtime/engine.ts";
import { loadPolicyWrappers } from "../../runtime/load.ts";
import type { WrapperModule } from "../../runtime/module.ts";
import { defaultStorePath } from "../../store/kv.ts";
import { SECCOMP_CAPABILITIES } from "../capabilities.ts";
import { errno, libc, SYS } from "./ffi.ts";
import { buildFilter, encodeFilter } from "./filter.ts";
import { launcherPath } from "./launcher.ts";
import { CRED_SYSCALLS, type SupervisorSummary } from "./supervisor.ts";
import type { WorkerReply, WorkerStart } from "./worker.ts";

/** How to run a command under the seccomp source. */
export interface SeccompRunOptions {
  policies: Policy[];
  trace?: TraceSinkOptions;
  /** @default true */
  emulateOpens?: boolean;
  /** The wrappers' Deno KV store. @default defaultStorePath() */
  storePath?: string;
}

/** How a wrapped command ended. */
export interface SeccompRunResult {
  /** Exit code, or 128 + signal number when killed, as a shell reports it. */
  exitCode: number;
  signal?: string;
  summary: SupervisorSummary;
}

/** The syscall numbers the filter notifies for these policies and wrappers. */
export function notifiedSyscalls(policies: Policy[], wrappers: WrapperModule[], emulateOpens: boolean): Set<number> {
  const set = new Set(new RuleDecider(policies).syscalls);
  for (const w of wrappers) for (const nr of w.declarations.syscalls.keys()) set.add(nr);
  const always = [...LIFECYCLE_SYSCALLS, ...ALWAYS_DENIED_SYSCALLS, ...(emulateOpens ? CRED_SYSCALLS : [])];
  for (const nr of resolveSyscalls(always)) set.add(nr);
  return set;
}

/**
 * Runs `command` with every notified call answered by a supervisor.
 *
 * @param command the program and its arguments
 * @param options policies and output
 */
export async function runUnderSeccomp(command: string[], options: SeccompRunOptions): Promise<SeccompRunResult> {
  const emulateOpens = options.emulateOpens ?? true;
  // Wrappers are validated before anything runs: a bad one stops the launch, not the program.
  const wrappers = await loadPolicyWrappers(options.policies, v8Engine, SECCOMP_CAPABILITIES);
  const filter = encodeFilter(buildFilter(notifiedSyscalls(options.policies, wrappers, emulateOpens)));
  const dir = await Deno.makeTempDir({ prefix: "idwrap-" });
  const socketPath = join(dir, "launch.sock");
  const server = Deno.listen({ transport: "unix", path: socketPath });
  let child: Deno.ChildProcess | undefined;
  let worker: Worker | undefined;
  try {
    child = new Deno.Command(await launcherPath(), {
      args: [socketPath, filter, "--", ...command],
      stdin: "inherit",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
    const status = child.status;
    const conn = await Promise.race([server.accept(), status.then(() => undefined)]);
    if (!conn) {
      throw new Error(
        `Cannot start ${command[0]}: idwrap-launch exited before the handshake (status ${(await status).code})`,
      );
    }
    const { pid, fd } = await readHandshake(conn);
    const listener = takeFd(pid, fd);

    worker = new Worker(new URL("./worker.ts", import.meta.url), { type: "module" });
    const replies = workerReplies(worker);
    const start: WorkerStart = {
      listener,
      policies: options.policies,
      wrappers,
      storePath: options.storePath ?? defaultStorePath(),
      trace: options.trace,
      emulateOpens,
    };
    worker.postMessage(start);
    const ready = await replies.next();
    if (ready.type !== "ready") {
      throw new Error(`The supervisor did not start: ${"message" in ready ? ready.message : ready.type}`);
    }
    await conn.write(new TextEncoder().encode("go\n"));
    conn.close();

    const stopForwarding = forwardSignals(child);
    const [exit, done] = await Promise.all([status, replies.next()]);
    stopForwarding();
    libc.symbols.close(listener);
    if (done.type !== "done") throw new Error(`The supervisor failed: ${"message" in done ? done.message : done.type}`);
    return {
      exitCode: exit.signal ? 128 + signalNumber(exit.signal) : exit.code,
      signal: exit.signal ?? undefined,
      summary: done.summary,
    };
  } catch (e) {
    try {
      child?.kill("SIGKILL");
    } catch { /* already gone */ }
    throw e;
  } finally {
    worker?.terminate();
    server.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

async function readHandshake(conn: Deno.Conn): Promise<{ pid: number; fd: number }> {
  const buf = new Uint8Array(256);
  let text = "";
  while (!text.includes("\n")) {
    const n = await conn.read(buf);
    if (n === null) throw new Error("idwrap-launch closed the handshake early");
    text += new TextDecoder().decode(buf.subarray(0, n));
  }
  const m = text.match(/^listener (\d+) (\d+) ([01])/);
  if (!m) throw new Error(`idwrap-launch could not install the filter: ${text.trim()}`);
  return { pid: Number(m[1]), fd: Number(m[2]) };
}

/** Copies fd `fd` of process `pid` into ours (pidfd_getfd(2), Linux 5.6). */
function takeFd(pid: number, fd: number): number {
  const pidfd = Number(libc.symbols.syscall(SYS.pidfd_open, BigInt(pid), 0n, 0n, 0n, 0n, 0n));
  if (pidfd < 0) throw new Error(`pidfd_open(${pid}) failed: errno ${errno()}`);
  const ours = Number(libc.symbols.syscall(SYS.pidfd_getfd, BigInt(pidfd), BigInt(fd), 0n, 0n, 0n, 0n));
  const err = errno();
  libc.symbols.close(pidfd);
  if (ours < 0) throw new Error(`pidfd_getfd(${pid}, ${fd}) failed: errno ${err}`);
  return ours;
}

function workerReplies(worker: Worker): { next(): Promise<WorkerReply> } {
  const queue: WorkerReply[] = [];
  const waiting: ((r: WorkerReply) => void)[] = [];
  const deliver = (r: WorkerReply) => {
    const w = waiting.shift();
    if (w) w(r);
    else queue.push(r);
  };
  worker.onmessage = (e: MessageEvent<WorkerReply>) => deliver(e.data);
  worker.onerror = (e: ErrorEvent) => {
    e.preventDefault();
    deliver({ type: "error", message: e.message });
  };
  return {
    next: () => queue.length ? Promise.resolve(queue.shift()!) : new Promise((r) => waiting.push(r)),
  };
}

const FORWARDED: Deno.Signal[] = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"];

/** The wrapped command decides how to end on these; idwrap stays to serve it. */
function forwardSignals(child: Deno.ChildProcess): () => void {
  const handlers = FORWARDED.map((sig) => {
    const handler = () => {
      try {
        // SIGINT from a terminal already reached the child's process group.
        if (sig !== "SIGINT" || !Deno.stdin.isTerminal()) child.kill(sig);
      } catch { /* exited */ }
    };
    Deno.addSignalListener(sig, handler);
    return () => Deno.removeSignalListener(sig, handler);
  });
  return () => handlers.forEach((remove) => remove());
}

/** A signal's number, from Node's os.constants. */
function signalNumber(name: string): number {
  return (constants.signals as Record<string, number>)[name] ?? 0;
}
