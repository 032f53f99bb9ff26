/**
 * Running a command through idwrap-launch (./launcher.ts), for every
 * source: the handshake over a one-connection Unix socket, attaching the
 * tree to the serving thread before the launcher execs, forwarding signals,
 * and the exit status as a shell reports it.
 *
 * @module
 */
import { constants } from "node:os";
import { join } from "node:path";
import type { SupervisorSummary } from "../wss/summary.ts";
import { type Handshake, receiveHandshake } from "./handshake.ts";

/** How a wrapped command ended. */
export interface LaunchResult {
  exitCode: number;
  signal?: string;
  summary: SupervisorSummary;
}

/** Accepts the launcher's connection, or fails if it exits first. */
export async function acceptLauncher(
  server: Deno.Listener,
  child: Deno.ChildProcess,
  what: string,
): Promise<Handshake> {
  const conn = await Promise.race([server.accept(), child.status.then(() => undefined)]);
  if (!conn) {
    throw new Error(
      `Cannot start ${what}: idwrap-launch exited before the handshake (status ${(await child.status).code})`,
    );
  }
  return await receiveHandshake(conn);
}

/** A child's exit as a shell reports it: the code, or 128 + the signal's number. */
export function exitCodeOf(status: Deno.CommandStatus): number {
  return status.signal ? 128 + signalNumber(status.signal) : status.code;
}

/**
 * Starts `command` through idwrap-launch, lets `attach` bind the session to
 * the supervisor thread (session 0) before the launcher execs, and serves it
 * until the tree is gone; the thread is stopped whatever happens. Both
 * sources run a command this way.
 */
export async function launchAndServe(
  command: string[],
  spawn: (socketPath: string) => Promise<Deno.ChildProcess>,
  attach: (hs: Handshake) => Promise<unknown>,
  thread: { ended(session: number): Promise<SupervisorSummary>; stop(): Promise<void> },
  onNotice?: (message: string) => void,
): Promise<LaunchResult> {
  const dir = await Deno.makeTempDir({ prefix: "idwrap-" });
  const socketPath = join(dir, "launch.sock");
  const server = Deno.listen({ transport: "unix", path: socketPath });
  let child: Deno.ChildProcess | undefined;
  try {
    child = await spawn(socketPath);
    const hs = await acceptLauncher(server, child, command[0]);
    // One connection is all it takes: a socket left listening would hand its peer's pidfd (SO_PEERPIDFD) to
    // anything in the tree that connects.
    server.close();
    // Its directory too (it held only the socket): a supervisor SIGKILLed later leaves nothing in /tmp.
    await Deno.remove(dir, { recursive: true }).catch(() => {});
    await attach(hs);
    await hs.go();
    const stopForwarding = forwardSignals(child);
    const ended = thread.ended(0);
    const exit = await child.status;
    const summary = await lingering(ended, command[0], exit, onNotice);
    stopForwarding();
    return { exitCode: exitCodeOf(exit), signal: exit.signal ?? undefined, summary };
  } catch (e) {
    try {
      child?.kill("SIGKILL");
    } catch { /* already gone */ }
    throw e;
  } finally {
    await thread.stop();
    try {
      server.close();
    } catch { /* closed after the handshake */ }
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** How long the tree may outlive the command before idwrap says why it has not returned. */
const LINGER_NOTICE_MS = 1000;

/**
 * Waits for the rest of the tree once the command has exited. idwrap serves a tree until its last process exits (a
 * process it left behind is still under the policy, and with seccomp it cannot run without its supervisor): when that
 * takes more than a second, says so once, so that a run that does not return is not taken for a hang.
 */
async function lingering(
  ended: Promise<SupervisorSummary>,
  program: string,
  exit: Deno.CommandStatus,
  onNotice?: (message: string) => void,
): Promise<SupervisorSummary> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const notice = new Promise<void>((resolve) => timer = setTimeout(resolve, LINGER_NOTICE_MS));
  try {
    const first = await Promise.race([ended, notice]);
    if (first) return first;
    onNotice?.(
      `${program} exited with ${exitCodeOf(exit)}; processes it started are still running: idwrap serves them ` +
        "until they exit",
    );
    return await ended;
  } finally {
    clearTimeout(timer);
  }
}

const FORWARDED: Deno.Signal[] = ["SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT"];

/** The wrapped command decides how to end on these; idwrap stays to serve it. */
export function forwardSignals(child: Deno.ChildProcess): () => void {
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
