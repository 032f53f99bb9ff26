/**
 * A file's I/O signal aimed at the supervisor by racing the owner the guard reads (issue 13, item 4): F_SETOWN_EX,
 * FIOSETOWN and SIOCSPGRP take the owner from memory, which a thread rewrites between the guard's read and the
 * kernel's; F_SETSIG picks the signal (SIGKILL, SIGSTOP…). The owner cannot be checked race-free, the signal can (a
 * register): F_SETSIG of a signal that would end or stop idwrap is refused, and the signals left are ones idwrap
 * survives. tests/progs/sigio_race.c is the attacker: thousands of tries, its racing thread sweeping the window.
 */
import { scratchDir } from "../../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { ensureUser, IDWRAP, idwrapAsUser, prog, type Ran, run } from "../../helpers.ts";

const RACE = prog("sigio_race");
const TRIES = "3000";
const SIGKILL = "9", SIGSTOP = "19";

/** `idwrap run` (the default policy) of the racer aimed at idwrap itself, as root or as `uid`. */
async function wrapped(signal: string, uid?: number): Promise<Ran> {
  const args = ["run", "--", RACE, "parent", TRIES, signal];
  if (uid === undefined) return await run(IDWRAP, args, { timeoutMs: 120_000 });
  const home = await scratchDir({ prefix: "idwrap-sigio-user-" });
  await Deno.chmod(home, 0o755);
  try {
    return await idwrapAsUser(uid, `${home}/home`, args, { timeoutMs: 120_000 });
  } finally {
    await Deno.remove(home, { recursive: true });
  }
}

/** The race wins unwrapped: a decoy (as `uid` where given) is killed by the signal the racer aims. */
async function control(uid?: number): Promise<void> {
  const cmd = uid === undefined
    ? ["sleep", "120"]
    : ["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "sleep", "120"];
  const decoy = new Deno.Command(cmd[0], { args: cmd.slice(1), stdout: "null", stderr: "null" }).spawn();
  try {
    while (!(await Deno.readTextFile(`/proc/${decoy.pid}/status`)).match(/^Name:\s*sleep$/m)) {
      await new Promise((r) => setTimeout(r, 10));
    }
    // No race here ("0"): the struct names the decoy outright; the signal itself is what is shown to kill.
    const args = [RACE, String(decoy.pid), TRIES, SIGKILL, "0"];
    const asUser = uid === undefined ? [] : [`--reuid=${uid}`, `--regid=${uid}`, "--clear-groups"];
    const racer = uid === undefined ? await run(args[0], args.slice(1)) : await run("setpriv", [...asUser, ...args]);
    assert(/^setsig: 0$/m.test(racer.stdout), racer.stdout + racer.stderr);
    const killed = await Promise.race([decoy.status, new Promise((r) => setTimeout(() => r(undefined), 5000))]);
    assertEquals((killed as Deno.CommandStatus | undefined)?.signal, "SIGKILL", `the decoy survived:\n${racer.stdout}`);
  } finally {
    try {
      decoy.kill("SIGKILL");
    } catch { /* already dead: the control worked */ }
    await decoy.status;
  }
}

/** idwrap outlived the race and reported the refusal; the racer ran to its end. */
function survived(r: Ran, signal: string): void {
  assertEquals(r.signal, null, `idwrap was killed by ${r.signal}:\n${r.stdout}${r.stderr.slice(-2000)}`);
  assertEquals(r.code, 0, r.stderr.slice(-2000));
  assert(/^done$/m.test(r.stdout), r.stdout);
  assert(/exited with 0/.test(r.stderr), `no summary from idwrap:\n${r.stderr.slice(-2000)}`);
  if (signal !== "0") {
    assert(/^setsig: EPERM$/m.test(r.stdout), r.stdout);
    assert(r.stderr.includes(`fcntl(F_SETSIG) of signal ${signal} is refused`), r.stderr.slice(-2000));
  }
}

Deno.test("a root program's racing F_SETOWN_EX never aims SIGKILL or SIGSTOP at idwrap (3000 tries); unwrapped it kills a decoy", async () => {
  await control();
  for (const signal of [SIGKILL, SIGSTOP]) survived(await wrapped(signal), signal);
});

Deno.test("… and an ordinary user's, at the idwrap it runs under", async () => {
  const uid = await ensureUser("idwrap-alice");
  await control(uid);
  survived(await wrapped(SIGKILL, uid), SIGKILL);
});

Deno.test("the owner race with the default signal (SIGIO) reaches idwrap at most with a signal it survives", async () => {
  const r = await wrapped("0");
  survived(r, "0");
  assert(/^setsig: 0$/m.test(r.stdout), r.stdout);
});
