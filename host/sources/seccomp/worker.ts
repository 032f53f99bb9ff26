/**
 * The supervisor's thread. One Worker serves every wrapped tree of a host
 * (one in `idwrap run`, many in the daemon), so all wrappers' instances and
 * their key-value view live on one thread. The main thread talks to it with
 * the messages below; after each one it writes the wake-up eventfd, since
 * the loop blocks in epoll_wait.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { type Decider, type EventSink, LayeredDecider } from "../../decider.ts";
import type { HostEvent } from "../../events.ts";
import type { Policy } from "../../policy/policy.ts";
import { RuleDecider } from "../../policy/rule_decider.ts";
import { WrapperChain } from "../../runtime/chain.ts";
import { v8Engine } from "../../runtime/engine.ts";
import type { WrapperModule } from "../../runtime/module.ts";
import { type KvNamespace, WrapperStore } from "../../store/kv.ts";
import { isNotable, TraceSink, type TraceSinkOptions } from "../../trace/sink.ts";
import { type ProcessEntry, type Session, Supervisor, type SupervisorSummary } from "./supervisor.ts";

/** What the supervisor enforces: policies' rules, then their wrappers. */
export interface Enforcement {
  policies: Policy[];
  /** Loaded and validated on the main thread (WebAssembly.Module is cloneable). */
  wrappers: WrapperModule[];
}

/** Messages to the worker. */
export type WorkerRequest =
  | ({ type: "start"; storePath: string; trace?: TraceSinkOptions; emulateOpens: boolean } & Enforcement)
  | { type: "listen"; session: number; listener: number }
  | ({ type: "reload" } & Enforcement)
  | { type: "ps" }
  | { type: "stop" };

/** Messages from the worker. */
export type WorkerReply =
  | { type: "ready"; wakeFd: number }
  | { type: "listening"; session: number; syncWakeUp: boolean }
  | { type: "reloaded" }
  | { type: "ps"; processes: ProcessEntry[] }
  | { type: "events"; events: HostEvent[] }
  | { type: "session-end"; session: number; summary: SupervisorSummary }
  | { type: "stopped" }
  /** fatal: the supervisor loop itself ended (the thread serves nothing any more). */
  | { type: "error"; message: string; fatal: boolean };

const post = (reply: WorkerReply) => self.postMessage(reply);

/** Batches notable events (verdicts, alerts, faults, lifecycle) for the main thread's audit. */
class ForwardSink implements EventSink {
  readonly wantsSyscalls: boolean;
  #batch: HostEvent[] = [];
  constructor(private readonly local?: TraceSink) {
    this.wantsSyscalls = local?.wantsSyscalls ?? false;
  }
  emit(event: HostEvent): void {
    this.local?.emit(event);
    if (isNotable(event)) this.#batch.push(event);
  }
  flush(): void {
    this.local?.flush();
    if (this.#batch.length) post({ type: "events", events: this.#batch.splice(0) });
  }
}

let supervisor: Supervisor | undefined;
let store: WrapperStore | undefined;
let sink: ForwardSink;

async function deciderFor(e: Enforcement): Promise<Decider> {
  const layers: Decider[] = [new RuleDecider(e.policies)];
  if (e.wrappers.length) {
    const kv = new Map<string, KvNamespace>();
    for (const w of e.wrappers) kv.set(w.spec.name, await store!.load(w.spec.name));
    layers.push(new WrapperChain(e.wrappers, { engine: v8Engine, sink, kv, source: "seccomp" }));
  }
  return new LayeredDecider(layers);
}

async function start(req: Extract<WorkerRequest, { type: "start" }>): Promise<void> {
  store = await WrapperStore.open(req.storePath);
  const trace = req.trace ? new TraceSink(req.trace) : undefined;
  sink = new ForwardSink(trace);
  supervisor = new Supervisor({
    decider: await deciderFor(req),
    sink,
    emulateOpens: req.emulateOpens,
  });
  post({ type: "ready", wakeFd: supervisor.wakeFd });
  await supervisor.run({
    idle: (why) => {
      // While busy, only writes are worth a pause; messages come with a wake-up.
      if (why === "busy" && !store?.dirty) return;
      return (async () => {
        await store?.flush();
        await new Promise((r) => setTimeout(r, 0)); // let queued messages run
      })();
    },
    onSessionEnd: (s: Session) => {
      sink.flush();
      post({ type: "session-end", session: s.id, summary: s.summary });
    },
  });
  supervisor.close();
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
      case "listen": {
        const s = supervisor!.addSession(req.session, req.listener);
        post({ type: "listening", session: req.session, syncWakeUp: s.summary.syncWakeUp });
        break;
      }
      case "reload":
        supervisor!.setDecider(await deciderFor(req));
        post({ type: "reloaded" });
        break;
      case "ps":
        post({ type: "ps", processes: supervisor!.processes() });
        break;
      case "stop":
        supervisor!.stop();
        break;
    }
  } catch (e) {
    post({ type: "error", message: (e as Error).stack ?? String(e), fatal: req.type === "start" });
  }
};
