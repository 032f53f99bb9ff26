/**
 * `idwrap run` handed to a daemon that refuses the launch because it is restarting (`idwrap daemon --restart`) asks
 * again, on a new connection, for a bounded time, saying so once; any other refusal ends it at once. The daemon here is
 * a stand-in on the control socket that counts the launches asked for: nothing is launched, so no command runs.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { controlSocket, readLines, type Request, sendLine } from "../../host/daemon/protocol.ts";
import { idwrap } from "../helpers.ts";
import { tempDir } from "../temp.ts";

const RESTARTING = "the daemon is restarting (idwrap daemon --restart): run the command again in a moment";

Deno.test("idwrap run: a launch refused because the daemon restarts is asked for again, then the daemon's answer holds", async () => {
  await using dir = await tempDir({ prefix: "idwrap-run-retry-" });
  const listener = Deno.listen({ transport: "unix", path: controlSocket(dir.path, Deno.uid() ?? 0) });
  let launches = 0;
  const served = (async () => {
    for await (const conn of listener) {
      const first = await readLines<Request>(conn).next();
      if (!first.done && first.value.op === "launch") launches++;
      // Restarting for the first three launches, then a refusal of another kind.
      const error = launches <= 3 ? RESTARTING : "stand-in daemon: refused for good";
      await sendLine(conn, { ok: false, error }).catch(() => {});
      conn.close();
    }
  })();
  try {
    const r = await idwrap(["run", "--run-dir", dir.path, "--", "/bin/echo", "RAN"], { timeoutMs: 60_000 });
    assert(r.code !== 0, r.stderr);
    assert(!r.stdout.includes("RAN"), r.stdout);
    assertEquals(launches, 4, r.stderr);
    assert(r.stderr.includes("stand-in daemon: refused for good"), r.stderr);
    assertEquals(r.stderr.split("asking again for up to 30 s").length - 1, 1, r.stderr);
  } finally {
    listener.close();
    await served.catch(() => {});
  }
});
