/**
 * The wall-clock watchdog: a hook the budget does not stop in time (here, a
 * loop of host imports, one unit each) is stopped after the limit, and
 * SIGTERM/SIGINT to idwrap work at once while it runs; either way the
 * protected call never runs. Real `idwrap run` processes under the seccomp
 * source, each with a deadline so that the code without a watchdog fails the
 * test instead of hanging it.
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { IDWRAP, run, TEST_STORE, writePolicy } from "../helpers.ts";
import { watToWasm, writeWasm } from "./wat.ts";
import { HOOK_WALL_CLOCK_LIMIT_MS } from "../../host/runtime/watchdog.ts";

const dir = await scratchDir({ prefix: "idwrap-watchdog-" });
const FILE = `${dir}/file.txt`;
await Deno.writeTextFile(FILE, "content\n");

/** Spins calling event_string (an import: one budget unit per iteration, far more in time) on opens of FILE. */
const SPIN = `(module
  (import "idwrap" "declare_syscall" (func $d (param i32 i32) (result i32)))
  (import "idwrap" "event_string" (func $s (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "${FILE}")
  (func (export "idwrap_abi_version") (result i32) (i32.const 0x00010000))
  (func (export "idwrap_declare") (result i32) (drop (call $d (i32.const 257) (i32.const 5))) (i32.const 0))
  (func (export "idwrap_on_syscall") (result i32)
    (local $i i32)
    (if (i32.ne (call $s (i32.const 0) (i32.const 4096) (i32.const 4096)) (i32.const ${FILE.length}))
      (then (return (i32.const 0))))
    (loop $next
      (if (i32.ne (i32.load8_u (local.get $i)) (i32.load8_u (i32.add (i32.const 4096) (local.get $i))))
        (then (return (i32.const 0))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br_if $next (i32.lt_u (local.get $i) (i32.const ${FILE.length}))))
    (loop $spin (drop (call $s (i32.const 0) (i32.const 8192) (i32.const 4096))) (br $spin))
    (i32.const 0)))`;
const spin = await writeWasm("spin", watToWasm(SPIN));
const policy = await writePolicy(`wrappers:\n  - { name: spinner, module: ${spin}, budget: 2147483647 }\n`);

/** Starts `idwrap run -p policy -- cat FILE`, killed (SIGKILL) if still running after `deadlineMs`. */
function start(deadlineMs: number) {
  const child = new Deno.Command(IDWRAP, {
    args: ["run", "-p", policy, "--", "/bin/cat", FILE],
    env: { IDWRAP_STORE: TEST_STORE },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const began = performance.now();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill("SIGKILL");
  }, deadlineMs);
  const done = child.output().then((out) => {
    clearTimeout(timer);
    const dec = new TextDecoder();
    return {
      ...out,
      ms: performance.now() - began,
      timedOut,
      out: dec.decode(out.stdout),
      err: dec.decode(out.stderr),
    };
  });
  return { child, done };
}

/** Waits until a `cat FILE` is blocked in openat (its hook is running), plus `extraMs`. */
async function hookRunning(extraMs: number): Promise<void> {
  for (let i = 0; i < 600; i++) {
    for (const e of Deno.readDirSync("/proc")) {
      if (!/^\d+$/.test(e.name)) continue;
      try {
        const cmd = Deno.readTextFileSync(`/proc/${e.name}/cmdline`);
        if (cmd !== `/bin/cat\0${FILE}\0`) continue;
        if (Deno.readTextFileSync(`/proc/${e.name}/syscall`).startsWith("257 ")) {
          return await new Promise((r) => setTimeout(r, extraMs));
        }
      } catch { /* gone, or not ours */ }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error("cat never blocked in openat");
}

Deno.test("control: the file is readable unwrapped", async () => {
  assertEquals((await run("/bin/cat", [FILE])).stdout, "content\n");
});

Deno.test("a hook the budget does not stop in time is stopped by the wall-clock watchdog; the call never runs", async () => {
  const r = await start(HOOK_WALL_CLOCK_LIMIT_MS + 20_000).done;
  assert(!r.timedOut, `idwrap still ran after ${Math.round(r.ms)} ms`);
  assert(r.ms >= HOOK_WALL_CLOCK_LIMIT_MS, `${r.ms}`);
  assertEquals(r.out, "");
  assert(
    r.err.includes(
      `wrapper "spinner": idwrap_on_syscall ran past the wall-clock limit of ${HOOK_WALL_CLOCK_LIMIT_MS} ms; ` +
        "the supervisor thread was stopped",
    ),
    r.err,
  );
  assert(r.code !== 0);
});

for (const signal of ["SIGTERM", "SIGINT"] as const) {
  Deno.test(`${signal} to idwrap works at once while a hook spins`, async () => {
    const { child, done } = start(HOOK_WALL_CLOCK_LIMIT_MS / 2);
    await hookRunning(500); // past the 100 ms after which a signal stops a running hook, and a 50 ms check
    const sent = performance.now();
    child.kill(signal);
    const r = await done;
    assert(!r.timedOut, `idwrap ignored ${signal} while the hook ran`);
    assert(performance.now() - sent < 3000, `${performance.now() - sent} ms`);
    assertEquals(r.out, "");
    assert(r.err.includes(`wrapper "spinner": idwrap_on_syscall was still running`), r.err);
    assert(r.err.includes(`when idwrap got ${signal}`), r.err);
  });
}
