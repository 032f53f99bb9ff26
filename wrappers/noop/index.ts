/**
 * noop: intercepts getppid (pre only) and allows it. The benchmarks use it
 * to measure the cost of one wrapper call on a cheap, otherwise unused
 * system call.
 */
import { allow, declared, declareSyscall, PRE, SYS_getppid } from "../sdk/index";

export { idwrap_abi_version } from "../sdk/index";

export function idwrap_declare(): i32 {
  declareSyscall(SYS_getppid, PRE);
  return declared();
}

export function idwrap_on_syscall(): i32 {
  return allow();
}
