/**
 * The tracer's attach logic and its in-place records (docs/bpf.md, "Host side"): sys_exit is attached only while the
 * interest wants an exit (processes outside every watched tree then run one program per call, not two), and records
 * read in place stay intact while later ring calls fill the buffer behind them.
 *
 * @module
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import type { HostEvent, SyscallEvent } from "../../../host/events.ts";
import { interestFor, interestIn } from "../../../host/sources/bpf/interest.ts";
import { observeCommand } from "../../../host/sources/bpf/run.ts";
import { BpfTracer } from "../../../host/sources/bpf/tracer.ts";
import { syscallNumber } from "../../../host/syscalls/mod.ts";
import { compileC } from "../../../tools/build.ts";
import { ROOT } from "../../helpers.ts";

const FIXTURE = `${ROOT}build/tests/bpf_calls`;
await Deno.mkdir(`${ROOT}build/tests`, { recursive: true });
await compileC(`${ROOT}tests/sources/bpf/fixtures/calls.c`, FIXTURE);

/** BPF links this process holds, as the kernel lists them (/proc/self/fdinfo: a link fd shows its link_id). */
function bpfLinks(): number {
  let n = 0;
  for (const e of Deno.readDirSync("/proc/self/fdinfo")) {
    try {
      if (/^link_id:/m.test(Deno.readTextFileSync(`/proc/self/fdinfo/${e.name}`))) n++;
    } catch { /* closed meanwhile */ }
  }
  return n;
}

const calls = (events: HostEvent[], phase: "pre" | "post") =>
  events.filter((e): e is SyscallEvent => e.kind === "syscall" && e.phase === phase && e.syscall === "getppid");

Deno.test("bpf tracer attaches sys_exit only while some call's exit is of interest", () => {
  const before = bpfLinks();
  const tracer = BpfTracer.load({});
  try {
    const enterOnly = new Map([[syscallNumber("getppid")!, interestFor("getppid", { enter: true, exit: false })]]);
    const both = new Map([[syscallNumber("getppid")!, interestFor("getppid", { enter: true, exit: true })]]);
    // Loaded with no interest: sys_enter and the sched programs, no sys_exit.
    const loaded = bpfLinks() - before;
    assert(loaded >= 4, `expected at least sys_enter and three sched programs attached, got ${loaded} links`);
    assertEquals(tracer.exitAttached, false);
    tracer.setInterest(enterOnly);
    assertEquals([tracer.exitAttached, bpfLinks() - before], [false, loaded]);
    tracer.setInterest(both);
    assertEquals([tracer.exitAttached, bpfLinks() - before], [true, loaded + 1]);
    tracer.setInterest(both);
    assertEquals(bpfLinks() - before, loaded + 1, "a second interest with exits attaches nothing more");
    tracer.setInterest(enterOnly);
    assertEquals([tracer.exitAttached, bpfLinks() - before], [false, loaded]);
  } finally {
    tracer.close();
  }
  assertEquals(bpfLinks(), before);
});

Deno.test("bpf source reports enters only, and every one, when no exit is of interest", async () => {
  const n = 5000;
  const enterOnly = new Map([[syscallNumber("getppid")!, interestFor("getppid", { enter: true, exit: false })]]);
  const only = await observeCommand([FIXTURE, "flood", String(n)], { interest: enterOnly, stdout: "null" });
  assertEquals([only.exitCode, only.lost], [0, 0]);
  assertEquals([calls(only.events, "pre").length, calls(only.events, "post").length], [n, 0]);
  // The control: the same run with exits asked for reports them (the program is attached when the interest is set).
  const paired = await observeCommand([FIXTURE, "flood", String(n)], {
    interest: interestIn(["getppid"]),
    stdout: "null",
  });
  assertEquals([calls(paired.events, "pre").length, calls(paired.events, "post").length], [n, n]);
});

Deno.test("bpf records read in place stay intact while later ring calls refill the buffer (MiBs of records)", async () => {
  // 12,000 stats of distinct paths by one shell (dash's builtin test: no fork): path records of 360 bytes, 4 MiB,
  // many ring calls and several buffer replacements; the paths are read only after the run.
  const n = 12_000;
  const script = `i=0; while [ $i -lt ${n} ]; do i=$((i+1)); test -e /nonexistent/idwrap-inplace-$i; done; exit 0`;
  const stats = interestIn(["stat", "newfstatat", "statx", "access", "faccessat", "faccessat2"], {
    enter: true,
    exit: false,
  });
  const r = await observeCommand(["/bin/dash", "-c", script], { interest: stats, stdout: "null" });
  assertEquals([r.exitCode, r.lost], [0, 0]);
  const paths = r.events
    .filter((e): e is SyscallEvent => e.kind === "syscall" && e.phase === "pre")
    .map((e) => e.decoded.path)
    .filter((p): p is string => typeof p === "string" && p.startsWith("/nonexistent/idwrap-inplace-"));
  assertEquals(paths.length, n);
  for (let i = 0; i < n; i++) {
    if (paths[i] !== `/nonexistent/idwrap-inplace-${i + 1}`) {
      throw new Error(`event ${i} reads ${paths[i]}: its record was overwritten`);
    }
  }
});
