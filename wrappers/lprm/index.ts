/**
 * lprm: a specification of the valid operations of lprm, the set-uid-root
 * print job remover (Ko et al., USENIX Security 2000, section 3.1; the
 * lprm attack of section 4). The rules are lpr's (../lpr/spec.ts), with
 * one more restriction: lprm removes jobs and creates nothing that needs a
 * mode, so it never chmods or chowns anything.
 *
 *  - it reads a file only if its invoker (real uid) could, or the file is
 *    in the spool (the control files it examines);
 *  - it writes, creates, removes and renames only in the spool directory
 *    (setting `spool`);
 *  - it never chmods or chowns, never executes a program (EACCES);
 *  - it connects only to the printer (setting `printer`, optional) and
 *    glibc's nscd socket.
 *
 * Every violation is a critical alert (severity 4) naming it; the calls
 * checked before they run fail with EACCES.
 *
 * Settings: `spool` (required), `printer` (optional).
 */
import { declared } from "../sdk/index";
import { declareSpec, initSpec, onSyscallSpec } from "../lpr/spec";

export { idwrap_abi_version } from "../sdk/index";

export function idwrap_declare(): i32 {
  declareSpec();
  return declared();
}

export function idwrap_init(): i32 {
  return initSpec("lprm", false);
}

export function idwrap_on_syscall(): i32 {
  return onSyscallSpec();
}
