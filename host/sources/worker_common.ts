/**
 * The worker side of a supervisor thread, for any event source: it opens the
 * wrappers' store, builds the decider, starts the source's loop and answers
 * the main thread's messages (host/sources/thread.ts). A source supplies
 * only its loop (a {@link SourceLoop}).
 *
 * @module
 */
/// <reference lib="deno.worker" />
import type { Decider, EventSink } from "../decider.ts";
import type { HostEvent, SourceName } from "../events.ts";
import { JournalWriter } from "../audit/journal.ts";
import { JournalSink } from "../audit/journal_sink.ts";
import type { JournalMarks } from "../audit/journal.ts";
import { WrapperStore } from "../store/kv.ts";
import { hookWatch } from "../runtime/watchdog.ts";
import { TraceSink, type TraceSinkOptions } from "../trace/sink.ts";
import { buildDecider, type Enforcement, type ProcessEntry, type SupervisorSummary } from "./enforce.ts";

/** A source's serving loop, as the worker drives it. */
export interface SourceLoop {
  /** An eventfd the main thread writes after each message (the loop blocks in epoll/poll). */
  readonly wakeFd: number;
  /** fds the main thread closes if this thread dies, so waiting calls fail closed at once. */
  readonly failClosedFds: number[];
  /** Starts serving a wrapped tree (seccomp: its listener fd; kmod: the launcher's pid; hybrid: both). */
  attach(session: number, handle: number, pid?: number): void;
  /** A policy reload: a new decider (and whatever the source derives from the enforcement). */
  reload(decider: Decider, e: Enforcement): void;
  processes(): ProcessEntry[];
  stop(): void;
  close(): void;
  run(options: {
    idle?: (why: "idle" | "woken" | "busy") => Promise<void> | void;
    onSessionEnd?: (session: { id: number; summary: SupervisorSummary }) => void;
  }): Promise<void>;
}

/** Messages to the worker. */
export type WorkerRequest =
  | ({
    type: "start";
    storePath: string;
    trace?: TraceSinkOptions;
    config: Record<string, unknown>;
    /** The main thread's hook watchdog's buffer (host/runtime/watchdog.ts). */
    watchdog?: SharedArrayBuffer;
    /** Journal notable events' audit records (host/audit/journal.ts) for the main thread's audit log. */
    journal?: boolean;
    /** Back-pressure counters shared with the main thread (host/audit/journal_sink.ts). */
    pressure?: Int32Array;
  } & Enforcement)
  | { type: "attach"; session: number; handle: number; pid?: number }
  | ({ type: "reload" } & Enforcement)
  | { type: "ps" }
  | { type: "stop" };

/** Messages from the worker. */
export type WorkerReply =
  | { type: "ready"; wakeFd: number; failClosedFds: number[] }
  | { type: "attached"; session: number }
  | { type: "reloaded" }
  | { type: "ps"; processes: ProcessEntry[] }
  | { type: "events"; events: HostEvent[]; marks?: JournalMarks }
  | { type: "session-end"; session: number; summary: SupervisorSummary }
  | { type: "stopped" }
  /** fatal: the supervisor loop itself ended (the thread serves nothing any more). */
  | { type: "error"; message: string; fatal: boolean };

/** Makes a source's loop; called once, on "start". */
export type LoopFactory = (args: {
  decider: Decider;
  sink: EventSink;
  enforcement: Enforcement;
  config: Record<string, unknown>;
}) => SourceLoop;

/** Serves the main thread's messages on this worker with the source's loop. */
export function serveWorker(source: SourceName, makeLoop: LoopFactory): void {
  const post = (reply: WorkerReply) => self.postMessage(reply);
  let loop: SourceLoop | undefined;
  let store: WrapperStore | undefined;
  let sink: JournalSink;
  /** The sink's wait counts when each session started. */
  const waitsAt = new Map<number, { count: number; ms: number }>();

  async function start(req: Extract<WorkerRequest, { type: "start" }>): Promise<void> {
    if (req.watchdog) hookWatch.attach(req.watchdog);
    store = await WrapperStore.open(req.storePath);
    const trace = req.trace ? new TraceSink(req.trace) : undefined;
    // Records are journaled (write(2)) before the call is answered: see host/audit/journal.ts.
    const journal = req.journal ? JournalWriter.create(req.storePath) : undefined;
    sink = new JournalSink((events, marks) => post({ type: "events", events, marks }), trace, journal, req.pressure);
    const enforcement = { policies: req.policies, wrappers: req.wrappers };
    loop = makeLoop({
      decider: await buildDecider(enforcement, store, sink, source),
      sink,
      enforcement,
      config: req.config,
    });
    post({ type: "ready", wakeFd: loop.wakeFd, failClosedFds: loop.failClosedFds });
    await loop.run({
      idle: (why) => {
        // While busy, only writes are worth a pause; messages come with a wake-up.
        if (why === "busy" && !store?.dirty) return;
        return (async () => {
          await store?.flush();
          // Let queued messages run. A wake-up can come before its message is ready to dispatch (the eventfd is faster
          // than the port): a 0 ms timer then fired first and the message waited for the next wake-up (a daemon
          // reload under a busy wrapped process never arrived). A few ms, on wake-ups only (they are rare).
          await new Promise((r) => setTimeout(r, why === "woken" ? 5 : 0));
        })();
      },
      onSessionEnd: (s) => {
        sink.flush();
        // Back-pressure held every session's calls alike (one thread serves them): report it with the session.
        const waits = sink.waits, before = waitsAt.get(s.id) ?? { count: 0, ms: 0 };
        waitsAt.delete(s.id);
        const auditWaits = { count: waits.count - before.count, ms: waits.ms - before.ms };
        const summary = { ...s.summary };
        if (auditWaits.count) summary.auditWaits = auditWaits;
        if (sink.unjournaled) summary.unjournaled = sink.unjournaled;
        post({ type: "session-end", session: s.id, summary });
      },
    });
    loop.close();
    sink.close();
    await store.close();
    post({ type: "stopped" });
    self.close();
  }

  self.onmessage = async (msg: MessageEvent<WorkerRequest>) => {
    const req = msg.data;
    try {
      switch (req.type) {
        case "start":
          await start(req);
          break;
        case "attach":
          waitsAt.set(req.session, sink.waits);
          loop!.attach(req.session, req.handle, req.pid);
          post({ type: "attached", session: req.session });
          break;
        case "reload": {
          const e = { policies: req.policies, wrappers: req.wrappers };
          loop!.reload(await buildDecider(e, store!, sink, source), e);
          post({ type: "reloaded" });
          break;
        }
        case "ps":
          post({ type: "ps", processes: loop!.processes() });
          break;
        case "stop":
          loop!.stop();
          break;
      }
    } catch (e) {
      post({ type: "error", message: (e as Error).stack ?? String(e), fatal: req.type === "start" });
    }
  };
}
