/**
 * Starts a real `idwrap daemon` for a test, in its own run dir and store.
 *
 * @module
 */
import { scratchDir } from "../temp.ts";
import { IDWRAP } from "../helpers.ts";

/** A daemon a test started. */
export interface TestDaemon {
  runDir: string;
  store: string;
  env: Record<string, string>;
  process: Deno.ChildProcess;
  /** What the daemon logged so far. */
  log(): string;
  stop(signal?: Deno.Signal): Promise<void>;
}

/** Waits until `probe` returns a value (polling), or fails naming `what`. */
export async function waitFor<T>(
  what: string,
  probe: () => Promise<T | undefined> | T | undefined,
  ms = 20000,
): Promise<T> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const v = await probe();
    if (v !== undefined) return v;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
}

/** Starts `idwrap daemon ARGS…` and waits for its control socket. */
export async function startDaemon(args: string[], reuse?: { runDir: string; store: string }): Promise<TestDaemon> {
  const base = reuse ? undefined : await scratchDir({ prefix: "idwrap-daemon-" });
  if (base) await Deno.chmod(base, 0o755); // other users reach their sockets through it
  const runDir = reuse?.runDir ?? `${base}/run`;
  const store = reuse?.store ?? `${base}/store.kv`;
  const env = { IDWRAP_RUN_DIR: runDir, IDWRAP_STORE: store };
  const process = new Deno.Command(IDWRAP, {
    args: ["daemon", ...args],
    env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  })
    .spawn();
  let text = "";
  const decoder = new TextDecoder();
  (async () => {
    for await (const chunk of process.stderr) text += decoder.decode(chunk);
  })();
  process.stdout.cancel();
  await waitFor("the daemon's control socket", () => {
    try {
      Deno.statSync(`${runDir}/0.sock`);
      return text.includes("serving") ? true : undefined;
    } catch {
      return undefined;
    }
  });
  return {
    runDir,
    store,
    env,
    process,
    log: () => text,
    async stop(signal: Deno.Signal = "SIGTERM") {
      try {
        process.kill(signal);
      } catch { /* gone */ }
      await process.status;
    },
  };
}
