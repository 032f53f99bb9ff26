/**
 * `idwrap trace` as strace users type it: fds as numbers, -s, -f, -e trace= classes, -c, -T, -p (bpf only, else a
 * clear refusal, exit 2), and denied calls shown with the errno they returned. Real programs under the real sources.
 */
import { scratchFile } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { idwrap, writePolicy } from "../helpers.ts";

async function traceText(flags: string[], command: string[]): Promise<{ code: number; text: string; stderr: string }> {
  const out = await scratchFile({ prefix: "idwrap-trace-", suffix: ".txt" });
  try {
    const r = await idwrap(["trace", "-o", out, ...flags, "--", ...command]);
    return { code: r.code, text: await Deno.readTextFile(out), stderr: r.stderr };
  } finally {
    await Deno.remove(out);
  }
}

const LONG = "0123456789abcdefghij0123456789abcdefghij"; // 40 bytes, then "\n"

Deno.test("trace text: write shows its fd as a number and its data cut at -s (default 32), with the count", async () => {
  const cut = await traceText(["-f", "-e", "trace=write"], ["/bin/echo", LONG]);
  assertEquals(cut.code, 0, cut.stderr);
  assert(cut.text.includes(`write(1, "${LONG.slice(0, 32)}"..., 41)`), cut.text);
  const whole = await traceText(["-s", "64", "-e", "trace=write"], ["/bin/echo", LONG]);
  assert(whole.text.includes(`write(1, "${LONG}\\n", 41)`), whole.text);
  const bad = await idwrap(["trace", "-s", "x", "--", "true"]);
  assertEquals(bad.code, 2);
  assert(/-s x: expected a whole number of bytes/.test(bad.stderr), bad.stderr);
});

Deno.test("trace text: an open's result as strace prints it, and a denied open shows the errno it returned", async () => {
  const t = await traceText(["-e", "trace=%file"], ["/bin/sh", "-c", "cat /etc/hostname /nonexistent-x; exit 0"]);
  assertEquals(t.code, 0, t.stderr);
  assert(/ openat\(AT_FDCWD, "\/etc\/hostname", O_RDONLY\) = \d+$/m.test(t.text), t.text);
  assert(
    / openat\(AT_FDCWD, "\/nonexistent-x", O_RDONLY\) = -1 ENOENT \(No such file or directory\)$/m.test(t.text),
    t.text,
  );
  // Under a deny rule (`run` prints notable calls as trace does): the call returned the rule's errno, and says so.
  const policy = await writePolicy(
    "version: 1\nname: p\nrules:\n  - id: no-hostname\n    syscalls: [openat]\n    path: /etc/hostname\n    action: deny\n",
  );
  const out = await scratchFile();
  try {
    const r = await idwrap(["run", "--standalone", "--policy", policy, "-o", out, "--", "/bin/cat", "/etc/hostname"]);
    assertEquals(r.code, 1, r.stderr);
    const text = await Deno.readTextFile(out);
    assert(
      / openat\(AT_FDCWD, "\/etc\/hostname", O_RDONLY\) = -1 EPERM \(Operation not permitted\) <denied> \[no-hostname\]$/m
        .test(text),
      text,
    );
  } finally {
    await Deno.remove(out);
  }
});

Deno.test("trace -e: strace's trace= form and classes select calls; unknown qualifiers and classes exit 2", async () => {
  const t = await traceText(["-e", "trace=%memory,%signal"], ["/bin/sh", "-c", "kill -0 $$; exit 0"]);
  assertEquals(t.code, 0, t.stderr);
  assert(/ mmap\(/.test(t.text) || / brk\(/.test(t.text), t.text);
  assert(/ (rt_sigaction|kill)\(/.test(t.text), t.text);
  assert(!/ openat\(/.test(t.text), t.text); // the control: %file was not asked for
  for (const [expr, message] of [["signal=none", /"signal=" is not supported/], ["trace=%bogus", /%bogus/]]) {
    const r = await idwrap(["trace", "-e", expr as string, "--", "true"]);
    assertEquals(r.code, 2, r.stderr);
    assert((message as RegExp).test(r.stderr), r.stderr);
  }
});

Deno.test("trace -c prints a counts table with errors; -T adds the time of calls with a result", async () => {
  const c = await traceText(["-c"], ["/bin/sh", "-c", "cat /nonexistent-x; exit 0"]);
  assertEquals(c.code, 0, c.stderr);
  assert(/^\s+calls\s+errors syscall$/m.test(c.text), c.text);
  const openat = c.text.match(/^\s+(\d+)\s+(\d+) openat$/m);
  assert(openat && Number(openat[2]) >= 1 && Number(openat[1]) > Number(openat[2]), c.text);
  assert(/^\s+\d+\s+\d* total$/m.test(c.text), c.text);
  assert(!/ = /.test(c.text), "no call lines with -c");
  const t = await traceText(["-T", "-e", "trace=openat"], ["/bin/cat", "/etc/hostname"]);
  assert(/ openat\(AT_FDCWD, "\/etc\/hostname", O_RDONLY\) = \d+ <\d+\.\d{3}>$/m.test(t.text), t.text);
});

Deno.test("trace -p: refused with a clear message and exit 2 on sources that cannot attach", async () => {
  for (const source of ["seccomp", "auto"]) {
    const r = await idwrap(["trace", "--source", source, "-p", String(Deno.pid)]);
    assertEquals(r.code, 2, r.stderr);
    assert(/-p: attaching to a running process needs --source bpf/.test(r.stderr), r.stderr);
  }
  const both = await idwrap(["trace", "--source", "bpf", "-p", "1", "--", "true"]);
  assertEquals(both.code, 2);
  assert(/not both/.test(both.stderr), both.stderr);
  const gone = await idwrap(["trace", "--source", "bpf", "-p", "999999999"]);
  assertEquals(gone.code, 2, gone.stderr);
});

Deno.test("trace -p with --source bpf observes a running process's calls until it exits", async () => {
  const marker = `/tmp/idwrap-attach-${crypto.randomUUID()}`;
  // Sleeps before its calls, so that they come after the attach; a control call before the sleep is not seen.
  const child = new Deno.Command("/bin/sh", {
    args: ["-c", `cat /etc/hostname-before 2>/dev/null; sleep 3; cat ${marker} 2>/dev/null; exit 0`],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const out = await scratchFile();
  try {
    await new Promise((r) => setTimeout(r, 300));
    const r = await idwrap(["trace", "--source", "bpf", "-o", out, "-e", "trace=%file", "-p", String(child.pid)]);
    assertEquals(r.code, 0, r.stderr);
    const text = await Deno.readTextFile(out);
    assert(text.includes(`openat(AT_FDCWD, "${marker}", O_RDONLY) = -1 ENOENT (No such file or directory)`), text);
    assert(!text.includes("hostname-before"), text);
  } finally {
    await child.status;
    await Deno.remove(out);
  }
});

Deno.test("trace -p with --source bpf returns when a process that makes no traced call exits", async () => {
  const child = new Deno.Command("/bin/sleep", { args: ["2"], stdout: "null", stderr: "null" }).spawn();
  try {
    await new Promise((r) => setTimeout(r, 200));
    const started = performance.now();
    const r = await idwrap(["trace", "--source", "bpf", "-e", "trace=openat", "-p", String(child.pid)], {
      timeoutMs: 30_000,
    });
    assertEquals(r.code, 0, r.stderr);
    assert(performance.now() - started < 15_000);
  } finally {
    await child.status;
  }
});
