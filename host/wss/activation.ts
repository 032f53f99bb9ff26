/**
 * The WSS's activation decision (the paper's section 2.1): which loaded
 * wrappers wrap a process, from its facts and the wrappers' activation and
 * deactivation criteria, evaluated when a process appears and at every
 * execve. Executable attributes (stat, sha256) are read through
 * /proc/PID/exe — the file actually executed, not whatever now has its
 * path — and cached by device, inode, size, mtime and ctime (a file changed
 * in the last seconds is read afresh: attributesCacheKey).
 *
 * @module
 */
import type { WrapperSpec } from "../policy/policy.ts";
import {
  attributesCacheKey,
  type ExeAttributes,
  matchesCriteria,
  type ProcessFacts,
  readExeAttributes,
} from "../policy/criteria_match.ts";

/** Decides bindings and remembers each process's facts. */
export class Activation {
  readonly #facts = new Map<number, ProcessFacts>();
  readonly #exeCache = new Map<string, ExeAttributes | undefined>();

  /** The facts last recorded for a process. */
  facts(pid: number): ProcessFacts | undefined {
    return this.#facts.get(pid);
  }

  /** Records a process's (new) program; the parent's exe comes from its facts or /proc. */
  record(
    pid: number,
    ppid: number | undefined,
    program: { exe: string; argv0: string; uid: number; gid: number },
  ): ProcessFacts {
    const parentExe = ppid === undefined
      ? this.#facts.get(pid)?.parentExe ?? ""
      : this.#facts.get(ppid)?.exe ?? readLink(`/proc/${ppid}/exe`);
    const facts: ProcessFacts = {
      pid,
      exe: program.exe,
      argv0: program.argv0,
      uid: program.uid,
      gid: program.gid,
      parentExe,
    };
    this.#facts.set(pid, facts);
    return facts;
  }

  forget(pid: number): void {
    this.#facts.delete(pid);
  }

  /** Whether `spec` wraps the process with these facts. */
  binds(spec: WrapperSpec, facts: ProcessFacts): boolean {
    const exe = () => this.#exeAttributes(facts.pid, facts.exe);
    if (spec.activate && !matchesCriteria(spec.activate, facts, exe)) return false;
    return !(spec.deactivate && matchesCriteria(spec.deactivate, facts, exe));
  }

  /**
   * The attributes of the file the process executed: /proc/PID/exe, or, when the process is already gone (the bpf
   * source serves an exec record after the fact, and a short program has exited by then), its program's path as the
   * source named it — for bpf, the file found to have the executed file's device and inode when the record was read
   * (resolvedExe), never a path marked "(unverified)".
   */
  #exeAttributes(pid: number, exe: string): ExeAttributes | undefined {
    let link = `/proc/${pid}/exe`;
    let key: string | undefined;
    try {
      key = attributesCacheKey(Deno.statSync(link));
    } catch {
      if (!exe.startsWith("/") || exe.endsWith(")")) return undefined; // "(unverified)", "(deleted)"
      try {
        link = exe;
        key = attributesCacheKey(Deno.statSync(link));
      } catch {
        return undefined;
      }
    }
    if (key === undefined) return readExeAttributes(link);
    if (!this.#exeCache.has(key)) this.#exeCache.set(key, readExeAttributes(link));
    return this.#exeCache.get(key);
  }
}

function readLink(path: string): string {
  try {
    return Deno.readLinkSync(path);
  } catch {
    return "";
  }
}
