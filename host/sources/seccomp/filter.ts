/**
 * Builds the classic-BPF program the launcher installs (seccomp(2),
 * SECCOMP_SET_MODE_FILTER). It looks only at `arch` and `nr`, never at
 * arguments, so the kernel's per-syscall action cache (Linux 5.11+) lets
 * every call outside the notified set through without running the filter.
 *
 * @module
 */
import { AUDIT_ARCH_X86_64, X32_SYSCALL_BIT } from "./ffi.ts";

/** SECCOMP_RET_* actions from <linux/seccomp.h>. */
export const SECCOMP_RET_ALLOW = 0x7fff0000;
export const SECCOMP_RET_USER_NOTIF = 0x7fc00000;

/** One struct sock_filter instruction (<linux/filter.h>). */
export interface BpfInstruction {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

// Opcodes: BPF_LD|BPF_W|BPF_ABS, BPF_JMP|{BPF_JEQ,BPF_JGE,BPF_JGT,BPF_JA}|BPF_K, BPF_RET|BPF_K.
const LD_ABS = 0x20, JEQ = 0x15, JGE = 0x35, JGT = 0x25, JA = 0x05, RET = 0x06;
// Offsets in struct seccomp_data.
const OFF_NR = 0, OFF_ARCH = 4;
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
 * The filter: foreign ABIs (i386 through int 0x80, x32) are always notified so
 * the host can deny and report them; of native calls, exactly `notify`.
 *
 * @param notify x86_64 system call numbers to hand to the supervisor
 * @returns the program, at most 4096 instructions
 */
export function buildFilter(notify: Iterable<number>): BpfInstruction[] {
  const program = [
    op(LD_ABS, OFF_ARCH),
    op(JEQ, AUDIT_ARCH_X86_64, 1, 0),
    op(RET, SECCOMP_RET_USER_NOTIF),
    op(LD_ABS, OFF_NR),
    op(JGE, X32_SYSCALL_BIT, 0, 1),
    op(RET, SECCOMP_RET_USER_NOTIF),
    ...decide(toRuns(notify)),
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
