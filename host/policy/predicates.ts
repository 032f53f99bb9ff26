/**
 * A rule's integer conditions as predicates on a call's argument registers
 * (issue 15): what a source can check in the kernel before it makes a call
 * wait (the seccomp filter: host/sources/seccomp/filter.ts). A predicate only
 * narrows what is notified: it holds for every call the rule can match (a
 * superset), and the supervisor still checks the whole rule
 * (host/policy/rule_decider.ts, host/policy/match.ts).
 *
 * Compiled: open flag words on the flags register (`open`, `openat`,
 * `open_by_handle_at`; `creat`'s flags are fixed), and signal numbers on the
 * signal register (`kill`, `tgkill`). Not compiled (the call is notified
 * whatever its arguments): anything the call holds in memory — `openat2`'s
 * open_how, a socket address's family, address and port — paths, argv, kill's
 * target, and a rule's process scope, `not` and exceptions (they only take
 * calls away).
 *
 * @module
 */
import { argKinds, syscallName } from "../syscalls/mod.ts";
import type { Condition, OpenFlagWord } from "./conditions.ts";
import { hasFlagWord } from "./match.ts";
import type { Rule } from "./policy.ts";
import { MMAP, PROT_EXEC, stopsProgram } from "./rule_decider.ts";

/**
 * A test on one argument register; a call passes when any of the forms given holds. An argument is 64 bits; `wide`
 * says the call reads all of them. Otherwise the call reads only the low 32 (an `int`: flags, signal numbers), and the
 * high word is never looked at — a caller may put anything there without changing what the kernel does.
 */
export interface ArgPredicate {
  /** Argument index, 0 to 5. */
  arg: number;
  /** The argument equals one of these (a value above 2^53 as a bigint; only with `wide`). */
  equals?: (number | bigint)[];
  /** The argument has at least one of these bits set. */
  anyBits?: number | bigint;
  /** The argument has none of these bits set. */
  noBits?: number | bigint;
  /** All 64 bits count (a pointer-sized or `long` argument); absent: the low 32 (an `int`). */
  wide?: boolean;
}

/** A call's predicates: notified when one holds. `undefined`: whatever its arguments; `[]`: never. */
export type CallPredicate = ArgPredicate[] | undefined;

const O_WRONLY = 1, O_RDWR = 2, O_CREAT = 0o100, O_EXCL = 0o200, O_TRUNC = 0o1000, O_APPEND = 0o2000;
const O_NONBLOCK = 0o4000, O_DSYNC = 0o10000, O_DIRECTORY = 0o200000, O_NOFOLLOW = 0o400000;
const O_CLOEXEC = 0o2000000, O_PATH = 0o10000000, __O_TMPFILE = 0o20000000;

/**
 * Per flag word, the bits of which at least one is set whenever the word holds (hasFlagWord): the words hold only on
 * top of their bits, and ignoring the O_PATH exclusions keeps it a superset. `read` (the access mode is O_RDONLY or
 * O_RDWR) is the one word of a bit left clear: O_WRONLY.
 */
const WORD_BITS: Record<Exclude<OpenFlagWord, "read">, number> = {
  write: O_WRONLY | O_RDWR | O_TRUNC | O_CREAT | __O_TMPFILE,
  create: O_CREAT | __O_TMPFILE,
  truncate: O_TRUNC,
  append: O_APPEND,
  exclusive: O_EXCL,
  directory: O_DIRECTORY,
  nofollow: O_NOFOLLOW,
  path: O_PATH,
  tmpfile: __O_TMPFILE,
  cloexec: O_CLOEXEC,
  nonblock: O_NONBLOCK,
  sync: O_DSYNC,
};

/** The flags register of the open calls that have one (as match.ts's openFlags reads it). */
const FLAGS_ARG: Readonly<Record<string, number>> = { open: 1, openat: 2, open_by_handle_at: 2 };
/** creat(2)'s flags, fixed. */
const CREAT_FLAGS = O_WRONLY | O_CREAT | O_TRUNC;

/** One condition's integer part for call `name`: a predicate, or undefined when it has none the kernel can check. */
function conditionPredicate(c: Condition, name: string): CallPredicate {
  if (c.flags) {
    if (name === "creat") return c.flags.some((w) => hasFlagWord(CREAT_FLAGS, w)) ? undefined : [];
    const arg = FLAGS_ARG[name];
    if (arg !== undefined) {
      const bits = c.flags.reduce((m, w) => w === "read" ? m : m | WORD_BITS[w], 0);
      return [
        ...(c.flags.includes("read") ? [{ arg, noBits: O_WRONLY }] : []),
        ...(bits ? [{ arg, anyBits: bits }] : []),
      ];
    }
  }
  if (c.signal) {
    const arg = argKinds(name).indexOf("signal");
    if (arg >= 0) return [{ arg, equals: [...new Set(c.signal)] }];
  }
  return undefined;
}

/**
 * The predicate on call `nr` that holds whenever `rule` can match it: its conditions must all hold, so any one that
 * compiles will do (the first; `creat` under a flags condition it can never meet: `[]`, never notified).
 */
export function rulePredicate(rule: Rule, nr: number): CallPredicate {
  // An exec rule's mmap: only an executable mapping can run the program (rule_decider.ts, stopsProgram).
  if (nr === MMAP && stopsProgram(rule)) return [{ arg: 2, anyBits: PROT_EXEC }];
  const name = syscallName(nr);
  let found: CallPredicate;
  for (const c of rule.match ?? []) {
    const p = conditionPredicate(c, name);
    if (p === undefined) continue;
    if (p.length === 0) return p;
    found ??= p;
  }
  return found;
}

/**
 * The predicate that holds whenever open call `nr` may write (a wrapper's DECLARE_WRITES, ABI 1.5: the rule word
 * `flags: write`); undefined where the registers cannot say (openat2's flags are in memory) or the call always writes
 * (creat), and for any other call.
 */
export function writeOpenPredicate(nr: number): CallPredicate {
  const p = conditionPredicate({ flags: ["write"] } as Condition, syscallName(nr));
  return p?.length ? p : undefined;
}

/**
 * The same predicates in fewer tests: per argument (and width) one equality set and one any-bits mask (a union of
 * either is one of its kind); none-of-bits tests stay apart (none of A or none of B is not none of A|B), duplicates
 * dropped. Many rules on one call then cost the filter a few instructions, not a few per rule.
 */
export function mergePredicates(preds: readonly ArgPredicate[]): ArgPredicate[] {
  const byArg = new Map<
    string,
    { arg: number; wide: boolean; equals: Set<bigint>; anyBits: bigint; noBits: Set<bigint> }
  >();
  for (const p of preds) {
    const wide = p.wide === true, key = `${p.arg}:${wide}`;
    const width = wide ? 64 : 32;
    const norm = (v: number | bigint) => BigInt.asUintN(width, BigInt(v));
    let m = byArg.get(key);
    if (!m) byArg.set(key, m = { arg: p.arg, wide, equals: new Set(), anyBits: 0n, noBits: new Set() });
    for (const e of p.equals ?? []) m.equals.add(norm(e));
    if (p.anyBits !== undefined) m.anyBits |= norm(p.anyBits);
    if (p.noBits !== undefined) m.noBits.add(norm(p.noBits));
  }
  const out: ArgPredicate[] = [];
  const value = (v: bigint, wide: boolean) => wide && v > 0xffffffffn ? v : Number(v);
  for (const m of byArg.values()) {
    const base = { arg: m.arg, ...(m.wide ? { wide: true } : {}) };
    if (m.equals.size) out.push({ ...base, equals: [...m.equals].map((v) => value(v, m.wide)) });
    if (m.anyBits) out.push({ ...base, anyBits: value(m.anyBits, m.wide) });
    for (const n of m.noBits) out.push({ ...base, noBits: value(n, m.wide) });
  }
  return out;
}

/** Roughly how many filter instructions predicates take (host/sources/seccomp/filter.ts compiles them). */
export function predicateSize(preds: readonly ArgPredicate[]): number {
  return preds.reduce((n, p) => {
    const words = p.wide ? 2 : 1;
    return n + (p.equals?.length ? (p.wide ? 4 * p.equals.length : 1 + p.equals.length) : 0) +
      (p.anyBits !== undefined ? 2 * words : 0) + (p.noBits !== undefined ? 2 * words : 0);
  }, 0);
}
