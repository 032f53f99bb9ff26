/**
 * The filter's argument predicates (host/sources/seccomp/filter.ts, ArgumentCheck; docs/seccomp.md, "Argument
 * predicates"): each form, on `int` and 64-bit arguments, evaluated by a classic-BPF evaluator over seccomp_data's
 * 64-bit args (two little-endian words each) against the predicate's meaning; the plan compiled from an interest
 * (compileNotify); and the tamper guard's checks, unchanged whatever the rules add.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { parsePolicy } from "../../../host/policy/policy.ts";
import { type ArgPredicate, mergePredicates, predicateSize } from "../../../host/policy/predicates.ts";
import {
  type ArgumentCheck,
  type BpfInstruction,
  buildFilter,
  SECCOMP_RET_ALLOW,
  SECCOMP_RET_USER_NOTIF,
  words64,
} from "../../../host/sources/seccomp/filter.ts";
import { buildNotifyFilter, compileNotify } from "../../../host/sources/seccomp/source.ts";
import { guardFilter } from "../../../host/sources/seccomp/tamper.ts";
import { syscallNumber } from "../../../host/syscalls/mod.ts";
import { AUDIT_ARCH_X86_64 } from "../../../host/unsafe/layouts.ts";
import { buildInterest } from "../../../host/wss/interest.ts";
import { compileHybrid, filterCovers } from "../../../host/sources/hybrid/hybrid.ts";

const nr = (n: string) => syscallNumber(n)!;

/** Evaluates buildFilter()'s classic BPF on x86_64 seccomp_data with 64-bit args. */
function evaluate(program: BpfInstruction[], call: number, args: bigint[] = []): number {
  const word = (k: number): number => {
    if (k === 0) return call;
    if (k === 4) return AUDIT_ARCH_X86_64;
    const i = (k - 16) >> 3, v = BigInt.asUintN(64, args[i] ?? 0n);
    return Number((k - 16) % 8 === 0 ? v & 0xffffffffn : v >> 32n);
  };
  let a = 0;
  for (let pc = 0; pc < program.length; pc++) {
    const { code, jt, jf, k } = program[pc];
    if (code === 0x20) a = word(k);
    else if (code === 0x45) pc += ((a & k) >>> 0) !== 0 ? jt : jf;
    else if (code === 0x15) pc += a >>> 0 === k >>> 0 ? jt : jf;
    else if (code === 0x35) pc += a >>> 0 >= k >>> 0 ? jt : jf;
    else if (code === 0x25) pc += a >>> 0 > k >>> 0 ? jt : jf;
    else if (code === 0x05) pc += k;
    else if (code === 0x06) return k;
    else throw new Error(`unexpected opcode ${code}`);
    if (pc >= program.length) throw new Error("jumped off the end");
  }
  throw new Error("fell off the end");
}

/** What a predicate means (the reference). */
function holds(p: ArgPredicate, args: bigint[]): boolean {
  const width = p.wide ? 64 : 32;
  const v = BigInt.asUintN(width, args[p.arg] ?? 0n);
  const big = (x: number | bigint) => BigInt.asUintN(width, BigInt(x));
  if (p.equals?.some((e) => big(e) === v)) return true;
  if (p.anyBits !== undefined && (v & big(p.anyBits)) !== 0n) return true;
  if (p.noBits !== undefined && (v & big(p.noBits)) === 0n) return true;
  return false;
}

/** Argument values around the predicates' constants: each word equal, off by one, bits flipped, garbage. */
function samples(p: ArgPredicate[]): bigint[] {
  const out = new Set<bigint>([0n, 1n, 0xffffffffn, 1n << 32n, (1n << 64n) - 1n, 0x5a5a5a5a00000000n]);
  const near = (v: bigint) => {
    for (const d of [0n, 1n, 1n << 32n, 0xdeadbeefn << 32n, 0x80000000n]) {
      out.add(BigInt.asUintN(64, v + d)).add(BigInt.asUintN(64, v ^ d)).add(BigInt.asUintN(64, v - d));
    }
  };
  for (const x of p) {
    for (const e of x.equals ?? []) near(BigInt.asUintN(64, BigInt(e)));
    for (const b of [x.anyBits, x.noBits]) {
      if (b === undefined) continue;
      const v = BigInt.asUintN(64, BigInt(b));
      near(v), near(~v & ((1n << 64n) - 1n));
      for (let i = 0n; i < 64n; i++) if (v & (1n << i)) near(1n << i);
    }
  }
  let seed = 7n;
  for (let i = 0; i < 300; i++) {
    out.add(seed = (seed * 6364136223846793005n + 1442695040888963407n) & ((1n << 64n) - 1n));
  }
  return [...out];
}

const FORMS: [string, ArgPredicate[]][] = [
  ["int equality", [{ arg: 1, equals: [10, 15, -1] }]],
  ["int any bits", [{ arg: 2, anyBits: 0o1 | 0o2 | 0o1000 | 0o100 | 0o20000000 }]],
  ["int no bits", [{ arg: 2, noBits: 1 }]],
  ["int no bits of several", [{ arg: 0, noBits: 0x80000003 }]],
  ["int, several forms", [{ arg: 2, noBits: 1 }, { arg: 2, anyBits: 0o1000 }, { arg: 0, equals: [7] }]],
  ["wide equality", [{ arg: 3, wide: true, equals: [0x1234567800000010n, 16, -1] }]],
  ["wide any bits, high word only", [{ arg: 4, wide: true, anyBits: 1n << 40n }]],
  ["wide any bits, both words", [{ arg: 4, wide: true, anyBits: (1n << 63n) | 4n }]],
  ["wide no bits, both words", [{ arg: 5, wide: true, noBits: (1n << 33n) | 1n }]],
  ["wide no bits, high word only", [{ arg: 5, wide: true, noBits: 1n << 50n }]],
  ["no bits at all: always", [{ arg: 1, noBits: 0 }]],
  ["nothing: never", []],
];

Deno.test("buildFilter() argument predicates: each form notifies exactly when it holds (int: low word; wide: both)", () => {
  const call = nr("openat");
  for (const [label, preds] of FORMS) {
    const program = buildFilter([nr("execve")], preds.map((p) => ({ ...p, nr: call })));
    const values = samples(preds);
    let notified = 0, allowed = 0;
    for (const v of values) {
      for (const arg of new Set([...preds.map((p) => p.arg), 0])) {
        const args = [0n, 0n, 0n, 0n, 0n, 0n];
        args[arg] = v;
        const want = preds.some((p) => holds(p, args));
        const got = evaluate(program, call, args);
        assertEquals(
          got,
          want ? SECCOMP_RET_USER_NOTIF : SECCOMP_RET_ALLOW,
          `${label}: arg${arg} = 0x${v.toString(16)}`,
        );
        want ? notified++ : allowed++;
      }
    }
    if (label.endsWith("never")) assertEquals(notified, 0, label);
    else if (label.endsWith("always")) assertEquals(allowed, 0, label);
    else assert(notified > 0 && allowed > 0, `${label}: ${notified} notified, ${allowed} allowed`);
    // Other calls are untouched: execve is notified, getpid allowed, whatever the arguments.
    assertEquals(evaluate(program, nr("execve"), [1n, 2n, 3n]), SECCOMP_RET_USER_NOTIF);
    assertEquals(evaluate(program, nr("getpid"), [(1n << 64n) - 1n]), SECCOMP_RET_ALLOW);
  }
});

Deno.test("words64 splits a 64-bit value into its little-endian words; an int's high word is never loaded", () => {
  assertEquals(words64(0x1234567889abcdefn), [0x89abcdef, 0x12345678]);
  assertEquals(words64(-1), [0xffffffff, 0xffffffff]);
  assertEquals(words64(16), [16, 0]);
  const program = buildFilter([], [{ nr: nr("tgkill"), arg: 2, equals: [10] }]);
  // seccomp_data.args[2]'s high word is at 16 + 8 * 2 + 4 = 36: an int check never reads it.
  assert(!program.some((i) => i.code === 0x20 && i.k === 36), "the high word of an int argument is loaded");
  assertEquals(evaluate(program, nr("tgkill"), [0n, 0n, (0xffffffffn << 32n) | 10n]), SECCOMP_RET_USER_NOTIF);
});

Deno.test("compileNotify: predicated calls leave the always-set; exec and the guard's calls stay whole", () => {
  const policy = parsePolicy(
    `version: 2
name: t
rules:
  - id: w
    syscalls: [openat, creat]
    flags: read
    action: deny
  - id: s
    syscalls: [tgkill, kill]
    signal: SIGUSR1
    action: deny
`,
    "t.yaml",
  );
  const guard = guardFilter(4242);
  const plan = compileNotify(buildInterest([policy], [], false, guard.always), true);
  for (const n of ["openat", "creat", "tgkill", "kill"]) assert(!plan.always.has(nr(n)), n);
  for (const n of ["execve", "execveat"]) assert(plan.always.has(nr(n)), n);
  const checks = (n: string) => plan.checks.filter((c) => c.nr === nr(n)).map(({ nr: _, ...p }) => p);
  assertEquals(checks("openat"), [{ arg: 2, noBits: 1 }]);
  assertEquals(checks("tgkill"), [{ arg: 2, equals: [10] }]);
  assertEquals(checks("kill"), [{ arg: 1, equals: [10] }]);
  assertEquals(checks("creat"), [], "creat never reads: not notified at all");

  const program = buildNotifyFilter(plan, guard.checks);
  const run = (n: string, args: bigint[]) => evaluate(program, nr(n), args);
  assertEquals(run("openat", [0n, 0n, 0n]), SECCOMP_RET_USER_NOTIF); // O_RDONLY
  assertEquals(run("openat", [0n, 0n, 1n | (0xffn << 32n)]), SECCOMP_RET_ALLOW); // O_WRONLY: no read
  assertEquals(run("creat", [0n, 0o644n]), SECCOMP_RET_ALLOW);
  // kill: the rule's signal, or the guard's targets (the supervisor, a group, every process), either notifies.
  assertEquals(run("kill", [1n, 10n]), SECCOMP_RET_USER_NOTIF);
  assertEquals(run("kill", [4242n, 12n]), SECCOMP_RET_USER_NOTIF);
  assertEquals(run("kill", [0n, 12n]), SECCOMP_RET_USER_NOTIF);
  assertEquals(run("kill", [1n, 12n]), SECCOMP_RET_ALLOW);
  // tgkill: the rule's signal, or the guard's target (the supervisor), either notifies.
  assertEquals(run("tgkill", [1n, 1n, 10n]), SECCOMP_RET_USER_NOTIF);
  assertEquals(run("tgkill", [4242n, 4242n, 12n]), SECCOMP_RET_USER_NOTIF);
  assertEquals(run("tgkill", [1n, 1n, 12n]), SECCOMP_RET_ALLOW);

  // A rule that examines an exec: the new image's first notified call (the loader's open) checks it again, so the
  // opens are whole; the signal's predicate stays.
  const exec = parsePolicy(
    `version: 1\nname: e\nrules:\n  - { id: x, syscalls: [execve], path: /x, action: deny }\n`,
    "e.yaml",
  );
  const withExec = compileNotify(buildInterest([policy, exec], [], false, guard.always), true);
  for (const n of ["openat", "creat"]) assert(withExec.always.has(nr(n)), n);
  assertEquals(withExec.checks.map((c) => c.nr).sort(), [nr("kill"), nr("tgkill"), nr("mmap")].sort());
  // The deny exec rule also decides executable mmaps of its file (the loader's way, rt8 F9): only PROT_EXEC waits.
  assertEquals(withExec.checks.filter((c) => c.nr === nr("mmap")).map(({ nr: _, ...p }) => p), [{
    arg: 2,
    anyBits: 4,
  }]);
  const withExecFilter = buildNotifyFilter(withExec, guard.checks);
  assertEquals(evaluate(withExecFilter, nr("mmap"), [0n, 4096n, 5n, 2n, 3n, 0n]), SECCOMP_RET_USER_NOTIF);
  assertEquals(evaluate(withExecFilter, nr("mmap"), [0n, 4096n, 1n, 2n, 3n, 0n]), SECCOMP_RET_ALLOW);
  assert(withExec.always.has(nr("arch_prctl")), "the new image's first call is notified where execs are examined");
});

Deno.test("the tamper guard's checks notify exactly as before, whatever predicates the rules add on the same calls", () => {
  const guard = guardFilter(4242);
  const extra: ArgumentCheck[] = [
    { nr: nr("tgkill"), arg: 2, equals: [10] },
    { nr: nr("fcntl"), arg: 1, equals: [4] },
    { nr: nr("prlimit64"), arg: 1, noBits: 1 },
  ];
  const alone = buildFilter([], guard.checks);
  const together = buildFilter([], [...guard.checks, ...extra]);
  const values = [0n, 1n, 4n, 8n, 10n, 12n, 15n, 16n, 0x4206n, 0x5412n, 0x8901n, 0x8902n, 4242n, 0x80n, 76n, 77n];
  for (const c of new Set(guard.checks.map((g) => g.nr))) {
    for (let arg = 0; arg < 3; arg++) {
      for (const v of [...values, ...values.map((x) => x | (0xabcdn << 32n))]) {
        const args = [0n, 0n, 0n];
        args[arg] = v;
        const before = evaluate(alone, c, args);
        // The rules' checks only add notifications: where the guard notified, it still does.
        if (before === SECCOMP_RET_USER_NOTIF) assertEquals(evaluate(together, c, args), before, `${c} ${args}`);
        const theirs = extra.some((e) => e.nr === c && holds(e, args));
        assertEquals(evaluate(together, c, args), theirs ? SECCOMP_RET_USER_NOTIF : before, `${c} ${args}`);
      }
    }
  }
});

Deno.test("the hybrid's plan: a predicated open is held on seccomp with its checks, and the ring gets no enter for it", () => {
  const policy = parsePolicy(
    `version: 2
name: t
rules:
  - id: w
    syscalls: [openat]
    flags: write
    action: deny
`,
    "t.yaml",
  );
  const plan = compileHybrid(buildInterest([policy], [], false, guardFilter(4242).always), true);
  assert(plan.notify.has(nr("openat")) && !plan.filter.always.has(nr("openat")));
  assertEquals(plan.filter.checks.filter((c) => c.nr === nr("openat")).length, 1);
  assert(!plan.ring.has(nr("openat")), "a held call's enter would come twice");
  const program = buildNotifyFilter(plan.filter, guardFilter(4242).checks);
  assertEquals(evaluate(program, nr("openat"), [0n, 0n, 0n]), SECCOMP_RET_ALLOW);
  assertEquals(evaluate(program, nr("openat"), [0n, 0n, 0o1101n]), SECCOMP_RET_USER_NOTIF);
});

Deno.test("mergePredicates keeps the meaning in fewer tests; a call with too many for one block is notified whole", () => {
  const preds: ArgPredicate[] = [
    ...FORMS.flatMap(([, p]) => p),
    { arg: 2, anyBits: 0o1000 },
    { arg: 2, noBits: 1 },
    { arg: 1, equals: [10, 10, 11] },
  ];
  const merged = mergePredicates(preds);
  assert(merged.length < preds.length, `${merged.length} of ${preds.length}`);
  for (const v of samples(preds)) {
    for (let arg = 0; arg < 6; arg++) {
      const args = [0n, 0n, 0n, 0n, 0n, 0n];
      args[arg] = v;
      assertEquals(
        merged.some((p) => holds(p, args)),
        preds.some((p) => holds(p, args)),
        `arg${arg} = 0x${v.toString(16)}`,
      );
    }
  }
  // 300 rules, each on its own signal set: merged into one equality set; past one block's reach, whole.
  const rules = (n: number) =>
    Array.from({ length: n }, (_, i) => `  - { id: r${i}, syscalls: [tgkill], signal: [${i % 64}], action: deny }`)
      .join("\n");
  const plan = (n: number) =>
    compileNotify(
      buildInterest([parsePolicy(`version: 1\nname: t\nrules:\n${rules(n)}\n`, "t.yaml")], [], false),
      true,
    );
  const few = plan(300);
  assertEquals(few.checks.length, 1);
  assertEquals(few.checks[0].equals?.length, 64);
  buildNotifyFilter(few, guardFilter(4242).checks);
  const wide = mergePredicates(
    Array.from({ length: 120 }, (_, i) => ({ arg: 1, noBits: BigInt(i + 1) << 20n, wide: true })),
  );
  assert(predicateSize(wide) > 200);
  const many = compileNotify(
    { calls: new Map([[nr("tgkill"), { pre: "decide", when: wide }]]), failClosed: true },
    true,
  );
  assert(many.always.has(nr("tgkill")) && many.checks.length === 0, "an oversized call is notified whole");
  buildNotifyFilter(many, guardFilter(4242).checks);
});

Deno.test("the hybrid's reload check: the installed filter covers a call only where it notifies whatever the new policy needs", () => {
  const plan = (flags: string) =>
    compileHybrid(
      buildInterest(
        [
          parsePolicy(
            `version: 1\nname: t\nrules:\n  - { id: w, syscalls: [openat], flags: ${flags}, action: deny }\n`,
            "t.yaml",
          ),
        ],
        [],
        false,
      ),
      true,
    ).filter;
  const write = plan("write"), truncate = plan("truncate"), read = plan("read");
  const whole = compileHybrid(
    buildInterest(
      [parsePolicy(
        `version: 1\nname: t\nrules:\n  - { id: p, syscalls: [openat], path: /x, action: deny }\n`,
        "t.yaml",
      )],
      [],
      false,
    ),
    true,
  ).filter;
  const openat = nr("openat");
  assert(filterCovers(write, write, openat));
  // Compared as written: a different predicate is refused even where the installed one implies it (conservative).
  assert(!filterCovers(write, truncate, openat));
  assert(!filterCovers(write, read, openat));
  assert(!filterCovers(write, whole, openat), "the new policy wants every openat");
  assert(filterCovers(whole, read, openat), "a filter notifying every openat covers any predicate");
});
