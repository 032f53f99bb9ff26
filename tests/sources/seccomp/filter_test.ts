/**
 * buildFilter(): the decision tree notifies exactly the requested set. The
 * kernel runs the same program in the other tests; here a small classic-BPF
 * evaluator checks every syscall number for many sets, which no end-to-end
 * run could cover.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import {
  type BpfInstruction,
  buildFilter,
  SECCOMP_RET_ALLOW,
  SECCOMP_RET_USER_NOTIF,
} from "../../../host/sources/seccomp/filter.ts";
import { AUDIT_ARCH_I386, AUDIT_ARCH_X86_64 } from "../../../host/sources/seccomp/ffi.ts";

/** Evaluates the subset of classic BPF buildFilter() emits. */
function evaluate(program: BpfInstruction[], nr: number, arch: number): number {
  let a = 0;
  for (let pc = 0; pc < program.length; pc++) {
    const { code, jt, jf, k } = program[pc];
    switch (code) {
      case 0x20:
        a = k === 0 ? nr : arch;
        break;
      case 0x15:
        pc += (a >>> 0) === (k >>> 0) ? jt : jf;
        break;
      case 0x35:
        pc += (a >>> 0) >= (k >>> 0) ? jt : jf;
        break;
      case 0x25:
        pc += (a >>> 0) > (k >>> 0) ? jt : jf;
        break;
      case 0x05:
        pc += k;
        break;
      case 0x06:
        return k;
      default:
        throw new Error(`unexpected opcode ${code}`);
    }
  }
  throw new Error("fell off the end");
}

/** A scattered, deterministic subset of 0..459 holding about `percent`% of the numbers. */
function scatteredSet(percent: number, seed: number): number[] {
  return Array.from({ length: 460 }, (_, nr) => nr).filter((nr) =>
    Math.imul(nr + seed, 2654435761) >>> 0 < percent * 42949673
  );
}

Deno.test("buildFilter() notifies exactly the requested x86_64 syscalls", () => {
  const sets = [[], [0], [459], [1, 2, 3], Array.from({ length: 460 }, (_, i) => i)];
  for (let i = 1; i < 40; i++) sets.push(scatteredSet(i * 7 % 100, i));
  for (const set of sets) {
    const program = buildFilter(set);
    const want = new Set(set);
    for (let nr = 0; nr < 512; nr++) {
      const got = evaluate(program, nr, AUDIT_ARCH_X86_64);
      assertEquals(
        got,
        want.has(nr) ? SECCOMP_RET_USER_NOTIF : SECCOMP_RET_ALLOW,
        `nr ${nr} of a ${set.length}-call set`,
      );
    }
  }
});

Deno.test("buildFilter() notifies every i386 and x32 call", () => {
  const program = buildFilter([257]);
  for (const nr of [0, 5, 11, 257]) assertEquals(evaluate(program, nr, AUDIT_ARCH_I386), SECCOMP_RET_USER_NOTIF);
  for (const nr of [0x40000000, 0x40000000 + 39, 0x7fffffff]) {
    assertEquals(evaluate(program, nr, AUDIT_ARCH_X86_64), SECCOMP_RET_USER_NOTIF);
  }
});

Deno.test("buildFilter() stays within the kernel's 4096 instructions for every syscall", () => {
  assert(buildFilter(Array.from({ length: 460 }, (_, i) => i * 2 % 460)).length < 4096);
});
