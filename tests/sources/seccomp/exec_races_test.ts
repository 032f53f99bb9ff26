/**
 * Two ways past the exec check found by the red team (issue 13, item 3), real processes under the real filter:
 * - F2: the path does not resolve when idwrap checks it (a thread flips it between a missing name and the denied
 *   program): whatever then runs must still be decided again on the file the kernel ran.
 * - F3: a sibling thread's notified call served while the exec is in flight must not end the exec's pending state:
 *   the new program is still reported (activation binds its wrappers) and re-checked before any of its calls runs.
 * Each attack runs unwrapped first (it must win there, or the test proves nothing), then wrapped: zero wins.
 */
import { scratchDir, scratchFile } from "../../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { ensureUser, IDWRAP, prog, ROOT, run, writePolicy } from "../../helpers.ts";

const WHO = ["root", "an ordinary user"] as const;

/** A temporary directory the test user (if any) owns, and the command prefix that runs as that user. */
async function setUp(who: typeof WHO[number], prefix: string): Promise<{ dir: string; as: string[] }> {
  const dir = await scratchDir({ prefix });
  await Deno.chmod(dir, 0o755);
  if (who === "root") return { dir, as: [] };
  const uid = await ensureUser("idwrap-alice");
  await Deno.chown(dir, uid, uid);
  return { dir, as: ["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "--"] };
}

async function deniedProgram(dir: string): Promise<{ denied: string; policy: string }> {
  const denied = `${dir}/pwned`;
  await Deno.copyFile(prog("pwned"), denied);
  await Deno.chmod(denied, 0o755);
  // The re-check runs at the new image's first notified call: for a dynamic program, the loader's first open.
  const policy = await writePolicy(`
rules:
  - { id: no-pwned, syscalls: [execve, execveat], path: "${denied}", action: deny, errno: EACCES }
  - { id: opens-examined, syscalls: [openat], path: /nonexistent/examined, action: alert }
`);
  return { denied, policy };
}

const pwned = (out: string) => out.split("PWNED").length - 1;

/** Runs `cmd` unwrapped up to `tries` times until `won` says the attack worked; fails the test if it never does. */
async function control(cmd: string[], won: (out: string) => boolean, tries = 5): Promise<void> {
  let out = "";
  for (let i = 0; i < tries && !won(out); i++) {
    const r = await run(cmd[0], cmd.slice(1));
    out = r.stdout + r.stderr;
  }
  assert(won(out), `the attack should win unwrapped: ${out.slice(-300)}`);
}

for (const who of WHO) {
  Deno.test(`an exec whose path does not resolve at the check is re-decided on what runs (F2, ${who})`, async () => {
    const { dir, as } = await setUp(who, "idwrap-exec-noent-");
    const { denied, policy } = await deniedProgram(dir);
    const cmd = [...as, prog("race_exec"), `${dir}/missing`, denied, "1000"];
    await control(cmd, (out) => pwned(out) > 0);
    const log = await scratchFile({ suffix: ".jsonl" });
    const r = await run(IDWRAP, ["run", "--json", "-o", log, "-p", policy, "--", ...cmd]);
    assert(/tries 1000 ran 0/.test(r.stdout), r.stdout.slice(-200) + r.stderr.slice(-400));
    assertEquals(pwned(r.stdout), 0, `the denied program ran ${pwned(r.stdout)} times`);
    const raced = (await Deno.readTextFile(log)).split("\n").filter((l) => l.includes("exec raced"));
    assert(raced.length > 0, "no race was caught: the attack did not run");
  });

  Deno.test(`a sibling's notified calls during an exec do not hide it from the re-check (F3, ${who})`, async () => {
    const { dir, as } = await setUp(who, "idwrap-exec-hide-");
    const { denied, policy } = await deniedProgram(dir);
    const cmd = [...as, prog("race_exec_hide"), "/bin/true", denied, "1000"];
    await control(cmd, (out) => pwned(out) > 0);
    const r = await run(IDWRAP, ["run", "-p", policy, "--", ...cmd]);
    assert(/tries 1000 ran [1-9]/.test(r.stdout), r.stdout.slice(-200) + r.stderr.slice(-400));
    assertEquals(pwned(r.stdout), 0, `the denied program ran ${pwned(r.stdout)} times`);
  });

  Deno.test(`a sibling's notified calls during an exec do not keep a wrapper from binding (F3, ${who})`, async () => {
    const { dir, as } = await setUp(who, "idwrap-exec-act-");
    const victim = `${dir}/victim`, secret = `${dir}/secret`;
    await Deno.copyFile(prog("read_file"), victim);
    await Deno.chmod(victim, 0o755);
    await Deno.writeTextFile(secret, "SECRET\n");
    if (as.length) {
      const uid = await ensureUser("idwrap-alice");
      await Deno.chown(secret, uid, uid);
    }
    const policy = await writePolicy(`
wrappers:
  - name: deny_path
    settings:
      path: ${secret}
    activate:
      program: ${victim}
`);
    const tries = 300;
    const cmd = [...as, prog("exec_hide"), String(tries), victim, secret];
    await control(cmd, (out) => out.includes(`exit0 ${tries}`), 1);
    const r = await run(IDWRAP, ["run", "-p", policy, "--", ...cmd]);
    const read = r.stdout.split("READ").length - 1, refused = r.stdout.split("DENIED").length - 1;
    assertEquals(read, 0, `the victim read the file ${read} times of ${tries}: ${r.stdout.slice(-300)}`);
    assertEquals(refused, tries, r.stdout.slice(-300) + r.stderr.slice(-400));
    assert(new RegExp(`tries ${tries} exit0 0`).test(r.stdout), r.stdout.slice(-200));
  });
}

Deno.test("a static program a racing exec ran is re-decided at its first call, with no open examined (root)", async () => {
  // No loader, and no open the policy examines: the new image's first notified call is its TLS set-up (arch_prctl,
  // notified wherever execs are examined), before main. Before, such a program ran to its end unchecked.
  const { dir } = await setUp("root", "idwrap-exec-static-");
  const denied = `${dir}/pwned`;
  const cc = await run("gcc", ["-static", "-O2", "-o", denied, `${ROOT}tests/progs/pwned.c`]);
  assertEquals(cc.code, 0, cc.stderr);
  const policy = await writePolicy(`
rules:
  - { id: no-pwned, syscalls: [execve, execveat], path: "${denied}", action: deny, errno: EACCES }
`);
  const cmd = [prog("race_exec"), `${dir}/missing`, denied, "1000"];
  await control(cmd, (out) => pwned(out) > 0);
  const r = await run(IDWRAP, ["run", "-p", policy, "--", ...cmd]);
  assert(/tries 1000 ran 0/.test(r.stdout), r.stdout.slice(-200) + r.stderr.slice(-400));
  assertEquals(pwned(r.stdout), 0, `the denied program ran ${pwned(r.stdout)} times`);
});
