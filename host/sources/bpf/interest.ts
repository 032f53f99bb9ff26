/**
 * Which calls the bpf programs report, and which of their arguments they copy:
 * the `interest` map's entries, from syscall names and the host's table of
 * argument kinds (host/syscalls/mod.ts), so the copies are the arguments the
 * host decodes as paths (the first two), a written buffer or a sockaddr.
 *
 * @module
 */
import { argKinds, resolveSyscalls, syscallName, syscallNumber } from "../../syscalls/mod.ts";
import type { InterestEntry } from "./layout.ts";

/** The interest entry for one syscall: copies as its argument kinds say. */
export function interestFor(name: string, phases: { enter: boolean; exit: boolean }): InterestEntry {
  const kinds = argKinds(name);
  const entry: InterestEntry = { ...phases };
  const paths = kinds.flatMap((k, i) => k === "path" ? [i] : []);
  if (paths.length > 0) entry.pathArg = paths[0];
  // path2 is the last path argument, as decodeArgs keeps it (mount's three strings: the type, not the target).
  if (paths.length > 1) entry.path2Arg = paths[paths.length - 1];
  // execve's argv (the first: envp is not copied), copied at the call from the caller's memory, for `argv:` rules.
  const argv = kinds.indexOf("argv");
  if (argv >= 0) entry.argvArg = argv;
  const buffer = kinds.findIndex((k) => k === "data" || k === "sockaddr");
  if (buffer >= 0 && buffer < 5) {
    entry.dataArg = buffer;
    entry.lenArg = buffer + 1;
  }
  return entry;
}

/**
 * Interest in the calls `names` (syscall names or groups such as "%file"), each in both phases unless told.
 *
 * @returns syscall number → entry
 */
export function interestIn(
  names: Iterable<string>,
  phases: { enter: boolean; exit: boolean } = { enter: true, exit: true },
): Map<number, InterestEntry> {
  const out = new Map<number, InterestEntry>();
  for (const nr of resolveSyscalls(names)) out.set(nr, interestFor(syscallName(nr), phases));
  return out;
}

/** Interest in every x86_64 call (a trace), entry and exit, with copies. */
export function interestInEverything(): Map<number, InterestEntry> {
  const out = new Map<number, InterestEntry>();
  for (let nr = 0; nr < 512; nr++) {
    const name = syscallName(nr);
    if (syscallNumber(name) === nr) out.set(nr, interestFor(name, { enter: true, exit: true }));
  }
  return out;
}
