/**
 * The bpf source's exec kill against the dynamic loader's way round it (red team rt8 F9): `ld.so PROG` execs only the
 * loader, which opens PROG and maps it with PROT_EXEC. The programs check each executable mmap's file (the fd's, by
 * identity) against exec_kill at sys_enter and send SIGKILL, which lands when the mmap returns, before the loader can
 * jump into the mapping. Measured with the marker programs of exec_test.ts (a byte on fd 3 from a static-pie's first
 * instruction, or from a dynamic program's first constructor), through ld.so by execve and by execveat of the loader
 * (fexecve), thousands of times: no marker. The control is the same runs without the rule; as root and as an ordinary
 * user; and the kill is reported as the rule's. (ld.so maps a static-pie, then execs it itself: that one the exec kill
 * caught before too; the dynamic program is the bypass, run from ld.so's mapping.)
 */
import { scratchDir } from "../../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import type { KernelExecRule } from "../../../host/sources/bpf/exec_rules.ts";
import { interestInEverything } from "../../../host/sources/bpf/interest.ts";
import { observeCommand } from "../../../host/sources/bpf/run.ts";
import { compileC } from "../../../tools/build.ts";
import { calls, ensureUser, ROOT, run, traced, writePolicy } from "../../helpers.ts";

const FIXTURES = `${ROOT}tests/sources/bpf/fixtures`;
const BUILD = `${ROOT}build/tests`;
await Deno.mkdir(BUILD, { recursive: true });
const DRIVER = `${BUILD}/bpf_exec_driver`;
await compileC(`${FIXTURES}/exec_driver.c`, DRIVER);
// A static-pie without a C library: ld.so maps it and jumps to _start, the marker's write.
await compileC(`${FIXTURES}/exec_marker.c`, `${BUILD}/bpf_exec_marker_pie`, ["-static-pie", "-nostdlib", "-fPIE"]);
await compileC(`${FIXTURES}/exec_marker_dyn.c`, `${BUILD}/bpf_exec_marker_dyn`);

const LOADER = "/lib64/ld-linux-x86-64.so.2";
const RUNS = 2000;

function tally(stdout: string | Uint8Array | undefined) {
  const text = typeof stdout === "string" ? stdout : new TextDecoder().decode(stdout);
  const m = /runs (\d+) killed (\d+) exited (\d+) markers (\d+)/.exec(text);
  if (!m) throw new Error(`the driver printed no tally: ${JSON.stringify(text)}`);
  return { runs: +m[1], killed: +m[2], exited: +m[3], markers: +m[4] };
}

async function stage(program: string): Promise<{ dir: string; target: string }> {
  const dir = await scratchDir({ prefix: "idwrap-execfix-" });
  await Deno.chmod(dir, 0o755);
  const target = `${dir}/listed`;
  await Deno.copyFile(program, target);
  await Deno.chmod(target, 0o755);
  return { dir, target };
}

/** The driver runs the loader `runs` times with the program as its argument, observed, with or without the rule. */
async function throughLoader(how: "path" | "fexecve", target: string, runs: number, withRule: boolean) {
  const execKills: KernelExecRule[] = [{ id: "execk", action: "kill", paths: [target], file: "test" }];
  const r = await observeCommand([DRIVER, how, LOADER, String(runs), target], {
    interest: interestInEverything(),
    stdout: "piped",
    ...(withRule ? { execKills } : {}),
  });
  assertEquals(r.exitCode, 0);
  return tally(r.stdout);
}

for (
  const [kind, program, perRun] of [["static-pie", "bpf_exec_marker_pie", 1], [
    "dynamic",
    "bpf_exec_marker_dyn",
    2,
  ]] as const
) {
  for (const how of ["path", "fexecve"] as const) {
    Deno.test(`bpf exec kill: a listed ${kind} program run through ld.so (${how === "path" ? "execve" : "execveat"} of the loader) ${RUNS} times never runs`, async () => {
      const { dir, target } = await stage(`${BUILD}/${program}`);
      try {
        const free = await throughLoader(how, target, RUNS / 10, false);
        assertEquals(free, { runs: RUNS / 10, killed: 0, exited: RUNS / 10, markers: perRun * RUNS / 10 }, "control");
        assertEquals(await throughLoader(how, target, RUNS, true), { runs: RUNS, killed: RUNS, exited: 0, markers: 0 });
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    });
  }
}

Deno.test("idwrap run --source bpf: an ordinary user's ld.so PROG is killed and reported as the exec rule", async () => {
  const uid = await ensureUser("idwrap-bob");
  const { dir, target } = await stage(`${BUILD}/bpf_exec_marker_dyn`);
  try {
    const policy = await writePolicy(`version: 2
name: exec-loader
rules:
  - id: no-listed
    syscalls: "%exec"
    path: ${target}
    action: kill
`);
    const as = ["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "--"];
    const bare = await run(as[0], [...as.slice(1), DRIVER, "path", LOADER, "20", target]);
    assertEquals(tally(bare.stdout).markers, 40, `control, unwrapped as uid ${uid}: ${bare.stderr}`);
    const t = await traced("run", ["--source", "bpf", "-p", policy], [...as, DRIVER, "path", LOADER, "200", target]);
    assertEquals(t.code, 0, t.stderr);
    assertEquals(tally(t.stdout), { runs: 200, killed: 200, exited: 0, markers: 0 });
    const reported = calls(t.events).filter((e) => e.syscall === "mmap" && e.alerts?.includes("no-listed"));
    assertEquals(reported.length, 200);
    assert(reported.every((e) => e.verdict === "kill" && /executable mapping/.test(e.reason ?? "")));
    assertEquals(t.summary?.killed, 200);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
