/**
 * A wrapped program attacks its own supervisor (issue 13, item 4): takes the
 * listener with pidfd_getfd(2) and answers its own calls, traces it, reads or
 * writes its memory, or signals it. Each attack runs twice under idwrap, as
 * root and as an ordinary user: against a decoy process (the control: the
 * attack works under wrapping) and against the supervisor (refused, reported).
 * tests/progs/tamper.c is the attacker.
 */
import { scratchDir } from "../../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { ensureUser, IDWRAP, idwrapAsUser, prog, run } from "../../helpers.ts";

const TAMPER = prog("tamper");
const TAMPER_ALERT = "idwrap.supervisor-tamper";

/**
 * Attack name → how its output says it worked, and whether its control runs unwrapped: pidfd_getfd,
 * SO_PEERPIDFD and TIOCSTI are refused in a wrapped tree whatever they aim at (docs/seccomp.md).
 */
const ATTACKS: [string, RegExp, "bare"?][] = [
  ["getfd", /^got [1-9]\d* listener/m, "bare"],
  ["ptrace", /^ptrace: 0$/m],
  ["ptrace-thread", /^ptrace: 0$/m],
  ["vmread", /^vm: 0$/m],
  ["vmwrite", /^vm: 0$/m],
  ["procmem", /^procmem: 0$/m],
  ["kill", /^signal: 0$/m],
  ["kill-thread", /^signal: 0$/m],
  ["tkill", /^signal: 0$/m],
  ["tgkill", /^signal: 0$/m],
  ["sigqueue", /^signal: 0$/m],
  ["pidfd-signal", /^signal: 0$/m],
  ["procfd-signal", /^signal: 0$/m],
  ["prlimit", /^prlimit: 0$/m],
  ["peerpidfd", /^peerpidfd: 0$/m, "bare"],
  ["setown", /^setown: 0$/m],
];

/** Attacks that drive another process: their control's decoy is in the tree. */
const DRIVES = new Set(["ptrace", "ptrace-thread", "vmread", "vmwrite", "procmem"]);

const POLICY = await (async () => {
  const dir = await scratchDir({ prefix: "idwrap-tamper-" });
  await Deno.chmod(dir, 0o755);
  await Deno.writeTextFile(`${dir}/secret.txt`, "secret\n");
  await Deno.chmod(`${dir}/secret.txt`, 0o644);
  await Deno.writeTextFile(
    `${dir}/policy.yaml`,
    `rules:\n  - { id: no-secret, syscalls: [open, openat], path: "${dir}/secret.txt", action: deny, errno: EACCES }\n`,
  );
  await Deno.chmod(`${dir}/policy.yaml`, 0o644);
  return { dir, file: `${dir}/policy.yaml`, secret: `${dir}/secret.txt` };
})();

/** `idwrap run` of `command`, as root or (with `uid`) as that ordinary user with its own store. */
function wrapped(command: string[], uid?: number) {
  const args = ["run", "-p", POLICY.file, "--", ...command];
  return uid === undefined ? run(IDWRAP, args) : idwrapAsUser(uid, `${POLICY.dir}/home-${uid}`, args);
}

/** A long-lived process to attack in the controls (as `uid` where given). */
function decoy(uid?: number): Deno.ChildProcess {
  const cmd = uid === undefined
    ? ["sleep", "120"]
    : ["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "sleep", "120"];
  return new Deno.Command(cmd[0], { args: cmd.slice(1), stdout: "null", stderr: "null" }).spawn();
}

async function attackAll(uid?: number): Promise<void> {
  const target = decoy(uid);
  // Until setpriv has become the user and exec'd sleep, the decoy is root's.
  while (!(await Deno.readTextFile(`/proc/${target.pid}/status`)).match(/^Name:\s*sleep$/m)) {
    await new Promise((r) => setTimeout(r, 10));
  }
  try {
    for (const [attack, worked, bare] of ATTACKS) {
      const control = bare
        ? await run(uid === undefined ? TAMPER : "setpriv", [
          ...(uid === undefined ? [] : [`--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", TAMPER]),
          attack,
          String(target.pid),
        ])
        : DRIVES.has(attack)
        // The decoy in the tree: a process outside it is refused too (ptrace_outside_test.ts).
        ? await wrapped(["/bin/sh", "-c", `sleep 60 & sleep 0.2; ${TAMPER} ${attack} $!; kill $!`], uid)
        : await wrapped([TAMPER, attack, String(target.pid)], uid);
      // setown leaves the decoy stopped by a late SIGIO (the pipe's close): wake it for the next attack.
      if (attack === "setown") Deno.kill(target.pid, "SIGCONT");
      assert(
        worked.test(control.stdout),
        `${attack} on a decoy should work under idwrap:\n${control.stdout}${control.stderr}`,
      );
      const r = await wrapped([TAMPER, attack, "parent"], uid);
      assertEquals(r.code, 0, `${attack}: ${r.stderr}`);
      assert(!worked.test(r.stdout), `${attack} reached the supervisor:\n${r.stdout}${r.stderr}`);
      assert(/EPERM|ENOPROTOOPT/.test(r.stdout) || bare, `${attack}: ${r.stdout}`);
      if (!bare) assert(r.stderr.includes(`[${TAMPER_ALERT}]`), `${attack}: no ${TAMPER_ALERT} report:\n${r.stderr}`);
      else {
        assert(
          r.stderr.includes(`[${TAMPER_ALERT}]`) || r.stderr.includes("is refused in a wrapped tree"),
          `${attack}: no refusal reported:\n${r.stderr}`,
        );
      }
    }
  } finally {
    target.kill("SIGKILL");
    await target.status;
  }
}

Deno.test("a root program cannot take, trace, read, write or signal its supervisor; the same attacks work on a decoy", async () => {
  await attackAll();
});

Deno.test("an ordinary user's program cannot take, trace, read, write or signal the idwrap it runs under", async () => {
  await attackAll(await ensureUser("idwrap-alice"));
});

Deno.test("a root program cannot steal the listener, stop the supervisor and answer its own denied open", async () => {
  // The full escape (it opened the denied file on the code before the guard): pidfd_getfd of the listener,
  // SIGSTOP of the supervisor, a child answering every notification with CONTINUE.
  const r = await wrapped([TAMPER, "escape", "parent", POLICY.secret]);
  assert(!r.stdout.includes("opened"), r.stdout + r.stderr);
  assert(r.stdout.includes("pidfd_open: EPERM"), r.stdout);
  // The rule itself still holds for the same program.
  const cat = await wrapped(["cat", POLICY.secret]);
  assert(cat.stderr.includes("Permission denied"), cat.stderr);
});

Deno.test("TIOCSTI, which types into a terminal for whatever reads it, is refused in a wrapped tree", async () => {
  const bare = await run(TAMPER, ["tiocsti", "0"]);
  assert(bare.stdout.includes("tiocsti: 0"), bare.stdout + bare.stderr);
  const r = await wrapped([TAMPER, "tiocsti", "0"]);
  assert(r.stdout.includes("tiocsti: EPERM"), r.stdout + r.stderr);
  assert(r.stderr.includes("TIOCSTI"), r.stderr);
});

Deno.test("the listener exists in the supervisor alone: the wrapped program holds none", async () => {
  const r = await wrapped([TAMPER, "own", "0"]);
  assert(r.stdout.includes("own listeners 0"), r.stdout + r.stderr);
});

Deno.test("kill(0, SIGKILL) from the wrapped tree spares the supervisor; catchable group signals do not end it", async () => {
  // setsid: idwrap, and so the tree, in a process group of their own (never the test runner's).
  const r = await run("setsid", [
    "--wait",
    IDWRAP,
    "run",
    "-p",
    POLICY.file,
    "--",
    "/bin/sh",
    "-c",
    `trap '' USR1 USR2 ALRM; kill -USR1 0; kill -USR2 0; kill -ALRM 0; ${TAMPER} group-kill parent; echo after`,
  ]);
  assert(r.stdout.includes("signal: EPERM"), r.stdout + r.stderr);
  assert(r.stdout.includes("after"), r.stdout + r.stderr);
  assertEquals(r.code, 0, r.stderr);
  assert(r.stderr.includes("process-group kill of signal 9 to the idwrap supervisor"), r.stderr);
});

Deno.test("kill(0, SIGABRT) and kill(0, SIGRTMIN) from the wrapped tree spare the supervisor (they ended it before)", async () => {
  // Signals idwrap neither catches nor ignores, to its process group: refused where idwrap is in it, as SIGKILL is.
  for (const sig of ["ABRT", "RTMIN"]) {
    const r = await run("setsid", [
      "--wait",
      IDWRAP,
      "run",
      "-p",
      POLICY.file,
      "--",
      "/bin/sh",
      "-c",
      `trap '' ${sig}; kill -${sig} 0; echo "kill: $?"`,
    ]);
    assertEquals(r.signal, null, `${sig}: idwrap was killed by ${r.signal}:\n${r.stdout}${r.stderr}`);
    assertEquals(r.code, 0, `${sig}: ${r.stderr}`);
    assert(r.stdout.includes("kill: 1"), `${sig}: ${r.stdout}`);
    assert(/exited with 0/.test(r.stderr), `${sig}: no summary from idwrap:\n${r.stderr}`);
    assert(r.stderr.includes("process-group kill of signal"), `${sig}: ${r.stderr}`);
  }
});
