/**
 * The daemon copies a listener fd (pidfd_getfd) only from the process the
 * kernel says connected to the session socket (SO_PEERCRED), and only when
 * it runs as the user who asked. Before, it copied whatever pid and fd the
 * handshake named — a root process's fd included — and checked the uid after.
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { ensureUser, ROOT, run } from "../helpers.ts";
import { startDaemon } from "./daemon_helpers.ts";

const dir = await scratchDir({ prefix: "idwrap-peercred-" });
await Deno.chmod(dir, 0o755);
await Deno.writeTextFile(`${dir}/p.yaml`, "rules: []\n");

/** The files a process has open. */
function openFiles(pid: number): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(`/proc/${pid}/fd`)) {
    try {
      out.push(Deno.readLinkSync(`/proc/${pid}/fd/${e.name}`));
    } catch { /* closed meanwhile */ }
  }
  return out;
}

/** A `sleep` as `uid` holding `file` open as fd 3. */
function holder(file: string, uid: number): Deno.ChildProcess {
  const args = [
    `--reuid=${uid}`,
    `--regid=${uid}`,
    "--clear-groups",
    "--",
    "sh",
    "-c",
    `exec 3<${file}; exec sleep 60`,
  ];
  return new Deno.Command("setpriv", { args, stdin: "null", stdout: "null", stderr: "null" }).spawn();
}

Deno.test("the daemon copies no fd from a process other than the connecting launcher (root's or the user's own)", async () => {
  const aliceUid = await ensureUser("idwrap-alice");
  const rootSecret = `${dir}/root-secret`;
  await Deno.writeTextFile(rootSecret, "root only\n", { mode: 0o600 });
  const aliceFile = `${dir}/alice-file`;
  await Deno.writeTextFile(aliceFile, "alice\n");
  await Deno.chown(aliceFile, aliceUid, null);
  const home = await scratchDir({ prefix: "idwrap-alice-" });
  await Deno.chown(home, aliceUid, null);

  const d = await startDaemon(["--policy", `${dir}/p.yaml`, "--allow", "idwrap-alice", "--no-watch"]);
  const victims = [{ file: rootSecret, proc: holder(rootSecret, 0) }, {
    file: aliceFile,
    proc: holder(aliceFile, aliceUid),
  }];
  try {
    await new Promise((r) => setTimeout(r, 300)); // the holders have their fd 3
    for (const v of victims) {
      // Control: the fd is there to take (pidfd_getfd by root would copy it).
      assertEquals(Deno.readLinkSync(`/proc/${v.proc.pid}/fd/3`), v.file);
      const attack = await run("setpriv", [
        `--reuid=${aliceUid}`,
        `--regid=${aliceUid}`,
        "--clear-groups",
        "--",
        "env",
        `HOME=${home}`,
        `DENO_DIR=${home}/deno`,
        `${ROOT}node_modules/.bin/deno`,
        "run",
        "--allow-all",
        "--quiet",
        `${ROOT}tests/daemon/handshake_attacker.ts`,
        d.runDir,
        String(v.proc.pid),
        "3",
      ]);
      assertEquals(attack.code, 0, attack.stderr);
      await new Promise((r) => setTimeout(r, 200));
      const held = openFiles(d.process.pid).filter((f) => f === v.file);
      assertEquals(held, [], `the daemon copied ${v.file}'s fd out of pid ${v.proc.pid}`);
      assert(attack.stdout.startsWith("refused: the launcher says it is pid"), attack.stdout);
    }
  } finally {
    for (const v of victims) {
      v.proc.kill("SIGKILL");
      await v.proc.status;
    }
    await d.stop();
  }
});

const mode = (path: string) => Deno.statSync(path).mode! & 0o777;

Deno.test("the daemon's run directory and store are owner-only: another user can neither list nor read them", async () => {
  const aliceUid = await ensureUser("idwrap-alice");
  const bobUid = await ensureUser("idwrap-bob");
  await Deno.writeTextFile(
    `${dir}/alert.yaml`,
    `rules:\n  - id: seen\n    syscalls: [openat]\n    path: ${dir}/p.yaml\n    action: alert\n`,
  );
  const served = await startDaemon(["--policy", `${dir}/alert.yaml`, "--allow", "idwrap-alice", "--no-watch"]);
  try {
    // A record in the store (and so its journal).
    const r = await run(`${ROOT}idwrap`, ["run", "--", "/bin/cat", `${dir}/p.yaml`], { env: served.env });
    assertEquals(r.code, 0, r.stderr);
    assertEquals(mode(served.runDir), 0o711); // alice passes through to her own socket
    assertEquals(mode(`${served.runDir}/sessions`), 0o711);
    assertEquals(mode(`${served.runDir}/${aliceUid}.sock`), 0o600);
    assertEquals(mode(served.store), 0o600);
    assertEquals(mode(`${served.store}.journal`), 0o700);
    for (const e of Deno.readDirSync(`${served.store}.journal`)) {
      assertEquals(mode(`${served.store}.journal/${e.name}`), 0o600);
    }
    // The attack: bob reads the store's records (the helper's folder around it is 0755, as /var/lib would be).
    const asBob = (cmd: string[]) =>
      run("setpriv", [`--reuid=${bobUid}`, `--regid=${bobUid}`, "--clear-groups", ...cmd]);
    const read = await asBob(["cat", served.store]);
    assert(read.code !== 0 && read.stdout === "", "bob read the daemon's store");
    const list = await asBob(["ls", served.runDir]);
    assert(list.code !== 0, `bob listed the run directory: ${list.stdout}`);
    // Control: the store holds the record bob was after, and bob can read what is not owner-only.
    assert((await Deno.readFile(served.store)).length > 0);
    assertEquals((await asBob(["cat", `${dir}/p.yaml`])).code, 0);
  } finally {
    await served.stop();
  }
  // Serving root alone: 0700.
  const alone = await startDaemon(["--policy", `${dir}/p.yaml`, "--no-watch"]);
  try {
    assertEquals(mode(alone.runDir), 0o700);
  } finally {
    await alone.stop();
  }
});

Deno.test("a standalone run creates its store's folder 0700 and the store 0600", async () => {
  const base = await scratchDir({ prefix: "idwrap-store-perm-" });
  const store = `${base}/state/idwrap/store.kv`;
  const r = await run(`${ROOT}idwrap`, ["run", "--", "/bin/true"], { env: { IDWRAP_STORE: store } });
  assertEquals(r.code, 0, r.stderr);
  assertEquals([mode(`${base}/state`), mode(`${base}/state/idwrap`), mode(store)], [0o700, 0o700, 0o600]);
});
