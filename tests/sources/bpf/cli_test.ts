/**
 * `idwrap trace|run --source bpf` end to end on the real kernel: the CLI, the bpf transport under the WSS on its own
 * thread, a real program (fixtures/calls.c) whose calls are known. What is observed is compared with what the program
 * does; an alert rule and an observe-only wrapper (seq in detect mode) raise their alerts and the audit store keeps
 * them; the command's exit status passes through; a policy that needs a deny, a kill before the call or a DENY wrapper
 * is refused before the command runs (exit 2, named), and so is an ordinary user — each with a control that shows the
 * same command runs (or is denied) where the refusal does not apply.
 */
import { scratchDir } from "../../temp.ts";
import { deepStrictEqual as assertEquals, match as assertMatch, ok as assert } from "node:assert/strict";
import type { LifecycleEvent, SyscallEvent, WrapperReport } from "../../../host/events.ts";
import { bpfPrivilegeProblem } from "../../../host/sources/bpf/supervise.ts";
import { compileC } from "../../../tools/build.ts";
import {
  calls,
  ensureUser,
  exists,
  idwrap,
  idwrapAsUser,
  reports,
  ROOT,
  TEST_STORE,
  traced,
  writePolicy,
} from "../../helpers.ts";

const FIXTURE = `${ROOT}build/tests/bpf_calls`;
await Deno.mkdir(`${ROOT}build/tests`, { recursive: true });
await compileC(`${ROOT}tests/sources/bpf/fixtures/calls.c`, FIXTURE);

const lifecycle = (events: { kind: string }[], kind: LifecycleEvent["kind"]) =>
  events.filter((e): e is LifecycleEvent => e.kind === kind);
const named = (events: SyscallEvent[], name: string) => events.filter((e) => e.syscall === name);

Deno.test("idwrap trace --source bpf prints the calls the program makes, with results and its child", async () => {
  const dir = `${await scratchDir()}/made-by-calls`;
  const t = await traced("trace", ["--source", "bpf", "-e", "%file,%process,write,getppid,getpid,wait4"], [
    FIXTURE,
    "calls",
    dir,
  ]);
  assertEquals(t.code, 0, t.stderr);
  const syscalls = calls(t.events);
  assert(syscalls.length > 0, "no call was traced");
  assert(syscalls.every((e) => e.source === "bpf"), "every call comes from the bpf source");
  const [main] = lifecycle(t.events, "exec").filter((e) => e.program.exe === FIXTURE);
  assert(main, `no exec of ${FIXTURE}: ${JSON.stringify(lifecycle(t.events, "exec"))}`);
  const own = syscalls.filter((e) => e.pid === main.pid);
  // What calls.c does, in order, each seen before and after it ran, with its arguments and result.
  const mkdir = named(own, "mkdir");
  assertEquals(mkdir.map((e) => [e.phase, e.decoded.path, e.ret]), [["pre", dir, undefined], ["post", dir, 0]]);
  assertEquals(named(own, "rmdir").map((e) => [e.phase, e.decoded.path, e.ret]), [["pre", dir, undefined], [
    "post",
    dir,
    0,
  ]]);
  assert(named(own, "openat").some((e) => e.phase === "post" && e.decoded.path === "/etc/hostname" && e.ret! >= 0));
  assert(named(own, "write").some((e) => e.phase === "post" && e.ret === 15), "the 15-byte marker write");
  assert(named(own, "getppid").length >= 2, "getppid, before and after");
  const order = own.filter((e) => e.phase === "pre" && ["getppid", "mkdir", "rmdir", "wait4"].includes(e.syscall))
    .map((e) => e.syscall);
  assertEquals(order.slice(-4), ["getppid", "mkdir", "rmdir", "wait4"]);
  // The child: its spawn, its getpid and its exit 7, and the program's own exit 0.
  const child = lifecycle(t.events, "spawn").find((e) => e.ppid === main.pid);
  assert(child, "the forked child was seen");
  assert(syscalls.some((e) => e.pid === child.pid && e.syscall === "getpid"), "the child's getpid");
  assertEquals(lifecycle(t.events, "exit").find((e) => e.pid === child.pid)?.exitCode, 7);
  assertEquals(lifecycle(t.events, "exit").find((e) => e.pid === main.pid)?.exitCode, 0);
  assert(!(await exists(dir)), "the program removed its directory");
});

Deno.test("idwrap run --source bpf: an alert rule alerts, the audit store keeps it, the exit status passes through", async () => {
  const policy = await writePolicy(`version: 1
name: bpf-alert
rules:
  - id: bpf-reads-hostname
    syscalls: [openat]
    path: /etc/hostname
    action: alert
`);
  const dir = `${await scratchDir()}/d`;
  // The program exits 0; the shell around it exits 5 and then a killed shell gives 128 + 9.
  const t = await traced("run", ["--source", "bpf", "-p", policy], [
    "/bin/sh",
    "-c",
    `${FIXTURE} calls ${dir}; exit 5`,
  ]);
  assertEquals(t.code, 5, t.stderr);
  const alerted = calls(t.events).filter((e) => e.alerts?.includes("bpf-reads-hostname"));
  assert(alerted.length >= 1, `no alert: ${t.stderr}`);
  assert(alerted.every((e) => e.source === "bpf" && e.decoded.path === "/etc/hostname"));
  const q = await idwrap(["audit", "query", "--store", TEST_STORE, "--queue", "alerts", "--json"]);
  assertEquals(q.code, 0, q.stderr);
  const kept = q.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>)
    .filter((r) => r["rule.name"] === "bpf-reads-hostname");
  assert(kept.length >= 1, `the alert is not in the audit store:\n${q.stdout}`);
  const killed = await idwrap(["run", "--source", "bpf", "-p", policy, "--", "/bin/sh", "-c", "kill -9 $$"]);
  assertEquals(killed.code, 128 + 9, killed.stderr);
});

Deno.test("idwrap run --source bpf: seq in detect mode (an observer that may kill late) alerts on an untrained program", async () => {
  const policy = await writePolicy(`version: 1
name: bpf-seq
wrappers:
  - name: seq
    settings: { mode: detect, program: bpf-cli-untrained-${crypto.randomUUID()}, threshold: 3 }
    activate: { program: ${FIXTURE} }
`);
  const dir = `${await scratchDir()}/d`;
  const t = await traced("run", ["--source", "bpf", "-p", policy], [FIXTURE, "calls", dir]);
  assertEquals(t.code, 0, t.stderr);
  const alerts = reports(t.events, "alert").filter((r: WrapperReport) => r.wrapper === "seq");
  assert(alerts.length >= 1, `seq did not alert: ${t.stderr}`);
  assert(alerts.every((r) => r.source === "bpf"));
});

Deno.test("idwrap run --source bpf refuses a deny rule, a kill rule and a DENY wrapper before the command runs", async () => {
  const tmp = await scratchDir();
  const marker = `${tmp}/ran`;
  const rules = await writePolicy(`version: 1
name: bpf-deny
rules:
  - id: no-hostname
    syscalls: [openat]
    path: /etc/hostname
    action: deny
  - id: kill-mkdir
    syscalls: [mkdir]
    action: kill
  - id: just-alert
    syscalls: [rmdir]
`);
  const command = ["/bin/sh", "-c", `: > ${marker}; cat /etc/hostname`];
  const refused = await idwrap(["run", "--source", "bpf", "-p", rules, "--", ...command]);
  assertEquals(refused.code, 2, refused.stderr);
  assertMatch(refused.stderr, /only observes/);
  assertMatch(refused.stderr, /rule "no-hostname" \(action deny\) on openat/);
  assertMatch(refused.stderr, /rule "kill-mkdir" \(action kill\) on mkdir/);
  assert(!refused.stderr.includes("just-alert"), "an alert rule is not a reason to refuse");
  assert(!(await exists(marker)), "the command ran although the policy was refused");
  // Control: the same policy on seccomp runs the command and denies the read.
  const enforced = await idwrap(["run", "--source", "seccomp", "-p", rules, "--", ...command]);
  assert(await exists(marker), `the command did not run under seccomp: ${enforced.stderr}`);
  assert(enforced.code !== 0, "cat /etc/hostname was denied under seccomp");
  await Deno.remove(marker);

  const wrapper = await writePolicy(`version: 1
name: bpf-deny-wrapper
wrappers:
  - name: deny_path
    settings: { path: /etc/hostname }
`);
  const byWrapper = await idwrap(["run", "--source", "bpf", "-p", wrapper, "--", ...command]);
  assertEquals(byWrapper.code, 2, byWrapper.stderr);
  assertMatch(byWrapper.stderr, /policy.yaml: wrapper "deny_path" declares DENY on open, openat, openat2, creat/);
  assert(!(await exists(marker)), "the command ran although the wrapper was refused");
  // trace has no deny: it runs on bpf (and the command with it).
  const trace = await idwrap(["trace", "--source", "bpf", "-o", `${tmp}/t.txt`, "--", ...command]);
  assertEquals(trace.code, 0, trace.stderr);
  assert(await exists(marker));
});

Deno.test("idwrap run|trace --source bpf: an ordinary user is refused with why (exit 2); root runs the same command", async () => {
  const uid = await ensureUser("idwrap-alice");
  const home = await scratchDir({ prefix: "idwrap-bpf-alice-" });
  await Deno.chmod(home, 0o755);
  const marker = `${home}/u/ran`; // in the home idwrapAsUser gives the user, so the command could write it
  const policy = await writePolicy("version: 1\nname: observe\nobserve: [mkdir]\n");
  await Deno.chmod(policy, 0o644);
  await Deno.chmod(policy.replace(/\/policy\.yaml$/, ""), 0o755);
  for (const args of [["run", "-p", policy], ["trace"]]) {
    const r = await idwrapAsUser(uid, `${home}/u`, [
      ...args,
      "--source",
      "bpf",
      "--",
      "/bin/sh",
      "-c",
      `: > ${marker}`,
    ]);
    assertEquals(r.code, 2, `${args[0]}: ${r.stderr}`);
    assertMatch(r.stderr, new RegExp(`uid ${uid} lacks CAP_BPF and CAP_PERFMON \\(or CAP_SYS_ADMIN\\)`));
    assertMatch(r.stderr, /--source seccomp/);
    assert(!(await exists(marker)), `${args[0]}: the command ran`);
  }
  // Control: root, the same command, runs it.
  const root = await idwrap(["run", "--source", "bpf", "-p", policy, "--", "/bin/sh", "-c", `: > ${marker}`]);
  assertEquals(root.code, 0, root.stderr);
  assert(await exists(marker));
  // The capability check itself, on status texts: CAP_SYS_ADMIN alone, or CAP_BPF with CAP_PERFMON.
  assertEquals(bpfPrivilegeProblem("CapEff:\t0000000000200000\n"), undefined);
  assertEquals(bpfPrivilegeProblem("CapEff:\t000000c000000000\n"), undefined);
  assertMatch(bpfPrivilegeProblem("CapEff:\t0000008000000000\n")!, /lacks CAP_BPF/);
});

Deno.test("--source auto: seccomp (saying the hybrid can be used); IDWRAP_AUTO_SOURCE=hybrid|bpf picks those", async () => {
  const policy = await writePolicy("version: 1\nname: observe\nobserve: [mkdir]\n");
  await Deno.chmod(policy, 0o644);
  await Deno.chmod(policy.replace(/\/policy\.yaml$/, ""), 0o755);
  const cmd = ["run", "--source", "auto", "-v", "-p", policy, "--", "/bin/true"];
  const plain = await idwrap(cmd);
  assertEquals(plain.code, 0, plain.stderr);
  assertMatch(plain.stderr, /event source (kmod|seccomp): .*(hybrid can be used here|kernel module is loaded)/);
  // Asked for: root on this machine, no module: the hybrid, and why.
  const run = await idwrap(cmd, { env: { IDWRAP_AUTO_SOURCE: "hybrid" } });
  assertEquals(run.code, 0, run.stderr);
  assertMatch(run.stderr, /event source (kmod|hybrid): .*(BPF can be loaded here|kernel module is loaded)/);
  // bpf: bpf alone for a policy that only observes, the hybrid (naming what may decide) for one that denies.
  const observing = await idwrap(cmd, { env: { IDWRAP_AUTO_SOURCE: "bpf" } });
  assertEquals(observing.code, 0, observing.stderr);
  assertMatch(observing.stderr, /event source (kmod|bpf): .*(policies only observe|kernel module is loaded)/);
  const denying = await writePolicy(
    "version: 1\nname: deny\nrules:\n  - id: no-mkdir\n    syscalls: [mkdir]\n    action: deny\n",
  );
  const denied = await idwrap(["run", "-v", "-p", denying, "--", "/bin/true"], { env: { IDWRAP_AUTO_SOURCE: "bpf" } });
  assertEquals(denied.code, 0, denied.stderr);
  assertMatch(
    denied.stderr,
    /event source (kmod|hybrid): .*(IDWRAP_AUTO_SOURCE=bpf, but the policies need more than bpf \(.*rule "no-mkdir" \(action deny\)|kernel module is loaded)/,
  );
  // An alert rule on execve's argv: bpf copies argv at execve's enter, so bpf alone serves it.
  const argv = await writePolicy(
    'version: 1\nname: argv\nrules:\n  - id: nc-e\n    syscalls: [execve]\n    argv: ["-e"]\n    action: alert\n',
  );
  const argvRun = await idwrap(["run", "-v", "-p", argv, "--", "/bin/true"], { env: { IDWRAP_AUTO_SOURCE: "bpf" } });
  assertEquals(argvRun.code, 0, argvRun.stderr);
  assertMatch(argvRun.stderr, /event source (kmod|bpf): .*(policies only observe|kernel module is loaded)/);
  // Named --source bpf: no warning that the rule never matches (it matches: tests/sources/bpf/argv_test.ts).
  const argvBpf = await idwrap(["run", "--source", "bpf", "-p", argv, "--", "/bin/true"]);
  assertEquals(argvBpf.code, 0, argvBpf.stderr);
  assert(!/never matches/.test(argvBpf.stderr), argvBpf.stderr);
  // trace keeps seccomp unless the variable names another source (the suites' override): the ring cannot fault in a
  // path strace would print.
  const t = await traced("trace", ["--source", "auto", "-v", "-e", "mkdir"], ["/bin/true"]);
  assertEquals(t.code, 0, t.stderr);
  assertMatch(t.stderr, /event source (kmod|seccomp):/);
  const tb = await traced("trace", ["--source", "auto", "-v", "-e", "mkdir"], ["/bin/true"], {
    env: { IDWRAP_AUTO_SOURCE: "bpf" },
  });
  assertEquals(tb.code, 0, tb.stderr);
  assertMatch(tb.stderr, /event source (kmod|bpf):/);
  // A value it does not know: refused before anything runs, naming the variable and what it expects.
  for (const verb of [["run", "-p", policy], ["trace"]]) {
    const bad = await idwrap([...verb, "--", "/bin/true"], { env: { IDWRAP_AUTO_SOURCE: "ebpf" } });
    assertEquals(bad.code, 2, bad.stderr);
    assertMatch(bad.stderr, /IDWRAP_AUTO_SOURCE=ebpf: expected seccomp, hybrid or bpf/);
  }
  // Control: an ordinary user cannot load BPF: auto gives seccomp and says why.
  const uid = await ensureUser("idwrap-alice");
  const home = await scratchDir({ prefix: "idwrap-bpf-auto-" });
  await Deno.chmod(home, 0o755);
  for (const want of ["hybrid", "bpf"]) {
    const user = await idwrapAsUser(uid, `${home}/u`, cmd, { env: { IDWRAP_AUTO_SOURCE: want } });
    assertEquals(user.code, 0, user.stderr);
    assertMatch(user.stderr, /event source (kmod|seccomp): .*the hybrid cannot be used \(uid \d+ lacks CAP_BPF/);
  }
  await Deno.remove(home, { recursive: true });
  for (const verb of ["run", "trace"]) {
    const help = await idwrap([verb, "--help"]);
    assertMatch(help.stdout.replace(/\s+/g, " "), /kmod, seccomp, hybrid \(root.*or bpf/, verb);
  }
});

Deno.test("idwrap doctor runs the bpf source for real and lists the sources this machine can use", async () => {
  const r = await idwrap(["doctor", "--json"]);
  const checks = JSON.parse(r.stdout) as { feature: string; ok: boolean; detail: string }[];
  const by = (f: string) => checks.find((c) => c.feature === f);
  assertEquals(by("bpf source")?.ok, true, JSON.stringify(by("bpf source")));
  assertMatch(by("bpf source")!.detail, /^observed \/bin\/cat: exit 0, [1-9]\d* calls seen/);
  assertMatch(by("usable sources")!.detail, /bpf \(observation only\)/);
  assertEquals(by("usable sources")!.detail.includes("seccomp"), by("seccomp source")?.ok);
  // The hybrid, run for real: cat's open denied on seccomp, nothing lost.
  assertEquals(by("hybrid source")?.ok, true, JSON.stringify(by("hybrid source")));
  assertMatch(by("hybrid source")!.detail, /exit [1-9]\d*, 1 denied on seccomp, [1-9]\d* calls seen, 0 records lost/);
  assertMatch(by("usable sources")!.detail, /hybrid/);
  assertMatch(by("active source")!.detail, /^(kmod: |seccomp: .*the hybrid can be used here)/);
  // An ordinary user: the bpf source is not usable, and doctor says why.
  const uid = await ensureUser("idwrap-alice");
  const home = await scratchDir({ prefix: "idwrap-bpf-doctor-" });
  await Deno.chmod(home, 0o755);
  const user = await idwrapAsUser(uid, `${home}/u`, ["doctor", "--json"]);
  const theirs = JSON.parse(user.stdout) as typeof checks;
  const bpf = theirs.find((c) => c.feature === "bpf source");
  assertEquals(bpf?.ok, false, user.stdout);
  assertMatch(bpf!.detail, /lacks CAP_BPF and CAP_PERFMON/);
  assert(!theirs.find((c) => c.feature === "usable sources")!.detail.includes("bpf"));
  assertEquals(theirs.find((c) => c.feature === "hybrid source")?.ok, false);
  assertMatch(theirs.find((c) => c.feature === "active source")!.detail, /^(kmod|seccomp): /);
});

Deno.test("idwrap trace --source bpf: a program that cannot run exits 127, and the tree's first process is named", async () => {
  const t = await traced("trace", ["--source", "bpf"], ["/nonexistent/program"]);
  assertEquals(t.code, 127, t.stderr);
  const [first] = lifecycle(t.events, "spawn");
  // The launcher, read while it waits for "go" (it is gone by the time the ring is read).
  assertMatch(first?.program.exe ?? "", /\/idwrap-launch$/, JSON.stringify(first));
  const exec = calls(t.events).find((e) => e.syscall === "execve" && e.phase === "post");
  assertEquals([exec?.decoded.path, exec?.errno], ["/nonexistent/program", "ENOENT"]);
});
