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
import { counts, ended, holderOf, readOrUndefined } from "../seccomp/holder_harness.ts";

const DENY_RATE = 1000; // kmod/seccomp/holder.c
const TAMPER_ALERT = "idwrap.supervisor-tamper";

// openat is decided (a deny rule), so the hybrid holds it on seccomp: it is what the holder answers after the loss.
const policy = await writePolicy(`
rules:
  - id: watch-opens
    syscalls: openat
    path: /nonexistent/**
    action: deny
`);

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

interface Storm {
  dir: string;
  /** The wrapped program's pid. */
  pid: number;
  host: Deno.ChildProcess;
  holder: number;
}

/** `idwrap run --source hybrid` of open_storm (opens in a tight loop) for `seconds`, once the program runs. */
async function startStorm(mode: "kill" | "deny", seconds: number): Promise<Storm> {
  const dir = await Deno.makeTempDir({ prefix: "idwrap-hybrid-loss-" });
  const args = [
    "run",
    "--source",
    "hybrid",
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
  const host = new Deno.Command(IDWRAP, { args, stdin: "null", stdout: "null", stderr: "null" }).spawn();
  const pid = Number(await waitFor("the wrapped program to start", () => readOrUndefined(`${dir}/pid`), 120_000));
  const holder = await waitFor("idwrap-holder", () => holderOf(host.pid));
  return { dir, pid, host, holder };
}

/** SIGKILLs idwrap (after the holder, for the control: the hybrid before it had one). */
async function killSupervisor(s: Storm, holderFirst: boolean): Promise<void> {
  if (holderFirst) {
    Deno.kill(s.holder, "SIGKILL");
    await waitFor("the holder to end", () => ended(s.holder) || undefined);
  }
  s.host.kill("SIGKILL");
  assertEquals((await s.host.status).signal, "SIGKILL");
}

Deno.test("hybrid on_supervisor_loss kill: idwrap SIGKILLed, the tree is killed, no call fails with ENOSYS", async () => {
  // Control: no holder (killed first), as the hybrid was: the program's opens fail with ENOSYS and it runs on.
  const control = await startStorm("kill", 3);
  await killSupervisor(control, true);
  const before = counts(await waitFor("the control's result", () => readOrUndefined(`${control.dir}/result`), 10000));
  assert(before.enosys > 0, `control: ${JSON.stringify(before)}`);

  const wrapped = await startStorm("kill", 3);
  await killSupervisor(wrapped, false);
  await waitFor("the wrapped program to be killed", () => ended(wrapped.pid) || undefined, 5000);
  await waitFor("the holder to exit", () => ended(wrapped.holder) || undefined, 5000);
  // Killed mid-loop: it never got to write how its opens ended (no ENOSYS, no success it should not have had).
  await new Promise((r) => setTimeout(r, 3500)); // past its 3 s
  assertEquals(await readOrUndefined(`${wrapped.dir}/result`), undefined);
});

Deno.test("hybrid on_supervisor_loss deny: idwrap SIGKILLed, every open fails with EPERM at a bounded rate, never ENOSYS", async () => {
  const SECONDS = 3;
  const control = await startStorm("deny", SECONDS);
  await killSupervisor(control, true);
  const before = counts(await waitFor("the control's result", () => readOrUndefined(`${control.dir}/result`), 10000));
  // The storm: far more failing calls than the holder would ever answer in the time.
  assert(before.enosys > DENY_RATE * (SECONDS + 1), `control: ${JSON.stringify(before)}`);

  const wrapped = await startStorm("deny", SECONDS);
  // The ring's programs: loaded while idwrap runs, held by it alone (no pin), so they go with it.
  const programs = programsOf(wrapped.host.pid);
  assert(programs.size > 0, "idwrap holds no bpf program: not the hybrid?");
  for (const id of programs) assert(await programLoaded(id), `program ${id} not loaded while idwrap runs`);
  await killSupervisor(wrapped, false);
  const after = counts(await waitFor("the wrapped result", () => readOrUndefined(`${wrapped.dir}/result`), 10000));
  assertEquals(after.enosys, 0, JSON.stringify(after));
  assertEquals(after.other, 0, JSON.stringify(after));
  assert(after.eperm > 0, JSON.stringify(after));
  // At most DENY_RATE in each clock second the program's SECONDS touch, and the few calls idwrap had received.
  assert(after.eperm <= DENY_RATE * (SECONDS + 1) + 10, `not bounded: ${JSON.stringify(after)}`);
  await waitFor("the holder to exit once the tree is gone", () => ended(wrapped.holder) || undefined, 5000);
  // Nothing is observed after the loss: the kernel unloaded the programs with idwrap (docs/bpf.md, "The hybrid").
  for (const id of programs) {
    await waitFor(`bpf program ${id} to be unloaded`, async () => !(await programLoaded(id)) || undefined, 5000);
  }
});

/** Attack → how its output says it worked (tests/daemon/holder_guard_test.ts). */
const ATTACKS: [string, RegExp][] = [
  ["ptrace", /^ptrace: 0$/m],
  ["vmread", /^vm: 0$/m],
  ["procmem", /^procmem: 0$/m],
  ["kill", /^signal: 0$/m],
  ["tkill", /^signal: 0$/m],
  ["sigqueue", /^signal: 0$/m],
  ["tgkill", /^signal: 0$/m],
  ["pidfd-signal", /^signal: 0$/m],
  ["procfd-signal", /^signal: 0$/m],
  ["prlimit", /^prlimit: 0$/m],
  ["setown", /^setown: 0$/m],
];

Deno.test("idwrap run --source hybrid: a root program cannot trace, read, signal or rob idwrap-holder; the same attacks work on a decoy", async () => {
  const hybrid = (target: string) =>
    run(IDWRAP, ["run", "--source", "hybrid", "-p", policy, "--", prog("tamper"), ...target.split(" ")]);
  const decoy = new Deno.Command("sleep", { args: ["120"], stdout: "null", stderr: "null" }).spawn();
  while (!(await Deno.readTextFile(`/proc/${decoy.pid}/status`)).match(/^Name:\s*sleep$/m)) {
    await new Promise((r) => setTimeout(r, 10));
  }
  try {
    for (const [attack, worked] of ATTACKS) {
      // Control: the attack works from a hybrid-wrapped tree on a process that is not idwrap's.
      // ptrace and vmread: the decoy in the tree (one outside it is refused: tests/sources/seccomp/ptrace_outside_test.ts).
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
        : await hybrid(`${attack} ${decoy.pid}`);
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
