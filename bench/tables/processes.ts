/**
 * Process trees started and stopped whatever happens: commands with a
 * timeout, long-running services, waiting for a port.
 *
 * @module
 */
import { forget, onCleanup } from "./cleanup.ts";

const decoder = new TextDecoder();

/** Children of each pid, from /proc/<pid>/stat. */
function childrenMap(): Map<number, number[]> {
  const map = new Map<number, number[]>();
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      const list = map.get(ppid) ?? [];
      list.push(Number(e.name));
      map.set(ppid, list);
    } catch { /* gone */ }
  }
  return map;
}

/** A pid and all its descendants, parents first. */
export function processTree(pid: number): number[] {
  const map = childrenMap();
  const out: number[] = [];
  const walk = (p: number) => {
    out.push(p);
    for (const c of map.get(p) ?? []) walk(c);
  };
  walk(pid);
  return out;
}

function signal(pid: number, sig: Deno.Signal): void {
  try {
    Deno.kill(pid, sig);
  } catch { /* gone */ }
}

/** SIGTERM to a tree (the root first, so wrappers forward it), SIGKILL to what is left after `graceMs`. */
export async function killTree(pid: number, graceMs = 5000): Promise<void> {
  const tree = processTree(pid);
  for (const p of tree) signal(p, "SIGTERM");
  const deadline = Date.now() + graceMs;
  while (Date.now() < deadline) {
    if (tree.every((p) => !alive(p))) return;
    await sleep(50);
  }
  for (const p of [...tree, ...processTree(pid)]) signal(p, "SIGKILL");
}

function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2, stat.lastIndexOf(")") + 3) !== "Z";
  } catch {
    return false;
  }
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** What a finished command did. */
export interface Finished {
  code: number;
  wallMs: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs a command to completion with a time limit, its tree killed on timeout or
 * interruption. stdout is kept only when asked (a build's output is not).
 */
export async function runCommand(
  args: string[],
  opts: { env?: Record<string, string>; cwd?: string; timeoutMs?: number; stdout?: boolean } = {},
): Promise<Finished & { timedOut: boolean }> {
  const t0 = performance.now();
  const child = new Deno.Command(args[0], {
    args: args.slice(1),
    env: opts.env,
    cwd: opts.cwd,
    stdin: "null",
    stdout: opts.stdout ? "piped" : "null",
    stderr: "piped",
  }).spawn();
  const handle = onCleanup(() => killTree(child.pid, 2000));
  let timedOut = false;
  const timer = opts.timeoutMs
    ? setTimeout(() => {
      timedOut = true;
      killTree(child.pid, 2000);
    }, opts.timeoutMs)
    : undefined;
  try {
    const out = await child.output();
    const wallMs = performance.now() - t0;
    return {
      code: out.code,
      wallMs,
      stdout: opts.stdout ? decoder.decode(out.stdout) : "",
      stderr: decoder.decode(out.stderr),
      timedOut,
    };
  } finally {
    clearTimeout(timer);
    forget(handle);
  }
}

/** A long-running process (a server under a configuration), stopped with its whole tree. */
export class Service {
  #stderr: Promise<string>;
  #stdout: Promise<string>;
  #handle: number;
  private constructor(readonly child: Deno.ChildProcess) {
    this.#stderr = new Response(child.stderr).text();
    this.#stdout = new Response(child.stdout).text();
    this.#handle = onCleanup(() => killTree(child.pid, 2000));
  }

  static spawn(args: string[], env?: Record<string, string>): Service {
    const child = new Deno.Command(args[0], {
      args: args.slice(1),
      env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    return new Service(child);
  }

  /** SIGTERM to the tree, SIGKILL after the grace time; the exit code and what it printed. */
  async stop(graceMs = 10000): Promise<{ code: number; stderr: string; stdout: string }> {
    await killTree(this.child.pid, graceMs);
    const status = await this.child.status;
    forget(this.#handle);
    return { code: status.code, stderr: await this.#stderr, stdout: await this.#stdout };
  }

  /** Whether the root process is still running (it has not been reaped). */
  async exited(): Promise<boolean> {
    return await Promise.race([this.child.status.then(() => true), sleep(0).then(() => false)]);
  }

  async stderrText(): Promise<string> {
    return await this.#stderr;
  }
}

/** Waits (bounded) until something accepts TCP connections on 127.0.0.1:port. */
export async function waitListening(port: number, service: Service, timeoutMs = 20000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await service.exited()) throw new Error(`server exited before listening:\n${await service.stderrText()}`);
    try {
      const c = await Deno.connect({ hostname: "127.0.0.1", port });
      c.close();
      return;
    } catch {
      await sleep(50);
    }
  }
  throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms (the server is still running)`);
}
