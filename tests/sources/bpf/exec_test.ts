/**
 * Exec decisions in the kernel on the bpf source (docs/bpf.md, "Decisions in the kernel: exec"), on this machine's
 * real kernel, as root: an exec rule that kills (or denies) by program path is enforced by the programs at
 * sched_process_exec with bpf_send_signal(SIGKILL). Whether the kill lands before the new image runs is measured with
 * a static program whose first instruction writes a byte to an inherited pipe (fixtures/exec_marker.c) and a dynamic
 * one (ld.so first, then a constructor that writes), each exec'd thousands of times: the bytes in the pipe and the
 * calls the killed processes made after their exec are counted. Each test has its control: the same runs without the
 * rule (the marker is written, the calls are made). Then the ways to name the program: by identity, a hard link, a
 * symbolic link, /proc/self/fd/N and fexecve are the file and are killed; a copy and a memfd copy are other files and
 * are not (said in docs/bpf.md) — and an ordinary user in the tree gets the same.
 */
import { scratchDir } from "../../temp.ts";
import { deepStrictEqual as assertEquals, match as assertMatch, ok as assert } from "node:assert/strict";
import type { HostEvent, LifecycleEvent, SyscallEvent } from "../../../host/events.ts";
import { kernelDev, type KernelExecRule } from "../../../host/sources/bpf/exec_rules.ts";
import { interestInEverything } from "../../../host/sources/bpf/interest.ts";
import { observeCommand } from "../../../host/sources/bpf/run.ts";
import { compileC } from "../../../tools/build.ts";
import { calls, ensureUser, idwrap, ROOT, run, traced, writePolicy } from "../../helpers.ts";

const FIXTURES = `${ROOT}tests/sources/bpf/fixtures`;
const BUILD = `${ROOT}build/tests`;
await Deno.mkdir(BUILD, { recursive: true });
const DRIVER = `${BUILD}/bpf_exec_driver`;
await compileC(`${FIXTURES}/exec_driver.c`, DRIVER);
// Static, no C library: _start is the image's first instruction.
await compileC(`${FIXTURES}/exec_marker.c`, `${BUILD}/bpf_exec_marker`, ["-static", "-nostdlib"]);
await compileC(`${FIXTURES}/exec_marker_dyn.c`, `${BUILD}/bpf_exec_marker_dyn`);

/** Runs of the marker in the measuring tests: thousands of tries, zero wins. */
const RUNS = 2000;

interface Tally {
  runs: number;
  killed: number;
  exited: number;
  markers: number;
}

function tally(stdout: string | Uint8Array | undefined): Tally {
  const text = typeof stdout === "string" ? stdout : new TextDecoder().decode(stdout);
  const m = /runs (\d+) killed (\d+) exited (\d+) markers (\d+)/.exec(text);
  if (!m) throw new Error(`the driver printed no tally: ${JSON.stringify(text)}`);
  return { runs: +m[1], killed: +m[2], exited: +m[3], markers: +m[4] };
}

/** A fresh directory (readable by anyone: the user test's programs live there) holding a copy of `program`. */
async function stage(program: string): Promise<{ dir: string; target: string }> {
  const dir = await scratchDir({ prefix: "idwrap-execk-" });
  await Deno.chmod(dir, 0o755);
  const target = `${dir}/denied`;
  await Deno.copyFile(program, target);
  await Deno.chmod(target, 0o755);
  return { dir, target };
}

const rule = (target: string): KernelExecRule[] => [{ id: "execk", action: "kill", paths: [target], file: "test" }];

/**
 * Runs the driver observed by the bpf source (every call recorded), with or without the exec rule on `target`;
 * returns its tally and, per process that exec'd the target, the calls it made after its exec.
 */
async function observed(how: string, exe: string, target: string, runs: number, withRule: boolean) {
  const r = await observeCommand([DRIVER, how, exe, String(runs)], {
    interest: interestInEverything(),
    stdout: "piped",
    ...(withRule ? { execKills: rule(target) } : {}),
  });
  assertEquals(r.exitCode, 0);
  assertEquals(r.lost, 0, "no record lost (else a call after the exec could hide)");
  const execed = new Map<number, number>(); // pid -> calls made after its exec of the target
  for (const e of r.events as HostEvent[]) {
    if (e.kind === "exec" && (e as LifecycleEvent).program.exe === target) execed.set(e.pid, 0);
    else if (e.kind === "syscall" && (e as SyscallEvent).phase === "pre" && execed.has(e.pid)) {
      execed.set(e.pid, execed.get(e.pid)! + 1);
    }
  }
  return { tally: tally(r.stdout), execed };
}

Deno.test("exec kill at sched_process_exec: a static program exec'd 2,000 times never runs its first instruction", async () => {
  const { target } = await stage(`${BUILD}/bpf_exec_marker`);
  // Control: observed without the rule, every run writes its marker (the first instruction) and exits 0.
  const free = await observed("path", target, target, RUNS, false);
  assertEquals(free.tally, { runs: RUNS, killed: 0, exited: RUNS, markers: RUNS });
  const killed = await observed("path", target, target, RUNS, true);
  assertEquals(killed.tally, { runs: RUNS, killed: RUNS, exited: 0, markers: 0 });
  assertEquals(killed.execed.size, RUNS, "every exec was reported");
  const after = [...killed.execed.values()].reduce((a, b) => a + b, 0);
  assertEquals(after, 0, "no killed process made a call after its exec");
});

Deno.test("exec kill at sched_process_exec: a dynamic program (ld.so first) makes no call and runs no constructor", async () => {
  const { target } = await stage(`${BUILD}/bpf_exec_marker_dyn`);
  // Control: ld.so's calls (brk, mmap, openat of libc…) and both marker writes are seen without the rule.
  const free = await observed("path", target, target, RUNS / 4, false);
  assertEquals(free.tally, { runs: RUNS / 4, killed: 0, exited: RUNS / 4, markers: RUNS / 2 });
  assert([...free.execed.values()].every((n) => n >= 5), "ld.so and the program make calls after the exec");
  const killed = await observed("path", target, target, RUNS, true);
  assertEquals(killed.tally, { runs: RUNS, killed: RUNS, exited: 0, markers: 0 });
  assertEquals(killed.execed.size, RUNS);
  assertEquals([...killed.execed.values()].reduce((a, b) => a + b, 0), 0, "not one call of ld.so");
});

/** The ways of exec'ing the denied program an attacker has, and whether the identity key catches each. */
const ALIASES: {
  name: string;
  how: string;
  caught: boolean;
  make: (dir: string, target: string) => Promise<string>;
}[] = [
  { name: "its path", how: "path", caught: true, make: (_d, t) => Promise.resolve(t) },
  {
    name: "a hard link",
    how: "path",
    caught: true,
    make: async (d, t) => (await Deno.link(t, `${d}/hard`), `${d}/hard`),
  },
  {
    name: "a symbolic link",
    how: "path",
    caught: true,
    make: async (d, t) => (await Deno.symlink(t, `${d}/sym`), `${d}/sym`),
  },
  { name: "/proc/self/fd/N", how: "procfd", caught: true, make: (_d, t) => Promise.resolve(t) },
  { name: "fexecve (execveat AT_EMPTY_PATH)", how: "fexecve", caught: true, make: (_d, t) => Promise.resolve(t) },
  { name: "a memfd copy", how: "memfd", caught: false, make: (_d, t) => Promise.resolve(t) },
  {
    name: "a copy",
    how: "path",
    caught: false,
    make: async (d, t) => (await Deno.copyFile(t, `${d}/copy`), await Deno.chmod(`${d}/copy`, 0o755), `${d}/copy`),
  },
];

Deno.test("idwrap run --source bpf: an exec kill rule holds against a hard link, a symlink, /proc/self/fd and fexecve; a copy and a memfd are other files", async () => {
  const { dir, target } = await stage(`${BUILD}/bpf_exec_marker`);
  const policy = await writePolicy(`version: 1
name: exec-kill
rules:
  - id: no-denied
    syscalls: "%exec"
    path: ${target}
    action: kill
`);
  const n = 50;
  for (const a of ALIASES) {
    const exe = await a.make(dir, target);
    // Control: unwrapped, every way runs the program.
    const bare = await run(DRIVER, [a.how, exe, String(n)]);
    assertEquals(tally(bare.stdout), { runs: n, killed: 0, exited: n, markers: n }, `${a.name}, unwrapped`);
    const t = await traced("run", ["--source", "bpf", "-p", policy], [DRIVER, a.how, exe, String(n)]);
    assertEquals(t.code, 0, `${a.name}: ${t.stderr}`);
    const got = tally(t.stdout);
    const reported = calls(t.events).filter((e) =>
      e.alerts?.includes("no-denied") && e.verdict === "kill" &&
      /sched_process_exec/.test(e.reason ?? "")
    );
    if (a.caught) {
      assertEquals(got, { runs: n, killed: n, exited: 0, markers: 0 }, `${a.name} is the denied file`);
      assertEquals(reported.length, n, `${a.name}: each kill is reported`);
    } else {
      assertEquals(got, { runs: n, killed: 0, exited: n, markers: n }, `${a.name} is another file: not caught`);
      assertEquals(reported.length, 0);
    }
  }
});

Deno.test("idwrap run --source bpf: an ordinary user in the tree cannot dodge the exec kill by a symlink, /proc/self/fd or fexecve", async () => {
  const uid = await ensureUser("idwrap-bob");
  const { dir, target } = await stage(`${BUILD}/bpf_exec_marker`);
  await Deno.symlink(target, `${dir}/sym`);
  const policy = await writePolicy(`version: 1
name: exec-kill-user
rules:
  - id: no-denied
    syscalls: [execve, execveat]
    path: ${target}
    action: kill
`);
  const as = ["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "--"];
  for (const [how, exe] of [["path", `${dir}/sym`], ["procfd", target], ["fexecve", target]]) {
    const bare = await run(as[0], [...as.slice(1), DRIVER, how, exe, "20"]);
    assertEquals(tally(bare.stdout).markers, 20, `${how} as uid ${uid}, unwrapped: ${bare.stderr}`);
    const r = await idwrap(["run", "--source", "bpf", "-p", policy, "--", ...as, DRIVER, how, exe, "20"]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(tally(r.stdout), { runs: 20, killed: 20, exited: 0, markers: 0 }, `${how} as uid ${uid}`);
  }
});

Deno.test("idwrap run --source bpf: a deny exec rule is enforced as a kill and says so; an exec rule the kernel cannot decide is still refused", async () => {
  const { target } = await stage(`${BUILD}/bpf_exec_marker`);
  const policy = await writePolicy(`version: 1
name: exec-deny
rules:
  - id: deny-denied
    syscalls: "%exec"
    path: "{${target},/nonexistent/prog}"
    action: deny
`);
  const t = await traced("run", ["--source", "bpf", "-p", policy], [DRIVER, "path", target, "5"]);
  assertEquals(t.code, 0, t.stderr);
  assertEquals(tally(t.stdout), { runs: 5, killed: 5, exited: 0, markers: 0 });
  const reported = calls(t.events).filter((e) => e.alerts?.includes("deny-denied") && e.verdict === "kill");
  assert(reported.length >= 5, `${JSON.stringify(calls(t.events).slice(0, 3))}`);
  assert(reported.some((e) => /^deny \(the bpf source can only kill an exec/.test(e.reason ?? "")));
  // A glob, an argv condition, a script: the kernel cannot decide them; refused before anything runs, saying why.
  const script = `${target}.sh`;
  await Deno.writeTextFile(script, "#!/bin/sh\nexit 0\n");
  await Deno.chmod(script, 0o755);
  const cases = [
    [`path: "${target.replace(/denied$/, "*")}"`, /is not a literal absolute path/],
    [`path: ${target}\n    argv: ["-x"]`, /conditions other than the program's path/],
    [`path: ${script}`, /is a script \(at sched_process_exec the kernel runs its interpreter instead\)/],
  ] as const;
  for (const [cond, why] of cases) {
    const glob = await writePolicy(`version: 1
name: exec-glob
rules:
  - id: glob-denied
    syscalls: "%exec"
    ${cond}
    action: kill
`);
    const r = await idwrap(["run", "--source", "bpf", "-p", glob, "--", DRIVER, "path", target, "1"]);
    assertEquals(r.code, 2, r.stderr);
    assertMatch(r.stderr, /rule "glob-denied" \(action kill\) on execve, execveat: not decided in the kernel: /);
    assertMatch(r.stderr, why);
    assertEquals(r.stdout, "", "the command did not run");
  }
});

Deno.test("idwrap run --source bpf: the rule's file is stat'ed again, so a file created or replaced since the start is the one killed", async () => {
  const { dir, target } = await stage(`${BUILD}/bpf_exec_marker`);
  const missing = `${dir}/later`;
  const policy = await writePolicy(`version: 1
name: exec-kill-restat
rules:
  - id: no-denied
    syscalls: "%exec"
    path: "{${target},${missing}}"
    action: kill
`);
  // Replaced (a new inode at the path, as a package upgrade does: the old one kept by a link, so its number is not
  // reused) and created after the run began; each exec'd after the next re-stat (at most a second).
  await Deno.link(target, `${dir}/old`);
  const script = `cp ${BUILD}/bpf_exec_marker ${target}.new; mv ${target}.new ${target}; cp ${target} ${missing}; ` +
    `sleep 1.5; ${DRIVER} path ${target} 5; ${DRIVER} path ${missing} 5`;
  const bare = await run("/bin/sh", ["-c", script]);
  assertEquals(bare.stdout.match(/markers 5/g)?.length, 2, `unwrapped, both run: ${bare.stdout}`);
  // Back to the start: the original file at the path, the other absent.
  await Deno.remove(missing);
  await Deno.remove(target);
  await Deno.link(`${dir}/old`, target);
  const r = await idwrap(["run", "--source", "bpf", "-p", policy, "--", "/bin/sh", "-c", script]);
  assertEquals(r.code, 0, r.stderr);
  assertEquals(r.stdout.match(/runs 5 killed 5 exited 0 markers 0/g)?.length, 2, r.stdout);
});

Deno.test("kernelDev() turns a stat's st_dev into the kernel's s_dev encoding, for large majors and minors too", () => {
  const user = (major: bigint, minor: bigint) => (minor & 0xffn) | (major << 8n) | ((minor & ~0xffn) << 12n);
  for (const [major, minor] of [[8n, 1n], [0n, 27n], [259n, 65540n], [4095n, 1048575n]]) {
    assertEquals(kernelDev(user(major, minor)), (major << 20n) | minor, `${major}:${minor}`);
  }
});

Deno.test("exec kill at sched_process_exec: a full ring loses reports, never the kill", async () => {
  const { target } = await stage(`${BUILD}/bpf_exec_marker`);
  const runs = 300;
  // A one-page ring read every 200 ms: most records of the run cannot fit.
  const r = await observeCommand([DRIVER, "path", target, String(runs)], {
    interest: interestInEverything(),
    stdout: "piped",
    ringBytes: 4096,
    pollMs: 200,
    execKills: rule(target),
  });
  assertEquals(r.exitCode, 0);
  const execs = r.events.filter((e) => e.kind === "exec" && (e as LifecycleEvent).program.exe === target).length;
  assert(r.lost > 0 && execs < runs, `the ring dropped exec records (lost ${r.lost}, ${execs} of ${runs} reported)`);
  assertEquals(tally(r.stdout), { runs, killed: runs, exited: 0, markers: 0 });
});
