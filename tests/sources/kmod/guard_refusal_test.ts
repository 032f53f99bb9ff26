/**
 * Which refused records of the module the host alerts as an attempt on the supervisor
 * (host/sources/kmod/tamper.ts, moduleGuardRefusal): a refusal inside the call by the guard of kmod/idwrap_guard.c
 * (a ptrace access check, a signal), not one the module makes at sys_enter by the call's registers (io_uring, TIOCSTI,
 * SO_*PIDFD), nor a foreign ABI or a raced call. The VM test (ptrace_guard_vm_test.ts) drives the real ones.
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { moduleGuardRefusal } from "../../../host/sources/kmod/tamper.ts";
import { EV, EVF, type KmodRecord } from "../../../host/sources/kmod/uapi.ts";
import { syscallNumber } from "../../../host/syscalls/mod.ts";

function rec(name: string, flags: number): KmodRecord {
  return {
    size: 0,
    type: EV.SYSCALL,
    flags,
    id: 1n,
    timeNs: 0n,
    pid: 2,
    tid: 2,
    ppid: 1,
    uid: 0,
    gid: 0,
    euid: 0,
    egid: 0,
    nr: syscallNumber(name)!,
    args: new BigUint64Array(6),
    ret: -1n,
    lost: 0n,
    comm: "t",
  };
}

Deno.test("kmod: the module's refusals inside a call are alerted as tamper, its refusals at sys_enter are not", () => {
  for (const name of ["openat", "readlink", "getdents64", "ptrace", "process_vm_readv", "pidfd_send_signal", "kill"]) {
    assertEquals(moduleGuardRefusal(rec(name, EVF.DENIED))?.technique, "T1562.001", name);
  }
  for (const name of ["ioctl", "getsockopt", "setsockopt", "io_uring_setup", "io_uring_enter", "io_uring_register"]) {
    assertEquals(moduleGuardRefusal(rec(name, EVF.DENIED)), undefined, name);
  }
  assertEquals(moduleGuardRefusal(rec("openat", 0)), undefined, "not refused");
  assertEquals(moduleGuardRefusal(rec("openat", EVF.DENIED | EVF.COMPAT)), undefined, "i386");
  assertEquals(moduleGuardRefusal(rec("openat", EVF.DENIED | EVF.X32)), undefined, "x32");
  assertEquals(moduleGuardRefusal(rec("connect", EVF.DENIED | EVF.RACED | EVF.POST)), undefined, "raced");
});
