/**
 * A real `nats-server -js` for a test: on a free loopback port, its JetStream store in a directory the test gives.
 *
 * @module
 */
import { waitFor } from "../daemon/daemon_helpers.ts";

/** The installed nats-server (Debian's package puts it in /usr/sbin), or undefined: the tests say they skip. */
export const NATS_SERVER: string | undefined = [
  "/usr/sbin/nats-server",
  "/usr/bin/nats-server",
  "/usr/local/bin/nats-server",
]
  .find((p) => {
    try {
      return Deno.statSync(p).isFile;
    } catch {
      return false;
    }
  });

/** Says why `file`'s tests are skipped when nats-server is missing. */
export function sayIfSkipped(file: string): void {
  if (!NATS_SERVER) console.log(`SKIP ${file}: nats-server is not installed (tools/debian-deps.sh --install)`);
}

/** A free loopback TCP port. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/**
 * Starts `nats-server -js` on 127.0.0.1:`port`, its store in `storeDir` (`extra`: more options, e.g. `--auth TOKEN`),
 * and waits until it listens.
 */
export async function startNats(port: number, storeDir: string, extra: string[] = []): Promise<Deno.ChildProcess> {
  const child = new Deno.Command(NATS_SERVER!, {
    args: ["-js", "-a", "127.0.0.1", "-p", String(port), "-sd", storeDir, ...extra],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  await waitFor("nats-server to listen", async () => {
    try {
      (await Deno.connect({ hostname: "127.0.0.1", port })).close();
      return true;
    } catch {
      return undefined;
    }
  });
  return child;
}
