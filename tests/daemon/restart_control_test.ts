/**
 * `idwrap daemon --restart` re-executes the running daemon in place (host/daemon/reexec.ts). What must not go wrong:
 * a new installation whose policies do not load must leave the running daemon serving, untouched; one that cannot
 * start after the exec must give way to the program the daemon ran before (same process, its trees served on); and only
 * root, from outside every wrapped tree, may name the program the daemon becomes, and only one no one else can write.
 * Each test has a tree running under the daemon throughout, and checks it is served afterwards.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { dirname } from "node:path";
import { ensureUser, IDWRAP, idwrap, prog, run, writePolicy } from "../helpers.ts";
import { startDaemon, type TestDaemon, waitFor } from "./daemon_helpers.ts";
import { DaemonClient, type Response } from "../../host/daemon/protocol.ts";
import { freePort } from "../loopback.ts";
import { scratchDir } from "../temp.ts";

type Status = Extract<Response, { uptime: number }>;

async function status(d: TestDaemon): Promise<Status> {
  const c = await DaemonClient.connect(d.runDir);
  assert(c, `no daemon answers on ${d.runDir}`);
  try {
    return await c.request<Status>({ op: "status" });
  } finally {
    c.close();
  }
}

/** A tree under the daemon that waits for `go`, then opens the watched file (a notified call) and prints it. */
async function waitingTree(d: TestDaemon, dir: string) {
  await Deno.writeTextFile(`${dir}/watched`, "watched\n");
  const tree = new Deno.Command(IDWRAP, {
    args: ["run", "--", "/bin/sh", "-c", `until [ -e ${dir}/go ]; do sleep 0.2; done; cat ${dir}/watched`],
    env: d.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const out = tree.output();
  await waitFor("the tree's session", async () => (await status(d)).sessions === 1 || undefined);
  return {
    /** Lets the tree go on; settles with what it printed and its status. */
    async finish() {
      await Deno.writeTextFile(`${dir}/go`, "");
      const o = await out;
      return { code: o.code, stdout: new TextDecoder().decode(o.stdout), stderr: new TextDecoder().decode(o.stderr) };
    },
  };
}

async function setUp(prefix: string) {
  const dir = await scratchDir({ prefix });
  const policy = await writePolicy(
    `version: 1\nname: restart-control\nrules:\n  - { id: watched, syscalls: [openat], path: ${dir}/watched, ` +
      `action: alert }\n`,
  );
  return { dir, policy };
}

async function cleanUp(d: TestDaemon, dir: string): Promise<void> {
  await Deno.writeTextFile(`${dir}/go`, "").catch(() => {});
  await d.stop("SIGTERM");
  await Deno.remove(dir, { recursive: true });
  await Deno.remove(dirname(d.runDir), { recursive: true }).catch(() => {});
}

Deno.test("a restart whose policies do not load is refused before the running daemon is touched", async () => {
  const { dir, policy } = await setUp("idwrap-restart-bad-");
  const d = await startDaemon(["-p", policy]);
  try {
    const tree = await waitingTree(d, dir);
    const before = await status(d);
    const bad = `${dir}/bad.yaml`;
    await Deno.writeTextFile(bad, "version: 1\nrules:\n  - { id: x, syscalls: [openat], action: explode }\n");
    const r = await run(IDWRAP, ["daemon", "-p", bad, "--restart"], { env: d.env });
    assertEquals(r.code, 1, `a restart with a broken policy:\n${r.stderr}`);
    assert(r.stderr.includes(`${bad}:3`), `the refusal names the file and line:\n${r.stderr}`);
    assert(r.stderr.includes("the running daemon goes on unchanged"), r.stderr);
    const after = await status(d);
    assertEquals(after.pid, before.pid);
    assert(after.uptime >= before.uptime, "the daemon was not restarted");
    assert(!d.log().includes("restarting as"), d.log());
    const t = await tree.finish();
    assertEquals([t.code, t.stdout], [0, "watched\n"], t.stderr);
  } finally {
    await cleanUp(d, dir);
  }
});

Deno.test("a restarted daemon that cannot start goes back to what it ran: same pid, its tree served on", async () => {
  const { dir, policy } = await setUp("idwrap-restart-back-");
  const d = await startDaemon(["-p", policy]);
  // The new command's metrics address is taken: its policies check, but it fails once it runs (after the exec).
  const port = freePort();
  const taken = Deno.listen({ hostname: "127.0.0.1", port });
  try {
    const tree = await waitingTree(d, dir);
    const before = await status(d);
    const r = await run(IDWRAP, ["daemon", "-p", policy, "--metrics", `127.0.0.1:${port}`, "--restart"], {
      env: d.env,
    });
    assertEquals(r.code, 1, `the restart that went back:\n${r.stderr}\n${d.log()}`);
    assert(r.stderr.includes("went back to what it ran before"), r.stderr);
    assert(r.stderr.includes("could not start"), r.stderr);
    const after = await status(d);
    assertEquals(after.pid, before.pid, "the same process serves");
    assert(d.log().includes("going back to the previous one"), d.log());
    assert(d.log().includes(`restarted in place (pid ${before.pid}): serving the 1 sessions on`), d.log());
    const t = await tree.finish();
    assertEquals([t.code, t.stdout], [0, "watched\n"], t.stderr);
  } finally {
    taken.close();
    await cleanUp(d, dir);
  }
});

Deno.test("only root, outside every wrapped tree, may restart the daemon, and only into a program root alone can write", async () => {
  const { dir, policy } = await setUp("idwrap-restart-who-");
  await Deno.chmod(dir, 0o755);
  const uid = await ensureUser("idwrap-restart-who");
  const d = await startDaemon(["-p", policy, "--allow", String(uid)]);
  try {
    const tree = await waitingTree(d, dir);
    const before = await status(d);
    const deno = Deno.execPath();
    const restartWith = (runtime: string[]) =>
      JSON.stringify({ op: "restart", runtime, args: ["daemon", "-p", policy] });
    const refused = (out: string) => {
      const line = out.split("\n").find((l) => l.startsWith("{"));
      assert(line, `no answer in: ${out}`);
      const a = JSON.parse(line) as { ok: boolean; error?: string };
      assertEquals(a.ok, false, out);
      return a.error ?? "";
    };
    const ctl = prog("ctl_passed");

    // A runtime in a directory anyone can write: whoever can write it would run code as the daemon.
    const open = await scratchDir({ prefix: "idwrap-restart-open-" });
    await Deno.chmod(open, 0o777);
    await Deno.copyFile(deno, `${open}/deno`);
    await Deno.chmod(`${open}/deno`, 0o755);
    const writable = await run(ctl, [`${d.runDir}/0.sock`, restartWith([`${open}/deno`]), "direct"]);
    assert(refused(writable.stdout + writable.stderr).includes("writable by others than root"), writable.stdout);
    const relative = await run(ctl, [`${d.runDir}/0.sock`, restartWith(["deno"]), "direct"]);
    assert(refused(relative.stdout + relative.stderr).includes("not an absolute path"), relative.stdout);
    await Deno.remove(open, { recursive: true });

    // An ordinary user the daemon serves, on its own socket.
    const user = await run("setpriv", [
      `--reuid=${uid}`,
      `--regid=${uid}`,
      "--clear-groups",
      ctl,
      `${d.runDir}/${uid}.sock`,
      restartWith([deno]),
      "direct",
    ]);
    assert(refused(user.stdout + user.stderr).includes("only root may"), user.stdout);

    // Root inside a wrapped tree (this daemon's own).
    const wrapped = await idwrap(["run", "--", ctl, `${d.runDir}/0.sock`, restartWith([deno]), "direct"], {
      env: d.env,
    });
    assert(refused(wrapped.stdout + wrapped.stderr).includes("runs under this daemon's policies"), wrapped.stdout);

    // Root inside a tree of another supervisor (a standalone `idwrap run`, not this daemon's): it could otherwise
    // restart the daemon into a module it wrote, which would run unfiltered as the daemon (red team rt10 F4). Its
    // control: the same request from outside every tree is read past this check (it fails on the runtime's shape).
    const standalone = await idwrap([
      "run",
      "--source",
      "seccomp",
      "--",
      ctl,
      `${d.runDir}/0.sock`,
      restartWith([deno]),
      "direct",
    ]);
    assert(refused(standalone.stdout + standalone.stderr).includes("runs under a seccomp filter"), standalone.stdout);
    const outside = await run(ctl, [`${d.runDir}/0.sock`, restartWith([deno]), "direct"]);
    assert(refused(outside.stdout + outside.stderr).includes(" run …"), outside.stdout);

    const after = await status(d);
    assertEquals(after.pid, before.pid);
    assert(after.uptime >= before.uptime, "the daemon was restarted");
    const t = await tree.finish();
    assertEquals([t.code, t.stdout], [0, "watched\n"], t.stderr);
  } finally {
    await cleanUp(d, dir);
  }
});

Deno.test("commands handed to the daemon while it restarts run, or are refused: none is left waiting", async () => {
  const { dir, policy } = await setUp("idwrap-restart-race-");
  await Deno.writeTextFile(`${dir}/watched`, "watched\n");
  const d = await startDaemon(["-p", policy]);
  const runs: Promise<{ code: number; out: string }>[] = [];
  let restarting = true;
  try {
    // Runs started one after another (4 at a time) for as long as the restarts go on.
    const launcher = (async () => {
      while (restarting) {
        const batch = [0, 1, 2, 3].map(() =>
          run(IDWRAP, ["run", "--", "/bin/cat", `${dir}/watched`], { env: d.env, timeoutMs: 90_000 })
            .then((r) => ({ code: r.code, out: r.stdout + r.stderr }))
        );
        runs.push(...batch);
        await Promise.all(batch);
      }
    })();
    for (let i = 0; i < 3; i++) {
      await new Promise((r) => setTimeout(r, 700));
      const r = await run(IDWRAP, ["daemon", "-p", policy, "--restart"], { env: d.env });
      assertEquals(r.code, 0, r.stderr + d.log());
    }
    restarting = false;
    await launcher;
    const results = await Promise.all(runs);
    const served = results.filter((r) => r.code === 0);
    assert(served.every((r) => r.out.includes("watched\n")), JSON.stringify(results));
    // Refused: the daemon was restarting, or its socket was briefly gone; never a command left waiting (timeoutMs).
    const refused = results.filter((r) => r.code !== 0);
    for (const r of refused) assert(/restarting|no idwrap daemon|closed the connection/.test(r.out), r.out);
    assert(served.length > 0, JSON.stringify(results));
  } finally {
    restarting = false;
    await cleanUp(d, dir);
  }
});
