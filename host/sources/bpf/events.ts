/**
 * Records of the bpf programs → the project's events (host/events.ts), in ring
 * order, which is call order per thread (a thread reserves its records one
 * after another). Keeps each watched process's identity (exe, argv0, uid,
 * gid) from its exec records, and turns every count of dropped records into
 * a report, so a loss is never silent.
 *
 * @module
 */
import { errnoName } from "../../errno.ts";
import type { DecodedArgs, HostEvent, ProgramIdentity, SyscallEvent, WrapperReport } from "../../events.ts";
import { i386SyscallName, syscallName } from "../../syscalls/mod.ts";
import { type ArgReader, decodeArgs } from "../../wss/decode.ts";
import { boundedArgs } from "../../wss/procfs.ts";
import { ARGV_MAX, type BpfRecord, DATA_MAX, FLAG, KIND, ktimeMs } from "./layout.ts";
import { monotonicNs } from "./libbpf.ts";

const text = new TextDecoder();

/** Reads a record's copied arguments: what the programs did not copy is absent (null), not a fault. */
export function recordReader(rec: BpfRecord): ArgReader {
  return {
    path(_raw, nth) {
      const [bytes, fault] = nth === 0 ? [rec.path, FLAG.PATH_FAULT] : [rec.path2, FLAG.PATH2_FAULT];
      if (rec.flags & fault) return undefined;
      if (!(rec.flags & FLAG.COPIES)) return null;
      return bytes ? text.decode(bytes) : "";
    },
    // The programs copy execve's argv at its enter (interest.ts): a copy that failed is a fault, never an empty argv.
    argv() {
      if (rec.flags & FLAG.DATA_FAULT) return undefined;
      if (!(rec.flags & FLAG.COPIES)) return null;
      return splitArgv(rec.data, (rec.flags & FLAG.DATA_TRUNC) !== 0);
    },
    bytes(_raw, len, kind) {
      if (kind !== "data" && kind !== "sockaddr") return null;
      if (rec.flags & FLAG.DATA_FAULT) return undefined;
      if (!(rec.flags & FLAG.COPIES)) return null;
      return (rec.data ?? new Uint8Array(0)).subarray(0, len);
    },
  };
}

/**
 * An argv the programs copied (NUL-separated strings: execve's at its enter, the new image's at exec). A string the
 * copy's bound cut (no NUL of its own) ends in "…", so no rule reads a prefix as the whole argument.
 */
export function splitArgv(bytes: Uint8Array | undefined, truncated: boolean): string[] {
  if (!bytes?.length) return [];
  const parts = text.decode(bytes).split("\0");
  const last = parts.pop()!; // "" when the copy ends with its last string's NUL
  if (last !== "") parts.push(truncated ? last + "…" : last);
  return parts;
}

/**
 * What is wrong with the argv an execve record copied, if anything: one that could not be read (a page not resident at
 * the call: the programs cannot fault one in) or was longer than the copy. `argv:` rules judge what was copied, so
 * either is reported, never left for a rule to silently not match.
 */
export function execArgvProblem(rec: BpfRecord): string | undefined {
  if (!(rec.flags & FLAG.COPIES)) return undefined;
  if (rec.flags & FLAG.DATA_FAULT) {
    return "execve's argv could not be read at the call (a page not resident): argv rules did not see it";
  }
  if (rec.flags & FLAG.DATA_TRUNC) {
    return `execve's argv was longer than the bpf programs copy (${ARGV_MAX} strings, ${DATA_MAX} bytes): argv ` +
      "rules saw only its start";
  }
  return undefined;
}

/** The identity an exec record names: exe, argv (bounded as /proc's reader bounds it) and argc. */
export function execProgram(rec: BpfRecord, exe: string): ProgramIdentity {
  const argv = splitArgv(rec.data, (rec.flags & FLAG.DATA_TRUNC) !== 0);
  const argc = Number(rec.args[5]);
  return {
    exe,
    argv0: argv[0] ?? exe,
    uid: rec.uid,
    gid: rec.gid,
    ...(rec.flags & FLAG.DATA_FAULT ? {} : { args: boundedArgs(argv), argc: Math.max(argc, argv.length) }),
  };
}

/** How many records were dropped, as a report naming the count. */
export function lostReport(count: number, time: number, where: string): WrapperReport {
  return {
    kind: "fault",
    source: "bpf",
    time,
    pid: 0,
    wrapper: "idwrap",
    message: `the bpf programs dropped ${count} records (their ring was full) ${where}`,
    program: { exe: "", argv0: "", uid: -1, gid: -1 },
  };
}

/** Turns records into events, keeping what it learns about each process. */
export class BpfEventDecoder {
  readonly #programs = new Map<number, ProgramIdentity>();
  /** Wall clock minus CLOCK_MONOTONIC, in ms: a record's ktime (ms) + this is its wall time. */
  readonly #offsetMs = Date.now() - Number(monotonicNs()) / 1e6;
  /** Records dropped, as reported in-band so far. */
  lost = 0;

  /** Records a watched process's identity before its first record (the launcher, read from /proc). */
  seed(pid: number): void {
    this.#programs.set(pid, readIdentity(pid));
  }

  /** The identity known for a process. */
  program(pid: number): ProgramIdentity {
    return this.#programs.get(pid) ?? { exe: "", argv0: "", uid: -1, gid: -1 };
  }

  /** The events of one record (a count of records dropped before it comes first). */
  decode(rec: BpfRecord): HostEvent[] {
    const time = Math.floor(ktimeMs(rec) + this.#offsetMs);
    const out: HostEvent[] = [];
    if (rec.lost) {
      this.lost += rec.lost;
      out.push(lostReport(rec.lost, time, "before this point"));
    }
    switch (rec.kind) {
      case KIND.ENTER:
      case KIND.EXIT:
        out.push(this.#syscall(rec, time));
        break;
      case KIND.FORK: {
        const child = Number(rec.ret);
        const parent = this.program(rec.tgid);
        this.#programs.set(child, { ...parent });
        out.push({ kind: "spawn", source: "bpf", time, pid: child, ppid: rec.tgid, program: parent });
        if (rec.flags & FLAG.UNFOLLOWED) {
          out.push({
            kind: "fault",
            source: "bpf",
            time,
            pid: child,
            wrapper: "idwrap",
            message: `process ${child} (a child of ${rec.tgid}) is not watched: the watched set is full`,
            program: parent,
          });
        }
        break;
      }
      case KIND.EXEC: {
        const program = execProgram(rec, rec.path ? text.decode(rec.path) : "");
        this.#programs.set(rec.tgid, program);
        out.push({ kind: "exec", source: "bpf", time, pid: rec.tgid, program });
        break;
      }
      case KIND.GONE: {
        const status = Number(rec.ret);
        const program = this.program(rec.tgid);
        this.#programs.delete(rec.tgid);
        const signal = status & 0x7f;
        out.push({
          kind: "exit",
          source: "bpf",
          time,
          pid: rec.tgid,
          program,
          ...(signal ? { signal: signalName(signal) } : { exitCode: (status >> 8) & 0xff }),
        });
        break;
      }
      default:
        out.push({
          kind: "fault",
          source: "bpf",
          time,
          pid: rec.tgid,
          wrapper: "idwrap",
          message: `unknown bpf record kind ${rec.kind} (flags 0x${rec.flags.toString(16)})`,
          program: this.program(rec.tgid),
        });
    }
    return out;
  }

  #syscall(rec: BpfRecord, time: number): SyscallEvent {
    return new BpfSyscallEvent(rec, time, this.program(rec.tgid));
  }
}

/**
 * A call's event, its registers as strings and its decoded arguments made when first read (then kept): most events
 * are counted, matched by name or dropped, and the strings cost more than the rest of the event. Enumerable like a
 * plain event for JSON (toJSON) but not for spread: `{...event}` drops `args` and `decoded`.
 */
class BpfSyscallEvent implements SyscallEvent {
  readonly kind = "syscall";
  readonly source = "bpf";
  readonly phase: "pre" | "post";
  readonly time: number;
  readonly pid: number;
  readonly tid: number;
  readonly abi: "i386" | "x86_64";
  readonly nr: number;
  readonly syscall: string;
  readonly program: ProgramIdentity;
  ret?: number;
  errno?: string;
  #rec: BpfRecord | undefined;
  #args: string[] | undefined;
  #decoded: DecodedArgs | undefined;

  constructor(rec: BpfRecord, time: number, program: ProgramIdentity) {
    const compat = (rec.flags & FLAG.COMPAT) !== 0;
    this.phase = rec.kind === KIND.ENTER ? "pre" : "post";
    this.time = time;
    this.pid = rec.tgid;
    this.tid = rec.tid;
    this.abi = compat ? "i386" : "x86_64";
    this.nr = rec.nr;
    this.syscall = compat ? i386SyscallName(this.nr) : syscallName(this.nr);
    this.program = program;
    this.#rec = rec;
    if (this.phase === "post") {
      const ret = Number(rec.ret);
      if (ret < 0 && ret >= -4095) {
        this.ret = -1;
        this.errno = errnoName(-ret);
      } else this.ret = ret;
    }
  }

  get args(): string[] {
    if (!this.#args) this.#args = this.#rec ? Array.from(this.#rec.args, String) : [];
    return this.#args;
  }
  set args(v: string[]) {
    this.#args = v;
  }

  get decoded(): DecodedArgs {
    if (!this.#decoded) {
      const rec = this.#rec;
      this.#decoded = rec && this.phase === "pre" && this.abi === "x86_64"
        ? decodeArgs(this.syscall, rec.args, recordReader(rec))
        : {};
      // Both taken: the record (and the ring's bytes it views) can go.
      if (this.#args) this.#rec = undefined;
    }
    return this.#decoded;
  }
  set decoded(v: DecodedArgs) {
    this.#decoded = v;
  }

  toJSON(): SyscallEvent {
    const { kind, source, phase, time, pid, tid, abi, nr, syscall, args, decoded, program, ret, errno } = this;
    return {
      kind,
      source,
      phase,
      time,
      pid,
      tid,
      abi,
      nr,
      syscall,
      args,
      decoded,
      program,
      ...(ret === undefined ? {} : { ret }),
      ...(errno === undefined ? {} : { errno }),
    };
  }
}

const SIGNALS = [
  "",
  "SIGHUP",
  "SIGINT",
  "SIGQUIT",
  "SIGILL",
  "SIGTRAP",
  "SIGABRT",
  "SIGBUS",
  "SIGFPE",
  "SIGKILL",
  "SIGUSR1",
  "SIGSEGV",
  "SIGUSR2",
  "SIGPIPE",
  "SIGALRM",
  "SIGTERM",
];

function signalName(n: number): string {
  return SIGNALS[n] ?? `signal ${n}`;
}

/** A process's identity from /proc (exe, argv[0], real uid and gid). */
export function readIdentity(pid: number): ProgramIdentity {
  const read = (f: string) => {
    try {
      return Deno.readTextFileSync(`/proc/${pid}/${f}`);
    } catch {
      return "";
    }
  };
  let exe = "";
  try {
    exe = Deno.readLinkSync(`/proc/${pid}/exe`);
  } catch { /* gone or not ours */ }
  const status = read("status");
  const id = (key: string) => Number(status.match(new RegExp(`^${key}:\\s+(\\d+)`, "m"))?.[1] ?? -1);
  return { exe, argv0: read("cmdline").split("\0")[0] ?? "", uid: id("Uid"), gid: id("Gid") };
}
