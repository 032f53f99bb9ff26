/**
 * A scripted in-memory event source: it plays a list of calls and lifecycle
 * reports to the WSS, as a kernel would, and records everything the WSS asks
 * of it (memory reads, validity checks, answers, kills). No kernel, no
 * process: the WSS's verdict pipeline, composition, activation, refusals and
 * audit wiring are tested through it (tests/wss/wss_test.ts); the real
 * transports are tested against the real kernel.
 *
 * @module
 */
import type { DecodedArgs, ProgramIdentity, SyscallAbi, SyscallEvent, Verdict } from "../../host/events.ts";
import type { SupervisorSummary } from "../../host/wss/summary.ts";
import { syscallNumber } from "../../host/syscalls/mod.ts";
import type { Interest } from "../../host/wss/interest.ts";
import type { Refusal } from "../../host/wss/refusal.ts";
import type {
  ArgNeeds,
  EventSource,
  PollResult,
  Settled,
  SourceCall,
  SourceCapabilities,
  SourceHandler,
  SourceLifecycle,
  WatchChange,
} from "../../host/wss/source.ts";

/** A call in a script: by name, with what reading its registers and its memory gives. */
export interface ScriptedCall {
  pid: number;
  tid?: number;
  ppid?: number;
  syscall: string;
  abi?: SyscallAbi;
  args?: bigint[];
  phase?: "pre" | "post";
  /** @default true */
  waits?: boolean;
  ret?: bigint;
  emulated?: boolean;
  refusedErrno?: number;
  /** A race report after the call (kmod's EVF_RACED). */
  raced?: { said: string; ranOn: string };
  /** What readArgs(…, "registers") gives (integer arguments). */
  registers?: DecodedArgs;
  /** What readArgs(…, "memory") adds (paths, argv, data). */
  memory?: DecodedArgs;
  /** stillValid() answers this after a memory read (false: the caller died meanwhile). @default true */
  valid?: boolean;
  /** The source's guard refuses it. */
  refusal?: Refusal;
  /** What settle() makes of an allow (the source cannot carry it out safely, or runs the call itself). */
  settle?: Settled;
}

/** One step of a script. */
export type Step = { call: ScriptedCall } | { lifecycle: SourceLifecycle };

/** What the WSS asked of the source. */
export interface Answer {
  id: bigint;
  syscall: string;
  verdict: Verdict;
  watch?: WatchChange;
}

/** A seccomp-like source by default (every call waits, no post); capabilities as given. */
export const SCRIPTED_CAPABILITIES: SourceCapabilities = {
  name: "seccomp",
  decide: true,
  post: "all",
  rewrite: false,
  observeWithoutBlocking: true,
  systemWide: false,
  copiesArguments: true,
};

const NO_PROGRAM: ProgramIdentity = { exe: "", argv0: "", uid: -1, gid: -1 };

/** Plays a script to the WSS, a batch per poll(). */
export class ScriptedSource implements EventSource {
  readonly capabilities: SourceCapabilities;
  readonly wakeFd = -1;
  readonly failClosedFds: readonly number[] = [];
  readonly closesSessions: boolean;
  readonly answers: Answer[] = [];
  readonly kills: number[] = [];
  readonly reads: { syscall: string; needs: ArgNeeds }[] = [];
  readonly attached: [number, number][] = [];
  readonly detached: number[] = [];
  readonly forgotten: number[] = [];
  interest: Interest | undefined;
  closed = false;
  readonly #queue: Step[][] = [];
  readonly #calls = new Map<bigint, ScriptedCall>();
  #nextId = 1n;

  constructor(options: { capabilities?: Partial<SourceCapabilities>; closesSessions?: boolean } = {}) {
    this.capabilities = { ...SCRIPTED_CAPABILITIES, ...options.capabilities };
    this.closesSessions = options.closesSessions ?? false;
  }

  /** Queues steps, handed over together at the next poll(). */
  play(...steps: Step[]): this {
    this.#queue.push(steps);
    return this;
  }

  /** The answers, as "syscall verdict" strings (deny with its errno number). */
  answered(): string[] {
    return this.answers.map((a) =>
      `${a.syscall} ${a.verdict.action}${a.verdict.action === "deny" ? ` ${a.verdict.errno}` : ""}${
        a.watch ? ` ${a.watch}` : ""
      }`
    );
  }

  setInterest(interest: Interest): void {
    this.interest = interest;
  }

  attach(session: number, handle: number): Partial<SupervisorSummary> {
    this.attached.push([session, handle]);
    return {};
  }

  detach(session: number): void {
    this.detached.push(session);
  }

  poll(_timeoutMs: number, handler: SourceHandler): PollResult {
    const batch = this.#queue.shift();
    if (!batch) return { served: 0, woken: false };
    for (const step of batch) {
      if ("lifecycle" in step) {
        const l = step.lifecycle;
        handler.lifecycle(l);
      } else handler.call(this.#toCall(step.call));
    }
    return { served: batch.length, woken: false };
  }

  /** A held exec (the module's EXEC_SYNC) for a lifecycle step. */
  heldExec(pid: number): SourceCall {
    return this.#toCall({ pid, syscall: "execve" });
  }

  #toCall(c: ScriptedCall): SourceCall {
    const id = this.#nextId++;
    this.#calls.set(id, c);
    const nr = syscallNumber(c.syscall);
    if (nr === undefined) throw new Error(`Unknown syscall "${c.syscall}" in a script`);
    return {
      id,
      pid: c.pid,
      tid: c.tid ?? c.pid,
      ppid: c.ppid,
      abi: c.abi ?? "x86_64",
      nr,
      args: c.args ?? [0n, 0n, 0n, 0n, 0n, 0n],
      phase: c.phase ?? "pre",
      waits: c.waits ?? true,
      time: Date.now(),
      ret: c.ret,
      emulated: c.emulated,
      refusedErrno: c.refusedErrno,
      raced: c.raced,
    };
  }

  readArgs(call: SourceCall, name: string, needs: ArgNeeds): DecodedArgs {
    this.reads.push({ syscall: name, needs });
    const c = this.#calls.get(call.id)!;
    return needs === "memory" ? { ...c.registers, ...c.memory } : { ...c.registers };
  }

  refusal(call: SourceCall, _name: string, decoded?: DecodedArgs): Refusal | undefined {
    if (decoded) return undefined; // all by registers and copies, asked before anything is read
    return this.#calls.get(call.id)?.refusal;
  }

  /** Answers as decided, but for a call scripted with `settle` (a verdict the source cannot carry out safely). */
  settle(call: SourceCall, _event: SyscallEvent, verdict: Verdict): Settled {
    const s = this.#calls.get(call.id)?.settle;
    return s && verdict.action === "allow" ? s : { verdict };
  }

  stillValid(call: SourceCall): boolean {
    return this.#calls.get(call.id)?.valid ?? true;
  }

  answer(call: SourceCall, verdict: Verdict, watch?: WatchChange): void {
    const c = this.#calls.get(call.id);
    if (this.answers.some((a) => a.id === call.id)) throw new Error(`Call ${call.id} answered twice`);
    this.answers.push({ id: call.id, syscall: c?.syscall ?? "?", verdict, ...(watch ? { watch } : {}) });
  }

  kill(pid: number): void {
    this.kills.push(pid);
  }

  forget(pid: number): void {
    this.forgotten.push(pid);
  }

  close(): void {
    this.closed = true;
  }
}

/** A program identity for scripts. */
export function program(exe: string, uid = 1000): ProgramIdentity {
  return { ...NO_PROGRAM, exe, argv0: exe.split("/").at(-1)!, uid, gid: uid };
}
