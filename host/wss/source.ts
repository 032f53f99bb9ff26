/**
 * The contract between the Wrapper Support Subsystem and an event source
 * (DESIGN.md, "The picture"). A source is a thin transport: it receives a
 * call from the kernel, reads the call's memory when the WSS asks, checks the
 * call is still valid, answers it, and reports process lifecycle. Everything
 * else — the process table, sessions, activation and bindings, the refusals
 * every source applies (foreign ABIs, io_uring), late kills, event building,
 * summaries, fault reports, audit wiring — is the WSS's
 * (host/wss/supervisor.ts), written once for every source.
 *
 * One serving thread drives one source: the WSS calls {@link EventSource.poll},
 * which hands each received call or lifecycle report to the
 * {@link SourceHandler} synchronously; while the handler runs, the WSS calls
 * back into the source (readArgs, stillValid, answer, kill) for that call.
 * Nothing here is asynchronous: a waiting caller is answered before poll()
 * returns to the loop.
 *
 * A scripted in-memory source (tests/wss/scripted_source.ts) implements this
 * interface without a kernel; seccomp (host/sources/seccomp), the kernel
 * module (host/sources/kmod) and eBPF (host/sources/bpf) with one.
 *
 * @module
 */
import type { SourceCapabilities } from "../capabilities.ts";
import type {
  CallWindow,
  DecodedArgs,
  ProgramIdentity,
  SyscallAbi,
  SyscallEvent,
  Verdict,
  WindowFilter,
} from "../events.ts";
import type { Interest } from "./interest.ts";
import type { Refusal } from "./refusal.ts";
import type { SupervisorSummary } from "./summary.ts";

export type { SourceCapabilities };

/** One intercepted system call, as the transport received it. Read-only: the WSS builds the event from it. */
export interface SourceCall {
  /** The transport's handle for this call (seccomp: the notification id; kmod: the record id). */
  readonly id: bigint;
  /** The thread group (process) id. */
  readonly pid: number;
  readonly tid: number;
  /** The parent, where the transport knows it (a process first seen at a call joins its parent's session). */
  readonly ppid?: number;
  /** The ABI the call came through; only x86_64 calls ever run (the WSS refuses the others). */
  readonly abi: SyscallAbi;
  /** The call's number in its ABI (x32: without __X32_SYSCALL_BIT). */
  readonly nr: number;
  /** The six argument registers. */
  readonly args: ArrayLike<bigint>;
  readonly phase: "pre" | "post";
  /** The caller waits for answer(); false: observed only (a kill then lands late, after the call ran). */
  readonly waits: boolean;
  /** Wall-clock milliseconds since the Unix epoch, when the kernel saw the call. */
  readonly time: number;
  /** post: the raw return value (a negative errno on failure). */
  readonly ret?: bigint;
  /** The kernel side runs (pre) or ran (post) the call itself (kmod's in-kernel open). */
  readonly emulated?: boolean;
  /** The kernel side refused the call itself, with this errno (kmod: io_uring_setup); the WSS reports it. */
  readonly refusedErrno?: number;
  /** With `refusedErrno`: the kernel side's guard of the supervisor refused it (kmod); the WSS alerts it as tamper. */
  readonly tamper?: Refusal;
  /** The kernel side could not copy a pointer argument (readArgs() marks it `fault`). */
  readonly faulted?: boolean;
  /**
   * A report, after the call, that a racing thread changed an argument in the caller's memory after the kernel side
   * copied it for the decision (Watson's attack): the call ran on the copy decided on (`refusedErrno`: it was refused
   * instead, e.g. a sockaddr that changed). `said`: what the caller's memory held then. Never waits. kmod: EVF_RACED.
   */
  readonly raced?: { said: string; ranOn: string };
  /** pre: the kernel's window of the caller's process and the calls it dropped before this one (bpf's seq filter). */
  readonly window?: CallWindow;
  /** pre, observed: the kernel side killed the caller at this call for an exec rule (bpf: an executable mapping). */
  readonly killedInKernel?: { rule: string; reason: string };
}

/**
 * How much of a call's arguments the WSS needs before the hooks run, from the rules, the bound wrappers'
 * declarations (a wrapper that imports no argument reader needs none) and the sink.
 * - `registers`: the six registers only, no memory read (seq judges the call number alone).
 * - `memory`: decoded pointer arguments too (paths, argv, sockaddr, written bytes).
 */
export type ArgNeeds = "registers" | "memory";

/** Process lifecycle as the transport saw it. */
export type SourceLifecycle =
  /**
   * A new process (not a thread). `session`: the tree it was attached to, where the transport knows. `watched`: the
   * kernel side intercepts it (a child of a watched process) even if its parent is not in the table. A fork of a
   * process the WSS does not know, with neither, is not the WSS's.
   */
  | { kind: "fork"; pid: number; ppid: number; session?: number; program?: ProgramIdentity; watched?: boolean }
  /**
   * An execve that succeeded. `program`: the new image, where the transport knows it (else the WSS reads /proc).
   * `call`: the transport holds the process at its exec until answer(call, verdict) (kmod's EXEC_SYNC): a kill
   * verdict there stops the program before its first instruction. `watched`: the kernel side intercepts the process.
   * `candidate`: a process not yet in the table that the WSS should take if some wrapper's activation criteria bind
   * it (system-wide activation). An exec of an unknown process with neither is not the WSS's. `decidedOn`: the exec
   * was allowed on another file than the one that now runs (a thread changed the path after the check): the WSS
   * decides again on the program that runs, and kills the process if that is refused.
   */
  | {
    kind: "exec";
    pid: number;
    ppid?: number;
    program?: ProgramIdentity;
    call?: SourceCall;
    watched?: boolean;
    candidate?: boolean;
    decidedOn?: { path: string; nr: number; ident: string };
    /** The kernel side killed the process at this exec, by rule `rule` (the bpf source's exec_kill): reported. */
    killedInKernel?: { rule: string; reason: string };
  }
  /** The process is gone; `status`: its wait status where known. */
  | { kind: "exit"; pid: number; status?: number }
  /** The transport dropped `count` observed calls (a full ring). */
  | { kind: "lost"; count: number }
  /** A session's tree can make no more calls (seccomp: the filter has no users); it ends when its processes are gone. */
  | { kind: "closed"; session: number };

/** What a transport hands the WSS while it polls. */
export interface SourceHandler {
  /** One call; a waiting call must be answered exactly once (the WSS does so before returning). */
  call(call: SourceCall): void;
  lifecycle(event: SourceLifecycle): void;
  /** A transport error that concerns no call (a failed verdict write): reported as a fault. */
  fault(pid: number, message: string): void;
}

/** What one poll() did. */
export interface PollResult {
  /** Calls and lifecycle reports handed to the handler. */
  served: number;
  /** The wake fd fired (the thread has messages to handle). */
  woken: boolean;
}

/**
 * With an exec's answer: start intercepting the process (system-wide activation bound a wrapper to it) or stop
 * (its new program deactivated every wrapper).
 */
export type WatchChange = "watch" | "unwatch";

/** What the WSS tells a source about a call it judged (see EventSource.settle). */
export interface Judged {
  /** A rule or wrapper judged the call. */
  examined: boolean;
  /** A post hook wants the call's result (a source that runs the call itself then reports it before completing it). */
  wantsPost: boolean;
}

/** What a source makes of a verdict just before it answers (see EventSource.settle). */
export interface Settled {
  verdict: Verdict;
  /** Why the source changed the verdict, for the audit record. */
  reason?: string;
  /** The source runs the call itself (seccomp: on the objects it checked, in the caller's world). */
  emulated?: boolean;
}

/** Reads a call's memory, checks it, answers it: the transport side of one event source. */
export interface EventSource {
  readonly capabilities: SourceCapabilities;
  /** An eventfd the main thread writes after each message (poll() returns `woken`). */
  readonly wakeFd: number;
  /** fds the main thread closes if the serving thread dies, so waiting calls fail closed at once. */
  readonly failClosedFds: readonly number[];
  /**
   * The source reports `closed` for each session it serves (seccomp: the filter lost its last user); a session then
   * ends when it is closed and its processes are gone. Without, a session ends when the processes it had are gone.
   */
  readonly closesSessions: boolean;
  /**
   * A source that reports after the fact (bpf: a ring the host may read seconds behind the tree) counts the polls
   * that ended with everything its kernel side had produced handed over (the ring read to empty). The sweep then
   * declares a process gone from /proc exited only once such a poll came after it saw it gone: every record the
   * process made (its exit among them) is served first, and its session cannot end with its last actions unread
   * (red team rt9 F7). Absent: a process gone at two sweeps in a row is exited.
   */
  readonly caughtUp?: number;
  /**
   * Reports, as `lost`, drops the kernel side counted that no record has carried yet (bpf: a drop is carried by the
   * next record made on its CPU, and a tree's last drops may have none): called before a session ends, so its summary
   * counts every drop (rt9 F7). A record that carries them later is not counted twice.
   */
  reportUncarried?(handler: SourceHandler): void;
  /**
   * Whether the guard needs this waiting call's objects (read and resolved): such a call is never answered on the
   * WSS's hot path, even when nothing examines it (seccomp: an open by a caller the kernel would let into the
   * supervisor's procfs entries). Asked before anything is read: it must be cheap.
   */
  guardsObject?(call: SourceCall): boolean;

  /**
   * Compiles the interest model into the source's own form (a seccomp filter's notify set, the module's interest
   * mask, BPF maps) and installs it; called at start and on every policy reload.
   *
   * @throws naming the calls the source cannot serve as asked
   */
  setInterest(interest: Interest): void;

  /**
   * Starts serving a wrapped tree (seccomp: its listener fd; kmod: the launcher's pid, watched with its children).
   *
   * @returns what the source knows of the session from the start (seccomp: whether the fast wake-up took)
   */
  attach(session: number, handle: number): Partial<SupervisorSummary>;

  /** A session has ended: release what the source holds for it (seccomp: the listener). */
  detach(session: number): void;

  /** Waits up to `timeoutMs` for calls and lifecycle reports and hands each to `handler`, synchronously. */
  poll(timeoutMs: number, handler: SourceHandler): PollResult;

  /**
   * The call's decoded arguments (paths, flags, argv, sockaddr, data) as `needs` asks; `fault` names an argument
   * that could not be read. Called at most once per call, before the hooks run: hooks never read the traced
   * process themselves.
   */
  readArgs(call: SourceCall, name: string, needs: ArgNeeds): DecodedArgs;

  /**
   * The source's tamper guard: whether a waiting pre call reaches the supervisor itself (signals, ptrace, pidfd_getfd,
   * its /proc entries…). Refused whatever the policy says, before any hook runs, and reported. Asked twice: by the
   * registers before anything is read (`decoded` undefined), and by the objects the call names once its arguments
   * are read (a call whose arguments are never read — nothing examines or reports it — is guarded by registers only).
   */
  refusal(call: SourceCall, name: string, decoded?: DecodedArgs): Refusal | undefined;

  /**
   * The last step before a waiting pre call is answered: the source may refuse a verdict it cannot carry out
   * safely (seccomp: a path it could not resolve in the caller's world, a call it cannot check race-free while it
   * is examined, an unreadable argument of a call it runs itself), and says whether it runs the call itself. A
   * source that runs an open itself hands its result back to the WSS as a post call (emulated, waiting while a post
   * hook wants it) from inside answer().
   */
  settle(call: SourceCall, event: SyscallEvent, verdict: Verdict, judged: Judged): Settled;

  /** Whether the call is still the caller's (after reading its memory: its pid was not recycled, it did not die). */
  stillValid(call: SourceCall): boolean;

  /**
   * Answers a waiting call: allow, deny with an errno, kill (the process gets no further), rewrite. `watch`: with
   * an exec held by the source, start or stop intercepting the process.
   */
  answer(call: SourceCall, verdict: Verdict, watch?: WatchChange): void;

  /** Kills a process now (a late kill: its call was only observed); never a recycled pid. */
  kill(pid: number): void;

  /**
   * Whether the kill the host decided for an observed call is the kernel's to make (bpf: an exec rule killed at
   * sched_process_exec, reported with the exec): the host then neither kills late nor reports a kill of its own.
   */
  killedInKernel?(event: SyscallEvent): boolean;

  /** The process left the table: drop whatever the transport holds for it (a pidfd). */
  forget(pid: number): void;

  /** Releases what the source holds; calls still waiting get the fail mode. */
  close(): void;

  /**
   * ABI 1.4: a wrapper instance published the windows it needs no hook for; a source that can drop those calls in the
   * kernel (bpf) does so for that process from now on, others ignore it (absent). The source must keep reporting every
   * call some other consumer wants (docs/bpf.md, "Filters a wrapper hands the kernel").
   */
  publishFilter?(filter: WindowFilter): void;
}
