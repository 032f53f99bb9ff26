/**
 * A `fail: closed` wrapper stays closed under attack: a program that can make
 * a protective wrapper trap, or a wrapper that returns a verdict the host does
 * not know, never gets the protected call through — not after one failure,
 * not after `max_failures` of them (the wrapper is never unloaded; its
 * processes are killed or denied, `on_max_failures`). Real programs under the
 * seccomp source, with an unwrapped control in each test.
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { calls, ensureUser, idwrapAsUser, reports, run, traced, writePolicy } from "../helpers.ts";
import { watToWasm, writeWasm } from "./wat.ts";

const dir = await scratchDir({ prefix: "idwrap-failclosed-" });
const SECRET = `${dir}/secret.txt`;
await Deno.writeTextFile(SECRET, "the-secret\n");
/** Paths the attacker opens to make the wrapper trap (they need not exist). */
const TRAPS = [1, 2, 3, 4, 5, 6].map((i) => `${dir}/TRAP-${i}`);

/**
 * A protective wrapper: it denies (EACCES) every open whose path contains "secret". `onTrap` runs when the path
 * contains "TRAP" (the attacker-reachable bug), `onSecret` is the verdict for the protected path.
 */
function protective(onTrap = "(unreachable)", onSecret = "(return (i32.const 0x0d01))"): string {
  return `(module
  (import "idwrap" "declare_syscall" (func $d (param i32 i32) (result i32)))
  (import "idwrap" "event_string" (func $s (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "TRAP")
  (data (i32.const 16) "secret")
  (func (export "idwrap_abi_version") (result i32) (i32.const 0x00010000))
  (func (export "idwrap_declare") (result i32)
    (drop (call $d (i32.const 2) (i32.const 5)))
    (drop (call $d (i32.const 257) (i32.const 5)))
    (i32.const 0))
  ;; whether the path at [1024, 1024 + len) contains the needle at [p, p + n)
  (func $has (param $len i32) (param $p i32) (param $n i32) (result i32)
    (local $i i32) (local $j i32)
    (block $no
      (loop $at
        (br_if $no (i32.gt_s (i32.add (local.get $i) (local.get $n)) (local.get $len)))
        (local.set $j (i32.const 0))
        (block $miss
          (loop $cmp
            (br_if $miss (i32.ne
              (i32.load8_u (i32.add (i32.const 1024) (i32.add (local.get $i) (local.get $j))))
              (i32.load8_u (i32.add (local.get $p) (local.get $j)))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br_if $cmp (i32.lt_u (local.get $j) (local.get $n))))
          (return (i32.const 1)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $at)))
    (i32.const 0))
  (func (export "idwrap_on_syscall") (result i32)
    (local $len i32)
    (local.set $len (call $s (i32.const 0) (i32.const 1024) (i32.const 4096)))
    (if (i32.lt_s (local.get $len) (i32.const 0)) (then (return (i32.const 0))))
    (if (i32.gt_s (local.get $len) (i32.const 4096)) (then (local.set $len (i32.const 4096))))
    (if (call $has (local.get $len) (i32.const 0) (i32.const 4)) (then ${onTrap}))
    (if (call $has (local.get $len) (i32.const 16) (i32.const 6)) (then ${onSecret}))
    (i32.const 0)))`;
}

const guard = await writeWasm("guard", watToWasm(protective()));

async function guardPolicy(extra = ""): Promise<string> {
  return await writePolicy(`wrappers:\n  - { name: guard, module: ${guard}${extra} }\n`);
}

Deno.test("control: the secret is readable unwrapped, and the protective wrapper denies it wrapped", async () => {
  const plain = await run("/bin/cat", [SECRET]);
  assertEquals(plain.stdout, "the-secret\n");
  const r = await traced("run", ["-p", await guardPolicy()], ["/bin/cat", SECRET]);
  assertEquals(r.stdout, "");
  assert(r.stderr.includes("Permission denied"), r.stderr);
});

Deno.test("a protective wrapper made to trap max_failures times kills the process; the protected open never runs", async () => {
  // Unwrapped, the attack reads the secret (cat goes on past the missing files).
  const plain = await run("/bin/cat", [...TRAPS, SECRET]);
  assert(plain.stdout.includes("the-secret"), plain.stdout);

  const r = await traced("run", ["-p", await guardPolicy()], ["/bin/cat", ...TRAPS, SECRET]);
  assert(!r.stdout.includes("the-secret"), `the protection was disabled: ${r.stdout}`);
  assertEquals(r.code, 137, r.stderr); // SIGKILL
  const faults = reports(r.events, "fault").map((f) => f.message);
  // Every failure before the limit denied its call (cat's first error message reads a locale file, a success).
  assert(faults.filter((m) => m.endsWith("trapped: unreachable; call denied (fail closed)")).length >= 4);
  assert(
    faults.some((m) =>
      m.includes("failed 5 times in a row in this process (max_failures 5), fail closed: the process is killed") &&
      m.includes("(on_max_failures: kill)")
    ),
    faults.join("\n"),
  );
  assert(!faults.some((m) => /unloaded|disabled/.test(m)), faults.join("\n"));
  assert(!calls(r.events).some((e) => e.decoded.path === SECRET), "the protected open reached the supervisor");
});

Deno.test("failures count per process: the attacker is killed, the next process is still protected and runs", async () => {
  const script = `/bin/cat ${TRAPS.join(" ")} 2>/dev/null; /bin/cat ${SECRET}; echo after`;
  const plain = await run("/bin/sh", ["-c", script]);
  assert(plain.stdout.includes("the-secret"), plain.stdout);

  const r = await traced("run", ["-p", await guardPolicy()], ["/bin/sh", "-c", script]);
  assert(!r.stdout.includes("the-secret"), `the protection was disabled: ${r.stdout}`);
  // The shell and the second cat were not punished for the first cat's failures: the wrapper denied the open itself.
  assert(r.stdout.includes("after"), r.stdout + r.stderr);
  assert(r.stderr.includes(`${SECRET}: Permission denied`), r.stderr);
  assertEquals(calls(r.events).filter((e) => e.decoded.path === SECRET).map((e) => e.verdict), ["deny EACCES"]);
  const killed = reports(r.events, "fault").filter((f) => f.message.includes("fail closed: the process is killed"));
  assertEquals(killed.length, 1);
});

Deno.test("on_max_failures: deny keeps denying every call the broken wrapper examines, and says so", async () => {
  const r = await traced("run", ["-p", await guardPolicy(", on_max_failures: deny")], [
    "/bin/cat",
    ...TRAPS,
    SECRET,
  ]);
  assert(!r.stdout.includes("the-secret"), `the protection was disabled: ${r.stdout}`);
  assert(r.stderr.includes(`${SECRET}: Operation not permitted`), r.stderr);
  assertEquals(r.code, 1);
  const secret = calls(r.events).filter((e) => e.decoded.path === SECRET);
  assertEquals(secret.map((e) => e.verdict), ["deny EPERM"]);
  const faults = reports(r.events, "fault").map((f) => f.message);
  assert(
    faults.some((m) =>
      m.includes("this call and every call of the process the wrapper examines from now on are denied with EPERM")
    ),
    faults.join("\n"),
  );
});

Deno.test("fail: open is disabled after max_failures, and says so (the documented trade-off)", async () => {
  const policy = await guardPolicy(", fail: open");
  const r = await traced("run", ["-p", policy], ["/bin/cat", ...TRAPS, SECRET]);
  assertEquals(r.stdout, "the-secret\n");
  const faults = reports(r.events, "fault").map((f) => f.message);
  assert(
    faults.some((m) => m.startsWith("disabled for this process after 5 failures in a row (fail: open)")),
    faults.join("\n"),
  );
});

const BAD_VERDICTS: [string, string, RegExp][] = [
  ["an unknown verdict", "(return (i32.const 7))", /unknown verdict 7 from wrapper bad \(action 7 is none of/],
  ["a verdict with high bits set", "(return (i32.const 0x7f000001))", /malformed verdict 2130706433 .*bits 24-31/],
  ["a deny with an errno past 4095", "(return (i32.const 0x138801))", /malformed verdict .*errno 5000 is past 4095/],
];

for (const [what, onSecret, message] of BAD_VERDICTS) {
  Deno.test(`a hook returning ${what} gets the call denied, and the fault says so`, async () => {
    const bad = await writeWasm("bad", watToWasm(protective("(nop)", onSecret)));
    const policy = await writePolicy(`wrappers:\n  - { name: bad, module: ${bad} }\n`);
    const r = await traced("run", ["-p", policy], ["/bin/cat", SECRET]);
    assertEquals(r.stdout, "", "the call ran");
    assert(r.stderr.includes(`${SECRET}: Operation not permitted`), r.stderr);
    assertEquals(calls(r.events).filter((e) => e.decoded.path === SECRET).map((e) => e.verdict), ["deny EPERM"]);
    const faults = reports(r.events, "fault").map((f) => f.message);
    assertEquals(faults.length, 1, faults.join("\n"));
    assert(message.test(faults[0]) && faults[0].endsWith("; call denied (fail closed)"), faults[0]);
  });
}

/** Emits "seen" with the path on every open whose path contains "secret"; allows everything itself. */
const EMITTER = `(module
  (import "idwrap" "declare_syscall" (func $d (param i32 i32) (result i32)))
  (import "idwrap" "declare_emit" (func $de (param i32 i32) (result i32)))
  (import "idwrap" "event_string" (func $s (param i32 i32 i32) (result i32)))
  (import "idwrap" "emit" (func $emit (param i32 i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "seen")
  (data (i32.const 16) "secret")
  (func (export "idwrap_abi_version") (result i32) (i32.const 0x00010000))
  (func (export "idwrap_declare") (result i32)
    (drop (call $d (i32.const 257) (i32.const 5)))
    (drop (call $de (i32.const 0) (i32.const 4))) ;; handle 0 (declared on a scratch instance: not kept)
    (i32.const 0))
  (func (export "idwrap_on_syscall") (result i32)
    (local $len i32) (local $i i32) (local $j i32)
    (local.set $len (call $s (i32.const 0) (i32.const 1024) (i32.const 4096)))
    (block $no
      (loop $at
        (br_if $no (i32.gt_s (i32.add (local.get $i) (i32.const 6)) (local.get $len)))
        (local.set $j (i32.const 0))
        (block $miss
          (loop $cmp
            (br_if $miss (i32.ne
              (i32.load8_u (i32.add (i32.const 1024) (i32.add (local.get $i) (local.get $j))))
              (i32.load8_u (i32.add (i32.const 16) (local.get $j)))))
            (local.set $j (i32.add (local.get $j) (i32.const 1)))
            (br_if $cmp (i32.lt_u (local.get $j) (i32.const 6))))
          (drop (call $emit (i32.const 0) (i32.const 1024) (local.get $len)))
          (return (i32.const 0)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $at)))
    (i32.const 0)))`;

/** Subscribes to "seen" and traps on it. */
const SUBSCRIBER = `(module
  (import "idwrap" "declare_subscribe" (func $ds (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "seen")
  (func (export "idwrap_abi_version") (result i32) (i32.const 0x00010000))
  (func (export "idwrap_declare") (result i32) (drop (call $ds (i32.const 0) (i32.const 4))) (i32.const 0))
  (func (export "idwrap_on_abstract") (param i32 i32) (result i32) (unreachable)))`;

Deno.test("a fail: closed subscriber that traps on an abstract event gets the call that led to it denied", async () => {
  const emitter = await writeWasm("emitter", watToWasm(EMITTER));
  const subscriber = await writeWasm("subscriber", watToWasm(SUBSCRIBER));
  const policy = await writePolicy(`wrappers:
  - { name: emitter, module: ${emitter} }
  - { name: subscriber, module: ${subscriber}, max_failures: 100 }
`);
  const r = await traced("run", ["-p", policy], ["/bin/cat", SECRET]);
  assertEquals(r.stdout, "", "the call ran");
  assertEquals(calls(r.events).filter((e) => e.decoded.path === SECRET).map((e) => e.verdict), ["deny EPERM"]);
  const faults = reports(r.events, "fault");
  assertEquals(faults.map((f) => [f.wrapper, f.message]), [[
    "subscriber",
    "idwrap_on_abstract: trapped: unreachable; call denied (fail closed)",
  ]]);
});

Deno.test("as an ordinary user: the trap-the-wrapper attack never reads the secret, wrapped by root or by the user", async () => {
  const uid = await ensureUser("idwrap-alice");
  const home = await scratchDir({ prefix: "idwrap-failclosed-user-" });
  await Deno.chmod(home, 0o755);
  const secret = `${home}/secret.txt`;
  await Deno.writeTextFile(secret, "the-secret\n");
  await Deno.chmod(secret, 0o644); // readable by alice: only the wrapper stands between her and it
  const traps = [1, 2, 3, 4, 5, 6].map((i) => `${home}/TRAP-${i}`);
  const wasm = `${home}/guard.wasm`;
  await Deno.copyFile(guard, wasm);
  await Deno.chmod(wasm, 0o644);
  const policy = `${home}/policy.yaml`;
  await Deno.writeTextFile(policy, `wrappers:\n  - { name: guard, module: ${wasm} }\n`);
  await Deno.chmod(policy, 0o644);
  const asAlice = ["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "--"];

  // Control: alice reads the secret unwrapped.
  const plain = await run(asAlice[0], [...asAlice.slice(1), "/bin/cat", ...traps, secret]);
  assert(plain.stdout.includes("the-secret"), plain.stdout + plain.stderr);

  // Root supervises, alice's program attacks.
  const byRoot = await traced("run", ["-p", policy], [...asAlice, "/bin/cat", ...traps, secret]);
  assert(!byRoot.stdout.includes("the-secret"), `the protection was disabled: ${byRoot.stdout}`);
  assertEquals(byRoot.code, 137, byRoot.stderr);

  // Alice supervises her own program (no CAP_SYS_ADMIN anywhere).
  const byAlice = await idwrapAsUser(uid, `${home}/store`, ["run", "-p", policy, "--", "/bin/cat", ...traps, secret]);
  assert(!byAlice.stdout.includes("the-secret"), `the protection was disabled: ${byAlice.stdout}`);
  assert(byAlice.stderr.includes("(on_max_failures: kill)"), byAlice.stderr);
  assertEquals(byAlice.code, 137, byAlice.stderr);
});
