/**
 * How the kernel-module source decodes a record's arguments: from the
 * module's copies (paths, data, execve's argv), falling back to the caller's
 * memory only where a waiting record carries no copy.
 *
 * @module
 */
import { type ArgKind, syscallNumber } from "../../syscalls/mod.ts";
import type { ArgReader } from "../../wss/decode.ts";
import type { TargetMemory } from "../../unsafe/memory.ts";
import { EVF, type KmodRecord, splitArgv } from "./uapi.ts";

/**
 * The argument whose bytes the module copies as `data` for a syscall record: the buffer of write, pwrite64 and
 * sendto, the sockaddr of connect and bind (kmod/idwrap_record.c's idw_spec). Others are not copied.
 */
const DATA_ARG = 1;

/** execve and execveat: their pre records carry argv as data (NUL-separated, cut at data_max). */
const EXEC_NRS = new Set(["execve", "execveat"].map((name) => syscallNumber(name)));

/**
 * Decodes from the module's copies: the paths it copied, data for sockaddr and write buffers, and execve's argv
 * (the module copies it once, so the verdict is on the bytes it saw). Only a record without that copy (an empty
 * argv, or a module that did not carry it) falls back, while the caller waits, to reading the caller's memory (as
 * the seccomp source does, with its TOCTOU caveat).
 */
export function recordReader(rec: KmodRecord, memory: TargetMemory): ArgReader {
  const faulted = (rec.flags & EVF.FAULT) !== 0;
  const waits = (rec.flags & EVF.VERDICT) !== 0 && !(rec.flags & EVF.POST);
  const exec = EXEC_NRS.has(rec.nr) && !(rec.flags & EVF.COMPAT) && !(rec.flags & EVF.POST);
  return {
    path: (raw, nth) => {
      const p = nth === 0 ? rec.path : rec.path2;
      if (p !== undefined) return p;
      return raw !== 0n && faulted ? undefined : null;
    },
    argv: (raw) => {
      if (exec && rec.data) return splitArgv(rec.data);
      if (exec && faulted && raw !== 0n) return undefined;
      return waits ? memory.readStringArray(rec.tid, raw) : null;
    },
    bytes: (_raw, len, kind: ArgKind, index) => {
      // clone_args, open_how, sendto's destination: not copied.
      if ((kind !== "sockaddr" && kind !== "data") || index !== DATA_ARG) return null;
      if (rec.data) return kind === "data" ? rec.data : rec.data.subarray(0, len);
      if (kind === "data" && len === 0) return new Uint8Array(0);
      return faulted ? undefined : null;
    },
  };
}
