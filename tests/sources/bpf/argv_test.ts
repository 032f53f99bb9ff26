/**
 * execve's argv on the bpf source (issue 15): the programs copy a bounded argv at execve's enter, so `argv:` rules
 * match on bpf alone and records carry the full argv as `process.args`. The library's `nc -e` rule on a real nc
 * (a busybox copy) connecting to a real listener, as root and as an ordinary user, beside a control without idwrap
 * that shows each nc reaches the listener; an argv longer than the copy, cut visibly and reported; an argv whose page
 * is not resident at the call (the programs cannot fault it in), reported as unreadable, never an empty argv, while
 * the seccomp source reads it (the control that the exec really had that argv).
 */
import { scratchDir } from "../../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import type { HostEvent, LifecycleEvent } from "../../../host/events.ts";
import { compileC } from "../../../tools/build.ts";
import { interestIn } from "../../../host/sources/bpf/interest.ts";
import { observeCommand } from "../../../host/sources/bpf/run.ts";
import { calls, ROOT, run, traced, writePolicy } from "../../helpers.ts";

const LIBRARY = `${ROOT}policies/library`;
const NOBODY = "setpriv --reuid=65534 --regid=65534 --clear-groups";
const BUILD = `${ROOT}build/tests`;
await Deno.mkdir(BUILD, { recursive: true });
const COLD = `${BUILD}/bpf_argv_cold`;
await compileC(`${ROOT}tests/sources/bpf/fixtures/argv_cold.c`, COLD);

const hasBusybox = (() => {
  try {
    return Deno.statSync("/usr/bin/busybox").isFile;
  } catch {
    return false;
  }
})();

/** The alerts of one rule: the program and uid of each. */
function alerted(events: HostEvent[], rule: string): { exe: string; uid: number }[] {
  return events.flatMap((e) =>
    "alerts" in e && e.alerts?.includes(rule) ? [{ exe: e.program.exe, uid: e.program.uid }] : []
  );
}

/** The exec events of a program. */
function execsOf(events: HostEvent[], exe: string): LifecycleEvent[] {
  return events.filter((e): e is LifecycleEvent => e.kind === "exec" && e.program.exe === exe);
}

/** The sources of a run's events (one). */
function sources(events: HostEvent[]): string[] {
  return [...new Set(events.flatMap((e) => "source" in e ? [e.source] : []))];
}

/** The execve calls of /bin/true (seccomp names it by its resolved path). */
function execvesOfTrue(events: HostEvent[]) {
  return calls(events, "pre").filter((e) => e.syscall === "execve" && /\/bin\/true$/.test(e.decoded.path ?? ""));
}

Deno.test({
  name: "bpf argv: the library's nc -e rule fires on --source bpf, as root and as a user; process.args is the argv",
  ignore: !hasBusybox,
  fn: async () => {
    const dir = await scratchDir({ prefix: "idwrap-bpfargv-" });
    await Deno.chmod(dir, 0o755);
    await Deno.copyFile("/usr/bin/busybox", `${dir}/nc`);
    await Deno.chmod(`${dir}/nc`, 0o755);
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    let accepted = 0;
    const serving = (async () => {
      for await (const conn of listener) {
        accepted++;
        conn.close();
      }
    })();
    try {
      const ncExec = `${dir}/nc 127.0.0.1 ${port} -e /bin/true < /dev/null`;
      const script = `${ncExec}; ${NOBODY} ${ncExec}; ${dir}/nc -w 2 127.0.0.1 ${port} < /dev/null`;
      // Control: each nc reaches the listener (the -e ones run /bin/true for it).
      const bare = await run("/bin/sh", ["-c", script]);
      assertEquals(bare.code, 0, bare.stderr);
      assertEquals(accepted, 3);

      const r = await traced("run", ["--source", "bpf", "-p", `${LIBRARY}/execution.yaml`], ["/bin/sh", "-c", script]);
      assertEquals(r.code, 0, r.stderr);
      assertEquals(accepted, 6);
      assertEquals(sources(r.events), ["bpf"]);
      const exe = `${dir}/nc`;
      // The two nc -e, root's and the user's; the plain nc is not one.
      assertEquals(alerted(r.events, "lib-netcat-remote-exec"), [{ exe, uid: 0 }, { exe, uid: 65534 }]);
      // Records name the process by its whole argv (red team rt9 M3: bpf kept argv[0] only).
      assertEquals(execsOf(r.events, exe).map((e) => [e.program.uid, e.program.args, e.program.argc]), [
        [0, [exe, "127.0.0.1", String(port), "-e", "/bin/true"], 5],
        [65534, [exe, "127.0.0.1", String(port), "-e", "/bin/true"], 5],
        [0, [exe, "-w", "2", "127.0.0.1", String(port)], 5],
      ]);
    } finally {
      listener.close();
      await serving.catch(() => {});
      await Deno.remove(dir, { recursive: true });
    }
  },
});

const ARGV_RULE = 'version: 1\nname: argv\nrules:\n  - id: dash-e\n    syscalls: [execve]\n    argv: ["-e"]\n' +
  "    action: alert\n";

Deno.test("bpf argv: an argv longer than the copy is cut visibly (…) and reported, as root and as a user", async () => {
  const policy = await writePolicy(ARGV_RULE);
  const long = "A".repeat(600);
  for (const as of [[], NOBODY.split(" ")]) {
    const r = await traced("run", ["--source", "bpf", "-p", policy], [...as, "/bin/true", "-e", long]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(sources(r.events), ["bpf"]);
    const exec = execvesOfTrue(r.events);
    assertEquals(exec.length, 1);
    // "/bin/true\0-e\0" is 13 bytes: 499 of the long argument's, and the mark that it was cut.
    assertEquals(exec[0].decoded.argv, ["/bin/true", "-e", "A".repeat(499) + "…"]);
    assertEquals(exec[0].alerts, ["dash-e"]);
    assert(
      r.events.some((e) => e.kind === "fault" && /execve's argv was longer than the bpf programs copy/.test(e.message)),
      "the cut is reported",
    );
  }
});

Deno.test("bpf argv: an argv not resident at execve is judged from its exec record; a failed one is a fault", async () => {
  const policy = await writePolicy(ARGV_RULE);
  const dir = await scratchDir({ prefix: "idwrap-bpfargv-" });
  await Deno.chmod(dir, 0o777);
  try {
    for (const as of [[], NOBODY.split(" ")]) {
      const file = `${dir}/strings-${as.length}`;
      const cmd = [...as, COLD, file, "/bin/true", "-e", "x"];
      // Control: the exec had that argv (seccomp reads it from the caller, faulting the page in): the rule fires.
      const sec = await traced("run", ["--source", "seccomp", "-p", policy], cmd);
      assertEquals(sec.code, 0, sec.stderr);
      assertEquals(execvesOfTrue(sec.events).map((e) => [e.decoded.argv, e.alerts]), [[
        ["/bin/true", "-e", "x"],
        ["dash-e"],
      ]]);
      await Deno.remove(file);

      // bpf: the programs cannot read it at the call (a fault); the call is served with its exec record's argv.
      const r = await traced("run", ["--source", "bpf", "-p", policy], cmd);
      assertEquals(r.code, 0, r.stderr);
      assertEquals(sources(r.events), ["bpf"]);
      assertEquals(execvesOfTrue(r.events).map((e) => [e.decoded.argv, e.decoded.fault, e.alerts]), [[
        ["/bin/true", "-e", "x"],
        undefined,
        ["dash-e"],
      ]]);
      assertEquals(execsOf(r.events, "/usr/bin/true").map((e) => e.program.args), [["/bin/true", "-e", "x"]]);
      await Deno.remove(file);

      // An exec that fails has no exec record: the argv stays unreadable, as such (a fault, never an empty argv).
      const failed = [...as, COLD, file, `${dir}/missing/true`, "-e", "x"];
      const t = await traced("trace", ["--source", "bpf", "-e", "execve"], failed);
      assertEquals(t.code, 127, t.stderr);
      const exec = calls(t.events, "pre").filter((e) => e.syscall === "execve" && /missing/.test(e.decoded.path ?? ""));
      assertEquals(exec.map((e) => [e.decoded.argv, e.decoded.fault]), [[undefined, "arg1"]]);
      assert(
        t.events.some((e) => e.kind === "fault" && /execve's argv could not be read at the call/.test(e.message)),
        "the unreadable argv is reported",
      );
      await Deno.remove(file);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("bpf argv: a thread racing the exec's argv never decides the rule: it judges the argv the exec ran, 2000 runs", async () => {
  const flip = `${BUILD}/bpf_argv_flip`;
  await compileC(`${ROOT}tests/sources/bpf/fixtures/argv_flip.c`, flip, ["-pthread"]);
  const policy = await writePolicy(ARGV_RULE);
  // Control: the race is real: the argv the programs copy at the enter is, in some runs, not the one the exec ran
  // (observed without the host's transport, which judges the exec record's).
  const raw = await observeCommand([flip, "2000"], { interest: interestIn(["execve"]), stdout: "null" });
  assertEquals(raw.exitCode, 0);
  const copied = calls(raw.events, "pre").filter((e) => e.decoded.argv?.[0] === "/bin/true").map((e) =>
    e.decoded.argv?.[1]
  );
  const execd = raw.events.filter((e): e is LifecycleEvent => e.kind === "exec" && e.program.argv0 === "/bin/true")
    .map((e) => e.program.args?.[1]);
  assertEquals([copied.length, execd.length], [2000, 2000]);
  assert(copied.some((a, i) => a !== execd[i]), "no run's enter copy differed from what ran: the race was never won");

  const t = await traced("trace", ["--source", "bpf", "-e", "execve"], [flip, "2000"]);
  assertEquals(t.code, 0, t.stderr);
  // Each run's execve of /bin/true against what its new image had as argv[1] (its exec event, in the same order).
  const judged = calls(t.events, "pre").filter((e) => e.syscall === "execve" && e.decoded.argv?.[0] === "/bin/true")
    .map((e) => e.decoded.argv?.[1]);
  const ran = execsOf(t.events, "/usr/bin/true").map((e) => e.program.args?.[1]);
  assertEquals(judged.length, 2000);
  assertEquals(ran.length, 2000);
  // The race is real: both arguments ran.
  assert(ran.includes("-e") && ran.includes("-n"), `ran: ${ran.filter((a) => a === "-e").length} with -e`);
  assertEquals(judged.filter((a, i) => a !== ran[i]).length, 0);
  // And the rule alerts on every run that ran with -e, never on one that did not.
  const r = await traced("run", ["--source", "bpf", "-p", policy], [flip, "2000"]);
  assertEquals(r.code, 0, r.stderr);
  const alerts = calls(r.events, "pre").filter((e) => e.syscall === "execve" && e.alerts?.includes("dash-e")).length;
  const withE = execsOf(r.events, "/usr/bin/true").filter((e) => e.program.args?.[1] === "-e").length;
  assertEquals(alerts, withE);
});
