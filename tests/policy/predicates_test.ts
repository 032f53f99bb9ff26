/**
 * Rules' integer conditions as argument predicates (host/policy/predicates.ts) and their place in the interest
 * (host/wss/interest.ts): a predicate must hold for every call the rule can match — checked here against the
 * supervisor's own matcher over flag values — and anything that wants a call whole takes its predicates away.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { OPEN_FLAG_WORDS } from "../../host/policy/conditions.ts";
import { hasFlagWord } from "../../host/policy/match.ts";
import { parsePolicy, type Policy, WRAPPER_DEFAULTS } from "../../host/policy/policy.ts";
import { type ArgPredicate, rulePredicate } from "../../host/policy/predicates.ts";
import { DECLARE_PRE } from "../../host/runtime/abi.ts";
import type { WrapperModule } from "../../host/runtime/module.ts";
import { syscallNumber } from "../../host/syscalls/mod.ts";
import { buildInterest } from "../../host/wss/interest.ts";

const nr = (n: string) => syscallNumber(n)!;

function rulesOf(yaml: string): Policy {
  return parsePolicy(`version: 2\nname: t\nrules:\n${yaml}`, "t.yaml");
}

/** What a predicate says of a 64-bit argument vector (the reference the BPF is tested against in the filter's test). */
function holds(preds: ArgPredicate[], args: bigint[]): boolean {
  return preds.some((p) => {
    const v = p.wide ? BigInt.asUintN(64, args[p.arg]) : args[p.arg] & 0xffffffffn;
    const big = (x: number | bigint) => BigInt.asUintN(p.wide ? 64 : 32, BigInt(x));
    if (p.equals?.some((e) => big(e) === v)) return true;
    if (p.anyBits !== undefined && (v & big(p.anyBits)) !== 0n) return true;
    if (p.noBits !== undefined && (v & big(p.noBits)) === 0n) return true;
    return false;
  });
}

/** Flag values: every combination of the access mode and the bits the words read, plus some random others. */
function flagValues(): number[] {
  const bits = [0o100, 0o200, 0o1000, 0o2000, 0o4000, 0o10000, 0o4010000, 0o200000, 0o400000, 0o2000000, 0o10000000];
  const out: number[] = [];
  for (let acc = 0; acc < 4; acc++) {
    for (let m = 0; m < 1 << bits.length; m += 7) {
      out.push(bits.reduce((f, b, i) => (m & (1 << i) ? f | b : f), acc));
    }
    out.push(acc | 0o20200000, acc | 0o20000000);
  }
  let seed = 1;
  for (let i = 0; i < 2000; i++) out.push((seed = Math.imul(seed, 1103515245) + 12345) >>> 0);
  return out;
}

Deno.test("rulePredicate: every open a flags condition matches passes its predicate (each word, and word lists)", () => {
  const lists = [...OPEN_FLAG_WORDS.map((w) => [w]), ["read", "create"], ["write", "truncate", "path"]];
  const values = flagValues();
  for (const words of lists) {
    const policy = rulesOf(
      `  - id: r\n    syscalls: [open, openat, open_by_handle_at]\n    flags: [${words}]\n    action: deny\n`,
    );
    for (const [name, arg] of [["open", 1], ["openat", 2], ["open_by_handle_at", 2]] as const) {
      const p = rulePredicate(policy.rules[0], nr(name));
      assert(p !== undefined && p.length > 0, `${words} on ${name}: no predicate`);
      assert(p.every((x) => x.arg === arg && !x.wide), JSON.stringify(p));
      let narrowed = 0;
      for (const f of values) {
        // The high word is garbage the kernel ignores: the predicate must ignore it too.
        const args = [0n, 0n, 0n, 0n, 0n, 0n];
        args[arg] = (0xdeadbeefn << 32n) | BigInt(f);
        const match = words.some((w) => hasFlagWord(f, w as typeof OPEN_FLAG_WORDS[number]));
        if (match) assert(holds(p, args), `${words} on ${name}: flags 0o${f.toString(8)} match but are not notified`);
        else if (!holds(p, args)) narrowed++;
      }
      // The predicate narrows something: it is not "notify every open" in disguise.
      assert(narrowed > 0, `${words} on ${name}: narrows nothing`);
    }
  }
});

Deno.test("rulePredicate: creat's fixed flags, openat2's flags in memory, signals, and what is not compiled", () => {
  const p = rulesOf(`  - id: write
    syscalls: [creat, openat2]
    flags: write
    action: deny
  - id: read
    syscalls: [creat]
    flags: read
    action: deny
  - id: usr1
    syscalls: [kill, tgkill, tkill]
    signal: [SIGUSR1, TERM]
    action: deny
  - id: inet
    syscalls: [connect]
    family: inet
    action: deny
  - id: path
    syscalls: [openat]
    path: /etc/passwd
    action: deny
  - id: two
    syscalls: [openat]
    path: "/etc/**"
    flags: truncate
    not: { flags: append }
    action: deny
`);
  const [write, read, usr1, inet, path, two] = p.rules;
  assertEquals(rulePredicate(write, nr("creat")), undefined, "creat always writes: notified whole");
  assertEquals(rulePredicate(read, nr("creat")), [], "creat never reads: never notified");
  assertEquals(rulePredicate(write, nr("openat2")), undefined, "open_how is in memory");
  assertEquals(rulePredicate(usr1, nr("kill")), [{ arg: 1, equals: [10, 15] }]);
  assertEquals(rulePredicate(usr1, nr("tgkill")), [{ arg: 2, equals: [10, 15] }]);
  assertEquals(rulePredicate(usr1, nr("tkill")), [{ arg: 1, equals: [10, 15] }], "tkill's signal is its arg 1");
  assertEquals(rulePredicate(inet, nr("connect")), undefined, "a sockaddr is in memory");
  assertEquals(rulePredicate(path, nr("openat")), undefined);
  // `not` only takes calls away: the predicate is the truncate condition's alone.
  assertEquals(rulePredicate(two, nr("openat")), [{ arg: 2, anyBits: 0o1000 }]);
});

function wrapper(decls: [string, number][]): WrapperModule {
  return {
    spec: { name: "w", module: "w", settings: {}, ...WRAPPER_DEFAULTS, fail: "closed", clock: false },
    path: "w.wasm",
    module: undefined as unknown as WebAssembly.Module,
    declarations: { syscalls: new Map(decls.map(([n, f]) => [nr(n), f])), lifecycle: 0, subscriptions: [], emits: [] },
  } as WrapperModule;
}

Deno.test("buildInterest: a call's predicates are the union of its rules'; anything wanting it whole drops them", () => {
  const p = rulesOf(`  - id: w
    syscalls: [openat]
    flags: write
    action: deny
  - id: t
    syscalls: [openat]
    flags: truncate
    action: alert
  - id: s
    syscalls: [tgkill]
    signal: SIGUSR1
    action: alert
`);
  const only = buildInterest([p], [], false);
  assertEquals(only.calls.get(nr("openat"))!.when, [
    { arg: 2, anyBits: 0o1 | 0o2 | 0o1000 | 0o100 | 0o20000000 },
    { arg: 2, anyBits: 0o1000 },
  ]);
  assertEquals(only.calls.get(nr("tgkill"))!.when, [{ arg: 2, equals: [10] }]);
  assertEquals(only.calls.get(nr("openat"))!.pre, "decide");
  // A path-only rule, an observe list, a wrapper, the guard's calls: whole.
  const path = rulesOf(`  - id: p\n    syscalls: [openat]\n    path: /x\n    action: alert\n`);
  assertEquals(buildInterest([p, path], [], false).calls.get(nr("openat"))!.when, undefined);
  const observe = { ...p, rules: [], observe: ["tgkill"] };
  assertEquals(buildInterest([p, observe], [], false).calls.get(nr("tgkill"))!.when, undefined);
  assertEquals(
    buildInterest([p], [wrapper([["openat", DECLARE_PRE]])], false).calls.get(nr("openat"))!.when,
    undefined,
  );
  assertEquals(buildInterest([p], [], false, [nr("tgkill")]).calls.get(nr("tgkill"))!.when, undefined);
});
