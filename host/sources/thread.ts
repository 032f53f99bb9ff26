/**
 * The main thread's handle on a supervisor Worker of any event source
 * (host/sources/worker_common.ts): start it, hand it wrapped trees, reload
 * what it enforces, hear what it reports. After each message it writes the
 * loop's wake-up eventfd, since the loop blocks in epoll_wait or poll.
 *
 * @module
 */
import type { JournalMarks } from "../audit/journal.ts";
import { PRESSURE, pressureBuffer } from "../audit/journal_sink.ts";
import type { HostEvent } from "../events.ts";
import type { TraceSinkOptions } from "../trace/sink.ts";
import type { Enforcement, ProcessEntry, SupervisorSummary } from "./enforce.ts";
import type { WorkerReply, WorkerRequest } from "./worker_common.ts";
import { describeOverdue, type HookTime, HookWatchdog } from "../runtime/watchdog.ts";
import { libc } from "../unsafe/libc.ts";

/**
 * How long the thread may take to answer a request before idwrap gives up on it. Starting loads the worker's modules,
 * compiles every wrapper and opens the store: seconds on a server, but a minute and more on a loaded machine or under
 * emulation (the module's VM tests run idwrap in qemu without KVM).
 */
const START_LIMIT_S = 120;
const ANSWER_LIMIT_S = 30;

/** How a supervisor thread starts. */
export interface SourceThreadOptions extends Enforcement {
  storePath: string;
  trace?: TraceSinkOptions;
  /** Source-specific settings, passed to the worker's loop factory. */
  config: Record<string, unknown>;
  /**
   * Notable events (verdicts, alerts, faults, lifecycle), in batches, with
   * where they are in the audit journal. A returned promise settles when they
   * are kept: until then they count against the supervisor's back-pressure.
   */
  onEvents?: OnEvents;
}

/** A handler of the supervisor's notable events; see `SourceThreadOptions.onEvents`. */
export type OnEvents = (events: HostEvent[], marks?: JournalMarks) => Promise<unknown> | void;

/** A running supervisor thread. */
export class SourceThread {
  readonly #worker: Worker;
  readonly #waiting = new Map<string, (r: WorkerReply) => void>();
  readonly #ends = new Map<
    number,
    { resolve: (s: SupervisorSummary) => void; reject: (e: Error) => void; promise: Promise<SupervisorSummary> }
  >();
  /** fds to close here if the thread dies (listeners, the device), by key. */
  readonly #failClosed = new Map<string, number>();
  readonly #onEvents?: OnEvents;
  readonly #pressure = pressureBuffer();
  #wakeFd = -1;
  #failure: Error | undefined;
  readonly #stopped: Promise<void>;
  /** Settles with the thread's failure, if it fails (a holder of another copy of its fds closes that copy too). */
  readonly failed: Promise<Error>;
  #failed!: (e: Error) => void;
  /** Stops the thread when a hook runs too long (docs/abi.md, "Limits and failures"). */
  readonly #watchdog: HookWatchdog;

  protected constructor(url: URL, options: SourceThreadOptions) {
    this.#onEvents = options.onEvents;
    this.failed = new Promise((r) => this.#failed = r);
    this.#worker = new Worker(url, { type: "module" });
    this.#watchdog = new HookWatchdog((o) => {
      this.#worker.terminate(); // V8 interrupts the running wasm; nothing else can
      this.#fail(new Error(`The supervisor was stopped: ${describeOverdue(o)}`));
    });
    this.#watchdog.names = options.wrappers.map((w) => w.spec.name);
    let stopped!: () => void;
    this.#stopped = new Promise((r) => stopped = r);
    this.#worker.onmessage = (e: MessageEvent<WorkerReply>) => {
      const r = e.data;
      if (r.type === "events") return this.#kept(r.events.length, this.#onEvents?.(r.events, r.marks));
      if (r.type === "session-end") {
        this.#failClosed.delete(`session:${r.session}`);
        return this.#end(r.session).resolve(r.summary);
      }
      if (r.type === "stopped") return stopped();
      if (r.type === "error") {
        if (r.fatal) return this.#fail(new Error(`The supervisor failed: ${r.message}`));
        // A request failed (the thread goes on): its waiter is the one to tell; requests do not overlap.
        for (const w of this.#waiting.values()) w(r);
        return this.#waiting.clear();
      }
      const key = r.type === "attached" ? `attached:${r.session}` : r.type;
      const w = this.#waiting.get(key);
      this.#waiting.delete(key);
      w?.(r);
    };
    this.#worker.onerror = (e: ErrorEvent) => {
      e.preventDefault();
      this.#fail(new Error(`The supervisor thread died: ${e.message}`));
      stopped();
    };
  }

  /** Counts `n` events as kept once `done` settles (at once without a promise), waking the supervisor. */
  #kept(n: number, done: Promise<unknown> | void): void {
    const count = () => {
      Atomics.add(this.#pressure, PRESSURE.kept, n);
      Atomics.notify(this.#pressure, PRESSURE.kept);
    };
    if (done) done.then(count, count);
    else count();
  }

  /** Starts a thread on the worker at `url`; resolves when it serves. */
  protected static async startAt<T extends SourceThread>(thread: T, options: SourceThreadOptions): Promise<T> {
    const { onEvents: _, ...start } = options;
    const ready = await thread.#request({
      type: "start",
      ...start,
      watchdog: thread.#watchdog.buffer,
      // Records are journaled for an audit log (the one that handles the events) to index.
      journal: options.onEvents !== undefined,
      pressure: thread.#pressure,
    }, "ready");
    if (ready.type === "ready") {
      thread.#wakeFd = ready.wakeFd;
      ready.failClosedFds.forEach((fd, i) => thread.#failClosed.set(`loop:${i}`, fd));
    }
    return thread;
  }

  /**
   * The thread failed: close every fd it held for waiting calls (listeners,
   * the device), so they fail closed instead of waiting for an answer that
   * will never come, and let every waiter know.
   */
  #fail(e: Error): void {
    this.#failure ??= e;
    this.#failed(this.#failure);
    this.#watchdog.close();
    for (const fd of this.#failClosed.values()) libc.symbols.close(fd);
    this.#failClosed.clear();
    for (const w of this.#waiting.values()) w({ type: "error", message: e.message, fatal: true });
    this.#waiting.clear();
    for (const end of this.#ends.values()) end.reject(e);
  }

  #end(session: number) {
    let entry = this.#ends.get(session);
    if (!entry) {
      let resolve!: (s: SupervisorSummary) => void;
      let reject!: (e: Error) => void;
      const promise = new Promise<SupervisorSummary>((res, rej) => [resolve, reject] = [res, rej]);
      promise.catch(() => {}); // a failure is also thrown from the call that awaits it
      this.#ends.set(session, entry = { resolve, reject, promise });
    }
    return entry;
  }

  async #request(req: WorkerRequest, replyKey: string): Promise<WorkerReply> {
    if (this.#failure) throw this.#failure;
    const reply = new Promise<WorkerReply>((r) => this.#waiting.set(replyKey, r));
    this.#worker.postMessage(req);
    this.#wake();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const limit = req.type === "start" ? START_LIMIT_S : ANSWER_LIMIT_S;
    const r = await Promise.race([
      reply,
      new Promise<WorkerReply>((r) =>
        timer = setTimeout(
          () =>
            r({
              type: "error",
              message: `the supervisor thread did not answer "${req.type}" in ${limit} s`,
              fatal: false,
            }),
          limit * 1000,
        )
      ),
    ]).finally(() => clearTimeout(timer));
    if (r.type === "error") throw new Error(r.message);
    return r;
  }

  /** The loop blocks in epoll_wait or poll: poke its eventfd so it reads our message. */
  #wake(): void {
    if (this.#wakeFd >= 0) libc.symbols.write(this.#wakeFd, new Uint8Array(new BigUint64Array([1n]).buffer), 8n);
  }

  /**
   * Serves a wrapped tree: `handle` is the source's (seccomp: a listener fd the
   * thread then owns, closed here if the thread dies; kmod: the pid to watch). `pid`: the launcher's, for a source
   * that needs both (hybrid).
   */
  protected async attachHandle(session: number, handle: number, failClosedFd?: number, pid?: number): Promise<void> {
    this.#end(session);
    if (failClosedFd !== undefined) this.#failClosed.set(`session:${session}`, failClosedFd);
    await this.#request({ type: "attach", session, handle, pid }, `attached:${session}`);
  }

  /** Resolves when the session's tree is gone. */
  ended(session: number): Promise<SupervisorSummary> {
    return this.#end(session).promise;
  }

  /** Swaps what is enforced; new calls see it at once. */
  async reload(e: Enforcement): Promise<void> {
    await this.#request({ type: "reload", ...e }, "reloaded");
    this.#watchdog.names = e.wrappers.map((w) => w.spec.name);
  }

  /** Calls the source notified on this thread so far (the daemon's metrics). */
  notifiedCalls(): number {
    return this.#watchdog.notifiedCalls();
  }

  /** Calls of and time in each wrapper's hooks on this thread (the daemon's metrics). */
  hookTimes(): HookTime[] {
    return this.#watchdog.hookTimes();
  }

  /** The wrapped processes and their wrappers. */
  async processes(): Promise<ProcessEntry[]> {
    const r = await this.#request({ type: "ps" }, "ps");
    return r.type === "ps" ? r.processes : [];
  }

  /** Stops the loop; open sessions lose their supervisor (their waiting calls fail closed). */
  async stop(): Promise<void> {
    // A failed thread serves no loop that could answer: just end it.
    if (!this.#failure) {
      this.#worker.postMessage({ type: "stop" } satisfies WorkerRequest);
      this.#wake();
      let timer: ReturnType<typeof setTimeout> | undefined;
      await Promise.race([this.#stopped, new Promise((r) => timer = setTimeout(r, 5000))]);
      clearTimeout(timer);
    }
    this.#watchdog.close();
    this.#worker.terminate();
  }
}
