/**
 * Builds the classic-BPF program the launcher installs (seccomp(2),
 * SECCOMP_SET_MODE_FILTER). It looks at `arch` and `nr`, and at an argument
 * only for the few calls of an ArgumentCheck, so the kernel's per-syscall
 * action cache (Linux 5.11+) still lets every other call outside the
 * notified set through without running the filter.
 *
 * @module
 */
import type { ArgPredicate } from "../../policy/predicates.ts";
import { AUDIT_ARCH_X86_64, X32_SYSCALL_BIT } from "../../unsafe/layouts.ts";

/** SECCOMP_RET_* actions from <linux/seccomp.h>. */
export const SECCOMP_RET_ALLOW = 0x7fff0000;
export const SECCOMP_RET_USER_NOTIF = 0x7fc00000;
/** SECCOMP_RET_ERRNO | errno: the call fails at once with that errno, unseen by the supervisor. */
export const SECCOMP_RET_ERRNO = 0x00050000;
const ENOSYS = 38;

/** One struct sock_filter instruction (<linux/filter.h>). */
export interface BpfInstruction {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

// Opcodes: BPF_LD|BPF_W|BPF_ABS, BPF_JMP|{BPF_JEQ,BPF_JGE,BPF_JGT,BPF_JA}|BPF_K, BPF_RET|BPF_K.
const LD_ABS = 0x20, JEQ = 0x15, JGE = 0x35, JGT = 0x25, JA = 0x05, RET = 0x06;
// Offsets in struct seccomp_data: the low 32 bits of args[i] are at 16 + 8 * i (little endian).
const OFF_NR = 0, OFF_ARCH = 4, OFF_ARGS = 16;
const JSET = 0x45;
const MAX_JUMP = 255;

const op = (code: number, k: number, jt = 0, jf = 0): BpfInstruction => ({ code, jt, jf, k });

/** Contiguous runs of syscall numbers, sorted: [first, last] inclusive. */
function toRuns(numbers: Iterable<number>): [number, number][] {
  const sorted = [...new Set(numbers)].sort((a, b) => a - b);
  const runs: [number, number][] = [];
  for (const nr of sorted) {
    const last = runs.at(-1);
    if (last && last[1] + 1 === nr) last[1] = nr;
    else runs.push([nr, nr]);
  }
  return runs;
}

/** A binary search over the runs; every leaf returns, so no jump is long. */
function decide(runs: [number, number][]): BpfInstruction[] {
  if (runs.length === 0) return [op(RET, SECCOMP_RET_ALLOW)];
  if (runs.length === 1) {
    const [first, last] = runs[0];
    return [
      op(JGE, first, 0, 2), // below the run: allow
      op(JGT, last, 1, 0), // above the run: allow
      op(RET, SECCOMP_RET_USER_NOTIF),
      op(RET, SECCOMP_RET_ALLOW),
    ];
  }
  const mid = runs.length >> 1;
  const high = decide(runs.slice(mid));
  const low = decide(runs.slice(0, mid));
  if (high.length <= MAX_JUMP) return [op(JGE, runs[mid][0], 0, high.length), ...high, ...low];
  // Too far for an 8-bit jump: hop over `high` with BPF_JA's 32-bit offset.
  return [op(JGE, runs[mid][0], 1, 0), op(JA, high.length), ...high, ...low];
}

/**
 * A call notified only when one of its argument tests holds (host/policy/predicates.ts, ArgPredicate: equality, any
 * of some bits, none of some bits; on the low 32 bits of an `int` argument, or all 64 of a `wide` one); otherwise
 * allowed. Several checks on one call: notified when any holds.
 */
export interface ArgumentCheck extends ArgPredicate {
  nr: number;
}

/** An instruction whose true branch goes to the block's notify return (`notify`), or whose false branch does. */
interface Step {
  ins: BpfInstruction;
  /** Which branch leaves for the notify return. */
  notify?: "jt" | "jf";
}

const MASK32 = 0xffffffffn;
/** The low and high 32-bit words of a 64-bit value (seccomp_data.args[i] is a u64, little endian). */
export function words64(v: number | bigint): [number, number] {
  const b = BigInt.asUintN(64, BigInt(v));
  return [Number(b & MASK32), Number(b >> 32n)];
}

/**
 * One check's tests. An `int` argument's high word is never loaded: the kernel ignores it, so a caller's garbage
 * there must not take a call out of the notified set. A wide argument's equality compares the high word first and
 * skips the low word's compare when it differs; its bit tests look at both words.
 */
function checkSteps(c: ArgumentCheck): Step[] {
  const lo = OFF_ARGS + 8 * c.arg, hi = lo + 4;
  const steps: Step[] = [];
  const wordsOf = (v: number | bigint): [number, number] => c.wide ? words64(v) : [words64(v)[0], 0];
  if (c.equals?.length) {
    if (!c.wide) {
      steps.push({ ins: op(LD_ABS, lo) });
      for (const v of c.equals) steps.push({ ins: op(JEQ, wordsOf(v)[0]), notify: "jt" });
    } else {
      for (const v of c.equals) {
        const [low, high] = wordsOf(v);
        steps.push({ ins: op(LD_ABS, hi) }, { ins: op(JEQ, high, 0, 2) });
        steps.push({ ins: op(LD_ABS, lo) }, { ins: op(JEQ, low), notify: "jt" });
      }
    }
  }
  for (const [bits, notify] of [[c.anyBits, "jt"], [c.noBits, "jf"]] as const) {
    if (bits === undefined) continue;
    const [low, high] = wordsOf(bits);
    if (notify === "jt") {
      // Any bit of either word.
      if (low) steps.push({ ins: op(LD_ABS, lo) }, { ins: op(JSET, low), notify });
      if (high) steps.push({ ins: op(LD_ABS, hi) }, { ins: op(JSET, high), notify });
    } else {
      // None of them: every word clear of its bits (a word with none is clear).
      const tests = [[lo, low], [hi, high]].filter(([, b]) => b !== 0);
      if (tests.length === 0) {
        steps.push({ ins: op(JA, 0), notify: "jt" }); // no bits: always holds
        continue;
      }
      // Load, JSET: set → this form fails (next step); clear → the next word, or notify after the last.
      tests.forEach(([off, b], i) => {
        const last = i === tests.length - 1;
        const skip = (tests.length - 1 - i) * 2; // the remaining words' steps
        steps.push({ ins: op(LD_ABS, off) });
        steps.push(last ? { ins: op(JSET, b, skip), notify: "jf" } : { ins: op(JSET, b, skip, 0) });
      });
    }
  }
  return steps;
}

/**
 * For each call with argument checks: `nr == X` falls into a block that
 * compares the arguments and returns; other numbers skip it. A holds `nr` on
 * entry and on every fall-through (the blocks end in returns).
 */
function argumentChecks(checks: ArgumentCheck[]): BpfInstruction[] {
  const byNr = new Map<number, ArgumentCheck[]>();
  for (const c of checks) byNr.set(c.nr, [...(byNr.get(c.nr) ?? []), c]);
  const out: BpfInstruction[] = [];
  for (const [nr, list] of byNr) {
    const steps = list.flatMap(checkSteps);
    // Every test that holds jumps to the notify return at the end (after the allow).
    const block = steps.map(({ ins, notify }, i) => {
      if (notify === "jt") ins.jt = steps.length - i;
      if (notify === "jf") ins.jf = steps.length - i;
      if (ins.code === JA && notify) return { ...ins, k: steps.length - i, jt: 0 };
      return ins;
    });
    block.push(op(RET, SECCOMP_RET_ALLOW), op(RET, SECCOMP_RET_USER_NOTIF));
    if (block.length > MAX_JUMP) throw new RangeError(`Cannot build the seccomp filter: too many checks on ${nr}`);
    out.push(op(JEQ, nr, 0, block.length), ...block);
  }
  return out;
}

/**
 * The filter: foreign ABIs (i386 through int 0x80, x32) are always notified so
 * the host can deny and report them; of native calls, exactly `notify`.
 *
 * @param notify x86_64 system call numbers to hand to the supervisor
 * @param checks calls notified only for some argument values (ignored for calls in `notify`)
 * @param knownMax the highest x86_64 number the host knows: every call above it fails with ENOSYS, as on a kernel
 *   that lacks it (a call added to Linux after idwrap's table could act on a file no rule or wrapper sees:
 *   fchmodat2 would be chmod without a chmod rule); programs fall back to the calls they know. Omitted: none
 * @returns the program, at most 4096 instructions
 */
export function buildFilter(
  notify: Iterable<number>,
  checks: ArgumentCheck[] = [],
  knownMax?: number,
): BpfInstruction[] {
  const always = new Set(notify);
  const program = [
    op(LD_ABS, OFF_ARCH),
    op(JEQ, AUDIT_ARCH_X86_64, 1, 0),
    op(RET, SECCOMP_RET_USER_NOTIF),
    op(LD_ABS, OFF_NR),
    op(JGE, X32_SYSCALL_BIT, 0, 1),
    op(RET, SECCOMP_RET_USER_NOTIF),
    ...(knownMax === undefined ? [] : [op(JGT, knownMax, 0, 1), op(RET, SECCOMP_RET_ERRNO | ENOSYS)]),
    ...argumentChecks(checks.filter((c) => !always.has(c.nr))),
    ...decide(toRuns(always)),
  ];
  if (program.length > 4096) {
    throw new RangeError(`Cannot build the seccomp filter: ${program.length} instructions, the kernel takes 4096`);
  }
  return program;
}

/** Encodes a program as struct sock_filter bytes, hex, for the launcher's argv. */
export function encodeFilter(program: BpfInstruction[]): string {
  const bytes = new Uint8Array(program.length * 8);
  const view = new DataView(bytes.buffer);
  program.forEach((ins, i) => {
    view.setUint16(i * 8, ins.code, true);
    view.setUint8(i * 8 + 2, ins.jt);
    view.setUint8(i * 8 + 3, ins.jf);
    view.setUint32(i * 8 + 4, ins.k >>> 0, true);
  });
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
