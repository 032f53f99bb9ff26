/**
 * The paper's lpr and lprm attacks (section 4; AUSCERT AA-96.12) against
 * the specifications wrappers/lpr and wrappers/lprm (policies/lpr.yaml), on
 * real programs: tests/progs/lprish.c, an lpr-like spooler client whose job
 * title (-J) overflows into the function pointer after it, and
 * tests/progs/lprmish.c, an lprm-like job remover whose job spec does the
 * same. The exploits (ordinary command-line arguments) redirect the pointer
 * to spool_shell(), which runs /bin/sh; the shell reads its commands from
 * stdin and creates a marker file.
 *
 * Both are built here, non-PIE and without stack protector (the address the
 * exploit writes, read with `nm`, is fixed), installed set-uid root in a
 * temporary directory, and run by a real user (useradd --system) through
 * `setpriv --reuid`: the kernel's set-uid exec gives them effective uid 0,
 * and idwrap (root) keeps its filter on them. Needs root (skipped
 * otherwise).
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import type { HostEvent, SyscallEvent, WrapperReport } from "../../host/events.ts";
import { ensureUser, exists, IDWRAP, parseJsonLines, ROOT, run, TEST_STORE } from "../helpers.ts";

/** What /bin/sh is: wrappers see the canonical path of what runs (docs/seccomp.md, "Paths"). */
const SH_REAL = Deno.realPathSync("/bin/sh");

const IS_ROOT = Deno.uid() === 0;
const USER = "idwrap-lpruser";
const dir = await scratchDir({ prefix: "idwrap-lpr-" });
await Deno.chmod(dir, 0o755); // the user runs the programs in it
const uid = IS_ROOT ? await ensureUser(USER) : 0;
const gid = IS_ROOT ? Number((await run("id", ["-g", USER])).stdout.trim()) : 0;
const HOST = Deno.hostname().slice(0, 63);

/** Compiles C source into dir/name, installed set-uid root (as lpr and lprm are). */
async function ccSetuid(source: string, name: string, flags: string[]): Promise<string> {
  const out = `${dir}/${name}`;
  const r = await new Deno.Command(Deno.env.get("CC") ?? "cc", {
    args: ["-Wall", ...flags, "-o", out, source],
  }).output();
  if (!r.success) throw new Error(`Cannot compile ${source}:\n${new TextDecoder().decode(r.stderr)}`);
  if (IS_ROOT) await Deno.chown(out, 0, 0);
  await Deno.chmod(out, 0o4755);
  return out;
}

const VICTIM_FLAGS = ["-O0", "-no-pie", "-fno-stack-protector"];
const LPRISH = await ccSetuid(`${ROOT}tests/progs/lprish.c`, "lprish", VICTIM_FLAGS);
const LPRMISH = await ccSetuid(`${ROOT}tests/progs/lprmish.c`, "lprmish", VICTIM_FLAGS);

/** The user's home, with a file only the user may read (0600). */
const HOME = `${dir}/home`;
const REPORT = `${HOME}/report.txt`;
const REPORT_TEXT = "quarterly report\nall is well\n";
await Deno.mkdir(HOME);
await Deno.chmod(HOME, 0o755);
await Deno.writeTextFile(REPORT, REPORT_TEXT);
await Deno.chmod(REPORT, 0o600);
if (IS_ROOT) await Deno.chown(REPORT, uid, gid);

let spools = 0;
/** A fresh spool directory, root's, 0700 (as /var/spool/lpd: the user cannot write it). */
async function newSpool(): Promise<string> {
  const s = `${dir}/spool-${++spools}`;
  await Deno.mkdir(s);
  await Deno.chmod(s, 0o700);
  return s;
}

/** policies/lpr.yaml with its spool setting pointing at spool. */
async function policyFor(spool: string): Promise<string> {
  const base = await Deno.readTextFile(`${ROOT}policies/lpr.yaml`);
  const policy = base.replaceAll("spool: /var/spool/lpd", `spool: ${spool}`);
  assertEquals(policy.split(`spool: ${spool}`).length, 3, "both wrappers' spool settings");
  const p = `${spool}.yaml`;
  await Deno.writeTextFile(p, policy);
  return p;
}

interface Result {
  code: number;
  stdout: string;
  stderr: string;
  events: HostEvent[];
}

let traces = 0;
/**
 * Runs a program as the user (real uid and gid) through its set-uid bit,
 * with `input` on stdin and LPR_SPOOL=spool, under `idwrap run --json -p
 * POLICY` or not.
 */
async function asUser(command: string[], spool: string, input = "", policy?: string): Promise<Result> {
  const user = ["setpriv", `--reuid=${uid}`, `--regid=${gid}`, "--clear-groups", "--", ...command];
  const out = policy ? `${dir}/trace-${++traces}.jsonl` : undefined;
  const [cmd, ...args] = policy ? [IDWRAP, "run", "--json", "-o", out!, "-p", policy, "--", ...user] : user;
  const child = new Deno.Command(cmd, {
    args,
    cwd: HOME,
    env: { IDWRAP_STORE: TEST_STORE, LPR_SPOOL: spool },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const writer = child.stdin.getWriter();
  await writer.write(new TextEncoder().encode(input)).catch(() => {});
  await writer.close().catch(() => {});
  const r = await child.output();
  const dec = new TextDecoder();
  const events = out ? parseJsonLines(await Deno.readTextFile(out)) : [];
  return { code: r.code, stdout: dec.decode(r.stdout), stderr: dec.decode(r.stderr), events };
}

function reports(events: HostEvent[]): WrapperReport[] {
  return events.filter((e): e is WrapperReport => e.kind === "alert" || e.kind === "fault");
}

function execs(events: HostEvent[], exe: string): SyscallEvent[] {
  return events.filter((e): e is SyscallEvent =>
    e.kind === "syscall" && e.syscall === "execve" && e.phase === "pre" && e.program.exe === exe
  );
}

/** The address of spool_shell in a non-PIE build, as the 3 low bytes the overflow writes. */
async function spoolShell(binary: string): Promise<string> {
  const r = await new Deno.Command("nm", { args: [binary] }).output();
  const line = new TextDecoder().decode(r.stdout).split("\n").find((l) => / T spool_shell$/.test(l));
  if (!line) throw new Error(`nm: no spool_shell in ${binary}`);
  const addr = BigInt(`0x${line.split(" ")[0]}`);
  assert(addr < 1n << 24n, `spool_shell at 0x${addr.toString(16)} needs more than 3 bytes`);
  const bytes = [0, 1, 2].map((i) => Number((addr >> BigInt(8 * i)) & 0xffn));
  // An argv string: no NUL, and ASCII so the argument's bytes are these (no UTF-8 encoding).
  assert(bytes.every((b) => b !== 0 && b < 0x80), `bad byte in ${bytes}`);
  return String.fromCharCode(...bytes);
}

/**
 * The exploits. strcpy writes the filler, the pointer's 3 low bytes and
 * the NUL as its 4th byte; its upper bytes were already 0 (a non-PIE text
 * address below 2^24), so the pointer becomes &spool_shell.
 */
const LPR_TITLE = "A".repeat(32) + await spoolShell(LPRISH); // job.title[32], then job.announce
const LPRM_SPEC = "1".repeat(16) + await spoolShell(LPRMISH); // req.spec[16], then req.match

let markers = 0;
/** A fresh marker path and the shell input that creates it. */
function marker(): [string, string] {
  const path = `${dir}/pwned-${++markers}`;
  return [path, `touch ${path}\nexit 0\n`];
}

/** The spool's files, sorted (without .seq). */
async function spoolFiles(spool: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(spool)) if (e.name !== ".seq") names.push(e.name);
  return names.sort();
}

/** Queues REPORT as the user, without idwrap; returns the job number's files. */
async function queueJob(spool: string): Promise<void> {
  const r = await asUser([LPRISH, "-J", "report", REPORT], spool);
  assertEquals(r.code, 0, r.stderr);
}

const CONTROL = (seq: string) =>
  `H${HOST}\nP${USER}\nJreport\nC${HOST.slice(0, 31)}\nL${USER}\nfdfA${seq}${HOST}\nUdfA${seq}${HOST}\nN${REPORT}\n`;

// ---------------------------------------------------------------------------
// lpr

Deno.test({
  name: "lprish: without idwrap a normal job is spooled",
  ignore: !IS_ROOT,
  fn: async () => {
    const spool = await newSpool();
    const r = await asUser([LPRISH, "-J", "report", REPORT], spool);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stdout, "request id is lp-1 (1 file)\n");
    assertEquals(await spoolFiles(spool), [`cfA001${HOST}`, `dfA001${HOST}`]);
    assertEquals(await Deno.readTextFile(`${spool}/dfA001${HOST}`), REPORT_TEXT);
    assertEquals(await Deno.readTextFile(`${spool}/cfA001${HOST}`), CONTROL("001"));
    const cf = await Deno.stat(`${spool}/cfA001${HOST}`);
    assertEquals([cf.uid, cf.mode! & 0o7777], [0, 0o660]); // root's: set-uid root did the work
    // The invoker may not print a file it cannot read (lprish's own access() check).
    const shadow = await asUser([LPRISH, "/etc/shadow"], spool);
    assertEquals(shadow.code, 1);
    assert(shadow.stderr.includes("/etc/shadow: Permission denied"), shadow.stderr);
  },
});

Deno.test({
  name: "lprish: without idwrap the crafted title runs a root shell",
  ignore: !IS_ROOT,
  fn: async () => {
    const spool = await newSpool();
    const [path, commands] = marker();
    const r = await asUser([LPRISH, "-J", LPR_TITLE, REPORT], spool, commands);
    assertEquals(r.code, 0, r.stderr);
    assert(!r.stdout.includes("request id"), "announced instead of being hijacked");
    assert(await exists(path), "the shell did not run");
    assertEquals((await Deno.stat(path)).uid, 0); // created by root
  },
});

Deno.test({
  name: "lpr policy: a normal job runs clean",
  ignore: !IS_ROOT,
  fn: async () => {
    const spool = await newSpool();
    const r = await asUser([LPRISH, "-J", "report", REPORT], spool, "", await policyFor(spool));
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stdout, "request id is lp-1 (1 file)\n");
    assertEquals(reports(r.events), []);
    assertEquals(await Deno.readTextFile(`${spool}/cfA001${HOST}`), CONTROL("001"));
    assertEquals(await Deno.readTextFile(`${spool}/dfA001${HOST}`), REPORT_TEXT);
    // The wrapper was bound to lprish (the set-uid program, run by the user).
    const exec = r.events.find((e) => e.kind === "exec" && e.program.exe === LPRISH);
    assert(exec && exec.kind === "exec" && exec.program.uid === uid, "lprish ran as the user");
  },
});

Deno.test({
  name: "lpr policy: the exploit's execve is detected and denied with EACCES, no shell runs",
  ignore: !IS_ROOT,
  fn: async () => {
    const spool = await newSpool();
    const [path, commands] = marker();
    const r = await asUser([LPRISH, "-J", LPR_TITLE, REPORT], spool, commands, await policyFor(spool));
    assert(!(await exists(path)), "the shell ran under idwrap");
    assertEquals(r.code, 1); // spool_shell's exit(1) after the failed execl
    assert(r.stderr.includes("lprish: cannot run a shell: Permission denied"), r.stderr);
    assertEquals(reports(r.events).map((a) => [a.kind, a.wrapper, a.severity, a.syscall, a.message]), [
      ["alert", "lpr", 4, "execve", `lpr: execve of ${SH_REAL}: lpr never executes programs`],
    ]);
    assertEquals(execs(r.events, LPRISH).map((e) => [e.decoded.rawPath ?? e.decoded.path, e.verdict]), [[
      "/bin/sh",
      "deny EACCES",
    ]]);
  },
});

// ---------------------------------------------------------------------------
// lprm

Deno.test({
  name: "lprmish: without idwrap the user removes their own job, not root's",
  ignore: !IS_ROOT,
  fn: async () => {
    const spool = await newSpool();
    await queueJob(spool);
    // A job of root's, in the same queue.
    await Deno.writeTextFile(`${spool}/cfA900${HOST}`, `H${HOST}\nProot\nUdfA900${HOST}\n`);
    await Deno.writeTextFile(`${spool}/dfA900${HOST}`, "root's\n");
    const other = await asUser([LPRMISH, "900"], spool);
    assertEquals(other.code, 0, other.stderr);
    assertEquals(other.stdout, "no entries\n");
    assert(other.stderr.includes(`cfA900${HOST}: permission denied`), other.stderr);
    const r = await asUser([LPRMISH, "1"], spool);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stdout, `dfA001${HOST} dequeued\ncfA001${HOST} dequeued\n`);
    assertEquals(await spoolFiles(spool), [`cfA900${HOST}`, `dfA900${HOST}`]);
  },
});

Deno.test({
  name: "lprmish: without idwrap the crafted job spec runs a root shell",
  ignore: !IS_ROOT,
  fn: async () => {
    const spool = await newSpool();
    await queueJob(spool); // match is called for each queued job
    const [path, commands] = marker();
    const r = await asUser([LPRMISH, LPRM_SPEC], spool, commands);
    assertEquals(r.code, 0, r.stderr);
    assert(await exists(path), "the shell did not run");
    assertEquals((await Deno.stat(path)).uid, 0);
  },
});

Deno.test({
  name: "lprm policy: removing the user's own job runs clean",
  ignore: !IS_ROOT,
  fn: async () => {
    const spool = await newSpool();
    await queueJob(spool);
    const r = await asUser([LPRMISH], spool, "", await policyFor(spool)); // no spec: the invoker's jobs
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stdout, `dfA001${HOST} dequeued\ncfA001${HOST} dequeued\n`);
    assertEquals(reports(r.events), []);
    assertEquals(await spoolFiles(spool), []);
  },
});

Deno.test({
  name: "lprm policy: the exploit's execve is detected and denied with EACCES, no shell runs",
  ignore: !IS_ROOT,
  fn: async () => {
    const spool = await newSpool();
    await queueJob(spool);
    const [path, commands] = marker();
    const r = await asUser([LPRMISH, LPRM_SPEC], spool, commands, await policyFor(spool));
    assert(!(await exists(path)), "the shell ran under idwrap");
    assertEquals(r.code, 1);
    assert(r.stderr.includes("lprmish: cannot run a shell: Permission denied"), r.stderr);
    assertEquals(reports(r.events).map((a) => [a.kind, a.wrapper, a.severity, a.syscall, a.message]), [
      ["alert", "lprm", 4, "execve", `lprm: execve of ${SH_REAL}: lprm never executes programs`],
    ]);
    assertEquals(execs(r.events, LPRMISH).map((e) => [e.decoded.rawPath ?? e.decoded.path, e.verdict]), [[
      "/bin/sh",
      "deny EACCES",
    ]]);
    assertEquals(await spoolFiles(spool), [`cfA001${HOST}`, `dfA001${HOST}`]); // nothing removed either
  },
});

// ---------------------------------------------------------------------------
// The specifications' clauses, on a helper program installed set-uid root
// as "lpr" and "lprm" (so policies/lpr.yaml binds the wrappers to it).

const HELPER_C = `${dir}/helper.c`;
await Deno.writeTextFile(
  HELPER_C,
  `#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
// Runs "OP PATH" pairs from argv, printing "OP PATH rc" for each (rc: 0, or -errno).
int main(int argc, char **argv) {
  for (int i = 1; i + 1 < argc; i += 2) {
    const char *op = argv[i], *p = argv[i + 1];
    int rc = -1, fd;
    if (!strcmp(op, "read")) { fd = open(p, O_RDONLY); rc = fd >= 0 ? close(fd) : -1; }
    else if (!strcmp(op, "write")) { fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644); rc = fd >= 0 ? close(fd) : -1; }
    else if (!strcmp(op, "chmod")) rc = chmod(p, 0600);
    else if (!strcmp(op, "chown")) rc = chown(p, 0, 0);
    else if (!strcmp(op, "unlink")) rc = unlink(p);
    else if (!strcmp(op, "connect")) {
      struct sockaddr_un a = { .sun_family = AF_UNIX };
      snprintf(a.sun_path, sizeof(a.sun_path), "%s", p);
      fd = socket(AF_UNIX, SOCK_STREAM, 0);
      rc = connect(fd, (struct sockaddr *)&a, sizeof(a));
      close(fd);
    }
    printf("%s %s %d\\n", op, p, rc < 0 ? -errno : rc);
  }
  return 0;
}
`,
);
const HELPER_LPR = await ccSetuid(HELPER_C, "lpr", ["-O2"]);
const HELPER_LPRM = await ccSetuid(HELPER_C, "lprm", ["-O2"]);

Deno.test({
  name:
    "lpr: reads only what the invoker could, writes and changes modes only in the spool, connects only to the printer",
  ignore: !IS_ROOT,
  fn: async () => {
    const spool = await newSpool();
    const secret = `${dir}/secret`; // root's, 0600
    await Deno.writeTextFile(secret, "s");
    await Deno.chmod(secret, 0o600);
    const outside = `${dir}/home/evil`;
    const sock = `${dir}/printer.sock`;
    const other = `${dir}/other.sock`;
    const policy = await policyFor(spool);
    await Deno.writeTextFile(
      policy,
      (await Deno.readTextFile(policy)).replace(
        `spool: ${spool}\n`,
        `spool: ${spool}\n      printer: "unix:${sock}"\n`,
      ),
    );
    const job = `${spool}/cfA001x`;
    const ops = [
      ["read", REPORT], // the invoker's own 0600 file
      ["read", "/etc/passwd"], // world-readable
      ["read", secret], // violation: root's 0600
      ["write", job], // in the spool
      ["chmod", job],
      ["chown", job],
      ["read", job], // root's 0600, but in the spool
      ["unlink", job],
      ["write", outside], // violation
      ["chmod", REPORT], // violation
      ["chown", REPORT], // violation
      ["unlink", REPORT], // violation
      ["connect", sock], // the printer (nobody listens: ENOENT)
      ["connect", other], // violation
    ];
    const r = await asUser([HELPER_LPR, ...ops.flat()], spool, "", policy);
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stdout.trim().split("\n").map((l) => Number(l.split(" ")[2])), [
      0,
      0,
      -13,
      0,
      0,
      0,
      0,
      0,
      -13,
      -13,
      -13,
      -13,
      -2,
      -13,
    ]);
    assert(!(await exists(outside)), "the write outside the spool happened");
    assert(await exists(REPORT), "the user's file was removed");
    assertEquals((await Deno.stat(REPORT)).mode! & 0o777, 0o600);
    const u = `the invoker (uid ${uid})`;
    assertEquals(reports(r.events).map((a) => [a.kind, a.wrapper, a.severity, a.syscall, a.message]), [
      [
        "alert",
        "lpr",
        4,
        "openat",
        `lpr: open-read of ${secret} (mode 0600, owner uid 0, group 0): ${u} may not read it`,
      ],
      [
        "alert",
        "lpr",
        4,
        "openat",
        `lpr: open for writing of ${outside} (O_WRONLY|O_CREAT|O_TRUNC) outside the spool ${spool}`,
      ],
      ["alert", "lpr", 4, "chmod", `lpr: chmod of ${REPORT} outside the spool ${spool}`],
      ["alert", "lpr", 4, "chown", `lpr: chown of ${REPORT} outside the spool ${spool}`],
      ["alert", "lpr", 4, "unlink", `lpr: unlink of ${REPORT} outside the spool ${spool}`],
      ["alert", "lpr", 4, "connect", `lpr: connect to unix:${other}: not the printer unix:${sock}`],
    ]);
  },
});

Deno.test({
  name: "lprm: never changes modes, not even in the spool",
  ignore: !IS_ROOT,
  fn: async () => {
    const spool = await newSpool();
    const job = `${spool}/cfA001x`;
    await Deno.writeTextFile(job, "Proot\n");
    const r = await asUser([HELPER_LPRM, "read", job, "chmod", job, "unlink", job], spool, "", await policyFor(spool));
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stdout, `read ${job} 0\nchmod ${job} -13\nunlink ${job} 0\n`);
    assertEquals(reports(r.events).map((a) => [a.wrapper, a.severity, a.syscall, a.message]), [
      ["lprm", 4, "chmod", `lprm: chmod of ${job}: lprm never changes modes or owners`],
    ]);
  },
});

Deno.test({ name: "lpr: clean up", ignore: !IS_ROOT, fn: () => Deno.remove(dir, { recursive: true }) });
