/**
 * Servers on 127.0.0.1 and a free port — the deliberately flawed ones of
 * tests/progs, nginx, vsftpd — run directly (an unwrapped control) or under
 * `./idwrap run --json -p POLICY`, and talked to over raw TCP: the attacks
 * send bytes no well-behaved client (fetch, curl) would.
 *
 * @module
 */
import { scratchDir, scratchFile } from "./temp.ts";
import type { HostEvent, WrapperReport } from "../host/events.ts";
import { IDWRAP, parseJsonLines, reports, TEST_STORE } from "./helpers.ts";

/** A server process until stop(), wrapped or not. */
export class LoopbackServer {
  private constructor(private child: Deno.ChildProcess, private out: string | undefined) {}

  /**
   * Starts command (with policy: under `idwrap run`, with flags before `--`) and waits (at
   * most 15 s) until it accepts on port.
   */
  static async start(command: string[], port: number, policy?: string, flags: string[] = []): Promise<LoopbackServer> {
    const out = policy ? await scratchFile({ prefix: "idwrap-flawed-", suffix: ".jsonl" }) : undefined;
    const [cmd, ...args] = policy
      ? [IDWRAP, "run", "--json", "-o", out!, "-p", policy, ...flags, "--", ...command]
      : command;
    const child = new Deno.Command(cmd, {
      args,
      env: { IDWRAP_STORE: TEST_STORE },
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const server = new LoopbackServer(child, out);
    for (let i = 0; i < 150; i++) {
      try {
        const c = await Deno.connect({ hostname: "127.0.0.1", port });
        c.close();
        return server;
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    const r = await server.stop();
    throw new Error(`${command[0]} did not listen on ${port}: ${r.stderr}`);
  }

  /** SIGTERM (idwrap forwards it), then the exit code, the server's stderr and idwrap's events (none unwrapped). */
  async stop(): Promise<{ code: number; stderr: string; events: HostEvent[] }> {
    try {
      this.child.kill("SIGTERM");
    } catch { /* exited */ }
    const timer = setTimeout(() => {
      try {
        this.child.kill("SIGKILL");
      } catch { /* exited */ }
    }, 15000);
    const r = await this.child.output();
    clearTimeout(timer);
    let events: HostEvent[] = [];
    if (this.out) {
      events = parseJsonLines(await Deno.readTextFile(this.out));
      await Deno.remove(this.out);
    }
    return { code: r.code, stderr: new TextDecoder().decode(r.stderr), events };
  }
}

/** Connects, sends each chunk (waiting pauseMs between chunks), reads until the server closes (at most 10 s). */
export async function exchange(port: number, chunks: (string | Uint8Array)[], pauseMs = 0): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const timer = setTimeout(() => conn.close(), 10000);
  try {
    for (let i = 0; i < chunks.length; i++) {
      if (i > 0 && pauseMs > 0) await new Promise((r) => setTimeout(r, pauseMs));
      const c = chunks[i];
      await conn.write(typeof c === "string" ? new TextEncoder().encode(c) : c);
    }
    const parts: Uint8Array[] = [];
    const buf = new Uint8Array(65536);
    for (;;) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      parts.push(buf.slice(0, n));
    }
    return new TextDecoder().decode(new Uint8Array(parts.flatMap((p) => [...p])));
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* closed by the timer */ }
  }
}

/** "wrapper: message" of each alert. */
export function alertTexts(events: HostEvent[]): string[] {
  return reports(events, "alert").map((a: WrapperReport) => `${a.wrapper}: ${a.message}`);
}

/** "wrapper: message" of each fault (a broken wrapper). */
export function faultTexts(events: HostEvent[]): string[] {
  return reports(events, "fault").map((a: WrapperReport) => `${a.wrapper}: ${a.message}`);
}

/** A directory everyone may enter (Deno makes 0700 temp dirs). */
export async function publicTempDir(prefix: string): Promise<string> {
  const dir = await scratchDir({ prefix });
  await Deno.chmod(dir, 0o755);
  return dir;
}
