/**
 * `idwrap policy test`: the shipped policies' tests pass (this is how CI runs them), a broken rule makes them fail
 * with the event, the expected and the got, the replay enforces (deny, kill) as a live run would, strace -f output
 * replays too, and bad test files and recordings are refused with file, line and field.
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { ensureUser, idwrap, idwrapAsUser, ROOT, run } from "../helpers.ts";

const RECORDINGS = `${ROOT}policies/tests/recordings`;

async function tempDir(): Promise<string> {
  return await scratchDir({ prefix: "idwrap-ptest-" });
}

Deno.test("policy test: the shipped policies' tests pass, from policies/tests/ and from policies/", async () => {
  for (const dir of ["policies/tests/", "policies/"]) {
    const r = await idwrap(["policy", "test", dir], { cwd: ROOT });
    assertEquals(r.code, 0, `${dir}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
    assert(/^ok +policies\/tests\/default\.yaml: /m.test(r.stdout), r.stdout);
    assert(/\d+ passed, 0 failed$/m.test(r.stdout), r.stdout);
    assert(!/^FAIL/m.test(r.stdout), r.stdout);
  }
});

Deno.test("policy test: a copy of the default policy with credential-read's path changed fails its test; the unchanged copy passes", async () => {
  const dir = await tempDir();
  const original = await Deno.readTextFile(`${ROOT}policies/default.yaml`);
  const broken = original.replace(
    `path: "{/etc/shadow,/etc/gshadow,/etc/sudoers}"`,
    `path: "{/etc/shadw,/etc/gshadow}"`,
  );
  assert(broken !== original, "the rule to break is not in policies/default.yaml any more");
  const tests = (await Deno.readTextFile(`${ROOT}policies/tests/default.yaml`)).replaceAll(
    "recordings/",
    `${RECORDINGS}/`,
  );
  for (const [name, policy] of [["good", original], ["broken", broken]]) {
    await Deno.writeTextFile(`${dir}/default.yaml`, policy);
    await Deno.mkdir(`${dir}/tests`, { recursive: true });
    await Deno.writeTextFile(`${dir}/tests/default.yaml`, tests);
    const r = await idwrap(["policy", "test", `${dir}/tests`]);
    if (name === "good") {
      assertEquals(r.code, 0, `the unchanged copy: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
      continue;
    }
    assertEquals(r.code, 1, `the broken copy: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
    // The mismatch names the recorded event (file:line), the expected and the got: baseline still alerts, the rule not.
    const line = r.stdout.split("\n").find((l) => l.includes('openat "/etc/shadow"'));
    assert(line, r.stdout);
    assert(/default-shadow-read\.jsonl:\d+: \d+ openat "\/etc\/shadow" = 3 \(\/usr\/bin\/cat\)/.test(line), line);
    assert(line.includes("expected alert credential-read, baseline.credential-read, got alert baseline: "), line);
    assert(!line.includes("got alert credential-read"), line);
    assert(/^FAIL .*a credential read/m.test(r.stdout) && /1 passed, 1 failed$/m.test(r.stdout), r.stdout);
  }
});

Deno.test("policy test: a replayed deny or kill is the call's outcome, and anything that fired unexpected is a mismatch", async () => {
  const dir = await tempDir();
  const policy = (action: string) =>
    `version: 1\nname: p\nrules:\n  - id: no-hostname\n    syscalls: [openat]\n    path: /etc/hostname\n    action: ${action}\n`;
  const test = (outcome: string, others = "") =>
    `policies: [p.yaml]\ntests:\n  - name: t\n    recording: ${RECORDINGS}/default-shadow-read.jsonl\n    expect:\n` +
    `      - call: {syscall: openat, path: /etc/hostname}\n        ${outcome}\n${others}`;
  const cases: [string, string, string, number, RegExp?][] = [
    ["deny", "deny: EPERM", "", 0],
    ["deny", "deny: true", "", 0],
    ["kill", "kill: true", "", 0],
    ["alert", "alert: no-hostname", "", 0],
    // Controls: the wrong outcome, and a rule firing where nothing was expected.
    ["deny", "kill: true", "", 1, /expected kill, got deny EPERM \(rule no-hostname\)/],
    ["alert", "deny: true", "", 1, /expected deny, got alert no-hostname/],
    [
      "deny",
      "nothing: true",
      "",
      1,
      /openat "\/etc\/hostname" = 3 \(\/usr\/bin\/cat\): expected nothing, got deny EPERM/,
    ],
  ];
  for (const [action, outcome, others, code, message] of cases) {
    await Deno.writeTextFile(`${dir}/p.yaml`, policy(action));
    await Deno.writeTextFile(`${dir}/t.yaml`, test(outcome, others));
    const r = await idwrap(["policy", "test", `${dir}/t.yaml`]);
    assertEquals(r.code, code, `${action} vs ${outcome}: exit ${r.code}\n${r.stdout}\n${r.stderr}`);
    if (message) assert(message.test(r.stdout), r.stdout);
  }
  // Nothing expected of /etc/shadow: the rule's alert there is unexpected, unless `others: any`.
  await Deno.writeTextFile(`${dir}/p.yaml`, policy("alert").replace("/etc/hostname", "/etc/*"));
  await Deno.writeTextFile(`${dir}/t.yaml`, test("alert: no-hostname"));
  const strict = await idwrap(["policy", "test", `${dir}/t.yaml`]);
  assertEquals(strict.code, 1, strict.stdout);
  assert(/openat "\/etc\/shadow" = 3 \(\/usr\/bin\/cat\): expected nothing, got alert no-hostname/.test(strict.stdout));
  await Deno.writeTextFile(`${dir}/t.yaml`, test("alert: no-hostname", "    others: any\n"));
  const lax = await idwrap(["policy", "test", `${dir}/t.yaml`]);
  assertEquals(lax.code, 0, lax.stdout);
});

Deno.test("policy test: strace -f output of a real cat replays through the default policy", async () => {
  const dir = await tempDir();
  const r = await run("strace", ["-f", "-qq", "-o", `${dir}/cat.strace`, "--", "cat", "/etc/shadow", "/etc/hostname"]);
  assertEquals(r.code, 0, r.stderr);
  const test = (outcome: string) =>
    `policies: [${ROOT}policies/default.yaml]\ntests:\n  - name: strace\n    recording: cat.strace\n    format: strace\n` +
    `    expect:\n      - call: {syscall: openat, path: /etc/shadow}\n        ${outcome}\n    others: any\n`;
  await Deno.writeTextFile(`${dir}/t.yaml`, test("alert: [credential-read, baseline.credential-read]"));
  const ok = await idwrap(["policy", "test", `${dir}/t.yaml`]);
  assertEquals(ok.code, 0, `${ok.stdout}\n${ok.stderr}`);
  await Deno.writeTextFile(`${dir}/t.yaml`, test("nothing: true")); // control
  const bad = await idwrap(["policy", "test", `${dir}/t.yaml`]);
  assertEquals(bad.code, 1, bad.stdout);
  assert(
    /cat\.strace:\d+: \d+ openat "\/etc\/shadow" = 3 .*expected nothing, got alert .*credential-read/.test(bad.stdout),
    bad.stdout,
  );
});

Deno.test("policy test: a bad test file or recording exits 2 naming file, line and field", async () => {
  const dir = await tempDir();
  await Deno.writeTextFile(`${dir}/p.yaml`, "version: 1\nname: p\nrules: []\n");
  await Deno.writeTextFile(
    `${dir}/bad.jsonl`,
    '{"kind":"spawn","pid":1,"ppid":0,"program":{"exe":"/x","uid":0}}\nnot json\n',
  );
  const head = `policies: [p.yaml]\ntests:\n  - name: t\n`;
  const cases: [string, RegExp][] = [
    [
      `${head}    recording: bad.jsonl\n    expect: []\n    colour: red\n`,
      /t\.yaml:6: tests\[0\]\.colour: unknown field/,
    ],
    [
      `${head}    recording: bad.jsonl\n    expect:\n      - call: {syscall: opn}\n        nothing: true\n`,
      /t\.yaml:\d+: tests\[0\]\.expect\[0\]\.call\.syscall: expected an x86_64 system call name, got "opn"/,
    ],
    [
      `${head}    recording: bad.jsonl\n    expect:\n      - call: {syscall: openat}\n`,
      /t\.yaml:6: tests\[0\]\.expect\[0\]: expected an outcome/,
    ],
    [
      `${head}    recording: bad.jsonl\n    expect:\n      - call: {syscall: openat}\n        deny: EWHAT\n`,
      /tests\[0\]\.expect\[0\]\.deny: expected true or an errno name/,
    ],
    [`${head}    recording: bad.jsonl\n    expect: []\n`, /bad\.jsonl:2: expected one JSON event per line/],
  ];
  for (const [yaml, message] of cases) {
    await Deno.writeTextFile(`${dir}/t.yaml`, yaml);
    const r = await idwrap(["policy", "test", `${dir}/t.yaml`]);
    assertEquals(r.code, 2, `exit ${r.code}\n${r.stdout}\n${r.stderr}`);
    assert(message.test(r.stderr), `${message}: ${r.stderr}`);
  }
});

Deno.test("policy test: after a refused execve that ran in the recording, the program it would have run does nothing", async () => {
  const dir = await tempDir();
  // The recording: fingerd opens ld.so.cache, execs /bin/sh (dash), which opens ld.so.cache too.
  const rules = (denyExec: boolean) =>
    `version: 1\nname: p\nrules:\n  - id: cache\n    syscalls: [openat]\n    path: /etc/ld.so.cache\n    action: alert\n` +
    (denyExec ? `  - id: no-shell\n    syscalls: [execve]\n    path: /usr/bin/dash\n    action: deny\n` : "");
  const test = (count: number) =>
    `policies: [p.yaml]\ntests:\n  - name: t\n    recording: ${RECORDINGS}/fingerd-compromised-shell.jsonl\n` +
    `    expect:\n      - call: {syscall: openat, path: /etc/ld.so.cache}\n        alert: cache\n        count: ${count}\n` +
    `    others: any\n`;
  for (const [denyExec, count] of [[false, 2], [true, 1]] as const) {
    await Deno.writeTextFile(`${dir}/p.yaml`, rules(denyExec));
    await Deno.writeTextFile(`${dir}/t.yaml`, test(count));
    const r = await idwrap(["policy", "test", `${dir}/t.yaml`]);
    assertEquals(r.code, 0, `deny exec ${denyExec}: ${r.stdout}\n${r.stderr}`);
  }
});

Deno.test("policy test: a recorded dev:ino is not compared with this machine's files (rules match recorded paths)", async () => {
  const dir = await tempDir();
  // The recording's /etc/shadow open carries the dev:ino /etc/hostname has here now (an inode number reused since).
  const st = await Deno.stat("/etc/hostname");
  const text = (await Deno.readTextFile(`${RECORDINGS}/default-shadow-read.jsonl`))
    .replace(/("path":"\/etc\/shadow"[^}]*"ident":")[^"]*"/g, `$1${st.dev}:${st.ino}"`);
  assert(text.includes(`"ident":"${st.dev}:${st.ino}"`));
  await Deno.writeTextFile(`${dir}/r.jsonl`, text);
  await Deno.writeTextFile(
    `${dir}/p.yaml`,
    "version: 1\nname: p\nrules:\n  - id: hostname\n    syscalls: [openat]\n    path: /etc/hostname\n    action: alert\n",
  );
  await Deno.writeTextFile(
    `${dir}/t.yaml`,
    "policies: [p.yaml]\ntests:\n  - name: t\n    recording: r.jsonl\n    expect:\n" +
      "      - call: {syscall: openat, path: /etc/shadow}\n        nothing: true\n" +
      "      - call: {syscall: openat, path: /etc/hostname}\n        alert: hostname\n", // the control: the rule works
  );
  const r = await idwrap(["policy", "test", `${dir}/t.yaml`]);
  assertEquals(r.code, 0, `${r.stdout}\n${r.stderr}`);
});

Deno.test("policy test: an ordinary user runs the shipped tests (offline: no privilege needed)", async () => {
  const uid = await ensureUser("idwrap-ptest");
  const home = await scratchDir({ prefix: "idwrap-ptest-home-" });
  try {
    const r = await idwrapAsUser(uid, home, ["policy", "test", `${ROOT}policies/tests/`]);
    assertEquals(r.code, 0, `${r.stdout}\n${r.stderr}`);
    assert(/\d+ passed, 0 failed$/m.test(r.stdout), r.stdout);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("policy test: in a directory, a YAML file that does not parse is an error, not skipped", async () => {
  const dir = await tempDir();
  await Deno.writeTextFile(`${dir}/p.yaml`, "version: 1\nname: p\nrules: []\n"); // a policy: skipped
  await Deno.writeTextFile(
    `${dir}/t.yaml`,
    `policies: [p.yaml]\ntests:\n  - name: t\n    recording: ${RECORDINGS}/benign-ls.jsonl\n    expect: []\n`,
  );
  const ok = await idwrap(["policy", "test", dir]);
  assertEquals(ok.code, 0, `${ok.stdout}\n${ok.stderr}`);
  await Deno.writeTextFile(`${dir}/broken.yaml`, "policies: [p.yaml\ntests: [\n");
  const r = await idwrap(["policy", "test", dir]);
  assertEquals(r.code, 2, `${r.stdout}\n${r.stderr}`);
  assert(/broken\.yaml:\d+: \(syntax\)/.test(r.stderr), r.stderr);
});
