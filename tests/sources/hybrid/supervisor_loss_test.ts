/**
 * on_supervisor_loss on the hybrid source (issue 17): `idwrap run --source hybrid` starts idwrap-holder as the seccomp
 * source does, so when idwrap is SIGKILLed (none of its clean-up runs) the tree's seccomp listener is still held and
 * the tree gets the chosen answer — `kill` (the default) ends it, `deny` fails each notified call with EPERM at a
 * bounded rate — never the kernel's ENOSYS storm. Each test has its control in it: the same run with the holder
 * SIGKILLed first, which is what the hybrid did before it had a holder (idwrap alone held the listener), shows the
 * ENOSYS storm, so the test can fail. And the holder's pid is guarded under the hybrid as under seccomp: the attacks of
 * tests/progs/tamper.c work on a decoy from a hybrid-wrapped tree and are refused, and reported, on the holder.
 * Root only: an ordinary user cannot load the hybrid's bpf programs (cli_test.ts).
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { IDWRAP, prog, run, writePolicy } from "../../helpers.ts";
import { waitFor } from "../../daemon/daemon_helpers.ts";
import {
  LOSS_POLICY,
  startStorm,
  supervisorLossDeny,
  supervisorLossKill,
  TAMPER_ALERT,
  TAMPER_ATTACKS,
} from "../seccomp/holder_harness.ts";

// openat is decided (a deny rule), so the hybrid holds it on seccomp: it is what the holder answers after the loss.
const policy = await writePolicy(LOSS_POLICY);

/** The bpf programs a process holds (its fds of programs and links, by /proc/PID/fdinfo). */
function programsOf(pid: number): Set<number> {
  const ids = new Set<number>();
  for (const e of Deno.readDirSync(`/proc/${pid}/fdinfo`)) {
    try {
      const m = Deno.readTextFileSync(`/proc/${pid}/fdinfo/${e.name}`).match(/^prog_id:\s*(\d+)$/m);
      if (m) ids.add(Number(m[1]));
    } catch { /* closed meanwhile */ }
  }
  return ids;
}

/** Whether the kernel still has a bpf program. */
async function programLoaded(id: number): Promise<boolean> {
  const r = await new Deno.Command("bpftool", {
    args: ["prog", "show", "id", String(id)],
    stdout: "null",
    stderr: "null",
  })
    .output();
  return r.success;
}

/** `idwrap run --source hybrid` of open_storm (opens in a tight loop) for `seconds`, once the program runs. */
const hybridStorm = (mode: "kill" | "deny", seconds: number) => startStorm({ policy, mode, seconds, source: "hybrid" });

Deno.test("hybrid on_supervisor_loss kill: idwrap SIGKILLed, the tree is killed, no call fails with ENOSYS", () =>
  supervisorLossKill(hybridStorm));

Deno.test("hybrid on_supervisor_loss deny: idwrap SIGKILLed, every open fails with EPERM at a bounded rate, never ENOSYS", async () => {
  let programs = new Set<number>();
  await supervisorLossDeny(hybridStorm, async (wrapped) => {
    // The ring's programs: loaded while idwrap runs, held by it alone (no pin), so they go with it.
    programs = programsOf(wrapped.host.pid);
    assert(programs.size > 0, "idwrap holds no bpf program: not the hybrid?");
    for (const id of programs) assert(await programLoaded(id), `program ${id} not loaded while idwrap runs`);
  });
  // Nothing is observed after the loss: the kernel unloaded the programs with idwrap (docs/bpf.md, "The hybrid").
  for (const id of programs) {
    await waitFor(`bpf program ${id} to be unloaded`, async () => !(await programLoaded(id)) || undefined, 5000);
  }
});

Deno.test("idwrap run --source hybrid: a root program cannot trace, read, signal or rob idwrap-holder; the same attacks work on a decoy", async () => {
  const hybrid = (target: string, env: Record<string, string> = {}) =>
    run(IDWRAP, ["run", "--source", "hybrid", "-p", policy, "--", prog("tamper"), ...target.split(" ")], { env });
  const decoy = new Deno.Command("sleep", { args: ["120"], stdout: "null", stderr: "null" }).spawn();
  while (!(await Deno.readTextFile(`/proc/${decoy.pid}/status`)).match(/^Name:\s*sleep$/m)) {
    await new Promise((r) => setTimeout(r, 10));
  }
  try {
    for (const [attack, worked] of TAMPER_ATTACKS) {
      // Control: the attack works from a hybrid-wrapped tree on a process that is not idwrap's. ptrace, vmread and
      // procmem: the decoy in the tree (one outside it is refused: tests/sources/seccomp/ptrace_outside_test.ts); the
      // rest: a decoy outside, without the launcher's Landlock domain, which refuses the tree a ptrace access check on
      // any process outside it (docs/bpf.md).
      const control = ["ptrace", "vmread", "procmem"].includes(attack)
        ? await run(IDWRAP, [
          "run",
          "--source",
          "hybrid",
          "-p",
          policy,
          "--",
          "/bin/sh",
          "-c",
          `sleep 60 & sleep 0.2; ${prog("tamper")} ${attack} $!; kill $!`,
        ])
        : await hybrid(`${attack} ${decoy.pid}`, { IDWRAP_HYBRID_LANDLOCK: "0" });
      if (attack === "setown") Deno.kill(decoy.pid, "SIGCONT");
      assert(worked.test(control.stdout), `${attack} on a decoy should work:\n${control.stdout}${control.stderr}`);
      const r = await hybrid(`${attack} holder`);
      assert(!r.stdout.includes("no holder"), `${attack}: the wrapped program found no idwrap-holder`);
      assertEquals(r.code, 0, `${attack}: ${r.stdout}${r.stderr}`);
      assert(!worked.test(r.stdout), `${attack} reached the holder:\n${r.stdout}${r.stderr}`);
      assert(r.stderr.includes(`[${TAMPER_ALERT}]`), `${attack}: no ${TAMPER_ALERT} report:\n${r.stderr}`);
    }
    // The listener: pidfd_getfd of the holder's copy is refused (no control: refused in every wrapped tree).
    const getfd = await hybrid("getfd holder");
    assert(!/^got [1-9]\d* listener/m.test(getfd.stdout), `took the holder's listener:\n${getfd.stdout}`);
    assert(getfd.stderr.includes(`[${TAMPER_ALERT}]`), `getfd: no ${TAMPER_ALERT} report:\n${getfd.stderr}`);
  } finally {
    decoy.kill("SIGKILL");
    await decoy.status;
  }
});
