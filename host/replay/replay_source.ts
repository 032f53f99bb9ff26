/**
 * An EventSource that plays recorded activity (host/trace/recording.ts) to
 * the real WSS, offline: the same supervisor, rules, wrappers and verdicts as
 * a live run, without a kernel. Each recorded call is handed over as the
 * kernel would hand it (a waiting pre call, then its result where the
 * recording has one); a call the replayed policies refuse is not run, so its
 * recorded result is not played. What the WSS answers and kills is noted
 * against the recorded event being played, for `idwrap policy test`.
 *
 * @module
 */
import { errnoNumber } from "../errno.ts";
import type { DecodedArgs, LifecycleEvent, ProgramIdentity, SyscallEvent, Verdict } from "../events.ts";
import { capabilitiesOf } from "../sources/capabilities.ts";
import type { Interest } from "../wss/interest.ts";
import type { Refusal } from "../wss/refusal.ts";
import type {
  ArgNeeds,
  EventSource,
  PollResult,
  Settled,
  SourceCall,
  SourceCapabilities,
  SourceHandler,
  SourceLifecycle,
} from "../wss/source.ts";
import type { SupervisorSummary } from "../wss/summary.ts";
import type { RecordedEvent } from "../trace/recording.ts";

/**
 * Recorded pids are shown to the WSS moved above any pid Linux can give (pid_max is at most 2^22): a wrapper that looks
 * at the live system (wr_stat, wr_fstat read /proc/PID) never sees a process of this machine that has the recorded
 * pid now, only ENOENT.
 */
export const PID_OFFSET = 1 << 30;
const live = (pid: number) => pid + PID_OFFSET;
const recorded = (pid: number) => pid - PID_OFFSET;

/** The one session a replay plays. */
export const REPLAY_SESSION = 1;

/** Calls handed to the WSS per poll (the WSS flushes and idles between polls). */
const BATCH = 256;

const SIGNALS: Record<string, number> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGILL: 4,
  SIGABRT: 6,
  SIGKILL: 9,
  SIGSEGV: 11,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
};

/** Plays a recording; `current` is the index of the recorded event being handed over. */
export class ReplaySource implements EventSource {
  readonly capabilities: SourceCapabilities;
  readonly wakeFd = -1;
  readonly failClosedFds: readonly number[] = [];
  readonly closesSessions = false;
  /** Index into the recording of the event being played. */
  current = -1;
  /** The WSS's answers and kills, by recorded event index. */
  readonly answers = new Map<number, Verdict>();
  readonly kills = new Set<number>();
  /** Recorded events not played: their process was killed (or its exec refused) before them. */
  readonly skipped = new Set<number>();
  /** Post events played as the result of the recorded pre event before them: post index → pre index. */
  readonly paired = new Map<number, number>();
  readonly #events: readonly RecordedEvent[];
  readonly #decoded = new Map<bigint, DecodedArgs>();
  readonly #programs = new Map<number, ProgramIdentity>();
  /** tid → the recorded pre call played last, and whether it was let run. */
  readonly #lastPre = new Map<number, { nr: number; ran: boolean; index: number }>();
  /** Processes the replay killed, or refused an exec that ran in the recording: the rest of their calls never happened. */
  readonly #killed = new Set<number>();
  #next = 0;
  #nextId = 1n;

  constructor(events: readonly RecordedEvent[]) {
    this.#events = events;
    const name = events.find((e) => e.event.source)?.event.source ?? "seccomp";
    this.capabilities = capabilitiesOf(name);
  }

  /** Every recorded event has been played. */
  get done(): boolean {
    return this.#next >= this.#events.length;
  }

  /** The program a pid last had in the recording (for a process first seen at a call). */
  programOf(pid: number): { ppid: number; program: ProgramIdentity } | undefined {
    const program = this.#programs.get(recorded(pid));
    return program && { ppid: 0, program };
  }

  setInterest(_interest: Interest): void {}

  attach(_session: number, _handle: number): Partial<SupervisorSummary> {
    return {};
  }

  detach(_session: number): void {}

  poll(_timeoutMs: number, handler: SourceHandler): PollResult {
    const start = this.#next;
    while (this.#next < this.#events.length && this.#next - start < BATCH) {
      this.current = this.#next++;
      const { event } = this.#events[this.current];
      // What a process killed here (or whose exec was refused) did next, and its children, never happened.
      const gone = this.#killed.has(event.pid) || (event.kind === "spawn" && this.#killed.has(event.ppid ?? -1));
      if (gone && event.kind !== "exit") {
        this.#killed.add(event.pid);
        this.skipped.add(this.current);
        continue;
      }
      this.#programs.set(event.pid, event.program);
      if (event.kind === "syscall") this.#playCall(event, handler);
      else handler.lifecycle(this.#lifecycle(event));
    }
    return { served: this.#next - start, woken: false };
  }

  #playCall(e: SyscallEvent, handler: SourceHandler): void {
    if (e.phase === "pre") {
      this.#lastPre.set(e.tid, { nr: e.nr, ran: true, index: this.current });
      return handler.call(this.#call(e, "pre"));
    }
    const pre = this.#lastPre.get(e.tid);
    this.#lastPre.delete(e.tid);
    if (pre?.nr !== e.nr) {
      // Recorded with its result only (strace, or an observing source): the WSS decides on it first.
      handler.call(this.#call(e, "pre"));
      if (!this.#ran()) return;
    } else {
      this.paired.set(this.current, pre.index);
      if (!pre.ran) return;
    }
    handler.call(this.#call(e, "post"));
  }

  /** Whether the call just played was let run. */
  #ran(): boolean {
    const v = this.answers.get(this.current);
    return !v || v.action === "allow" || v.action === "rewrite";
  }

  #call(e: SyscallEvent, phase: "pre" | "post"): SourceCall {
    const id = this.#nextId++;
    this.#decoded.set(id, e.decoded);
    const failed = e.errno !== undefined ? -(errnoNumber(e.errno) ?? 1) : undefined;
    return {
      id,
      pid: live(e.pid),
      tid: live(e.tid),
      abi: e.abi ?? "x86_64",
      nr: e.nr,
      args: Array.from({ length: 6 }, (_, i) => toBigInt(e.args[i])),
      phase,
      waits: phase === "pre",
      time: e.time,
      ...(phase === "post" ? { ret: BigInt(failed ?? e.ret ?? 0) } : {}),
    };
  }

  #lifecycle(e: LifecycleEvent): SourceLifecycle {
    if (e.kind === "spawn") {
      const ppid = e.ppid ? live(e.ppid) : 0;
      return { kind: "fork", pid: live(e.pid), ppid, session: REPLAY_SESSION, program: e.program };
    }
    if (e.kind === "exec") return { kind: "exec", pid: live(e.pid), program: e.program };
    const status = e.signal !== undefined ? SIGNALS[e.signal] ?? 9 : (e.exitCode ?? 0) << 8;
    return { kind: "exit", pid: live(e.pid), status };
  }

  readArgs(call: SourceCall, _name: string, _needs: ArgNeeds): DecodedArgs {
    // What was recorded is all there is: registers and memory alike. Without the recorded dev:ino: they name files of
    // the recording machine at recording time, and a rule compares them with this machine's files now (an inode
    // number reused since would match another file); rules match the recorded paths.
    const { ident: _i, ident2: _i2, ...decoded } = this.#decoded.get(call.id) ?? {};
    return decoded;
  }

  refusal(_call: SourceCall, _name: string, _decoded?: DecodedArgs): Refusal | undefined {
    return undefined; // the tamper guard protects a live supervisor; there is none here
  }

  settle(_call: SourceCall, _event: SyscallEvent, verdict: Verdict): Settled {
    return { verdict };
  }

  stillValid(_call: SourceCall): boolean {
    return true;
  }

  answer(call: SourceCall, verdict: Verdict): void {
    this.#decoded.delete(call.id);
    this.answers.set(this.current, verdict);
    if (verdict.action === "kill") this.#killed.add(recorded(call.pid));
    // A refused execve that succeeded in the recording: the program the recording goes on with never ran here.
    if (verdict.action === "deny" && call.phase === "pre" && this.#execSucceeded(recorded(call.pid))) {
      this.#killed.add(recorded(call.pid));
    }
    if (call.phase === "pre" && verdict.action !== "allow" && verdict.action !== "rewrite") {
      const pre = this.#lastPre.get(recorded(call.tid));
      if (pre?.nr === call.nr) pre.ran = false;
    }
  }

  /** Whether the recorded event after the current one, of this process, is its exec (the execve succeeded). */
  #execSucceeded(pid: number): boolean {
    for (let i = this.current + 1; i < this.#events.length; i++) {
      const e = this.#events[i].event;
      if (e.pid !== pid) continue;
      if (e.kind === "syscall" && e.phase === "post") continue; // the execve's own result
      return e.kind === "exec";
    }
    return false;
  }

  kill(pid: number): void {
    this.kills.add(this.current);
    this.#killed.add(recorded(pid));
  }

  forget(_pid: number): void {}

  close(): void {}
}

function toBigInt(v: string | undefined): bigint {
  try {
    return BigInt(v ?? 0);
  } catch {
    return 0n;
  }
}
