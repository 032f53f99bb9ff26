/**
 * The paper's imapd attack (section 4, CERT CA-97.09) and its section 4.1
 * composition experiment, on a real program: tests/progs/imapish.c, an
 * IMAP-like server whose LOGIN overflows a stack buffer into the function
 * pointer next to it. The exploit (a crafted user name, sent as ordinary
 * input) redirects that pointer to maint_console(), which runs /bin/sh on
 * the session; the lines after LOGIN are then shell commands, which create
 * a marker file.
 *
 * imapish is built here, non-PIE and without stack protector, so the
 * address the exploit writes (read with `nm`) is fixed: tools/build.ts
 * builds tests/progs/*.c as PIE, where it is not.
 *
 * Wrappers: Imapd_id (wrappers/imapd), Com_id (wrappers/com) and, for 4.1, a
 * WebAssembly-text stand-in for Seq_id that emits "seq-warning" at the first
 * openat or write after an execve (wrappers/seq is another engineer's).
 */
import { scratchDir, scratchFile } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import type { HostEvent, SyscallEvent, WrapperReport } from "../../host/events.ts";
import { exists, IDWRAP, parseJsonLines, ROOT, TEST_STORE, writePolicy } from "../helpers.ts";
import { watToWasm, writeWasm } from "../runtime/wat.ts";

/** What /bin/sh is: wrappers see the canonical path of what runs (docs/seccomp.md, "Paths"). */
const SH_REAL = Deno.realPathSync("/bin/sh");

const dir = await scratchDir({ prefix: "idwrap-imapd-" });
const IMAPISH = `${dir}/imapish`;

/** Compiles C source into dir/name with extra flags. */
async function cc(source: string, name: string, flags: string[]): Promise<string> {
  const out = `${dir}/${name}`;
  const r = await new Deno.Command(Deno.env.get("CC") ?? "cc", {
    args: ["-Wall", ...flags, "-o", out, source],
  }).output();
  if (!r.success) throw new Error(`Cannot compile ${source}:\n${new TextDecoder().decode(r.stderr)}`);
  return out;
}

await cc(`${ROOT}tests/progs/imapish.c`, "imapish", ["-O0", "-no-pie", "-fno-stack-protector"]);

/** The address of maint_console in the non-PIE build, from nm. */
async function maintConsoleAddress(): Promise<bigint> {
  const r = await new Deno.Command("nm", { args: [IMAPISH] }).output();
  const line = new TextDecoder().decode(r.stdout).split("\n").find((l) => / T maint_console$/.test(l));
  if (!line) throw new Error("nm: no maint_console in imapish");
  return BigInt(`0x${line.split(" ")[0]}`);
}

/**
 * The exploit: `a1 LOGIN <32 filler bytes><low 3 bytes of maint_console> pw`.
 * The copy loop writes the name's terminating NUL as the pointer's 4th byte,
 * and the pointer's upper bytes were already 0 (a non-PIE text address
 * below 2^24), so on_login becomes &maint_console. Then the shell's input.
 */
async function exploit(shellInput: string): Promise<Uint8Array> {
  const addr = await maintConsoleAddress();
  assert(addr < 1n << 24n, `maint_console at 0x${addr.toString(16)} needs more than 3 bytes`);
  const bytes = [0, 1, 2].map((i) => Number((addr >> BigInt(8 * i)) & 0xffn));
  // The loop stops at a space or the end of the line; read_line ends at \n.
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
await Deno.chmod(`${MAILDIR}/INBOX`, 0o600); // owned by the invoker, who runs the tests

const NORMAL_SESSION = "a1 LOGIN alice secret\r\na2 CAPABILITY\r\na3 SELECT INBOX\r\na4 NOOP\r\na5 LOGOUT\r\n";

interface Session {
  code: number;
  stdout: string;
  stderr: string;
  events: HostEvent[];
}

/** Runs a command with `input` on its stdin, directly or under `idwrap run --json -p POLICY`. */
async function session(
  input: Uint8Array | string,
  command: string[],
  policy?: string,
  flags: string[] = [],
): Promise<Session> {
  const out = policy ? await scratchFile({ prefix: "idwrap-imapd-", suffix: ".jsonl" }) : undefined;
  const [cmd, ...args] = policy
    ? [IDWRAP, "run", "--json", "-o", out!, "-p", policy, ...flags, "--", ...command]
    : command;
  const child = new Deno.Command(cmd, {
    args,
    cwd: dir,
    env: { IDWRAP_STORE: TEST_STORE, PWD: dir },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  // The shell may be killed (or never run) before it reads everything.
  await writer.write(typeof input === "string" ? new TextEncoder().encode(input) : input).catch(() => {});
  await writer.close().catch(() => {});
  const r = await child.output();
  const dec = new TextDecoder();
  const events = out ? parseJsonLines(await Deno.readTextFile(out)) : [];
  if (out) await Deno.remove(out);
  return { code: r.code, stdout: dec.decode(r.stdout), stderr: dec.decode(r.stderr), events };
}

function alerts(events: HostEvent[]): WrapperReport[] {
  return events.filter((e): e is WrapperReport => e.kind === "alert");
}

function reports(events: HostEvent[]): WrapperReport[] {
  return events.filter((e): e is WrapperReport => e.kind === "alert" || e.kind === "fault");
}

function syscalls(events: HostEvent[]): SyscallEvent[] {
  return events.filter((e): e is SyscallEvent => e.kind === "syscall");
}

const IMAPD_POLICY = `${ROOT}policies/imapd.yaml`;
let markers = 0;
/** A fresh marker path and the shell input that creates it. */
function marker(): [string, string] {
  const path = `${dir}/pwned-${++markers}`;
  return [path, `touch ${path}\nexit 0\n`];
}

Deno.test("imapish: a normal session works without idwrap", async () => {
  const r = await session(NORMAL_SESSION, [IMAPISH, MAILDIR]);
  assertEquals(r.code, 0);
  assert(r.stdout.includes("a1 OK LOGIN completed, welcome alice"), r.stdout);
  assert(r.stdout.includes("* 2 EXISTS\r\na3 OK [READ-ONLY] SELECT completed"), r.stdout);
  assert(r.stdout.endsWith("a5 OK LOGOUT completed\r\n"), r.stdout);
});

Deno.test("imapish: without idwrap the crafted LOGIN runs a shell", async () => {
  const [path, commands] = marker();
  const r = await session(await exploit(commands), [IMAPISH, MAILDIR]);
  assertEquals(r.code, 0, r.stderr);
  assert(await exists(path), "the shell did not run");
  assert(!r.stdout.includes("OK LOGIN"), "LOGIN greeted instead of being hijacked");
});

Deno.test("imapd policy: a normal session runs clean", async () => {
  const r = await session(NORMAL_SESSION, [IMAPISH, MAILDIR], IMAPD_POLICY, ["--verbose"]);
  assertEquals(r.code, 0, r.stderr);
  assert(r.stdout.endsWith("a5 OK LOGOUT completed\r\n"), r.stdout);
  assertEquals(alerts(r.events), []);
  assertEquals(r.events.filter((e) => e.kind === "fault"), []);
  // The mailbox (0600, the invoker's) was opened for reading and checked in post.
  assert(syscalls(r.events).some((e) => e.decoded.path === `${MAILDIR}/INBOX` && e.phase === "post" && e.ret! >= 0));
});

Deno.test("imapd policy: the exploit's execve is detected and denied with EACCES, no shell runs", async () => {
  const [path, commands] = marker();
  const r = await session(await exploit(commands), [IMAPISH, MAILDIR], IMAPD_POLICY);
  assert(!(await exists(path)), "the shell ran under idwrap");
  assertEquals(r.code, 1); // maint_console's exit(1) after the failed execl
  assert(r.stdout.includes("* BYE maintenance console unavailable"), r.stdout);
  assertEquals(alerts(r.events).map((a) => [a.wrapper, a.severity, a.syscall, a.message]), [
    ["imapd", 4, "execve", `imapd: execve of ${SH_REAL}: imapd never executes programs`],
    [
      "com",
      2,
      "execve",
      `com: imapd-warning from imapd at execve: imapd: execve of ${SH_REAL}: imapd never executes programs`,
    ],
  ]);
  const execs = syscalls(r.events).filter((e) => e.syscall === "execve" && e.program.exe === IMAPISH);
  assertEquals(execs.map((e) => [e.decoded.rawPath ?? e.decoded.path, e.verdict]), [["/bin/sh", "deny EACCES"]]);
});

// ---------------------------------------------------------------------------
// Figure 3 (a) and (b): open-read, chmod, fchmod, fchmodat, on a helper
// program named "imapd" (so policies/imapd.yaml binds to it).

const HELPER_C = `${dir}/imapd.c`;
await Deno.writeTextFile(
  HELPER_C,
  `#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
// Runs "OP PATH" pairs from argv, printing "OP PATH rc" for each.
int main(int argc, char **argv) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *op = argv[i], *p = argv[i + 1];
    int rc = -1, fd;
    if (!strcmp(op, "excl")) { fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600); rc = fd >= 0 ? close(fd) : -1; }
    else if (!strcmp(op, "creat")) { fd = openat(AT_FDCWD, p, O_WRONLY | O_CREAT | O_TRUNC, 0600); rc = fd >= 0 ? close(fd) : -1; }
    else if (!strcmp(op, "read")) { fd = open(p, O_RDONLY); rc = fd >= 0 ? close(fd) : -1; }
    else if (!strcmp(op, "chmod")) rc = chmod(p, 0600);
    else if (!strcmp(op, "fchmodat")) rc = fchmodat(AT_FDCWD, p, 0600, 0);
    else if (!strcmp(op, "fchmod")) { fd = open(p, O_WRONLY); rc = fd >= 0 ? fchmod(fd, 0600) : -1; if (fd >= 0) close(fd); }
    else if (!strcmp(op, "chown")) rc = chown(p, 65534, 65534);
    printf("%s %s %d\\n", op, p, rc);
  }
  return 0;
}
`,
);
const HELPER = await cc(HELPER_C, "imapd", ["-O2"]);

Deno.test("imapd: open-read, chmod and fchmod follow Figure 3", async () => {
  const f = (name: string) => `${dir}/files/${name}`;
  await Deno.mkdir(`${dir}/files`, { recursive: true });
  const isRoot = Deno.uid() === 0;
  // Files that exist before the run: the invoker's private file, a
  // world-readable one and (as root only: chown) someone else's private one.
  await Deno.writeTextFile(f("mine"), "x");
  await Deno.chmod(f("mine"), 0o600);
  await Deno.writeTextFile(f("public"), "x");
  await Deno.chmod(f("public"), 0o644);
  await Deno.writeTextFile(f("old"), "x");
  await Deno.chmod(f("old"), 0o600);
  if (isRoot) {
    await Deno.writeTextFile(f("others"), "x");
    await Deno.chmod(f("others"), 0o600);
    await Deno.chown(f("others"), 65534, 65534);
    await Deno.chown(f("public"), 65534, 65534);
  }
  const ops = [
    ["read", f("mine")], // owned by the invoker: fine
    ["read", f("public")], // world-readable: fine
    ["excl", f("new-excl")], // created (O_CREAT|O_EXCL)
    ["chmod", f("new-excl")], // fine
    ["creat", f("new-creat")], // created (O_CREAT, did not exist)
    ["fchmod", f("new-creat")], // fine
    ["fchmodat", f("new-creat")], // fine
    ["creat", f("old")], // O_CREAT on an existing file: not created
    ["chmod", f("old")], // violation
    ["fchmod", f("mine")], // violation
    ["fchmodat", f("public")], // violation
    ...(isRoot
      ? [
        ["read", f("others")], // violation: 0600, uid 65534, not created
        ["chown", f("new-excl")], // now someone else's, 0600…
        ["read", f("new-excl")], // …but created by this run: fine
      ]
      : []),
  ];
  const r = await session("", [HELPER, ...ops.flat()], IMAPD_POLICY);
  assertEquals(r.code, 0, r.stderr);
  assert(!r.stdout.includes(" -1\n"), r.stdout); // every operation itself succeeded
  const got = alerts(r.events).filter((a) => a.wrapper === "imapd").map((a) => [a.syscall, a.message.split(" (")[0]]);
  const want = [
    ["chmod", `imapd: chmod of ${f("old")}`],
    ["fchmod", "imapd: fchmod of fd 3"],
    ["fchmodat", `imapd: fchmodat of ${f("public")}`],
    ...(isRoot ? [["openat", `imapd: open-read of ${f("others")}`]] : []),
  ];
  assertEquals(got, want);
  for (const a of alerts(r.events).filter((a) => a.wrapper === "imapd")) assertEquals(a.severity, 4);
  if (isRoot) {
    const read = alerts(r.events).find((a) => a.syscall === "openat")!;
    assert(read.message.includes("mode 0600, owner uid 65534"), read.message);
    assert(read.message.includes("not owned by the invoker (uid 0)"), read.message);
  }
  // Each warning reached Com_id, which only alerts (one detector alone).
  assertEquals(alerts(r.events).filter((a) => a.wrapper === "com").map((a) => a.severity), want.map(() => 2));
});

// ---------------------------------------------------------------------------
// Section 4.1: Imapd_id + Seq_id + Com_id.

/**
 * The Seq_id stand-in: after an execve (allowed or not) it fires once, at
 * the next openat or write of the process: an info alert "seq: fired at
 * <call>" and the abstract event "seq-warning"; answer 2 kills (it declares
 * DENY on those calls), as Com_id expects of every emitter. `armed` makes
 * it fire at the process's first openat or write, without an execve.
 */
const seqStandin = (armed: boolean) =>
  `(module
  (import "idwrap" "declare_syscall" (func $d (param i32 i32) (result i32)))
  (import "idwrap" "declare_emit" (func $de (param i32 i32) (result i32)))
  (import "idwrap" "event_syscall" (func $nr (result i32)))
  (import "idwrap" "event_string" (func $s (param i32 i32 i32) (result i32)))
  (import "idwrap" "emit" (func $emit (param i32 i32 i32) (result i32)))
  (import "idwrap" "alert" (func $alert (param i32 i32 i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "seq-warning")
  (data (i32.const 64) "seq: fired at ")
  (global $state (mut i32) (i32.const ${armed ? 1 : 0})) ;; 0 idle, 1 armed by an execve, 2 fired
  (func (export "idwrap_abi_version") (result i32) (i32.const 0x00010000))
  (func (export "idwrap_declare") (result i32)
    (drop (call $d (i32.const 59) (i32.const 1)))
    (drop (call $d (i32.const 257) (i32.const 5)))
    (drop (call $d (i32.const 1) (i32.const 5)))
    (drop (call $de (i32.const 0) (i32.const 11)))
    (i32.const 0))
  (func (export "idwrap_on_syscall") (result i32) (local $n i32)
    (if (i32.eq (call $nr) (i32.const 59))
      (then (if (i32.eqz (global.get $state)) (then (global.set $state (i32.const 1)))) (return (i32.const 0))))
    (if (i32.ne (global.get $state) (i32.const 1)) (then (return (i32.const 0))))
    (global.set $state (i32.const 2))
    (local.set $n (i32.add (i32.const 14) (call $s (i32.const 6) (i32.const 78) (i32.const 32))))
    (call $alert (i32.const 1) (i32.const 64) (local.get $n))
    (if (i32.eq (call $emit (i32.const 0) (i32.const 64) (local.get $n)) (i32.const 2))
      (then (return (i32.const 2))))
    (i32.const 0)))`;

const SEQ = await writeWasm("seq_standin", watToWasm(seqStandin(false)));
const SEQ_ARMED = await writeWasm("seq_armed", watToWasm(seqStandin(true)));
// Bound to imapish and, after a successful exploit, to the shell it became
// (never to idwrap-launch, whose execve of imapish would arm the stand-in).
const BOUND = `{ program: [imapish, dash, sh, bash] }`;
const IMAPD = `  - { name: imapd, activate: { program: imapish } }\n`;
const STANDIN = `  - { name: seq, module: ${SEQ}, activate: ${BOUND} }\n`;
const COM = `  - { name: com, activate: ${BOUND} }\n`;

/** Alerts and the imapish process's execve/openat/write verdicts, in report order. */
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

Deno.test("4.1: Imapd_id fires at the execve, Seq_id a call later, and Com_id kills only then", async () => {
  const [path, commands] = marker();
  const policy = await writePolicy(`wrappers:\n${IMAPD}${STANDIN}${COM}`);
  const r = await session(await exploit(commands), [IMAPISH, MAILDIR], policy);
  assertEquals(r.code, 137, r.stderr);
  assert(!(await exists(path)), "the shell ran");
  assertEquals(timeline(r.events), [
    "alert imapd/4 at execve", // Imapd_id: the execve of /bin/sh…
    "alert com/2 at execve", // …Com_id: one detector only, answer 0…
    "execve deny EACCES", // …so Imapd_id denies it (WR_D_BADPERM).
    "alert seq/1 at write", // Seq_id (stand-in): the next call, maint_console's "* BYE"…
    "alert com/4 at write", // …Com_id: both fired, answer 2…
    "write kill", // …and the stand-in kills the process.
  ]);
  assert(!r.stdout.includes("maintenance console unavailable"), "the write ran");
});

Deno.test("4.1: when Seq_id fired first, Imapd_id gets Com_id's kill answer and kills at the execve", async () => {
  const [path, commands] = marker();
  const armed = `  - { name: seq, module: ${SEQ_ARMED}, activate: ${BOUND} }\n`;
  const policy = await writePolicy(`wrappers:\n${IMAPD}${armed}${COM}`);
  const r = await session(await exploit(commands), [IMAPISH, MAILDIR], policy);
  assertEquals(r.code, 137, r.stderr);
  assert(!(await exists(path)), "the shell ran");
  assertEquals(timeline(r.events), [
    "alert seq/1 at openat", // the stand-in, at imapish's first openat (its loader's)
    "alert com/2 at openat",
    "alert imapd/4 at execve",
    "alert com/4 at execve",
    "execve kill", // Imapd_id turned Com_id's answer 2 into kill()
  ]);
});

Deno.test("4.1: a kill answer to Imapd_id's post-open warning kills before the open returns", async () => {
  if (Deno.uid() !== 0) return; // needs a file of another user (chown)
  const secret = `${dir}/files/secret`;
  await Deno.mkdir(`${dir}/files`, { recursive: true });
  await Deno.writeTextFile(secret, "x");
  await Deno.chmod(secret, 0o600);
  await Deno.chown(secret, 65534, 65534);
  const bound = `{ program: imapd }`;
  const policy = await writePolicy(`wrappers:
  - { name: imapd, activate: ${bound} }
  - { name: seq, module: ${SEQ_ARMED}, activate: ${bound} }
  - { name: com, activate: ${bound} }
`);
  const r = await session("", [HELPER, "read", secret], policy);
  assertEquals(r.code, 137, r.stderr);
  assertEquals(reports(r.events).filter((e) => e.kind === "fault"), []);
  assertEquals(timeline(r.events), [
    "alert seq/1 at openat",
    "alert com/2 at openat",
    "alert imapd/4 at openat",
    "alert com/4 at openat",
  ]);
});

Deno.test("4.1: Imapd_id alone (with Com_id): the execve is denied, nobody kills", async () => {
  const [path, commands] = marker();
  const policy = await writePolicy(`wrappers:\n${IMAPD}${COM}`);
  const r = await session(await exploit(commands), [IMAPISH, MAILDIR], policy);
  assertEquals(r.code, 1);
  assert(!(await exists(path)));
  assertEquals(timeline(r.events), ["alert imapd/4 at execve", "alert com/2 at execve", "execve deny EACCES"]);
});

Deno.test("4.1: Seq_id alone (with Com_id): it fires after the execve, nobody kills, the shell runs", async () => {
  const [path, commands] = marker();
  const policy = await writePolicy(`wrappers:\n${STANDIN}${COM}`);
  const r = await session(await exploit(commands), [IMAPISH, MAILDIR], policy);
  assertEquals(r.code, 0, r.stderr);
  assert(await exists(path), "the shell did not run");
  // The stand-in fires in the shell, at its loader's first openat.
  assertEquals(timeline(r.events), ["alert seq/1 at openat", "alert com/2 at openat"]);
  const fired = alerts(r.events)[0];
  assert(fired.program.exe.endsWith("dash") || fired.program.exe.endsWith("sh"), fired.program.exe);
});

Deno.test("4.1: a normal session under all three runs clean", async () => {
  const policy = await writePolicy(`wrappers:\n${IMAPD}${STANDIN}${COM}`);
  const r = await session(NORMAL_SESSION, [IMAPISH, MAILDIR], policy);
  assertEquals(r.code, 0, r.stderr);
  assertEquals(alerts(r.events), []);
});

Deno.test("4.1 with the real Seq_id: trained on normal sessions, it fires after Imapd_id, and Com_id kills", async () => {
  const seq = (mode: string) =>
    `  - { name: seq, settings: { mode: ${mode}, program: imapish-4.1, threshold: 2 }, activate: { program: imapish } }\n`;
  const record = await writePolicy(`wrappers:\n${seq("record")}`);
  const variants = [
    NORMAL_SESSION,
    "a1 LOGIN bob pw\r\na2 NOOP\r\na3 SELECT INBOX\r\na4 LOGOUT\r\n",
    "a1 CAPABILITY\r\na2 LOGIN carol x\r\na3 LOGOUT\r\n",
  ];
  for (const input of variants) {
    const r = await session(input, [IMAPISH, MAILDIR], record);
    assertEquals(r.code, 0, r.stderr);
  }
  // A normal session is no anomaly for the trained detector.
  const detect = await writePolicy(`wrappers:\n${IMAPD}${seq("detect")}${COM}`);
  const clean = await session(NORMAL_SESSION, [IMAPISH, MAILDIR], detect);
  assertEquals(clean.code, 0, clean.stderr);
  assertEquals(alerts(clean.events), []);

  const [path, commands] = marker();
  const r = await session(await exploit(commands), [IMAPISH, MAILDIR], detect);
  assert(!(await exists(path)), "the shell ran");
  const line = timeline(r.events);
  // Imapd_id fires at the execve (the paper: "at the execve system call"), Seq_id a few calls later,
  // and only then does Com_id answer kill.
  assertEquals(line.slice(0, 3), ["alert imapd/4 at execve", "alert com/2 at execve", "execve deny EACCES"]);
  const seqAt = line.findIndex((l) => l.startsWith("alert seq/3"));
  assert(seqAt > 2, line.join("\n"));
  assertEquals(line[seqAt + 1].startsWith("alert com/4"), true, line.join("\n"));
  assert(line[seqAt + 2].endsWith(" kill"), line.join("\n"));
  assertEquals(r.code, 137, r.stderr);
});
