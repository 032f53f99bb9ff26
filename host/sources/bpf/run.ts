/**
 * Runs a command observed by the bpf source: idwrap-launch --no-filter holds
 * the command until its pid is in the watched set, so the first call of the
 * new program is seen; children follow through the fork tracepoint. The
 * consumer polls the ring with a short timeout (the programs wake it early
 * only past the ring's threshold) and yields to the event loop in between.
 *
 * @module
 */
import { join } from "node:path";
import type { HostEvent } from "../../events.ts";
import { launcherPath } from "../launcher.ts";
import { acceptLauncher, exitCodeOf } from "../launch.ts";
import { BpfSource, type BpfSourceOptions } from "./source.ts";

const YIELD_MS = 20;

/** How to observe a command. */
export interface ObserveOptions extends BpfSourceOptions {
  /** The consumer's poll timeout (ms): the longest a record waits below the wake-up threshold. @default 5 */
  pollMs?: number;
  /** Where the command's output goes. @default "inherit" */
  stdout?: "inherit" | "null" | "piped";
  stderr?: "inherit" | "null" | "piped";
  /** Each batch of events as it arrives; without it they are collected in the result. */
  onEvents?: (events: HostEvent[]) => void;
}

/** How an observed command ended. */
export interface ObserveResult {
  exitCode: number;
  signal?: string;
  /** The events, in ring order (empty when onEvents took them). */
  events: HostEvent[];
  /** Records the programs dropped (each loss was also reported as an event). */
  lost: number;
  stdout?: Uint8Array;
}

/** Runs `command` with its calls and lifecycle observed through the bpf source. */
export async function observeCommand(command: string[], options: ObserveOptions): Promise<ObserveResult> {
  const source = BpfSource.open(options);
  const events: HostEvent[] = [];
  const take = (batch: HostEvent[]) => {
    if (!batch.length) return;
    if (options.onEvents) options.onEvents(batch);
    else for (const e of batch) events.push(e); // not push(...batch): a large batch overflows the stack
  };
  const dir = await Deno.makeTempDir({ prefix: "idwrap-bpf-" });
  const socketPath = join(dir, "launch.sock");
  const server = Deno.listen({ transport: "unix", path: socketPath });
  let child: Deno.ChildProcess | undefined;
  try {
    child = new Deno.Command(await launcherPath(), {
      args: ["--no-filter", socketPath, "--", ...command],
      stdin: "null",
      stdout: options.stdout ?? "inherit",
      stderr: options.stderr ?? "inherit",
    }).spawn();
    const hs = await acceptLauncher(server, child, command[0]);
    server.close();
    source.watch(hs.pid);
    await hs.go();
    const output = options.stdout === "piped" ? child.stdout.bytes() : undefined;
    let status: Deno.CommandStatus | undefined;
    child.status.then((s) => status = s);
    const pollMs = options.pollMs ?? 5;
    // The event loop (which hears the child's exit and drains its pipes) gets a turn every YIELD_MS; a turn per
    // poll would leave the ring alone for a timer's clamp (≥ 1 ms) each time.
    let turn = performance.now();
    while (!status) {
      take(source.poll(pollMs));
      if (performance.now() - turn >= YIELD_MS) {
        await new Promise((r) => setTimeout(r, 0));
        turn = performance.now();
      }
    }
    take(source.finish());
    return {
      exitCode: exitCodeOf(status),
      signal: status.signal ?? undefined,
      events,
      lost: source.lost,
      stdout: await output,
    };
  } catch (e) {
    try {
      child?.kill("SIGKILL");
    } catch { /* gone */ }
    throw e;
  } finally {
    source.close();
    try {
      server.close();
    } catch { /* closed after the handshake */ }
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
