/**
 * The paper's passwd specification (section 3.1) on a real program:
 * tests/progs/passwdish.c, a set-uid-root-style password changer that
 * stores the new password without checking it for ':' or '\n'. A crafted
 * "password" (ordinary input) rewrites the invoker's uid or another user's
 * entry. The program edits a temporary copy of a passwd-format file (never
 * /etc/passwd) and runs as a real user created here (useradd --system):
 * setpriv gives it that real uid with effective uid 0, as a set-uid-root
 * program has. Needs root (skipped otherwise).
 *
 * Without idwrap the attacks work; under policies/passwd.yaml (with `file`
 * pointing at the copy and `baseline` its content) the violating write is
 * denied, alerted, and the file is unchanged; normal changes pass silently.
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import type { HostEvent, SyscallEvent, WrapperReport } from "../../host/events.ts";
import { ensureUser, IDWRAP, parseJsonLines, prog, ROOT, TEST_STORE } from "../helpers.ts";

const IS_ROOT = Deno.uid() === 0;
const PASSWDISH = prog("passwdish");
const USER = "idwrap-pwuser";
const dir = await scratchDir({ prefix: "idwrap-passwd-" });

const uid = IS_ROOT ? await ensureUser(USER) : 0;
const OWN = `${USER}:x:${uid}:${uid}:pw user:/home/${USER}:/bin/sh`;
const ORIGINAL = [
  "root:x:0:0:root:/root:/bin/bash",
  OWN,
  "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin",
  "bob:x:4242:4242:Bob:/home/bob:/bin/bash",
  "",
].join("\n");

let files = 0;
/** A fresh copy of the password file, root's, 0644. */
async function passwdFile(): Promise<string> {
  const f = `${dir}/passwd-${++files}`;
  await Deno.writeTextFile(f, ORIGINAL);
  await Deno.chmod(f, 0o644);
  return f;
}

/** The policy, with `file` and `baseline` for a copy. */
async function policyFor(file: string, baseline: string | null = ORIGINAL): Promise<string> {
  const base = await Deno.readTextFile(`${ROOT}policies/passwd.yaml`);
  const settings = `      file: ${JSON.stringify(file)}\n` +
    (baseline === null ? "" : `      baseline: ${JSON.stringify(baseline)}\n`);
  const policy = base.replace("      file: /etc/passwd\n", settings);
  assert(policy !== base);
  const p = `${dir}/policy-${files}.yaml`;
  await Deno.writeTextFile(p, policy);
  return p;
}

interface Result {
  code: number;
  stdout: string;
  stderr: string;
  events: HostEvent[];
}

/** Runs passwdish FILE PASS as the user (real uid) with effective uid 0, under a policy or not. */
async function passwdish(
  file: string,
  pass: string,
  policy?: string,
  env: Record<string, string> = {},
): Promise<Result> {
  const command = ["setpriv", `--ruid=${uid}`, `--rgid=${uid}`, "--clear-groups", "--", PASSWDISH, file, pass];
  const out = policy ? `${dir}/trace-${files}.jsonl` : undefined;
  const [cmd, ...args] = policy ? [IDWRAP, "run", "--json", "-o", out!, "-p", policy, "--", ...command] : command;
  const r = await new Deno.Command(cmd, { args, env: { IDWRAP_STORE: TEST_STORE, ...env }, stdin: "null" }).output();
  const dec = new TextDecoder();
  const events = out ? parseJsonLines(await Deno.readTextFile(out)) : [];
  return { code: r.code, stdout: dec.decode(r.stdout), stderr: dec.decode(r.stderr), events };
}

function alerts(events: HostEvent[]): WrapperReport[] {
  return events.filter((e): e is WrapperReport => e.kind === "alert" || e.kind === "fault");
}

function writes(events: HostEvent[]): SyscallEvent[] {
  return events.filter((e): e is SyscallEvent =>
    e.kind === "syscall" && e.syscall === "write" && e.phase === "pre" && e.program.exe === PASSWDISH
  );
}

/** The uid field of the first entry named name (what getpwnam would return). */
function uidOf(content: string, name: string): string | undefined {
  return content.split("\n").find((l) => l.split(":")[0] === name)?.split(":")[2];
}

// The crafted passwords. 1: the invoker's own entry gets uid 0 and root's home.
const TO_ROOT = "h4ck:0:0:pwned:/root:/bin/sh\nzz";
// 2: a second "daemon" entry before the real one: daemon becomes uid 0 with no password.
const OVER_DAEMON = `x:${uid}:${uid}:pw user:/home/${USER}:/bin/sh\ndaemon::0:0::/root:/bin/sh\nzz`;

Deno.test({
  name: "passwdish: without idwrap a normal change works, and crafted passwords take uid 0",
  ignore: !IS_ROOT,
  fn: async () => {
    const f = await passwdFile();
    const ok = await passwdish(f, "$6$new$hash");
    assertEquals(ok.code, 0, ok.stderr);
    assertEquals(await Deno.readTextFile(f), ORIGINAL.replace(OWN, OWN.replace(":x:", ":$6$new$hash:")));

    const g = await passwdFile();
    const r = await passwdish(g, TO_ROOT);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(uidOf(await Deno.readTextFile(g), USER), "0"); // the invoker is now root

    const h = await passwdFile();
    const d = await passwdish(h, OVER_DAEMON);
    assertEquals(d.code, 0, d.stderr);
    const after = await Deno.readTextFile(h);
    assertEquals(uidOf(after, "daemon"), "0"); // another user's entry, now uid 0, no password
    assertEquals(after.split("\n").find((l) => l.startsWith("daemon:")), "daemon::0:0::/root:/bin/sh");
  },
});

Deno.test({
  name: "passwd policy: a normal change passes silently, and the wrapper learns the new content",
  ignore: !IS_ROOT,
  fn: async () => {
    const f = await passwdFile();
    const policy = await policyFor(f);
    const r = await passwdish(f, "$6$new$hash", policy);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(alerts(r.events), []);
    const first = ORIGINAL.replace(OWN, OWN.replace(":x:", ":$6$new$hash:"));
    assertEquals(await Deno.readTextFile(f), first);
    // The setting's baseline is now stale; the learnt one (the key-value store) matches the file.
    const again = await passwdish(f, "$6$newer$h", policy);
    assertEquals(again.code, 0, again.stderr);
    assertEquals(alerts(again.events), []);
    assertEquals(await Deno.readTextFile(f), ORIGINAL.replace(OWN, OWN.replace(":x:", ":$6$newer$h:")));
  },
});

Deno.test({
  name: "passwd policy: a password that rewrites the invoker's uid is denied, alerted, the file unchanged",
  ignore: !IS_ROOT,
  fn: async () => {
    const f = await passwdFile();
    const r = await passwdish(f, TO_ROOT, await policyFor(f));
    assertEquals(r.code, 1);
    assert(r.stderr.includes("Operation not permitted"), r.stderr);
    assertEquals(await Deno.readTextFile(f), ORIGINAL);
    const a = alerts(r.events);
    assertEquals(a.map((e) => [e.kind, e.wrapper, e.severity, e.syscall]), [["alert", "passwd", 4, "write"]]);
    assertEquals(
      a[0].message,
      `passwd: write to the password file ${f} by uid ${uid} changes fields other than the password of the ` +
        `invoker's own entry ${USER}: "${OWN}" becomes "${USER}:h4ck:0:0:pwned:/root:/bin/sh"`,
    );
    assertEquals(writes(r.events).map((e) => e.verdict), ["deny EPERM"]);
  },
});

Deno.test({
  name: "passwd policy: a password that overrides another user's entry is denied, alerted, the file unchanged",
  ignore: !IS_ROOT,
  fn: async () => {
    const f = await passwdFile();
    const r = await passwdish(f, OVER_DAEMON, await policyFor(f));
    assertEquals(r.code, 1);
    assertEquals(await Deno.readTextFile(f), ORIGINAL);
    const a = alerts(r.events);
    assertEquals(a.length, 1);
    assertEquals(a[0].severity, 4);
    assertEquals(
      a[0].message,
      `passwd: write to the password file ${f} by uid ${uid} changes the entry of daemon (uid 1), which is not ` +
        `the invoker's: "daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin" becomes "daemon::0:0::/root:/bin/sh"`,
    );
  },
});

Deno.test({
  name: "passwd policy: without a baseline matching the file, writes to it are denied (fail closed)",
  ignore: !IS_ROOT,
  fn: async () => {
    const f = await passwdFile();
    const none = await passwdish(f, "$6$new$hash", await policyFor(f, null));
    assertEquals(none.code, 1);
    assertEquals(await Deno.readTextFile(f), ORIGINAL);
    assertEquals(alerts(none.events).map((e) => [e.severity, e.message.split(": ").slice(-1)[0]]), [
      [3, `no baseline of ${f} (setting \`baseline\` or learnt content)`],
    ]);
    const stale = await passwdish(f, "$6$new$hash", await policyFor(f, ORIGINAL + "x:y\n"));
    assertEquals(stale.code, 1);
    assertEquals(await Deno.readTextFile(f), ORIGINAL);
    assert(alerts(stale.events)[0].message.includes("is stale"), alerts(stale.events)[0].message);
  },
});

Deno.test({
  name: "passwd policy: a write whose bytes the wrapper cannot see (writev) is denied",
  ignore: !IS_ROOT,
  fn: async () => {
    const f = await passwdFile();
    const plain = await passwdish(f, "$6$new$hash", undefined, { PASSWDISH_WRITEV: "1" });
    assertEquals(plain.code, 0, plain.stderr); // writev works without idwrap
    const g = await passwdFile();
    const r = await passwdish(g, "$6$new$hash", await policyFor(g), { PASSWDISH_WRITEV: "1" });
    assertEquals(r.code, 1);
    assertEquals(await Deno.readTextFile(g), ORIGINAL);
    assertEquals(alerts(r.events).map((e) => [e.severity, e.syscall, e.message]), [[
      4,
      "writev",
      `passwd: writev to the password file ${g} by uid ${uid} cannot be checked (the wrapper sees the bytes of ` +
      "write and pwrite64 only)",
    ]]);
  },
});

Deno.test({
  name: "passwd policy: a truncating open of the password file is denied",
  ignore: !IS_ROOT,
  fn: async () => {
    const f = await passwdFile();
    const policy = await policyFor(f);
    // passwdish is the bound program; a shell redirection under its name would be a truncating open.
    const sh = `${dir}/passwdish-trunc`;
    await Deno.copyFile("/bin/sh", sh);
    const patched = (await Deno.readTextFile(policy)).replace("passwdish]", "passwdish, passwdish-trunc]");
    await Deno.writeTextFile(policy, patched);
    const out = `${dir}/trunc.jsonl`;
    const r = await new Deno.Command(IDWRAP, {
      args: ["run", "--json", "-o", out, "-p", policy, "--", sh, "-c", `: > ${f}`],
      env: { IDWRAP_STORE: TEST_STORE },
    }).output();
    assert(r.code !== 0);
    assertEquals(await Deno.readTextFile(f), ORIGINAL);
    const a = alerts(parseJsonLines(await Deno.readTextFile(out)));
    assertEquals(a.map((e) => [e.severity, e.syscall]), [[4, "openat"]]);
    assert(a[0].message.includes("truncating open of the password file"), a[0].message);
  },
});

Deno.test({ name: "passwd: clean up", ignore: !IS_ROOT, fn: () => Deno.remove(dir, { recursive: true }) });
