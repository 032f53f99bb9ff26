/**
 * The paper's binmail attack (section 4) and its Mailstat wrapper (section
 * 3.2) on a real program: tests/progs/binmailish.c, a back-end mailer that
 * appends to SPOOL/RECIPIENT and gives a mailbox not owned by the recipient
 * to the recipient, keeping its mode, set-uid bit included.
 *
 * The attack: a non-root user (created here, useradd --system) creates
 * root's mailbox in the spool (a temporary directory, mode 1777 as old mail
 * spools were, never the real one) and makes it 04777; then mail is
 * delivered to root by binmailish, run as root (the privileged delivery
 * agent): the mailbox becomes a set-uid root file.
 *
 * Under policies/mailstat.yaml (`spool` pointed at the temporary spool) the
 * attacker's commands and the mailer are two separate `idwrap run`s sharing
 * one store (IDWRAP_STORE): Mailstat's table of state machines in the
 * key-value store is what connects them. Needs root (skipped otherwise).
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import type { HostEvent, LifecycleEvent, WrapperReport } from "../../host/events.ts";
import { ensureUser, IDWRAP, parseJsonLines, prog, ROOT, run } from "../helpers.ts";

const IS_ROOT = Deno.uid() === 0;
const BINMAILISH = prog("binmailish");
const USER = "idwrap-mailer";
const dir = await scratchDir({ prefix: "idwrap-binmail-" });
await Deno.chmod(dir, 0o755); // the attacker must reach the spool

const uid = IS_ROOT ? await ensureUser(USER) : 0;
const gid = IS_ROOT ? Number((await run("id", ["-g", USER])).stdout.trim()) : 0;

let cases = 0;
interface Case {
  spool: string;
  store: string;
  policy: string;
}

/** A fresh spool (1777), store and policy (with `spool` and `response`). */
async function freshCase(response: "alert" | "deny" = "alert"): Promise<Case> {
  const base = `${dir}/case-${++cases}`;
  await Deno.mkdir(`${base}/spool`, { recursive: true });
  await Deno.chmod(base, 0o755);
  await Deno.chmod(`${base}/spool`, 0o1777);
  const yaml = (await Deno.readTextFile(`${ROOT}policies/mailstat.yaml`))
    .replace("spool: /var/spool/mail", `spool: ${JSON.stringify(`${base}/spool`)}`)
    .replace("response: alert", `response: ${response}`);
  assert(yaml.includes(`${base}/spool`) && yaml.includes(`response: ${response}`));
  await Deno.writeTextFile(`${base}/policy.yaml`, yaml);
  return { spool: `${base}/spool`, store: `${base}/store.kv`, policy: `${base}/policy.yaml` };
}

interface Result {
  code: number;
  stdout: string;
  stderr: string;
  events: HostEvent[];
}

/** Runs a command, under `idwrap run --json -p POLICY` (with the case's store) when c is given. */
async function exec(command: string[], c?: Case, input = ""): Promise<Result> {
  const out = c ? `${dir}/trace-${++cases}.jsonl` : undefined;
  const [cmd, ...args] = c ? [IDWRAP, "run", "--json", "-o", out!, "-p", c.policy, "--", ...command] : command;
  const child = new Deno.Command(cmd, {
    args,
    env: c ? { IDWRAP_STORE: c.store } : {},
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(input));
  await w.close();
  const r = await child.output();
  const dec = new TextDecoder();
  const events = out ? parseJsonLines(await Deno.readTextFile(out)) : [];
  return { code: r.code, stdout: dec.decode(r.stdout), stderr: dec.decode(r.stderr), events };
}

/** The attacker's part, as the unprivileged user: root's mailbox, 04777, with a payload. */
function attacker(spool: string, c?: Case): Promise<Result> {
  const box = `${spool}/root`;
  return exec([
    "setpriv",
    `--reuid=${uid}`,
    `--regid=${gid}`,
    "--clear-groups",
    "--",
    "/bin/sh",
    "-c",
    `echo '#!/bin/sh' > ${box} && chmod 4777 ${box}`,
  ], c);
}

/** The mailer's part, as root: deliver a message to root. */
function deliver(spool: string, c?: Case, rcpt = "root"): Promise<Result> {
  return exec([BINMAILISH, spool, rcpt], c, "Subject: hello\n\nhi\n");
}

function alerts(events: HostEvent[]): WrapperReport[] {
  return events.filter((e): e is WrapperReport => e.kind === "alert" || e.kind === "fault");
}

/** The pid of the process that exec'ed program. */
function pidOf(events: HostEvent[], program: string): number {
  const e = events.find((e): e is LifecycleEvent => e.kind === "exec" && e.program.exe === program);
  assert(e, `no exec of ${program}`);
  return e.pid;
}

function setuidRoot(s: Deno.FileInfo): boolean {
  return s.uid === 0 && ((s.mode ?? 0) & 0o4000) !== 0;
}

Deno.test({
  name: "binmailish: without idwrap the attacker's mailbox becomes a set-uid root file",
  ignore: !IS_ROOT,
  fn: async () => {
    const c = await freshCase();
    const a = await attacker(c.spool);
    assertEquals(a.code, 0, a.stderr);
    const before = await Deno.stat(`${c.spool}/root`);
    assertEquals([before.uid, (before.mode ?? 0) & 0o7777], [uid, 0o4777]);
    const d = await deliver(c.spool);
    assertEquals(d.code, 0, d.stderr);
    const after = await Deno.stat(`${c.spool}/root`);
    assert(setuidRoot(after), `mode 0${(after.mode ?? 0).toString(8)}, uid ${after.uid}`);
    assert((await Deno.readTextFile(`${c.spool}/root`)).startsWith("#!/bin/sh\nFrom binmailish "));
  },
});

Deno.test({
  name: "mailstat policy: two runs, one store: the alert names the attacker's and the mailer's processes",
  ignore: !IS_ROOT,
  fn: async () => {
    const c = await freshCase("alert");
    const a = await attacker(c.spool, c);
    assertEquals(a.code, 0, a.stderr);
    assertEquals(alerts(a.events), []); // state 1 only
    const chmodPid = pidOf(a.events, "/usr/bin/chmod");
    const d = await deliver(c.spool, c);
    assertEquals(d.code, 0, d.stderr);
    const mailerPid = pidOf(d.events, BINMAILISH);
    const got = alerts(d.events);
    assertEquals(got.map((e) => [e.kind, e.wrapper, e.severity, e.syscall, e.pid]), [
      ["alert", "mailstat", 4, "fchown", mailerPid],
    ]);
    const box = await Deno.stat(`${c.spool}/root`);
    assertEquals(
      got[0].message,
      `mailstat: binmail attack on fd 3 (nodeid ${box.dev}:${box.ino}, mode 04777) in ${c.spool}: ` +
        `made set-uid by pid ${chmodPid} (/usr/bin/chmod, uid ${uid}), ` +
        `written by pid ${mailerPid} (${BINMAILISH}, uid 0), fchown to root by pid ${mailerPid} (${BINMAILISH}, uid 0)`,
    );
    // response: alert — detection only: the attack still succeeds.
    assert(setuidRoot(box));
  },
});

Deno.test({
  name: "mailstat policy, response deny: the chown to root is denied, the mailbox is not set-uid root",
  ignore: !IS_ROOT,
  fn: async () => {
    const c = await freshCase("deny");
    const a = await attacker(c.spool, c);
    assertEquals(a.code, 0, a.stderr);
    const d = await deliver(c.spool, c);
    assertEquals(d.code, 0, d.stderr); // binmailish only reports the failed chown
    assert(d.stderr.includes("binmailish: fchown: Operation not permitted"), d.stderr);
    assertEquals(alerts(d.events).map((e) => [e.wrapper, e.severity, e.syscall]), [["mailstat", 4, "fchown"]]);
    const box = await Deno.stat(`${c.spool}/root`);
    assert(!setuidRoot(box), `mode 0${(box.mode ?? 0).toString(8)}, uid ${box.uid}`);
    assertEquals(box.uid, uid); // still the attacker's: its set-uid bit grants nothing new
    assert((await Deno.readTextFile(`${c.spool}/root`)).includes("Subject: hello\n"), "the mail was delivered");
  },
});

Deno.test({
  name: "mailstat policy: ordinary deliveries and chowns raise nothing",
  ignore: !IS_ROOT,
  fn: async () => {
    const c = await freshCase("deny");
    // A new mailbox (created by the mailer), and a mailbox someone else owns without the set-uid bit.
    const first = await deliver(c.spool, c);
    assertEquals(first.code, 0, first.stderr);
    const other = await exec([
      "setpriv",
      `--reuid=${uid}`,
      `--regid=${gid}`,
      "--clear-groups",
      "--",
      "/bin/sh",
      "-c",
      `: > ${c.spool}/daemon && chmod 0660 ${c.spool}/daemon`,
    ], c);
    assertEquals(other.code, 0, other.stderr);
    const second = await deliver(c.spool, c, "daemon");
    assertEquals(second.code, 0, second.stderr);
    assertEquals((await Deno.stat(`${c.spool}/daemon`)).uid, 1); // given to daemon
    // The set-uid mailbox, written by the process that made it so and chowned to root: no second process, no attack.
    const self = await exec([
      "/bin/sh",
      "-c",
      `: > ${c.spool}/solo && chmod 4755 ${c.spool}/solo && chown 0 ${c.spool}/solo`,
    ], c);
    assertEquals(self.code, 0, self.stderr);
    for (const r of [first, other, second, self]) assertEquals(alerts(r.events), []);
  },
});

Deno.test({ name: "binmail: clean up", ignore: !IS_ROOT, fn: () => Deno.remove(dir, { recursive: true }) });
