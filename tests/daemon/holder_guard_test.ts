/**
 * idwrap-holder keeps a copy of the listener and gives the tree its on_supervisor_loss answer: a wrapped program that
 * could stop, kill, trace or rob it would turn a supervisor loss back into the kernel's ENOSYS (or a hang, with the
 * holder stopped). Each attack of tests/progs/tamper.c runs twice under idwrap, as root and as an ordinary user:
 * against a decoy process (the control: the attack works under wrapping) and against the holder (refused, reported).
 * tgkill and rt_tgsigqueueinfo are notified when they name the supervisor's or the holder's pid (the filter is built at
 * each launch with both: source.ts, launchFilter).
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { ensureUser, IDWRAP, idwrapAsUser, prog, run } from "../helpers.ts";
import { TAMPER_ALERT, TAMPER_ATTACKS } from "../sources/seccomp/holder_harness.ts";

const TAMPER = prog("tamper");
/** Attack → how its output says it worked, and whether its control runs unwrapped (refused in any wrapped tree). */
const ATTACKS: [string, RegExp, "bare"?][] = [["getfd", /^got [1-9]\d* listener/m, "bare"], ...TAMPER_ATTACKS];

const dir = await scratchDir({ prefix: "idwrap-holder-guard-" });
await Deno.chmod(dir, 0o755);
const POLICY = `${dir}/policy.yaml`;
await Deno.writeTextFile(POLICY, `rules:\n  - { id: none, syscalls: [openat], path: /nonexistent/x, action: deny }\n`);
await Deno.chmod(POLICY, 0o644);

function wrapped(command: string[], uid?: number) {
  const args = ["run", "-p", POLICY, "--", ...command];
  return uid === undefined ? run(IDWRAP, args) : idwrapAsUser(uid, `${dir}/home-${uid}`, args);
}

/** A decoy for the controls: a holder-like process of the same user (the getfd control takes its listener). */
function decoy(uid?: number): Deno.ChildProcess {
  const cmd = uid === undefined
    ? ["sleep", "120"]
    : ["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "sleep", "120"];
  return new Deno.Command(cmd[0], { args: cmd.slice(1), stdout: "null", stderr: "null" }).spawn();
}

async function attackHolder(uid?: number): Promise<void> {
  const target = decoy(uid);
  while (!(await Deno.readTextFile(`/proc/${target.pid}/status`)).match(/^Name:\s*sleep$/m)) {
    await new Promise((r) => setTimeout(r, 10));
  }
  try {
    for (const [attack, worked, bare] of ATTACKS) {
      // getfd has no control: pidfd_getfd is refused in every wrapped tree (tests/sources/seccomp/tamper_test.ts).
      if (attack !== "getfd") {
        const control = bare
          ? await run(TAMPER, [attack, String(target.pid)])
          : ["ptrace", "vmread", "procmem"].includes(attack)
          // The decoy in the tree: a process outside it is refused (tests/sources/seccomp/ptrace_outside_test.ts).
          ? await wrapped(["/bin/sh", "-c", `sleep 60 & sleep 0.2; ${TAMPER} ${attack} $!; kill $!`], uid)
          : await wrapped([TAMPER, attack, String(target.pid)], uid);
        if (attack === "setown") Deno.kill(target.pid, "SIGCONT");
        assert(worked.test(control.stdout), `${attack} on a decoy should work:\n${control.stdout}${control.stderr}`);
      }
      const r = await wrapped([TAMPER, attack, "holder"], uid);
      assert(!r.stdout.includes("no holder"), `${attack}: the wrapped program found no idwrap-holder`);
      assertEquals(r.code, 0, `${attack}: ${r.stdout}${r.stderr}`);
      assert(!worked.test(r.stdout), `${attack} reached the holder:\n${r.stdout}${r.stderr}`);
      assert(r.stderr.includes(`[${TAMPER_ALERT}]`), `${attack}: no ${TAMPER_ALERT} report:\n${r.stderr}`);
    }
  } finally {
    target.kill("SIGKILL");
    await target.status;
  }
}

Deno.test("a root program cannot trace, read, signal or rob idwrap-holder; the same attacks work on a decoy", async () => {
  await attackHolder();
});

Deno.test("an ordinary user's program cannot trace, read, signal or rob its idwrap-holder", async () => {
  await attackHolder(await ensureUser("idwrap-holder-guard"));
});

Deno.test("group signals the guard lets through (idwrap survives them) do not end idwrap-holder either", async () => {
  // The tree's own process group gets them (the shell ignores them); the holder died of SIGUSR2, SIGALRM or SIGPWR
  // before (red team rt7 F6): it now has its own session and ignores every catchable signal.
  const script = "trap '' USR2 ALRM PWR; sup=$PPID; h=$(pgrep -x idwrap-holder -P $sup); " +
    'kill -USR2 0; kill -ALRM 0; kill -PWR 0; sleep 0.3; [ -n "$h" ] && [ -d /proc/$h ] && echo "holder alive" || ' +
    'echo "holder gone ($h)"';
  const r = await wrapped(["/bin/sh", "-c", script]);
  assertEquals(r.code, 0, r.stdout + r.stderr);
  assertEquals(r.stdout.trim(), "holder alive", r.stderr);
});
