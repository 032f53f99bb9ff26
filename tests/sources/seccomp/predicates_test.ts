/**
 * Rules' integer conditions compiled into the seccomp filter (issue 15; docs/seccomp.md, "Argument predicates"): a call
 * no rule can match never leaves the kernel, a call one can match is notified and decided as before. Real processes
 * (tests/progs/arg_calls.c) under a real filter; the run's summary counts the notifications. Each test has its
 * controls in it: the same calls unwrapped succeed, and the calls that must be notified are.
 */
import { scratchDir } from "../../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { ensureUser, idwrapAsUser, prog, run, traced, writePolicy } from "../../helpers.ts";

const N = 300;
const ARG_CALLS = prog("arg_calls");
/** More than the calls of a run that makes none of the N (exec, the loader's opens, the credential calls). */
const FEW = 100;

/** `arg_calls ARGS` under `policy` on the seccomp source: its output line and the tree's summary. */
async function wrapped(policy: string, args: string[]) {
  const r = await traced("run", ["--source", "seccomp", "-p", policy], [ARG_CALLS, ...args]);
  assertEquals(r.code, 0, r.stderr);
  assert(r.summary, r.stderr);
  return { line: r.stdout.trim(), notified: r.summary.notifications, denied: r.summary.denied, stderr: r.stderr };
}

async function bare(args: string[]): Promise<string> {
  const r = await run(ARG_CALLS, args);
  assertEquals(r.code, 0, r.stderr);
  return r.stdout.trim();
}

async function target(): Promise<{ dir: string; file: string; other: string }> {
  const dir = await scratchDir({ prefix: "idwrap-pred-" });
  await Deno.chmod(dir, 0o755);
  const file = `${dir}/target`, other = `${dir}/other`;
  for (const f of [file, other]) {
    await Deno.writeTextFile(f, "x");
    await Deno.chmod(f, 0o666);
  }
  return { dir, file, other };
}

const writeDeny = (file: string) =>
  writePolicy(`version: 1
name: pred-open
rules:
  - id: target-write
    syscalls: [open, openat, openat2, creat]
    path: ${file}
    flags: write
    action: deny
    errno: EACCES
`);

Deno.test("a write-deny's opens: read-only opens of its file are not notified; write-opens are, and denied", async () => {
  const { dir, file, other } = await target();
  try {
    const policy = await writeDeny(file);
    // Controls: unwrapped, every open of the file works, read or write, the high word's garbage too.
    assertEquals(await bare(["read", file, String(N)]), `read ok ${N} errno 0`);
    assertEquals(await bare(["write", file, String(N)]), `write ok ${N} errno 0`);
    assertEquals(await bare(["highwrite", file, String(N)]), `highwrite ok ${N} errno 0`);

    const reads = await wrapped(policy, ["read", file, String(N)]);
    assertEquals(reads.line, `read ok ${N} errno 0`);
    assert(reads.notified < FEW, `read-only opens notified: ${reads.notified}\n${reads.stderr}`);

    const writes = await wrapped(policy, ["write", file, String(N)]);
    assertEquals(writes.line, `write ok 0 errno 13`); // EACCES
    assert(writes.notified >= N && writes.denied === N, JSON.stringify(writes));

    // The flags register is an int: garbage in its high word still makes a write-open, and is still caught.
    const high = await wrapped(policy, ["highwrite", file, String(N)]);
    assertEquals(high.line, `highwrite ok 0 errno 13`);
    assert(high.notified >= N && high.denied === N, JSON.stringify(high));

    // Write-opens of another file are notified (the filter sees no path) and allowed by the supervisor.
    const others = await wrapped(policy, ["write", other, String(N)]);
    assertEquals(others.line, `write ok ${N} errno 0`);
    assert(others.notified >= N && others.denied === 0, JSON.stringify(others));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("… and as an ordinary user: the write-open with the high word's garbage is denied", async () => {
  const { dir, file } = await target();
  const uid = await ensureUser("idwrap-alice");
  const home = await scratchDir({ prefix: "idwrap-pred-user-" });
  await Deno.chmod(home, 0o755);
  try {
    // In a directory the user can read (writePolicy's is root's alone).
    const policy = `${dir}/policy.yaml`;
    await Deno.writeTextFile(policy, await Deno.readTextFile(await writeDeny(file)));
    await Deno.chmod(policy, 0o644);
    const asUser = (args: string[]) =>
      idwrapAsUser(uid, `${home}/home`, ["run", "--source", "seccomp", "-p", policy, "--", ARG_CALLS, ...args]);
    const control = await run("setpriv", [
      `--reuid=${uid}`,
      `--regid=${uid}`,
      "--clear-groups",
      "--",
      ARG_CALLS,
      "highwrite",
      file,
      "10",
    ]);
    assertEquals(control.stdout.trim(), "highwrite ok 10 errno 0", control.stderr);
    const r = await asUser(["highwrite", file, "10"]);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stdout.trim(), "highwrite ok 0 errno 13", r.stderr);
    const reads = await asUser(["read", file, "10"]);
    assertEquals(reads.stdout.trim(), "read ok 10 errno 0", reads.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("a signal rule on tgkill: other signals are not notified; its signal is, and denied (high word too)", async () => {
  const policy = await writePolicy(`version: 1
name: pred-signal
rules:
  - id: no-usr1
    syscalls: [tgkill]
    signal: SIGUSR1
    action: deny
`);
  assertEquals(await bare(["signal", "10", String(N)]), `signal ok ${N} errno 0`);
  assertEquals(await bare(["highsignal", "10", String(N)]), `highsignal ok ${N} errno 0`);

  const usr2 = await wrapped(policy, ["signal", "12", String(N)]);
  assertEquals(usr2.line, `signal ok ${N} errno 0`);
  assert(usr2.notified < FEW, `SIGUSR2 tgkills notified: ${usr2.notified}`);

  const usr1 = await wrapped(policy, ["signal", "10", String(N)]);
  assertEquals(usr1.line, `signal ok 0 errno 1`); // EPERM
  assert(usr1.notified >= N && usr1.denied === N, JSON.stringify(usr1));

  const high = await wrapped(policy, ["highsignal", "10", String(N)]);
  assertEquals(high.line, `highsignal ok 0 errno 1`);
  assert(high.denied === N, JSON.stringify(high));
});

Deno.test("a family rule on connect: the family is in memory, so every connect is notified; inet denied, unix not", async () => {
  const policy = await writePolicy(`version: 1
name: pred-family
rules:
  - id: no-inet
    syscalls: [connect]
    family: inet
    action: deny
`);
  // Unwrapped: refused by the network (ECONNREFUSED 111, ENOENT 2), never EPERM.
  assertEquals(await bare(["inet", "20"]), "inet ok 0 errno 111");
  const inet = await wrapped(policy, ["inet", "20"]);
  assertEquals(inet.line, "inet ok 0 errno 1");
  assertEquals(inet.denied, 20);
  const unix = await wrapped(policy, ["unix", "/nonexistent/socket", String(N)]);
  assertEquals(unix.line, `unix ok 0 errno 2`);
  // Classic BPF cannot read the sockaddr: a connect of any family waits for the supervisor (docs/seccomp.md).
  assert(unix.notified >= N && unix.denied === 0, JSON.stringify(unix));
});

Deno.test("a rule without an integer condition still has every call it names notified", async () => {
  const { dir, file } = await target();
  try {
    // The write-deny, and a path-only alert on the same opens: read-only opens must reach the supervisor again.
    const policy = await writePolicy(`version: 1
name: pred-mixed
rules:
  - id: target-write
    syscalls: [openat]
    path: ${file}
    flags: write
    action: deny
  - id: target-any
    syscalls: [openat]
    path: ${dir}/none
    action: deny
`);
    const reads = await wrapped(policy, ["read", file, String(N)]);
    assertEquals(reads.line, `read ok ${N} errno 0`);
    assert(reads.notified >= N, `read-only opens notified: ${reads.notified}`);
    const writes = await wrapped(policy, ["write", file, String(N)]);
    assertEquals(writes.line, "write ok 0 errno 1");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a write-only open rule beside an exec deny: the loader's opens stay notified, and a racing exec never runs its main", async () => {
  // The exec is checked again at the new image's first notified call (docs/seccomp.md, "exec"): for a dynamic program
  // the loader's first open, which a write-only open rule alone would let through unnotified.
  const dir = await scratchDir({ prefix: "idwrap-pred-race-" });
  try {
    const denied = `${dir}/pwned`;
    await Deno.copyFile(prog("pwned"), denied);
    await Deno.chmod(denied, 0o755);
    const policy = await writePolicy(`version: 1
name: pred-exec
rules:
  - { id: no-pwned, syscalls: [execve, execveat], path: "${denied}", action: deny, errno: EACCES }
  - { id: preload-write, syscalls: [open, openat, openat2, creat], path: /etc/ld.so.preload, flags: write, action: deny }
`);
    const bare = await run(prog("race_exec"), ["/bin/true", denied, "500"]);
    assert(bare.stdout.includes("PWNED"), `the denied program runs unwrapped: ${bare.stdout.slice(-200)}`);
    const r = await traced("run", ["--source", "seccomp", "-p", policy], [
      prog("race_exec"),
      "/bin/true",
      denied,
      "1000",
    ]);
    assert(/tries 1000 ran [1-9]/.test(r.stdout), r.stdout.slice(-200) + r.stderr.slice(-400));
    assert(!r.stdout.includes("PWNED"), `the denied program ran ${r.stdout.split("PWNED").length - 1} times`);
    const raced = r.events.filter((e) => e.kind === "syscall" && e.reason?.includes("exec raced"));
    assert(raced.length > 0, "no race was caught: the attack did not run");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
