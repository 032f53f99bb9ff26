/**
 * Issue 17's finding, replayed: a real nginx under the daemon (`idwrap run -- nginx`), the daemon SIGKILLed. Before
 * idwrap-holder, every accept() then failed with ENOSYS, a worker spun and the error log grew by hundreds of MB while
 * `idwrap run` stayed up. Now (on_supervisor_loss kill, the default) nginx is killed, `idwrap run` exits 75 so the
 * service manager restarts the service, and the error log stays as it was. The control in the test is the same run
 * with the holder SIGKILLed first: accept() fails with ENOSYS ("Function not implemented") again.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { freePort } from "../loopback.ts";
import { publicTempDir } from "../loopback_server.ts";
import { NGINX, nginxCommand, nginxConf } from "../servers.ts";
import { IDWRAP } from "../helpers.ts";
import { startDaemon, waitFor } from "./daemon_helpers.ts";
import { EXIT_SUPERVISION_LOST } from "../../host/cli/exit.ts";
import { childrenOf, ended } from "../sources/seccomp/holder_harness.ts";

async function get(port: number): Promise<number | string> {
  try {
    const r = await fetch(`http://127.0.0.1:${port}/`, { signal: AbortSignal.timeout(1000) });
    await r.body?.cancel();
    return r.status;
  } catch (e) {
    return (e as Error).message;
  }
}

interface Served {
  dir: string;
  port: number;
  run: Deno.ChildProcess;
  runErr: () => string;
  nginx: number[];
  daemon: Awaited<ReturnType<typeof startDaemon>>;
  holder: number;
}

/** A daemon, and nginx handed to it by `idwrap run`, serving. */
async function serve(): Promise<Served> {
  const daemon = await startDaemon([]);
  const dir = await publicTempDir("idwrap-loss-nginx-"); // nginx's worker runs as nobody
  for (const d of ["www", "logs", "tmp"]) await Deno.mkdir(`${dir}/${d}`);
  await Deno.writeTextFile(`${dir}/www/index.html`, "hello\n");
  const port = freePort();
  await Deno.writeTextFile(`${dir}/nginx.conf`, nginxConf({ dir, port }));
  const run = new Deno.Command(IDWRAP, {
    args: ["run", "--", ...nginxCommand(dir)],
    env: daemon.env,
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  let err = "";
  (async () => {
    for await (const chunk of run.stderr) err += new TextDecoder().decode(chunk);
  })();
  await waitFor("nginx to serve", async () => await get(port) === 200 || undefined, 60000);
  const master = Number((await Deno.readTextFile(`${dir}/nginx.pid`)).trim());
  const holder = childrenOf(daemon.process.pid, "idwrap-holder")[0];
  assert(holder, "the daemon started no idwrap-holder");
  return { dir, port, run, runErr: () => err, nginx: [master, ...childrenOf(master)], daemon, holder };
}

const errorLogSize = (dir: string) => Deno.statSync(`${dir}/logs/error.log`).size;

Deno.test({
  name: "daemon SIGKILLed under a serving nginx: nginx is killed, `idwrap run` exits 75, no ENOSYS storm in its log",
  ignore: !(await Deno.stat(NGINX).then(() => true, () => false)),
  async fn() {
    // Control: without the holder (killed first), the kernel fails nginx's accept() with ENOSYS.
    const control = await serve();
    Deno.kill(control.holder, "SIGKILL");
    await control.daemon.stop("SIGKILL");
    for (let i = 0; i < 5; i++) await get(control.port);
    await new Promise((r) => setTimeout(r, 500));
    const controlLog = await Deno.readTextFile(`${control.dir}/logs/error.log`);
    for (const pid of control.nginx) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* gone */ }
    }
    await control.run.status;
    assert(controlLog.includes("Function not implemented"), `control: ${controlLog.slice(0, 2000)}`);

    const wrapped = await serve();
    const before = errorLogSize(wrapped.dir);
    await wrapped.daemon.stop("SIGKILL");
    for (const pid of wrapped.nginx) {
      await waitFor(`nginx pid ${pid} to be killed`, () => ended(pid) || undefined, 5000);
    }
    const status = await wrapped.run.status;
    assertEquals(status.code, EXIT_SUPERVISION_LOST, wrapped.runErr());
    assert(wrapped.runErr().includes("the daemon stopped serving"), wrapped.runErr());
    assert(typeof await get(wrapped.port) === "string", "nginx still answers");
    const log = await Deno.readTextFile(`${wrapped.dir}/logs/error.log`);
    assert(!log.includes("Function not implemented"), log.slice(0, 2000));
    assert(errorLogSize(wrapped.dir) - before < 4096, `the error log grew: ${log.slice(-2000)}`);
    await waitFor("the holder to exit", () => ended(wrapped.holder) || undefined, 5000);
  },
});
