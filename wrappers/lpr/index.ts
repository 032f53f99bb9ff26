/**
 * lpr: a specification of the valid operations of lpr, the set-uid-root
 * print spooler client (Ko et al., USENIX Security 2000, section 3.1; the
 * lpr attack of section 4, AUSCERT AA-96.12). The rules are in ./spec.ts,
 * shared with wrappers/lprm:
 *
 *  - it reads a file only if its invoker (real uid) could, by the file's
 *    owner, group and mode bits, or the file is in the spool;
 *  - it writes, creates, removes, renames, chmods and chowns only in the
 *    spool directory (setting `spool`);
 *  - it never executes a program (denied with EACCES);
 *  - it connects only to the printer (setting `printer`, optional, as
 *    event_string's address text: "unix:/run/lpd.sock",
 *    "inet:127.0.0.1:515") and glibc's nscd socket.
 *
 * Every violation is a critical alert (severity 4) naming it; the calls
 * checked before they run fail with EACCES.
 *
 * Settings: `spool` (required), `printer` (optional).
 */
import { declared } from "../sdk/index";
import { declareSpec, initSpec, onSyscallSpec } from "./spec";

export { idwrap_abi_version } from "../sdk/index";

export function idwrap_declare(): i32 {
  declareSpec();
  return declared();
}

export function idwrap_init(): i32 {
  return initSpec("lpr", true);
}

export function idwrap_on_syscall(): i32 {
  return onSyscallSpec();
}
