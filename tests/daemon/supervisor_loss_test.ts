/**
 * on_supervisor_loss (issue 17): when the supervisor of a tree dies for good — here SIGKILLed, so none of its
 * clean-up runs — idwrap-holder gives the tree the chosen answer: `kill` (the default) ends it, `deny` fails each
 * notified call with EPERM at a bounded rate. Never the kernel's ENOSYS storm. Each test has its control in it: the
 * same run with the holder SIGKILLed first (what idwrap did before the holder) shows the ENOSYS storm, so the test can
 * fail. Real `idwrap run` processes, a real seccomp filter, as root and as an ordinary user.
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { ensureUser, IDWRAP, prog, writePolicy } from "../helpers.ts";
import { waitFor } from "./daemon_helpers.ts";
import { dirname } from "node:path";
import { counts, ended, holderOf, readOrUndefined } from "../sources/seccomp/holder_harness.ts";

const DENY_RATE = 1000; // kmod/seccomp/holder.c
const USER_BASE = await scratchDir({ prefix: "idwrap-loss-home-" });
await Deno.chmod(USER_BASE, 0o755);
const USER_HOME = `${USER_BASE}/home`;

const policy = await writePolicy(`
rules:
  - id: watch-opens
    syscalls: openat
    path: /nonexistent/**
    action: deny
`);
await Deno.chmod(dirname(policy), 0o755); // the ordinary user reads it too

interface Storm {
  dir: string;
  /** The wrapped program's pid. */
  pid: number;
  host: Deno.ChildProcess;
  holder: number;
}

/** `idwrap run` (as `uid`, or root) of open_storm for `seconds`, once the program runs. */
async function startStorm(mode: "kill" | "deny", seconds: number, uid?: number): Promise<Storm> {
  const dir = await scratchDir({ prefix: "idwrap-loss-" });
  await Deno.chmod(dir, 0o777);
  // The user's Deno cache, kept from one run to the next (the first compiles idwrap).
  if (uid !== undefined) await Deno.mkdir(USER_HOME, { recursive: true }).then(() => Deno.chown(USER_HOME, uid, null));
  const args = [
    "run",
    "-p",
    policy,
    "--on-supervisor-loss",
    mode,
    "-o",
    `${dir}/report`,
    "--",
    prog("open_storm"),
    "/etc/hostname",
    `${dir}/pid`,
    `${dir}/result`,
    String(seconds),
  ];
  const asUser = uid === undefined ? [] : [
    "setpriv",
    `--reuid=${uid}`,
    `--regid=${uid}`,
    "--clear-groups",
    "--",
    "env",
    `HOME=${USER_HOME}`,
    `DENO_DIR=${USER_HOME}/deno`,
    `IDWRAP_STORE=${dir}/store.kv`,
  ];
  const [cmd, ...rest] = [...asUser, IDWRAP, ...args];
  const host = new Deno.Command(cmd, { args: rest, stdin: "null", stdout: "null", stderr: "null" }).spawn();
  const pid = Number(await waitFor("the wrapped program to start", () => readOrUndefined(`${dir}/pid`), 120_000));
  const holder = await waitFor("idwrap-holder", () => holderOf(host.pid));
  return { dir, pid, host, holder };
}

/** SIGKILLs the supervisor (after the holder, for the control). */
async function killSupervisor(s: Storm, holderFirst: boolean): Promise<void> {
  if (holderFirst) {
    Deno.kill(s.holder, "SIGKILL");
    await waitFor("the holder to end", () => ended(s.holder) || undefined);
  }
  s.host.kill("SIGKILL");
  assertEquals((await s.host.status).signal, "SIGKILL");
}

for (const who of ["root", "an ordinary user"] as const) {
  Deno.test(`on_supervisor_loss kill (${who}): idwrap SIGKILLed, the tree is killed, no call fails with ENOSYS`, async () => {
    const uid = who === "root" ? undefined : await ensureUser("idwrap-loss");
    // Control: the holder gone first, as before it existed: the program's opens fail with ENOSYS, and it runs on.
    const control = await startStorm("kill", 3, uid);
    await killSupervisor(control, true);
    const before = counts(await waitFor("the control's result", () => readOrUndefined(`${control.dir}/result`), 10000));
    assert(before.enosys > 0, `control: ${JSON.stringify(before)}`);

    const wrapped = await startStorm("kill", 3, uid);
    await killSupervisor(wrapped, false);
    await waitFor("the wrapped program to be killed", () => ended(wrapped.pid) || undefined, 5000);
    await waitFor("the holder to exit", () => ended(wrapped.holder) || undefined, 5000);
    // Killed mid-loop: it never got to write how its opens ended (no ENOSYS, no success it should not have had).
    await new Promise((r) => setTimeout(r, 3500)); // past its 3 s
    assertEquals(await readOrUndefined(`${wrapped.dir}/result`), undefined);
  });
}

Deno.test("on_supervisor_loss deny: idwrap SIGKILLed, every open fails with EPERM at a bounded rate, never ENOSYS", async () => {
  const SECONDS = 3;
  const control = await startStorm("deny", SECONDS);
  await killSupervisor(control, true);
  const before = counts(await waitFor("the control's result", () => readOrUndefined(`${control.dir}/result`), 10000));
  // The storm: far more failing calls than the holder would ever answer in the time.
  assert(before.enosys > DENY_RATE * (SECONDS + 1), `control: ${JSON.stringify(before)}`);

  const wrapped = await startStorm("deny", SECONDS);
  await killSupervisor(wrapped, false);
  const after = counts(await waitFor("the wrapped result", () => readOrUndefined(`${wrapped.dir}/result`), 10000));
  assertEquals(after.enosys, 0, JSON.stringify(after));
  assertEquals(after.other, 0, JSON.stringify(after));
  assert(after.eperm > 0, JSON.stringify(after));
  // At most DENY_RATE in each clock second the program's SECONDS touch, and the few calls the supervisor had received.
  assert(after.eperm <= DENY_RATE * (SECONDS + 1) + 10, `not bounded: ${JSON.stringify(after)}`);
  await waitFor("the holder to exit once the tree is gone", () => ended(wrapped.holder) || undefined, 5000);
});
