/**
 * Recorded activity for offline replay (`idwrap policy test`): the JSON lines
 * `idwrap trace --json` writes (every field the WSS builds an event from:
 * decoded arguments, results, program identity, lifecycle), or `strace -f`
 * output (call names, the first path, the result; no program identity but
 * what its execve lines say). Wrapper reports in a recording (the alerts of
 * the policies it was recorded under) are dropped: a replay makes its own.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { errnoNumber } from "../errno.ts";
import type { HostEvent, LifecycleEvent, ProgramIdentity, SyscallEvent } from "../events.ts";
import { syscallNumber } from "../syscalls/mod.ts";

/** Formats a recording can have. */
export type RecordingFormat = "json" | "strace";

/** One recorded event and where it was read. */
export interface RecordedEvent {
  event: SyscallEvent | LifecycleEvent;
  /** 1-based line of the recording. */
  line: number;
}

/** A recording that cannot be read: names file, line and what was expected. */
export class RecordingError extends Error {}

const NO_PROGRAM: ProgramIdentity = { exe: "", argv0: "", uid: 0, gid: 0 };

/** Parses a recording's text. */
export function parseRecording(text: string, format: RecordingFormat, file: string): RecordedEvent[] {
  return format === "json" ? parseJsonLines(text, file) : parseStrace(text, file);
}

/** Reads a recording; the format from the name where not given (`.jsonl`/`.json`: json, else strace). */
export async function readRecording(file: string, format?: RecordingFormat): Promise<RecordedEvent[]> {
  let text: string;
  try {
    text = await Deno.readTextFile(file);
  } catch (e) {
    throw new RecordingError(`${file}: cannot read the recording: ${(e as Error).message}`);
  }
  return parseRecording(text, format ?? (/\.jsonl?$/.test(file) ? "json" : "strace"), file);
}

function parseJsonLines(text: string, file: string): RecordedEvent[] {
  const out: RecordedEvent[] = [];
  text.split("\n").forEach((raw, i) => {
    const line = i + 1;
    if (!raw.trim()) return;
    let e: HostEvent;
    try {
      e = JSON.parse(raw);
    } catch (err) {
      throw new RecordingError(
        `${file}:${line}: expected one JSON event per line (idwrap trace --json): ${(err as Error).message}`,
      );
    }
    const where = `${file}:${line}`;
    if (typeof e !== "object" || e === null || typeof e.kind !== "string") {
      throw new RecordingError(`${where}: field kind: expected syscall, spawn, exec, exit or a report`);
    }
    if (e.kind === "alert" || e.kind === "audit" || e.kind === "fault" || e.kind === "log") return;
    if (e.kind !== "syscall" && e.kind !== "spawn" && e.kind !== "exec" && e.kind !== "exit") {
      throw new RecordingError(
        `${where}: field kind: expected syscall, spawn, exec, exit or a report, got "${e.kind}"`,
      );
    }
    need(where, "pid", Number.isInteger(e.pid), "an integer");
    need(where, "program", isProgram(e.program), "{exe, argv0, uid, gid}");
    if (e.kind === "syscall") {
      need(where, "syscall", typeof e.syscall === "string" && syscallNumber(e.syscall) !== undefined, "a known name");
      need(where, "phase", e.phase === "pre" || e.phase === "post", '"pre" or "post"');
      need(where, "decoded", typeof e.decoded === "object" && e.decoded !== null, "an object");
      if (e.phase === "post") need(where, "ret", Number.isInteger(e.ret), "an integer (a post event's result)");
      if (e.errno !== undefined) need(where, "errno", errnoNumber(e.errno) !== undefined, "an errno name");
      const b64 = (e.decoded as { dataBase64?: unknown }).dataBase64;
      if (b64 !== undefined) {
        need(where, "decoded.dataBase64", typeof b64 === "string" && /^[A-Za-z0-9+/]*=*$/.test(b64), "base64 text");
        const { dataBase64: _d, ...decoded } = e.decoded as { dataBase64?: string };
        e.decoded = { ...decoded, data: new Uint8Array(Buffer.from(b64 as string, "base64")) };
      }
      // What the recording's policies made of it is not the replay's: dropped.
      const { verdict: _v, alerts: _a, reason: _r, ...call } = e;
      out.push({ event: { ...call, tid: Number.isInteger(e.tid) ? e.tid : e.pid, args: e.args ?? [] }, line });
    } else {
      if (e.kind === "spawn") need(where, "ppid", Number.isInteger(e.ppid), "an integer");
      out.push({ event: e, line });
    }
  });
  return out;
}

function need(where: string, field: string, ok: boolean, expected: string): void {
  if (!ok) throw new RecordingError(`${where}: field ${field}: expected ${expected}`);
}

function isProgram(p: unknown): p is ProgramIdentity {
  const q = p as ProgramIdentity;
  return typeof q === "object" && q !== null && typeof q.exe === "string" && Number.isInteger(q.uid);
}

/** `strace -f` (with or without -tt/-T): "[pid N] name(args) = ret [ERRNO (msg)]", "N name(…", "name(…". */
const STRACE_CALL =
  /^(?:\[pid\s+(\d+)\]\s+|(\d+)\s+)?(?:\d+(?::\d+)*(?:\.\d+)?\s+)?([a-z_][a-z0-9_]*)\((.*)\)\s+=\s+(-?\d+|\?)(?:\s+(E[A-Z0-9]+))?/;
const STRACE_EXIT = /^(?:\[pid\s+(\d+)\]\s+|(\d+)\s+)?\+\+\+ (?:exited with (\d+)|killed by (SIG\w+))/;
const FIRST_STRING = /"((?:[^"\\]|\\.)*)"/;
const ARGV = /\[((?:"(?:[^"\\]|\\.)*"(?:, )?)*)\]/;

/**
 * strace -f output as events: one post event per finished call (unfinished/resumed halves are joined), a spawn for
 * each pid first seen (its parent: the pid whose clone/fork returned it), an exec for each execve that returned 0,
 * an exit for "+++ exited". Paths are as the program passed them (strace does not resolve them).
 */
function parseStrace(text: string, file: string): RecordedEvent[] {
  const out: RecordedEvent[] = [];
  const programs = new Map<number, ProgramIdentity>();
  const parents = new Map<number, number>();
  const unfinished = new Map<number, string>();
  let first: number | undefined;
  const lines = text.split("\n");
  lines.forEach((rawLine, i) => {
    const line = i + 1;
    let raw = rawLine;
    const pidOf = (m: RegExpExecArray) => Number(m[1] ?? m[2] ?? 0);
    const un = /^(?:\[pid\s+(\d+)\]\s+|(\d+)\s+)?(.*) <unfinished \.\.\.>$/.exec(raw);
    if (un) {
      unfinished.set(pidOf(un), un[0].replace(/ <unfinished \.\.\.>$/, ""));
      return;
    }
    const res = /^(?:\[pid\s+(\d+)\]\s+|(\d+)\s+)?(?:\d+(?::\d+)*(?:\.\d+)?\s+)?<\.\.\. [a-z0-9_]+ resumed>\s?(.*)$/
      .exec(raw);
    if (res) {
      const start = unfinished.get(pidOf(res));
      if (start === undefined) return;
      unfinished.delete(pidOf(res));
      raw = start + res[3];
    }
    const exit = STRACE_EXIT.exec(raw);
    if (exit) {
      const pid = pidOf(exit);
      const event: LifecycleEvent = { kind: "exit", source: "seccomp", time: 0, pid, program: programOf(pid) };
      if (exit[3] !== undefined) event.exitCode = Number(exit[3]);
      else event.signal = exit[4];
      out.push({ event, line });
      return;
    }
    const m = STRACE_CALL.exec(raw);
    if (!m) return;
    const nr = syscallNumber(m[3]);
    if (nr === undefined) return; // a call this table does not know (another ABI's): not replayable
    const pid = pidOf(m);
    first ??= pid;
    if (!programs.has(pid)) {
      const ppid = parents.get(pid) ?? 0;
      programs.set(pid, programOf(ppid));
      out.push({
        event: { kind: "spawn", source: "seccomp", time: 0, pid, ppid, program: programOf(pid) },
        line,
      });
    }
    const args = m[4];
    const ret = m[5] === "?" ? 0 : Number(m[5]);
    const errno = m[6];
    if (errno !== undefined && errnoNumber(errno) === undefined) {
      throw new RecordingError(`${file}:${line}: expected an errno name after the result, got "${errno}"`);
    }
    const path = FIRST_STRING.exec(args)?.[1];
    const decoded: SyscallEvent["decoded"] = {};
    if (path !== undefined) decoded.path = straceString(path);
    if (m[3] === "execve" || m[3] === "execveat") {
      const argv = ARGV.exec(args);
      if (argv) decoded.argv = [...argv[1].matchAll(/"((?:[^"\\]|\\.)*)"/g)].map((a) => straceString(a[1]));
    }
    const event: SyscallEvent = {
      kind: "syscall",
      source: "seccomp",
      phase: "post",
      time: 0,
      pid,
      tid: pid,
      abi: "x86_64",
      nr,
      syscall: m[3],
      args: [],
      decoded,
      program: programOf(pid),
      ret: errno ? -1 : ret,
    };
    if (errno) event.errno = errno;
    out.push({ event, line });
    if (/^(clone|clone3|fork|vfork)$/.test(m[3]) && ret > 0) parents.set(ret, pid);
    if ((m[3] === "execve" || m[3] === "execveat") && ret === 0 && !errno && decoded.path) {
      const program = { ...NO_PROGRAM, exe: decoded.path, argv0: decoded.argv?.[0] ?? decoded.path };
      programs.set(pid, program);
      out.push({ event: { kind: "exec", source: "seccomp", time: 0, pid, program }, line });
    }
  });
  if (out.length === 0) throw new RecordingError(`${file}: no strace -f call lines found`);
  return out;

  function programOf(pid: number): ProgramIdentity {
    return programs.get(pid) ?? { ...NO_PROGRAM };
  }
}

/** A string as strace prints it (C escapes: \\n, \\", \\\\, \\xNN, octal \\NNN), decoded as UTF-8. */
function straceString(s: string): string {
  const bytes: number[] = [];
  const enc = new TextEncoder();
  const SIMPLE: Record<string, number> = { n: 10, t: 9, r: 13, v: 11, f: 12, a: 7, b: 8, '"': 34, "\\": 92, "'": 39 };
  for (let i = 0; i < s.length; i++) {
    if (s[i] !== "\\") {
      bytes.push(...enc.encode(s[i]));
      continue;
    }
    const c = s[++i];
    if (c === "x") {
      bytes.push(parseInt(s.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (/[0-7]/.test(c)) {
      const m = /^[0-7]{1,3}/.exec(s.slice(i))![0];
      bytes.push(parseInt(m, 8));
      i += m.length - 1;
    } else bytes.push(SIMPLE[c] ?? c.charCodeAt(0));
  }
  return new TextDecoder().decode(new Uint8Array(bytes));
}
