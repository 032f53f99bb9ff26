/**
 * An exec rule against the dynamic loader's way round it (red team rt8 F9): `ld.so PROG` execs only the loader, which
 * opens PROG and maps it with PROT_EXEC. On the seccomp source an executable mmap of the file a deny or kill exec rule
 * names (by identity) is decided as an exec of it (host/policy/rule_decider.ts, stopsProgram): killed, or EPERM so the
 * loader fails. Each test has its control: the same command unwrapped runs the program (its marker is printed). As
 * root and as an ordinary user in the tree; a hard link is the same file; other executable mappings (the program's
 * own libraries) still run; and only such policies make mmap wait (the filter's predicate on PROT_EXEC).
 */
import { scratchDir } from "../../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { buildInterest } from "../../../host/wss/interest.ts";
import { loadPolicy } from "../../../host/policy/policy.ts";
import { calls, ensureUser, run, traced, writePolicy } from "../../helpers.ts";

const LOADER = "/lib64/ld-linux-x86-64.so.2";
const MARK = "loader-ran-the-program";

/** A fresh directory (readable by anyone) holding a copy of echo: the listed program. */
async function stage(): Promise<{ dir: string; target: string }> {
  const dir = await scratchDir({ prefix: "idwrap-execfix-" });
  await Deno.chmod(dir, 0o755);
  const target = `${dir}/listed`;
  await Deno.copyFile("/usr/bin/echo", target);
  await Deno.chmod(target, 0o755);
  return { dir, target };
}

const policyFor = (target: string, action: "kill" | "deny") =>
  writePolicy(`version: 2
name: exec-loader
rules:
  - id: no-listed
    syscalls: "%exec"
    path: ${target}
    action: ${action}
`);

/** Runs `sh -c script` wrapped (seccomp, the trace in JSON) and unwrapped (the control). */
async function both(policy: string, script: string, as: string[] = []) {
  const bare = await run("sh", ["-c", script]);
  const wrapped = await traced("run", ["--source", "seccomp", "-p", policy], [...as, "sh", "-c", script]);
  return { bare, wrapped };
}

for (const action of ["kill", "deny"] as const) {
  Deno.test(`exec rule (${action}): ld.so PROG does not run PROG; the mmap is reported as the rule`, async () => {
    const { dir, target } = await stage();
    try {
      const policy = await policyFor(target, action);
      const script = `${LOADER} ${target} ${MARK}; echo rc=$?`;
      const { bare, wrapped } = await both(policy, script);
      assert(bare.stdout.includes(MARK), `control: unwrapped the loader runs it: ${bare.stdout}`);
      assert(!wrapped.stdout.includes(MARK), `wrapped it ran: ${wrapped.stdout}`);
      assert(!wrapped.stdout.includes("rc=0"), wrapped.stdout);
      if (action === "kill") assert(wrapped.stdout.includes("rc=137"), wrapped.stdout);
      const maps = calls(wrapped.events, "pre").filter((e) => e.syscall === "mmap" && e.alerts?.includes("no-listed"));
      assertEquals(maps.length, 1, JSON.stringify(calls(wrapped.events).filter((e) => e.syscall === "mmap")));
      assertEquals(maps[0].verdict, action === "kill" ? "kill" : "deny EPERM");
      assertEquals(maps[0].decoded.path, target);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("exec rule: an ordinary user runs a listed program through ld.so and a hard link of it: killed, 500 times", async () => {
  const uid = await ensureUser("idwrap-bob");
  const { dir, target } = await stage();
  try {
    await Deno.link(target, `${dir}/hard`);
    const policy = await policyFor(target, "kill");
    const as = ["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "--"];
    const script = `n=0; for i in $(seq 250); do ${LOADER} ${target} ${MARK}; ${LOADER} ${dir}/hard ${MARK}; done; ` +
      `id -u; /bin/echo still-runs`;
    const bare = await run("setpriv", [...as.slice(1), "sh", "-c", script]);
    assertEquals(bare.stdout.split(MARK).length - 1, 500, "control: unwrapped each run prints the marker");
    const { stdout, events } = await traced("run", ["--source", "seccomp", "-p", policy], [...as, "sh", "-c", script]);
    assert(!stdout.includes(MARK), `a run printed the marker: ${stdout.slice(0, 400)}`);
    assert(stdout.includes(`${uid}\n`) && stdout.includes("still-runs"), `other programs run: ${stdout.slice(-200)}`);
    const kills = calls(events, "pre").filter((e) => e.syscall === "mmap" && e.verdict === "kill");
    assertEquals(kills.length, 500);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("exec rule: only a deny or kill exec rule with a path makes executable mmaps wait", async () => {
  const interest = async (rules: string) => {
    const file = await writePolicy(`version: 2\nname: i\nrules:\n${rules}`);
    return buildInterest([loadPolicy(file)], [], false).calls.get(9);
  };
  assertEquals(
    (await interest(`  - { id: k, syscalls: "%exec", path: /usr/bin/id, action: kill }\n`))?.when,
    [{ arg: 2, anyBits: 4 }],
  );
  assertEquals(await interest(`  - { id: a, syscalls: "%exec", path: /usr/bin/id, action: alert }\n`), undefined);
  assertEquals(await interest(`  - { id: o, syscalls: [openat], path: /etc/shadow, action: deny }\n`), undefined);
  // A rule on mmap itself wants every mmap.
  assertEquals(
    (await interest(`  - { id: m, syscalls: [mmap, execve], path: /usr/bin/id, action: deny }\n`))?.when,
    undefined,
  );
});

Deno.test("exec rule: a listed setuid program run through ld.so by an ordinary user is killed (rt8 F9, the passwd case)", async () => {
  const uid = await ensureUser("idwrap-bob");
  const dir = await scratchDir({ prefix: "idwrap-execfix-" });
  try {
    await Deno.chmod(dir, 0o755);
    const target = `${dir}/suid-id`;
    await Deno.copyFile("/usr/bin/id", target);
    await Deno.chmod(target, 0o4755);
    const policy = await policyFor(target, "kill");
    const as = ["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "--"];
    const script = `${LOADER} ${target} -u; echo rc=$?`;
    const bare = await run(as[0], [...as.slice(1), "sh", "-c", script]);
    assert(bare.stdout.startsWith(`${uid}\n`), `control: unwrapped it runs (without its privilege): ${bare.stdout}`);
    const { stdout, events } = await traced("run", ["--source", "seccomp", "-p", policy], [...as, "sh", "-c", script]);
    assert(!stdout.includes(`${uid}\n`) && stdout.includes("rc=137"), stdout);
    assert(calls(events, "pre").some((e) => e.syscall === "mmap" && e.verdict === "kill"));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
