/**
 * Kills from maps (issue 15; docs/bpf.md, "Kills from maps"): does marking a process in kill_pending, so that a
 * program (kmod/bpf/killmap.bpf.c, an experiment loaded only here) SIGKILLs it at its next sys_enter, stop it sooner
 * than the host's kill(2) alone? A spinner
 * (tests/sources/bpf/fixtures/calls.c "spin": getppid in a loop) is watched with getppid's enter recorded; once its
 * calls reach the host, the host takes the time (CLOCK_MONOTONIC, as the records' ktime) and kills it one of three
 * ways, alternating: kill(2) (a pidfd SIGKILL, what the transport does), kill_pending then kill(2), and kill_pending
 * alone. Counted: the calls the spinner entered after that time (records with a later ktime), and the time until the
 * host saw it gone.
 *
 *   ./node_modules/.bin/deno run --allow-all bench/bpf_killmap_bench.ts [TRIALS]
 *
 * Raw numbers to bench/results/bpf_killmap.json; a table to stdout.
 *
 * @module
 */
import { interestIn } from "../host/sources/bpf/interest.ts";
import { KIND } from "../host/sources/bpf/layout.ts";
import { cstr, errno, libbpf, monotonicNs } from "../host/sources/bpf/libbpf.ts";
import { BpfTracer, explainLoadErrno } from "../host/sources/bpf/tracer.ts";
import { killProcess } from "../host/unsafe/libc.ts";
import { keepResults, median, table } from "./_report.ts";
import { buildFixture, ROOT } from "./_workload.ts";

const TRIALS = Number(Deno.args.find((a) => !a.startsWith("--")) ?? 100);
const SPIN = await buildFixture("tests/sources/bpf/fixtures/calls.c", "bpf_calls");

type Way = "kill(2)" | "map + kill(2)" | "map only";
const WAYS: Way[] = ["kill(2)", "map + kill(2)", "map only"];

/** kmod/bpf/killmap.bpf.c loaded and attached: mark(tgid) puts a process in its kill_pending map. */
function loadKillMap(): { mark: (tgid: number) => void; forget: (tgid: number) => void; close: () => void } {
  const lib = libbpf();
  const obj = lib.bpf_object__open_file(cstr(`${ROOT}build/bpf/killmap.o`), null);
  if (!obj) throw new Error(`Cannot open build/bpf/killmap.o (deno task build): ${explainLoadErrno(errno())}`);
  const loaded = lib.bpf_object__load(obj);
  if (loaded < 0) throw new Error(`Cannot load killmap.o: ${explainLoadErrno(-loaded)}`);
  const link = lib.bpf_program__attach(lib.bpf_object__find_program_by_name(obj, cstr("kill_at_enter")));
  if (!link) throw new Error(`Cannot attach kill_at_enter: ${explainLoadErrno(errno())}`);
  const fd = lib.bpf_map__fd(lib.bpf_object__find_map_by_name(obj, cstr("kill_pending")));
  const u8 = (a: Uint32Array) => new Uint8Array(a.buffer);
  return {
    mark: (tgid) => {
      if (lib.bpf_map_update_elem(fd, u8(new Uint32Array([tgid])), u8(new Uint32Array([1])), 0n) < 0) {
        throw new Error(`Cannot mark ${tgid}: ${explainLoadErrno(errno())}`);
      }
    },
    // A dead process's pid may be reused: its mark goes with it.
    forget: (tgid) => void lib.bpf_map_delete_elem(fd, u8(new Uint32Array([tgid]))),
    close: () => {
      lib.bpf_link__destroy(link);
      lib.bpf_object__close(obj);
    },
  };
}

const tracer = BpfTracer.load({});
const killMap = loadKillMap();
tracer.setInterest(interestIn(["getppid"], { enter: true, exit: false }));
const after: Record<Way, number[]> = { "kill(2)": [], "map + kill(2)": [], "map only": [] };
const goneUs: Record<Way, number[]> = { "kill(2)": [], "map + kill(2)": [], "map only": [] };
try {
  for (let i = 0; i < TRIALS; i++) {
    for (const way of WAYS) {
      const child = new Deno.Command(SPIN, { args: ["spin", "5000"], stdout: "null" }).spawn();
      let gone = false;
      child.status.then(() => gone = true);
      tracer.watch(child.pid);
      const started = performance.now();
      while (!tracer.poll(2).some((r) => r.tgid === child.pid && r.kind === KIND.ENTER)) {
        if (performance.now() - started > 3000) throw new Error("the spinner made no call");
      }
      const t = monotonicNs();
      if (way !== "kill(2)") killMap.mark(child.pid);
      if (way !== "map only") killProcess(child.pid);
      let late = 0;
      let exited = false;
      while (!exited) {
        for (const r of tracer.poll(1)) {
          if (r.tgid !== child.pid) continue;
          if (r.kind === KIND.ENTER && r.ktime > t) late++;
          if (r.kind === KIND.GONE) {
            exited = true;
            goneUs[way].push(Number(r.ktime - t) / 1000);
          }
        }
        if (gone && !exited) exited = true; // its exit record was lost: count what was seen
        await new Promise((r) => setTimeout(r, 0));
      }
      const status = await child.status;
      if (status.signal !== "SIGKILL") throw new Error(`${way}: the spinner ended with ${JSON.stringify(status)}`);
      killMap.forget(child.pid);
      after[way].push(late);
    }
  }
} finally {
  killMap.close();
  tracer.close();
}

const rows = WAYS.map((w) => {
  const a = after[w];
  return [
    w,
    String(median(a)),
    String(Math.max(...a)),
    String(a.filter((n) => n === 0).length) + `/${a.length}`,
    median(goneUs[w]).toFixed(1),
  ];
});
console.log(
  table([["way", "calls after (median)", "max", "trials with none", "µs to its exit record (median)"], ...rows]),
);
await keepResults(ROOT, "bpf_killmap", { trials: TRIALS, after, goneUs });
