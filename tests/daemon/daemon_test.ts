/**
 * The daemon on real processes: `run` hands a command to it, `ps` shows it
 * with its wrappers, a policy edit reaches a running process's next calls,
 * a broken edit is refused and the old policy keeps working, and users the
 * configuration does not allow can neither run under it nor change it.
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { ensureUser, IDWRAP, idwrap, prog, run } from "../helpers.ts";
import { startDaemon, waitFor } from "./daemon_helpers.ts";

const dir = await scratchDir({ prefix: "idwrap-daemon-test-" });
await Deno.chmod(dir, 0o755);
await Deno.writeTextFile(`${dir}/target.txt`, "target\n");

const policyWith = (rules: string) => `version: 1\nname: live\nrules:\n${rules}`;
const DENY_TARGET =
  `  - id: deny-target\n    syscalls: [openat]\n    path: ${dir}/target.txt\n    action: deny\n    errno: EACCES\n`;
const ALERT_TARGET = `  - id: watch-target\n    syscalls: [openat]\n    path: ${dir}/target.txt\n    action: alert\n`;

Deno.test("run hands the command to the daemon; ps shows the process and its wrappers", async () => {
  const policy = `${dir}/ps.yaml`;
  await Deno.writeTextFile(policy, policyWith(ALERT_TARGET) + "wrappers: [noop]\n");
  const d = await startDaemon(["--policy", policy, "--no-watch"]);
  try {
    const results = `${dir}/ps-results`;
    const runner = new Deno.Command(IDWRAP, {
      // 30 s: `idwrap ps` is asked until it lists the program; on a loaded machine (a load of 12 on 2 CPUs) its start
      // alone took longer than the 10 s this used to run, and ps found nothing.
      args: ["run", "--", prog("open_loop"), `${dir}/target.txt`, results, "30"],
      env: d.env,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    await waitFor("the program to run", () => Deno.readTextFile(results).then((t) => t || undefined, () => undefined));
    type Row = { pid: number; program: { exe: string }; wrappers: string[] };
    let last = "";
    const row = await waitFor("idwrap ps to list the program", async () => {
      const ps = await idwrap(["ps", "--json"], { env: d.env });
      assertEquals(ps.code, 0, ps.stderr);
      last = ps.stdout;
      return (JSON.parse(ps.stdout) as Row[]).find((r) => r.program.exe === prog("open_loop"));
    }, 25000).catch((e) => {
      throw new Error(`${e.message}; last answer: ${last}`);
    });
    assertEquals(row.wrappers, ["noop"]);
    const out = await runner.output();
    const stderr = new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 0, stderr);
    assert(stderr.includes("(served by the daemon)"), stderr);
    assert(stderr.includes("[watch-target]"), stderr);
  } finally {
    await d.stop();
  }
});

Deno.test("a policy edit reaches a running process's next calls; a broken edit is refused and the old one stays", async () => {
  const policy = `${dir}/live.yaml`;
  await Deno.writeTextFile(policy, policyWith(ALERT_TARGET));
  const d = await startDaemon(["--policy", policy, "--watch"]); // the file watch is opt-in (control_test.ts)
  try {
    const results = `${dir}/live-results`;
    const runner = new Deno.Command(IDWRAP, {
      // Long enough for a loaded machine; stopped once the test has seen what it needs.
      args: ["run", "--", prog("open_loop"), `${dir}/target.txt`, results, "60"],
      env: d.env,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const lines = async () => (await Deno.readTextFile(results).catch(() => "")).trim().split("\n").filter(Boolean);
    await waitFor("opens to succeed", async () => (await lines()).includes("ok") || undefined);

    await Deno.writeTextFile(policy, policyWith(DENY_TARGET)); // picked up by the file watch
    await waitFor(
      "the deny to reach the running process",
      async () => (await lines()).includes("errno 13") || undefined,
      45000,
    ).catch((e) => {
      throw new Error(`${e.message}; the daemon said:\n${d.log()}`);
    });

    const before = (await lines()).length;
    await Deno.writeTextFile(
      policy,
      policyWith(DENY_TARGET) + "  - id: broken\n    syscalls: [openat]\n    action: block\n",
    );
    await waitFor("the daemon to refuse the edit", () => d.log().includes("reload refused") || undefined);
    assert(
      d.log().includes(`${policy}:11: rules[1].action: expected one of alert, deny, kill, got "block"`),
      d.log(),
    );
    // The old policy keeps working: later opens are still denied.
    await waitFor("more opens", async () => (await lines()).length > before + 10 || undefined);
    const after = (await lines()).slice(before);
    assert(after.every((l) => l === "errno 13"), after.join(","));
    runner.kill("SIGTERM"); // passed on to the program by idwrap run
    await runner.status;
  } finally {
    await d.stop();
  }
});

/** Runs ./idwrap ARGS as another user (setpriv), with a private Deno cache. */
async function idwrapAs(user: string, uid: number, args: string[], env: Record<string, string>) {
  const home = await scratchDir({ prefix: `idwrap-${user}-` });
  await Deno.chown(home, uid, null);
  return await run("setpriv", [
    `--reuid=${uid}`,
    `--regid=${uid}`,
    "--clear-groups",
    "--",
    "env",
    `HOME=${home}`,
    `DENO_DIR=${home}/deno`,
    ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
    IDWRAP,
    ...args,
  ]);
}

Deno.test("permissions: an allowed user runs under the daemon but cannot change it; others cannot use it", async () => {
  const aliceUid = await ensureUser("idwrap-alice");
  const bobUid = await ensureUser("idwrap-bob");
  const policy = `${dir}/perm.yaml`;
  await Deno.writeTextFile(policy, policyWith(ALERT_TARGET));
  const d = await startDaemon(["--policy", policy, "--allow", "idwrap-alice", "--no-watch"]);
  try {
    const alice = await idwrapAs("idwrap-alice", aliceUid, ["run", "--", "/bin/cat", `${dir}/target.txt`], d.env);
    assertEquals(alice.code, 0, alice.stderr);
    assertEquals(alice.stdout, "target\n");
    assert(alice.stderr.includes("(served by the daemon)"), alice.stderr);

    const reload = await idwrapAs("idwrap-alice", aliceUid, ["wrappers", "reload"], d.env);
    assertEquals(reload.code, 125, reload.stderr);
    assert(reload.stderr.includes(`uid ${aliceUid} may not change the daemon's policies`), reload.stderr);

    const bob = await idwrapAs("idwrap-bob", bobUid, ["run", "--", "/bin/cat", `${dir}/target.txt`], d.env);
    assertEquals(bob.code, 77, bob.stderr);
    assertEquals(bob.stdout, "", "bob's command must not run");
    assert(bob.stderr.includes(`does not accept uid ${bobUid}`), bob.stderr);
    const bobReload = await idwrapAs("idwrap-bob", bobUid, ["wrappers", "reload"], d.env);
    assertEquals(bobReload.code, 69, bobReload.stderr);
  } finally {
    await d.stop();
  }
});

Deno.test("a root program the daemon wraps cannot unload the daemon's wrappers through its control socket", async () => {
  const policy = `${dir}/self-unload.yaml`;
  await Deno.writeTextFile(policy, policyWith(ALERT_TARGET) + "wrappers: [noop]\n");
  const d = await startDaemon(["--policy", policy, "--no-watch"]);
  try {
    // Served by the daemon, as root: its control socket would take the request from an unwrapped root process.
    const inside = await idwrap(["run", "--", IDWRAP, "wrappers", "unload", "noop"], { env: d.env });
    assert(inside.code !== 0, inside.stdout + inside.stderr);
    assert(inside.stderr.includes("runs under this daemon's policies"), inside.stderr);
    const list = await idwrap(["wrappers", "list"], { env: d.env });
    assert(list.stdout.includes("noop"), list.stdout + list.stderr);
    // The control: the same request from outside the wrapped tree is obeyed.
    const outside = await idwrap(["wrappers", "unload", "noop"], { env: d.env });
    assertEquals(outside.code, 0, outside.stderr);
  } finally {
    await d.stop();
  }
});
