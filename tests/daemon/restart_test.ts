/**
 * Restart without outage (issue 17): a real nginx under the daemon serves wrk's load while `idwrap daemon --restart`
 * has the daemon re-execute itself in place (same pid, same idwrap-holder; calls made in the gap wait in the kernel's
 * queue): no request fails, the `run` resumes on the restarted daemon and exits with nginx's status, and the store holds
 * one alert for every request nginx served, before and after. The control in the test is the restart done the old way
 * (SIGTERM, start again): requests fail.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { freePort } from "../loopback.ts";
import { publicTempDir } from "../loopback_server.ts";
import { NGINX, nginxCommand, nginxConf } from "../servers.ts";
import { IDWRAP, run, writePolicy } from "../helpers.ts";
import { startDaemon, type TestDaemon, waitFor } from "./daemon_helpers.ts";

const haveTools = await Promise.all([NGINX, "/usr/bin/wrk"].map((p) => Deno.stat(p).then(() => true, () => false)));

interface Site {
  dir: string;
  port: number;
  policy: string;
}

async function site(): Promise<Site> {
  const dir = await publicTempDir("idwrap-restart-"); // nginx's worker runs as nobody
  for (const d of ["www", "logs", "tmp"]) await Deno.mkdir(`${dir}/${d}`);
  await Deno.writeTextFile(`${dir}/www/watched.txt`, "watched\n");
  const port = freePort();
  await Deno.writeTextFile(`${dir}/nginx.conf`, nginxConf({ dir, port, backlog: 512 }));
  // One alert per request: nginx opens the file for each (no open_file_cache).
  const policy = await writePolicy(`version: 1
name: restart-test
rules:
  - id: watched-read
    syscalls: [open, openat, openat2]
    path: ${dir}/www/watched.txt
    action: alert
`);
  return { dir, port, policy };
}

/** `idwrap run -- nginx` handed to the daemon, once nginx serves. */
async function serveNginx(s: Site, daemon: TestDaemon): Promise<{ run: Deno.ChildProcess; err: () => string }> {
  const run = new Deno.Command(IDWRAP, {
    args: ["run", "--", ...nginxCommand(s.dir)],
    env: daemon.env,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let err = "";
  (async () => {
    for await (const chunk of run.stderr) err += new TextDecoder().decode(chunk);
  })();
  await waitFor("nginx to serve", async () => {
    try {
      const r = await fetch(`http://127.0.0.1:${s.port}/watched.txt`);
      await r.body?.cancel();
      return r.status === 200 || undefined;
    } catch {
      return undefined;
    }
  }, 60000);
  return { run, err: () => err };
}

interface Load {
  requests: number;
  /** Socket errors (connect, read, write, timeout) and non-2xx answers. */
  failed: number;
  text: string;
}

/** wrk on the watched file for `seconds`, 4 connections, a 30 s timeout (the gap is far shorter). */
async function load(s: Site, seconds: number): Promise<Load> {
  const r = await run("wrk", [
    "-t1",
    "-c4",
    `-d${seconds}s`,
    "--timeout",
    "30s",
    `http://127.0.0.1:${s.port}/watched.txt`,
  ]);
  const text = r.stdout + r.stderr;
  const requests = Number(text.match(/(\d+) requests in/)?.[1] ?? NaN);
  const socket = text.match(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/);
  const non2xx = Number(text.match(/Non-2xx or 3xx responses: (\d+)/)?.[1] ?? 0);
  const failed = (socket ? socket.slice(1).reduce((a, b) => a + Number(b), 0) : 0) + non2xx;
  assert(Number.isFinite(requests), text);
  return { requests, failed, text };
}

/** Requests nginx served for the watched file (its access log). */
async function served(s: Site): Promise<number> {
  const log = await Deno.readTextFile(`${s.dir}/logs/access.log`).catch(() => "");
  return log.split("\n").filter((l) => l.includes("GET /watched.txt") && l.includes('" 200 ')).length;
}

/** nginx's error log, for a failure's message (a 404's "is not a regular file" names the request). */
async function errorLog(s: Site): Promise<string> {
  return await Deno.readTextFile(`${s.dir}/logs/error.log`).catch((e) => `(unreadable: ${e.message})`);
}

/** Alerts of the watched-read rule in a store, with their times. */
async function alerts(store: string): Promise<number[]> {
  const r = await run(IDWRAP, ["audit", "query", "--store", store, "--queue", "alerts", "--json"]);
  assertEquals(r.code, 0, r.stderr);
  return r.stdout.split("\n").filter((l) => l.includes("watched-read")).map((l) =>
    Date.parse(JSON.parse(l)["@timestamp"])
  );
}

Deno.test({
  name: "idwrap daemon --restart under nginx serving wrk load: zero failed requests, no alert lost",
  ignore: !haveTools.every(Boolean),
  async fn() {
    // Control: the restart done the old way (SIGTERM, then a new daemon) under the same load fails requests.
    {
      const s = await site();
      const a = await startDaemon(["-p", s.policy]);
      const nginx = await serveNginx(s, a);
      // Long enough for the old daemon's stop (its store flushed under load) to end before wrk does.
      const during = load(s, 10);
      await new Promise((r) => setTimeout(r, 1500));
      await a.stop("SIGTERM");
      const b = await startDaemon(["-p", s.policy], { runDir: a.runDir, store: a.store });
      const l = await during;
      assert(l.failed > 0, `control: no request failed:\n${l.text}`);
      await nginx.run.status;
      await b.stop("SIGTERM");
    }

    const s = await site();
    const a = await startDaemon(["-p", s.policy]);
    const nginx = await serveNginx(s, a);
    const during = load(s, 10);
    await new Promise((r) => setTimeout(r, 2000));
    const restartedAt = Date.now();
    const b = await run(IDWRAP, ["daemon", "-p", s.policy, "--restart"], { env: a.env });
    assertEquals(b.code, 0, b.stderr + a.log());
    assert(b.stderr.includes("restarted in place; its 1 sessions go on"), b.stderr);
    // The same process serves on: its log (the same standard error) says so.
    assert(a.log().includes(`restarted in place (pid ${a.process.pid}): serving the 1 sessions on`), a.log());
    const l = await during;
    if (l.failed > 0) {
      const faults = await run(IDWRAP, ["audit", "query", "--store", a.store, "--queue", "faults", "--json"]);
      assertEquals(
        l.failed,
        0,
        `${l.text}\nnginx's error log:\n${await errorLog(s)}\nfaults:\n${faults.stdout}\n` +
          `the daemon:\n${a.log()}`,
      );
    }
    assert(l.requests > 0, l.text);
    // The run reads the old daemon's last events before it sees the connection close, then reconnects (every 200 ms,
    // for 30 s): under load it may say so after wrk has ended.
    await waitFor(
      "the resumed run to say the restarted daemon serves it again",
      () => nginx.err().includes("again (restarted in place") || undefined,
      30000,
    );

    // nginx ends on its own: the resumed run reports its end and exits with its status, not 75.
    nginx.run.kill("SIGTERM");
    const status = await nginx.run.status;
    assertEquals(status.code, 0, nginx.err());
    await a.stop("SIGTERM");

    const times = await alerts(a.store);
    assertEquals(times.length, await served(s), "one alert per request nginx served");
    assert(times.some((t) => t < restartedAt), "alerts before the restart");
    assert(times.some((t) => t > restartedAt + 1000), "alerts after the restart");
  },
});
