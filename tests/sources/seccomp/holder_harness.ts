/**
 * What the supervisor-loss and holder tests (tests/daemon/supervisor_loss*_test.ts, tests/daemon/holder_guard_test.ts,
 * tests/sources/hybrid/supervisor_loss_test.ts, fail_closed_test.ts) share: a storm of opens under `idwrap run` whose
 * supervisor they SIGKILL, what they read of the processes around idwrap-holder from /proc, the attacks on the holder.
 *
 * @module
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { IDWRAP, prog } from "../../helpers.ts";
import { waitFor } from "../../daemon/daemon_helpers.ts";
import { scratchDir } from "../../temp.ts";

/** A policy that decides openat (a deny rule no test path matches): opens are what the holder answers after a loss. */
export const LOSS_POLICY = `
rules:
  - id: watch-opens
    syscalls: openat
    path: /nonexistent/**
    action: deny
`;

/** What idwrap-holder answers in a second at most under on_supervisor_loss deny (kmod/seccomp/holder.c). */
export const DENY_RATE = 1000;

/** The alert a refused attack on idwrap or its holder raises. */
export const TAMPER_ALERT = "idwrap.supervisor-tamper";

/** tests/progs/tamper.c's attacks on the holder (or a decoy) → how its output says one worked. */
export const TAMPER_ATTACKS: [string, RegExp][] = [
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

/** An `idwrap run` of open_storm, running. */
export interface Storm {
  /** Its files: pid, result, report. */
  dir: string;
  /** The wrapped program's pid. */
  pid: number;
  host: Deno.ChildProcess;
  holder: number;
}

/** How a storm runs. */
export interface StormOptions {
  /** The policy file (LOSS_POLICY written out). */
  policy: string;
  mode: "kill" | "deny";
  /** How long open_storm opens in a loop. */
  seconds: number;
  /** `--source`, if not the default. */
  source?: string;
  /** Run as this ordinary user, with this home (its Deno cache, kept from one run to the next), instead of root. */
  user?: { uid: number; home: string };
}

/** `idwrap run` of open_storm (opens in a tight loop), once the program runs and its holder is up. */
export async function startStorm(o: StormOptions): Promise<Storm> {
  const dir = await scratchDir({ prefix: "idwrap-loss-" });
  await Deno.chmod(dir, 0o777);
  const args = [
    "run",
    ...(o.source ? ["--source", o.source] : []),
    "-p",
    o.policy,
    "--on-supervisor-loss",
    o.mode,
    "-o",
    `${dir}/report`,
    "--",
    prog("open_storm"),
    "/etc/hostname",
    `${dir}/pid`,
    `${dir}/result`,
    String(o.seconds),
  ];
  const user = o.user;
  if (user) await Deno.mkdir(user.home, { recursive: true }).then(() => Deno.chown(user.home, user.uid, null));
  const asUser = user === undefined ? [] : [
    "setpriv",
    `--reuid=${user.uid}`,
    `--regid=${user.uid}`,
    "--clear-groups",
    "--",
    "env",
    `HOME=${user.home}`,
    `DENO_DIR=${user.home}/deno`,
    `IDWRAP_STORE=${dir}/store.kv`,
  ];
  const [cmd, ...rest] = [...asUser, IDWRAP, ...args];
  const host = new Deno.Command(cmd, { args: rest, stdin: "null", stdout: "null", stderr: "null" }).spawn();
  const pid = Number(await waitFor("the wrapped program to start", () => readOrUndefined(`${dir}/pid`), 120_000));
  const holder = await waitFor("idwrap-holder", () => holderOf(host.pid));
  return { dir, pid, host, holder };
}

/** SIGKILLs the supervisor; first the holder if `holderFirst` (the control: idwrap as it was before the holder). */
export async function killSupervisor(s: Storm, holderFirst: boolean): Promise<void> {
  if (holderFirst) {
    Deno.kill(s.holder, "SIGKILL");
    await waitFor("the holder to end", () => ended(s.holder) || undefined);
  }
  s.host.kill("SIGKILL");
  assertEquals((await s.host.status).signal, "SIGKILL");
}

/** A file's trimmed text, or undefined when it is missing or empty. */
export const readOrUndefined = (path: string) =>
  Deno.readTextFile(path).then((t) => t.trim() || undefined, () => undefined);

/** Whether a process has ended (exited or a zombie). */
export function ended(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return true;
  }
}

/** Children of `pid` (any thread's), only those named `comm` if given. */
export function childrenOf(pid: number, comm?: string): number[] {
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid && (comm === undefined || name === comm)) out.push(Number(e.name));
    } catch { /* gone */ }
  }
  return out;
}

/** The idwrap-holder a supervisor started: its child of that name. */
export function holderOf(pid: number): number | undefined {
  return childrenOf(pid, "idwrap-holder")[0];
}

/** Parses open_storm's result line ("ok N enosys N eperm N other N"). */
export function counts(line: string): Record<string, number> {
  const w = line.split(" ");
  const out: Record<string, number> = {};
  for (let i = 0; i + 1 < w.length; i += 2) out[w[i]] = Number(w[i + 1]);
  return out;
}

/**
 * on_supervisor_loss kill: the supervisor SIGKILLed, the tree is killed before any notified call fails. Its control:
 * the holder SIGKILLed first (idwrap before the holder), the program's opens fail with ENOSYS and it runs on.
 *
 * @param start starts a 3-second storm in the given mode
 */
export async function supervisorLossKill(start: (mode: "kill" | "deny", seconds: number) => Promise<Storm>) {
  const control = await start("kill", 3);
  await killSupervisor(control, true);
  const before = counts(await waitFor("the control's result", () => readOrUndefined(`${control.dir}/result`), 10000));
  assert(before.enosys > 0, `control: ${JSON.stringify(before)}`);

  const wrapped = await start("kill", 3);
  await killSupervisor(wrapped, false);
  await waitFor("the wrapped program to be killed", () => ended(wrapped.pid) || undefined, 5000);
  await waitFor("the holder to exit", () => ended(wrapped.holder) || undefined, 5000);
  // Killed mid-loop: it never got to write how its opens ended (no ENOSYS, no success it should not have had).
  await new Promise((r) => setTimeout(r, 3500)); // past its 3 s
  assertEquals(await readOrUndefined(`${wrapped.dir}/result`), undefined);
}

/**
 * on_supervisor_loss deny: the supervisor SIGKILLed, every open fails with EPERM at most DENY_RATE a second, never
 * ENOSYS. Its control: the holder SIGKILLed first, far more calls fail (ENOSYS) than the holder would ever answer.
 *
 * @param start starts a storm of `seconds` in the given mode
 * @param beforeKill what a test checks of the wrapped run while its supervisor still runs
 */
export async function supervisorLossDeny(
  start: (mode: "kill" | "deny", seconds: number) => Promise<Storm>,
  beforeKill?: (wrapped: Storm) => Promise<void>,
): Promise<void> {
  const SECONDS = 3;
  const control = await start("deny", SECONDS);
  await killSupervisor(control, true);
  const before = counts(await waitFor("the control's result", () => readOrUndefined(`${control.dir}/result`), 10000));
  // The storm: far more failing calls than the holder would ever answer in the time.
  assert(before.enosys > DENY_RATE * (SECONDS + 1), `control: ${JSON.stringify(before)}`);

  const wrapped = await start("deny", SECONDS);
  await beforeKill?.(wrapped);
  await killSupervisor(wrapped, false);
  const after = counts(await waitFor("the wrapped result", () => readOrUndefined(`${wrapped.dir}/result`), 10000));
  assertEquals(after.enosys, 0, JSON.stringify(after));
  assertEquals(after.other, 0, JSON.stringify(after));
  assert(after.eperm > 0, JSON.stringify(after));
  // At most DENY_RATE in each clock second the program's SECONDS touch, and the few calls the supervisor had received.
  assert(after.eperm <= DENY_RATE * (SECONDS + 1) + 10, `not bounded: ${JSON.stringify(after)}`);
  await waitFor("the holder to exit once the tree is gone", () => ended(wrapped.holder) || undefined, 5000);
}
