/**
 * A tree the daemon served before `idwrap daemon --restart` keeps its seccomp filter, whose tamper guard names the pid
 * of the daemon that launched it (a filter cannot change). Before, the restart handed the trees to a new daemon
 * process: from a tree taken over, root could `kill -STOP` it (every tree's notified calls then waited forever) or
 * `kill -KILL` it (or its new idwrap-holder), without a record. Now the running daemon re-executes the new installation
 * in its own process, keeping its holder, so the pids every filter names are theirs still: all are refused and reported. The control is in the test: the same
 * wrapped program stops a decoy process of root's with the same `kill`.
 *
 * Only root is attacked: the daemon runs as root, so the kernel refuses an ordinary user's signal to it whatever idwrap
 * does (there is no unwrapped success to compare with).
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { IDWRAP, writePolicy } from "../helpers.ts";
import { startDaemon, type TestDaemon, waitFor } from "./daemon_helpers.ts";
import { DaemonClient, type Response } from "../../host/daemon/protocol.ts";
import { scratchDir } from "../temp.ts";

type Status = Extract<Response, { uptime: number }>;

async function status(runDir: string): Promise<Status | undefined> {
  const c = await DaemonClient.connect(runDir);
  if (!c) return undefined;
  try {
    return await c.request<Status>({ op: "status" });
  } catch {
    return undefined;
  } finally {
    c.close();
  }
}

/** What `p` settles with, or undefined after `ms`. */
async function within<T>(ms: number, p: Promise<T>): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return await Promise.race([p, new Promise<undefined>((r) => timer = setTimeout(() => r(undefined), ms))]).finally(
    () => clearTimeout(timer),
  );
}

/** The state letter of a process (/proc/PID/stat), or "gone". */
async function stateOf(pid: number): Promise<string> {
  const stat = await Deno.readTextFile(`/proc/${pid}/stat`).catch(() => "");
  return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0] || "gone";
}

/** The daemon's idwrap-holder: its child of that name. */
async function holderOf(daemon: number): Promise<number> {
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const status = await Deno.readTextFile(`/proc/${e.name}/status`).catch(() => "");
    if (/^Name:\s*idwrap-holder$/m.test(status) && new RegExp(`^PPid:\\s*${daemon}$`, "m").test(status)) {
      return Number(e.name);
    }
  }
  throw new Error(`no idwrap-holder under pid ${daemon}`);
}

/** `idwrap daemon --restart` on the daemon's run dir; settles with the pid of the daemon that serves afterwards. */
async function restart(d: TestDaemon, policy: string): Promise<{ pid: number; asker: Deno.ChildProcess }> {
  const asked = Date.now();
  const asker = new Deno.Command(IDWRAP, {
    args: ["daemon", "-p", policy, "--restart"],
    env: d.env,
    stdin: "null",
    stdout: "null",
    stderr: "inherit",
  }).spawn();
  // A restart refused ends the asker (the old code's stays, as the daemon).
  let refused: Deno.CommandStatus | undefined;
  asker.status.then((s) => s.code !== 0 && (refused = s));
  // Served again once a daemon answers that started after the request.
  const s = await waitFor("a daemon serving after the restart", async () => {
    if (refused) throw new Error(`the restart was refused (exit ${refused.code}): see its message above`);
    const s = await status(d.runDir);
    return s && s.uptime * 1000 < Date.now() - asked && s.sessions === 1 ? s : undefined;
  }, 60000);
  return { pid: s.pid, asker };
}

Deno.test("from a tree taken over by `idwrap daemon --restart`, root cannot stop or kill the serving daemon", async () => {
  const dir = await scratchDir({ prefix: "idwrap-restart-guard-" });
  const policy = await writePolicy(`version: 1
name: restart-guard
rules:
  - id: watched
    syscalls: [openat]
    path: ${dir}/watched
    action: alert
`);
  const d = await startDaemon(["-p", policy]);
  const decoy = new Deno.Command("sleep", { args: ["300"], stdout: "null", stderr: "null" }).spawn();
  // Each step waits for its go file, then writes what its kill returned.
  const step = (n: number, what: string) =>
    `until [ -e ${dir}/go${n} ]; do sleep 0.2; done; ${what}; echo $? > ${dir}/out${n}.tmp; ` +
    `mv ${dir}/out${n}.tmp ${dir}/out${n}`;
  const script = [
    step(1, `kill -STOP ${decoy.pid}`),
    step(2, `kill -STOP $(cat ${dir}/pid)`),
    step(3, `kill -KILL $(cat ${dir}/pid)`),
    step(4, `kill -KILL $(cat ${dir}/holder)`),
    `cat ${dir}/watched`,
  ].join("; ");
  await Deno.writeTextFile(`${dir}/watched`, "watched\n");
  const tree = new Deno.Command(IDWRAP, {
    args: ["run", "--", "/bin/sh", "-c", script],
    env: d.env,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let err = "";
  const stderr = (async () => {
    for await (const chunk of tree.stderr) err += new TextDecoder().decode(chunk);
  })();
  const stdout = new Response(tree.stdout).text();
  let asker: Deno.ChildProcess | undefined;
  const serving: number[] = [];
  const result = async (n: number, otherwise: () => Promise<string | undefined> = () => Promise.resolve(undefined)) => {
    await Deno.writeTextFile(`${dir}/go${n}`, "");
    return await waitFor(
      `step ${n}`,
      () => Deno.readTextFile(`${dir}/out${n}`).then((t) => t.trim(), otherwise),
    );
  };
  try {
    await waitFor("the tree's session", async () => (await status(d.runDir))?.sessions === 1 || undefined);
    const r = await restart(d, policy);
    asker = r.asker;
    serving.push(r.pid);
    await Deno.writeTextFile(`${dir}/pid`, String(r.pid));
    // The run reconnects after the restart: from then on the tree's reports reach its standard error.
    await waitFor("the run's resume", () => err.includes("again (restarted in place") || undefined, 30000);
    const holder = await holderOf(r.pid);
    await Deno.writeTextFile(`${dir}/holder`, String(holder));

    // Control: the same program, wrapped and taken over, stops a process that is not idwrap's.
    assertEquals(await result(1), "0", "the control: kill -STOP of a decoy from the wrapped tree");
    assertEquals(await stateOf(decoy.pid), "T");

    // A stopped daemon answers nothing, the tree's own next open included: its state says what happened.
    const stop = await result(2, async () => await stateOf(r.pid) === "T" ? "the daemon is stopped" : undefined);
    const stateAfterStop = await stateOf(r.pid);
    if (stateAfterStop === "T") Deno.kill(r.pid, "SIGCONT"); // the assertions below fail; let the rest end
    assert(stop !== "0", `kill -STOP of the serving daemon (pid ${r.pid}) from the tree taken over succeeded`);
    assert(
      !["T", "t", "gone"].includes(stateAfterStop),
      `the daemon (pid ${r.pid}) after the tree's kill -STOP: ${stop} (state ${stateAfterStop})`,
    );

    // A killed daemon's tree is killed by the holder (on_supervisor_loss) before it can write its result.
    const kill = await result(3, async () => await stateOf(r.pid) === "gone" ? "the daemon is gone" : undefined);
    assert(kill !== "0", `kill -KILL of the serving daemon (pid ${r.pid}) from the tree taken over succeeded`);
    assert(await stateOf(r.pid) !== "gone", `the daemon (pid ${r.pid}) after the tree's kill -KILL: ${kill}`);
    const killHolder = await result(4);
    assert(killHolder !== "0", `kill -KILL of the daemon's idwrap-holder (pid ${holder}) from the tree succeeded`);
    assert(await stateOf(holder) !== "gone", `the daemon's idwrap-holder (pid ${holder}) is gone`);
    // Still serving: the tree's last notified call (the open of the watched file) is answered and the run ends well.
    const s = await within(30000, tree.status);
    assertEquals(s?.code, 0, err);
    assertEquals(await stdout, "watched\n");
    assert(!["T", "t", "gone"].includes(await stateOf(r.pid)), `the daemon (pid ${r.pid}) after the tree's kill -KILL`);
    const reports = () => err.split("\n").filter((l) => l.includes("idwrap.supervisor-tamper"));
    await waitFor("the tamper reports", () => reports().length >= 3 || undefined).catch(() => {});
    assert(reports().length >= 3, `three tamper reports expected:\n${err}`);
  } finally {
    // A tree left waiting goes on (its run may be gone), and ends.
    for (const n of [1, 2, 3, 4]) await Deno.writeTextFile(`${dir}/go${n}`, "");
    decoy.kill("SIGKILL");
    await decoy.status;
    for (const pid of serving) {
      try {
        Deno.kill(pid, "SIGCONT");
      } catch { /* gone */ }
    }
    try {
      tree.kill("SIGKILL");
    } catch { /* ended */ }
    await tree.status;
    await within(10000, stderr);
    try {
      asker?.kill("SIGTERM"); // the old code's --restart stayed as the daemon
    } catch { /* it exited, having restarted the daemon */ }
    await asker?.status;
    for (const pid of serving) {
      try {
        Deno.kill(pid, "SIGTERM");
      } catch { /* gone */ }
    }
    await d.stop("SIGTERM");
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(d.runDir.replace(/\/run$/, ""), { recursive: true }).catch(() => {});
  }
});
