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
  SECCOMP_RET_ERRNO,
  SECCOMP_RET_USER_NOTIF,
} from "../../../host/sources/seccomp/filter.ts";
import { guardFilter } from "../../../host/sources/seccomp/tamper.ts";
import { syscallNumber } from "../../../host/syscalls/mod.ts";
import { AUDIT_ARCH_I386, AUDIT_ARCH_X86_64 } from "../../../host/unsafe/layouts.ts";

/** Evaluates the subset of classic BPF buildFilter() emits. */
function evaluate(program: BpfInstruction[], nr: number, arch: number, args: number[] = []): number {
  let a = 0;
  for (let pc = 0; pc < program.length; pc++) {
    const { code, jt, jf, k } = program[pc];
    switch (code) {
      case 0x20:
        // seccomp_data: nr at 0, arch at 4, the low 32 bits of args[i] at 16 + 8 * i
        a = k === 0 ? nr : k === 4 ? arch : (args[(k - 16) / 8] ?? 0) >>> 0;
        break;
      case 0x45:
        pc += (a & k) !== 0 ? jt : jf;
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

Deno.test("buildFilter() argument checks notify a call only for the values that can reach the supervisor", () => {
  const self = 4242, thread = 4250;
  const program = buildFilter([0], guardFilter(self, [self, 4243, thread]).checks);
  const nr = (name: string) => syscallNumber(name)!;
  const cases: [string, number[], number][] = [
    ["ptrace", [16, /* PTRACE_ATTACH */ self], SECCOMP_RET_USER_NOTIF],
    ["ptrace", [0x4206, /* PTRACE_SEIZE */ 1], SECCOMP_RET_USER_NOTIF],
    ["ptrace", [12, /* PTRACE_GETREGS */ self], SECCOMP_RET_ALLOW],
    ["kill", [self, 9], SECCOMP_RET_USER_NOTIF],
    ["kill", [thread, 9], SECCOMP_RET_USER_NOTIF],
    ["kill", [0, 9], SECCOMP_RET_USER_NOTIF], // its process group
    ["kill", [-1 >>> 0, 9], SECCOMP_RET_USER_NOTIF], // every process
    ["kill", [-self >>> 0, 9], SECCOMP_RET_USER_NOTIF], // a process group by id
    ["kill", [self + 100, 9], SECCOMP_RET_ALLOW], // any other process: a script's `kill $child` never waits
    ["tkill", [thread, 19], SECCOMP_RET_USER_NOTIF],
    ["tkill", [thread + 1, 19], SECCOMP_RET_ALLOW],
    ["rt_sigqueueinfo", [4243, 19], SECCOMP_RET_USER_NOTIF],
    ["rt_sigqueueinfo", [77, 19], SECCOMP_RET_ALLOW],
    ["tgkill", [self, self, 9], SECCOMP_RET_USER_NOTIF],
    ["tgkill", [self + 1, self, 9], SECCOMP_RET_ALLOW],
    ["pidfd_open", [self, 0], SECCOMP_RET_USER_NOTIF],
    ["pidfd_open", [77, 0x80 /* PIDFD_THREAD */], SECCOMP_RET_USER_NOTIF],
    ["pidfd_open", [77, 0x800 /* PIDFD_NONBLOCK */], SECCOMP_RET_ALLOW],
    ["getsockopt", [3, 1, 77 /* SO_PEERPIDFD */], SECCOMP_RET_USER_NOTIF],
    ["getsockopt", [3, 1, 17 /* SO_PEERCRED */], SECCOMP_RET_ALLOW],
    ["fcntl", [3, 8, /* F_SETOWN */ self], SECCOMP_RET_USER_NOTIF],
    ["fcntl", [3, 4, /* F_SETFL */ 0], SECCOMP_RET_ALLOW],
    ["fcntl", [3, 10, /* F_SETSIG: the guard refuses signals idwrap cannot survive */ 9], SECCOMP_RET_USER_NOTIF],
    ["ioctl", [0, 0x5412 /* TIOCSTI */], SECCOMP_RET_USER_NOTIF],
    ["ioctl", [0, 0x5401 /* TCGETS */], SECCOMP_RET_ALLOW],
    ["prlimit64", [0, 7], SECCOMP_RET_ALLOW],
    ["prlimit64", [99, 7], SECCOMP_RET_USER_NOTIF],
    ["read", [0, 0, 0], SECCOMP_RET_USER_NOTIF], // in the notified set: whatever its arguments
  ];
  for (const [name, args, want] of cases) {
    assertEquals(evaluate(program, nr(name), AUDIT_ARCH_X86_64, args), want, `${name}(${args.join(", ")})`);
  }
});

Deno.test("buildFilter() fails every call above the known table with ENOSYS, and only those", () => {
  const program = buildFilter([1, 450], [], 450);
  assertEquals(evaluate(program, 450, AUDIT_ARCH_X86_64), SECCOMP_RET_USER_NOTIF);
  assertEquals(evaluate(program, 449, AUDIT_ARCH_X86_64), SECCOMP_RET_ALLOW);
  for (const nr of [451, 452, /* fchmodat2 */ 463, 511]) {
    assertEquals(evaluate(program, nr, AUDIT_ARCH_X86_64), SECCOMP_RET_ERRNO | 38, String(nr));
  }
});
