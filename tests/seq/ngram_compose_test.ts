/**
 * The ngram detector in the paper's section 4.1 composition experiment
 * (tests/attacks/imapd_test.ts has it with Seq_id): tests/progs/imapish.c,
 * an IMAP-like server whose LOGIN overflows a stack buffer into a function
 * pointer; the exploit (a crafted user name) redirects it to
 * maint_console(), which runs /bin/sh on the session, whose input then
 * creates a marker file.
 *
 * ngram, trained live on normal sessions (record mode), in Seq_id's place
 * beside Imapd_id and Com_id (policies/ngram.yaml's arrangement): a normal
 * session is quiet; on the exploit Imapd_id fires at the execve, ngram a
 * few calls later, and Com_id, now with both warnings, answers kill, which
 * ngram carries out. Controls in the same file: the exploit runs the shell
 * without idwrap, and with ngram and Com_id alone (one detector, nobody
 * kills) the shell runs too while ngram alerts on it.
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import type { HostEvent, WrapperReport } from "../../host/events.ts";
import { exists, IDWRAP, parseJsonLines, ROOT, writePolicy } from "../helpers.ts";

const dir = await scratchDir({ prefix: "idwrap-ngram-4.1-" });
const STORE = `${dir}/store.kv`;
const IMAPISH = `${dir}/imapish`;

// Non-PIE and without stack protector, so the address the exploit writes (read with nm) is fixed.
const built = await new Deno.Command(Deno.env.get("CC") ?? "cc", {
  args: ["-Wall", "-O0", "-no-pie", "-fno-stack-protector", "-o", IMAPISH, `${ROOT}tests/progs/imapish.c`],
}).output();
if (!built.success) throw new Error(`Cannot compile imapish: ${new TextDecoder().decode(built.stderr)}`);

/** `a1 LOGIN <32 filler bytes><low 3 bytes of maint_console> pw`, then the shell's input (imapd_test.ts explains). */
async function exploit(shellInput: string): Promise<Uint8Array> {
  const nm = new TextDecoder().decode((await new Deno.Command("nm", { args: [IMAPISH] }).output()).stdout);
  const line = nm.split("\n").find((l) => / T maint_console$/.test(l));
  if (!line) throw new Error("nm: no maint_console in imapish");
  const addr = BigInt(`0x${line.split(" ")[0]}`);
  assert(addr < 1n << 24n, `maint_console at 0x${addr.toString(16)} needs more than 3 bytes`);
  const bytes = [0, 1, 2].map((i) => Number((addr >> BigInt(8 * i)) & 0xffn));
  assert(bytes.every((b) => b !== 0x20 && b !== 0x0a && b !== 0x0d && b !== 0), `bad byte in ${bytes}`);
  const enc = new TextEncoder();
  return new Uint8Array([
    ...enc.encode("a1 LOGIN "),
    ...new Uint8Array(32).fill(0x41),
    ...bytes,
    ...enc.encode(" pw\r\n"),
    ...enc.encode(shellInput),
  ]);
}

const MAILDIR = `${dir}/mail`;
await Deno.mkdir(MAILDIR);
await Deno.writeTextFile(`${MAILDIR}/INBOX`, "From alice\nSubject: one\n\nhi\nFrom bob\nSubject: two\n\nho\n");
await Deno.chmod(`${MAILDIR}/INBOX`, 0o600);

const NORMAL_SESSIONS = [
  "a1 LOGIN alice secret\r\na2 CAPABILITY\r\na3 SELECT INBOX\r\na4 NOOP\r\na5 LOGOUT\r\n",
  "a1 LOGIN bob pw\r\na2 NOOP\r\na3 SELECT INBOX\r\na4 LOGOUT\r\n",
  "a1 CAPABILITY\r\na2 LOGIN carol x\r\na3 LOGOUT\r\n",
];

/** Runs imapish with `input` on its stdin, directly or under `idwrap run --json -p POLICY`. */
async function session(input: Uint8Array | string, policy?: string) {
  const out = `${dir}/events-${crypto.randomUUID()}.jsonl`;
  const [cmd, ...args] = policy
    ? [IDWRAP, "run", "--json", "-o", out, "-p", policy, "--", IMAPISH, MAILDIR]
    : [IMAPISH, MAILDIR];
  const child = new Deno.Command(cmd, {
    args,
    cwd: dir,
    env: { IDWRAP_STORE: STORE, PWD: dir },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(typeof input === "string" ? new TextEncoder().encode(input) : input).catch(() => {});
  await writer.close().catch(() => {});
  const r = await child.output();
  const events: HostEvent[] = policy ? parseJsonLines(await Deno.readTextFile(out)) : [];
  return { code: r.code, stderr: new TextDecoder().decode(r.stderr), events };
}

const alerts = (events: HostEvent[]) => events.filter((e): e is WrapperReport => e.kind === "alert");

/** Alerts and non-allow verdicts, in report order. */
function timeline(events: HostEvent[]): string[] {
  const out: string[] = [];
  for (const e of events) {
    if (e.kind === "alert") out.push(`alert ${e.wrapper}/${e.severity} at ${e.syscall}`);
    else if (e.kind === "syscall" && e.phase === "pre" && e.verdict && e.verdict !== "allow") {
      out.push(`${e.syscall} ${e.verdict}`);
    }
  }
  return out;
}

// Bound to imapish and to the shell it becomes after a successful exploit. The threshold, 40 bits in 20 calls:
// measured, normal sessions reach at most 14, the exploited process (execve denied, then maint_console) 51.
const BOUND = "{ program: [imapish, dash, sh, bash] }";
const ngram = (mode: string) =>
  `  - { name: ngram, settings: { mode: ${mode}, program: imapish-4.1, threshold: 40 }, activate: ${BOUND} }\n`;
const IMAPD = "  - { name: imapd, activate: { program: imapish } }\n";
const COM = `  - { name: com, activate: ${BOUND} }\n`;

let markers = 0;
function marker(): [string, string] {
  const path = `${dir}/pwned-${++markers}`;
  return [path, `touch ${path}\nexit 0\n`];
}

Deno.test("ngram 4.1: without idwrap the crafted LOGIN runs a shell (the attack works)", async () => {
  const [path, commands] = marker();
  const r = await session(await exploit(commands));
  assertEquals(r.code, 0, r.stderr);
  assert(await exists(path), "the exploit did not run the shell");
});

Deno.test("ngram 4.1: trained on normal sessions, ngram fires after Imapd_id, Com_id answers kill, ngram kills", async () => {
  const record = await writePolicy(`wrappers:\n${ngram("record")}`);
  for (const input of NORMAL_SESSIONS) {
    const r = await session(input, record);
    assertEquals(r.code, 0, r.stderr);
  }
  const detect = await writePolicy(`wrappers:\n${IMAPD}${ngram("detect")}${COM}`);
  for (const input of NORMAL_SESSIONS) {
    const clean = await session(input, detect);
    assertEquals(clean.code, 0, clean.stderr);
    assertEquals(alerts(clean.events), [], "a normal session raised an alert");
  }

  const [path, commands] = marker();
  const r = await session(await exploit(commands), detect);
  assert(!(await exists(path)), "the shell ran");
  const line = timeline(r.events);
  // Imapd_id fires first, at the execve; ngram at that execve or a few calls later, and only then does Com_id
  // answer kill.
  assertEquals(line.slice(0, 2), ["alert imapd/4 at execve", "alert com/2 at execve"], line.join("\n"));
  const at = line.findIndex((l) => l.startsWith("alert ngram/3"));
  assert(at >= 2, line.join("\n"));
  assert(!line.slice(0, at).some((l) => l.endsWith(" kill")), line.join("\n"));
  assert(line[at + 1].startsWith("alert com/4"), line.join("\n"));
  // ngram kills at that call, or, where Imapd_id's deny of the execve took precedence, at the next one.
  const killed = line.findIndex((l) => l.endsWith(" kill"));
  assert(killed > at + 1 && killed <= at + 3, line.join("\n"));
  assertEquals(r.code, 137, r.stderr);
});

Deno.test("ngram 4.1: ngram alone with Com_id: it alerts on the exploited process, nobody kills, the shell runs", async () => {
  // Runs after the test above, on its trained model.
  const [path, commands] = marker();
  const policy = await writePolicy(`wrappers:\n${ngram("detect")}${COM}`);
  const r = await session(await exploit(commands), policy);
  assertEquals(r.code, 0, r.stderr);
  assert(await exists(path), "the shell did not run");
  const line = timeline(r.events);
  assert(line.some((l) => l.startsWith("alert ngram/3")), line.join("\n"));
  assert(line.some((l) => l.startsWith("alert com/2")), line.join("\n"));
  assert(!line.some((l) => l.endsWith(" kill")), line.join("\n"));
});
