/**
 * The bpf source on the real kernel: a real program (fixtures/calls.c) observed
 * through the real BPF programs, compared with what it is known to do and with
 * `strace -f`. As root (loading BPF needs it); what an ordinary user gets is
 * the last test.
 */
import { scratchDir } from "../../temp.ts";
import { deepStrictEqual as assertEquals, match as assertMatch, ok as assert } from "node:assert/strict";

function assertGreater(actual: number, floor: number, message?: string): void {
  assert(actual > floor, message ?? `expected more than ${floor}, got ${actual}`);
}
import type { HostEvent, LifecycleEvent, SyscallEvent, WrapperReport } from "../../../host/events.ts";
import { interestIn, interestInEverything } from "../../../host/sources/bpf/interest.ts";
import { BpfEventDecoder } from "../../../host/sources/bpf/events.ts";
import { cgroup2Mount } from "../../../host/sources/bpf/probe.ts";
import { observeCommand } from "../../../host/sources/bpf/run.ts";
import { BpfTracer } from "../../../host/sources/bpf/tracer.ts";
import { compileC } from "../../../tools/build.ts";
import { ensureUser, ROOT, run } from "../../helpers.ts";

const FIXTURE = `${ROOT}build/tests/bpf_calls`;
await Deno.mkdir(`${ROOT}build/tests`, { recursive: true });
await compileC(`${ROOT}tests/sources/bpf/fixtures/calls.c`, FIXTURE);

const syscalls = (events: HostEvent[], pid?: number, phase?: "pre" | "post") =>
  events.filter((e): e is SyscallEvent =>
    e.kind === "syscall" && (pid === undefined || e.pid === pid) && (!phase || e.phase === phase)
  );
const lifecycle = (events: HostEvent[], kind: LifecycleEvent["kind"]) =>
  events.filter((e): e is LifecycleEvent => e.kind === kind);
const faults = (events: HostEvent[]) => events.filter((e): e is WrapperReport => e.kind === "fault");

/** Per process (in order of first appearance), the calls strace saw begin, by name. */
async function straceCalls(command: string[]): Promise<string[][]> {
  const out = `${await scratchDir()}/strace.txt`;
  const r = await run("strace", ["-f", "-qq", "-o", out, "--", ...command]);
  assertEquals(r.code, 0, r.stderr);
  const byPid = new Map<string, string[]>();
  for (const line of (await Deno.readTextFile(out)).split("\n")) {
    const m = line.match(/^(\d+) +([a-z_0-9]+)\(/);
    if (!m) continue; // resumed halves, signals, exits
    if (!byPid.has(m[1])) byPid.set(m[1], []);
    byPid.get(m[1])!.push(m[2]);
  }
  return [...byPid.values()];
}

async function observeCalls(dir: string) {
  const r = await observeCommand([FIXTURE, "calls", dir], { interest: interestInEverything(), stdout: "null" });
  assertEquals(r.exitCode, 0);
  const exec = lifecycle(r.events, "exec").find((e) => e.program.exe === FIXTURE);
  if (!exec) throw new Error("no exec event for the fixture");
  return { ...r, main: exec.pid, afterExec: r.events.slice(r.events.indexOf(exec) + 1) };
}

Deno.test("bpf source records every call a program makes, as strace -f sees them, per process", async () => {
  const dir = await scratchDir();
  const { afterExec, main, lost } = await observeCalls(`${dir}/d`);
  assertEquals(lost, 0);
  const spawn = lifecycle(afterExec, "spawn").find((e) => e.ppid === main);
  if (!spawn) throw new Error("the fork was not followed");
  const ours = [
    ["execve", ...syscalls(afterExec, main, "pre").map((e) => e.syscall)],
    syscalls(afterExec, spawn.pid, "pre").map((e) => e.syscall),
  ];
  const theirs = await straceCalls([FIXTURE, "calls", `${dir}/e`]);
  assertEquals(ours, theirs);
});

Deno.test("bpf source copies path and buffer arguments and pairs each call's enter with its exit", async () => {
  const dir = await scratchDir();
  const { afterExec, main } = await observeCalls(`${dir}/d`);
  const pre = syscalls(afterExec, main, "pre");
  const opened = pre.find((e) => e.syscall === "openat" && e.decoded.path === "/etc/hostname");
  if (!opened) throw new Error("openat of /etc/hostname not seen with its path");
  assertEquals(opened.decoded.flags, "O_RDONLY");
  assert(pre.some((e) => e.syscall === "mkdir" && e.decoded.path === `${dir}/d` && e.decoded.mode === "0700"));
  assert(pre.some((e) => e.syscall === "rmdir" && e.decoded.path === `${dir}/d`));
  const write = pre.find((e) => e.syscall === "write" && e.decoded.data?.length === 15);
  assertEquals(new TextDecoder().decode(write?.decoded.data), "bpf-marker-data");
  // Per thread: every pre is followed by its post (same call), except calls that do not return; a child's first
  // record is the post of the fork it returns from.
  const byTid = new Map<number, SyscallEvent[]>();
  for (const e of syscalls(afterExec)) byTid.set(e.tid, [...byTid.get(e.tid) ?? [], e]);
  let pairs = 0;
  for (const [tid, list] of byTid) {
    // The first record of each thread is a call it returns from: the program's execve, or the child's fork.
    assertMatch(`${list[0].phase} ${list[0].syscall} ${list[0].ret}`, /^post (execve|clone|clone3|fork) 0$/);
    let i = 1;
    for (; i < list.length; i += 2) {
      const [pre, post] = [list[i], list[i + 1]];
      assertEquals(pre.phase, "pre", `tid ${tid} #${i}: ${pre.syscall}`);
      if (pre.syscall === "exit_group") {
        assertEquals(post, undefined);
        break;
      }
      assertEquals([post.phase, post.nr], ["post", pre.nr], `tid ${tid}: ${pre.syscall} not followed by its exit`);
      pairs++;
    }
  }
  assertGreater(pairs, 20);
  const openPost = afterExec[afterExec.indexOf(opened) + 1] as SyscallEvent;
  assertEquals([openPost.phase, openPost.syscall], ["post", "openat"]);
  assertGreater(openPost.ret!, 2);
});

Deno.test("bpf source follows fork, exec and exit with exit codes", async () => {
  const dir = await scratchDir();
  const { events, afterExec, main } = await observeCalls(`${dir}/d`);
  const spawn = lifecycle(afterExec, "spawn").find((e) => e.ppid === main)!;
  assertEquals(spawn.program.exe, FIXTURE);
  assertEquals(syscalls(afterExec, spawn.pid, "pre").map((e) => e.syscall).slice(-2), ["getpid", "exit_group"]);
  const exits = lifecycle(events, "exit");
  assertEquals(exits.find((e) => e.pid === spawn.pid)?.exitCode, 7);
  assertEquals(exits.find((e) => e.pid === main)?.exitCode, 0);
  // The exit is the process's last event, and the child's exit comes before the parent's wait returns.
  const childExit = events.findIndex((e) => e.kind === "exit" && e.pid === spawn.pid);
  assert(!events.slice(childExit + 1).some((e) => e.pid === spawn.pid));
  const waitPost = events.findIndex((e) =>
    e.kind === "syscall" && e.pid === main && e.phase === "post" && e.syscall === "wait4"
  );
  assertGreater(waitPost, childExit);
});

Deno.test("bpf source sees the calls of a process's other threads, with their thread ids", async () => {
  const dir = await scratchDir();
  const script = `import os, threading
t = threading.Thread(target=lambda: os.mkdir("${dir}/from-thread"))
t.start(); t.join()`;
  const r = await observeCommand(["/usr/bin/python3", "-c", script], {
    interest: interestIn(["mkdir"]),
    stdout: "null",
  });
  assertEquals(r.exitCode, 0);
  const mkdir = syscalls(r.events, undefined, "pre").filter((e) => e.syscall === "mkdir");
  assertEquals(mkdir.map((e) => e.decoded.path), [`${dir}/from-thread`]);
  assert(mkdir[0].tid !== mkdir[0].pid, `the mkdir came from the main thread (tid ${mkdir[0].tid})`);
  assertEquals(mkdir[0].program.exe.includes("python3"), true);
});

Deno.test("bpf source: a root program of the tree without CAP_SYS_ADMIN/CAP_BPF cannot use bpf(), and is seen trying", async () => {
  const dir = await scratchDir();
  // Control: with every capability, root lists the BPF programs (the source's among them).
  const full = await run("bpftool", ["prog", "show"]);
  assertEquals(full.code, 0, full.stderr);
  const r = await observeCommand([
    "setpriv",
    "--inh-caps=-all",
    "--ambient-caps=-all",
    "--bounding-set=-all",
    "--",
    "/bin/sh",
    "-c",
    `bpftool prog show >/dev/null 2>&1; mkdir ${dir}/after-$?`,
  ], { interest: interestIn(["bpf", "mkdir"]), stdout: "null", stderr: "null" });
  assertEquals(r.exitCode, 0);
  const bpf = syscalls(r.events, undefined, "post").filter((e) => e.syscall === "bpf");
  assert(bpf.length > 0, "the bpf() calls were not seen");
  assert(bpf.every((e) => e.errno === "EPERM"), `a bpf() call succeeded: ${bpf.map((e) => e.errno ?? e.ret)}`);
  // bpftool failed, and the tree is still observed after it tried.
  assert(
    syscalls(r.events, undefined, "pre").some((e) => e.syscall === "mkdir" && e.decoded.path === `${dir}/after-255`),
  );
});

Deno.test("bpf source reports nothing of a process outside the watched tree", async () => {
  const dir = await scratchDir();
  const outside = new Deno.Command(FIXTURE, { args: ["spin", "1500"] }).spawn();
  // Control: the neighbour really runs calls while the watched program runs.
  const neighbour = await observeCommand([FIXTURE, "calls", `${dir}/d`], {
    interest: interestInEverything(),
    stdout: "null",
  });
  assertEquals((await outside.status).code, 0);
  assertGreater(syscalls(neighbour.events).length, 50);
  assertEquals(neighbour.events.filter((e) => e.pid === outside.pid), []);
  // And the same program, watched, is seen: the filter above is by tree, not a blind spot.
  const inside = await observeCommand([FIXTURE, "spin", "200"], { interest: interestIn(["getppid"]), stdout: "null" });
  assertGreater(syscalls(inside.events, undefined, "pre").filter((e) => e.syscall === "getppid").length, 100);
});

Deno.test("bpf source delivers records on its consumer's timer while the program runs, without a wake-up", async () => {
  const dir = await scratchDir();
  let mkdirSeenAt = 0;
  const start = performance.now();
  // Far below the wake-up threshold: only the consumer's timer (5 ms) can bring the mkdir in before the exit.
  const r = await observeCommand(["/bin/sh", "-c", `mkdir ${dir}/d; sleep 1`], {
    interest: interestIn(["mkdir"]),
    stdout: "null",
    onEvents: (batch) => {
      if (!mkdirSeenAt && syscalls(batch).some((e) => e.syscall === "mkdir")) mkdirSeenAt = performance.now();
    },
  });
  const end = performance.now();
  assertEquals(r.exitCode, 0);
  assert(mkdirSeenAt > 0, "the mkdir was never delivered");
  assert(
    end - mkdirSeenAt > 500,
    `the mkdir came ${Math.round(mkdirSeenAt - start)} ms in, at the exit (${Math.round(end - start)} ms)`,
  );
});

Deno.test("bpf source counts every record a flood drops and reports the loss", async () => {
  const calls = 200_000;
  // A one-page ring, no early wake-up and a slow consumer: the ring must overflow.
  const r = await observeCommand([FIXTURE, "flood", String(calls)], {
    interest: interestIn(["getppid"]),
    ringBytes: 4096,
    wakeBytes: 1 << 30,
    pollMs: 50,
    stdout: "null",
  });
  assertEquals(r.exitCode, 0);
  const seen = syscalls(r.events).filter((e) => e.syscall === "getppid").length;
  assertGreater(r.lost, 0);
  // Every record is either delivered or counted: nothing disappears silently. The records: each getppid's enter
  // and exit, the fixture's exec and its exit (the launcher's own calls are not in the interest).
  const lifecycleSeen = r.events.filter((e) => e.kind === "exec" || e.kind === "exit").length;
  assertEquals(seen + lifecycleSeen + r.lost, 2 * calls + 2);
  const reported = faults(r.events).map((e) => Number(e.message.match(/dropped (\d+) records/)?.[1] ?? 0));
  assertEquals(reported.reduce((a, b) => a + b, 0), r.lost);
});

Deno.test("bpf source: an ordinary user cannot load the programs, and is told why", async () => {
  const uid = await ensureUser("idwrap-bpf");
  const home = await scratchDir();
  await Deno.chown(home, uid, null);
  const script = `${home}/load.ts`;
  await Deno.writeTextFile(
    script,
    `import { BpfTracer } from "${ROOT}host/sources/bpf/tracer.ts";
try { BpfTracer.load().close(); console.log("loaded"); } catch (e) { console.log(String(e)); }`,
  );
  const deno = `${ROOT}node_modules/.bin/deno`;
  const env = [`HOME=${home}`, `DENO_DIR=${home}/deno`];
  const r = await run("setpriv", [
    `--reuid=${uid}`,
    `--regid=${uid}`,
    "--clear-groups",
    "--",
    "env",
    ...env,
    deno,
    "run",
    "--allow-all",
    "--quiet",
    `--config=${ROOT}deno.json`,
    script,
  ]);
  assertMatch(r.stdout, /Cannot load the BPF programs: EPERM: loading BPF programs needs root/, r.stderr);
  // Control: root loads the same object.
  const root = await run(deno, ["run", "--allow-all", "--quiet", `--config=${ROOT}deno.json`, script]);
  assertEquals(root.stdout.trim(), "loaded", root.stderr);
});

Deno.test("bpf source in cgroup mode observes every task of its cgroup v2, and nothing outside it", async () => {
  const mount = cgroup2Mount();
  if (!mount) throw new Error("no cgroup v2 mount: cgroup mode cannot be tested here");
  const group = `${mount}/idwrap-test-${Deno.pid}`;
  await Deno.mkdir(group, { recursive: true });
  const dir = await scratchDir();
  const tracer = BpfTracer.load({ mode: "cgroup", cgroup: group });
  try {
    tracer.setInterest(interestIn(["mkdir"]));
    // Each shell waits for a line; only the first is moved into the cgroup before it goes on.
    const start = (name: string) =>
      new Deno.Command("/bin/sh", { args: ["-c", `read _; mkdir ${dir}/${name}`], stdin: "piped" }).spawn();
    const inside = start("inside"), outside = start("outside");
    await Deno.writeTextFile(`${group}/cgroup.procs`, String(inside.pid));
    for (const child of [inside, outside]) {
      const w = child.stdin.getWriter();
      await w.write(new TextEncoder().encode("\n"));
      await w.close();
    }
    assertEquals([(await inside.status).code, (await outside.status).code], [0, 0]);
    const decoder = new BpfEventDecoder();
    const events = tracer.drain().flatMap((r) => decoder.decode(r));
    // Control: the outside shell made its mkdir too (the directory exists), and only the inside one was seen.
    assert((await Deno.stat(`${dir}/outside`)).isDirectory);
    // (The shell forks mkdir: the child is in the cgroup by inheritance, with nothing to follow.)
    const seen = syscalls(events, undefined, "pre");
    assertEquals(seen.map((e) => e.decoded.path), [`${dir}/inside`]);
    assert(seen.every((e) => e.pid !== outside.pid));
  } finally {
    tracer.close();
    await Deno.remove(group).catch(() => {});
  }
});
