/**
 * The supervisor's thread. The seccomp source starts one Worker per wrapped
 * tree; it builds the decider (policy rules, then wrappers) and sink from
 * what it is sent, serves the listener synchronously, and reports its
 * summary when the tree is gone.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { type Decider, LayeredDecider, NullSink } from "../../decider.ts";
import type { Policy } from "../../policy/policy.ts";
import { RuleDecider } from "../../policy/rule_decider.ts";
import { WrapperChain } from "../../runtime/chain.ts";
import { v8Engine } from "../../runtime/engine.ts";
import type { WrapperModule } from "../../runtime/module.ts";
import type { KvNamespace } from "../../store/kv.ts";
import { WrapperStore } from "../../store/kv.ts";
import { TraceSink, type TraceSinkOptions } from "../../trace/sink.ts";
import { Supervisor, type SupervisorSummary } from "./supervisor.ts";

/** The message that starts a supervisor. */
export interface WorkerStart {
  listener: number;
  policies: Policy[];
  /** Loaded and validated on the main thread (WebAssembly.Module is cloneable). */
  wrappers: WrapperModule[];
  /** Deno KV path for the wrappers' store. */
  storePath: string;
  trace?: TraceSinkOptions;
  emulateOpens: boolean;
}

/** What the worker answers. */
export type WorkerReply =
  | { type: "ready" }
  | { type: "done"; summary: SupervisorSummary }
  | { type: "error"; message: string };

self.onmessage = async (msg: MessageEvent<WorkerStart>) => {
  const post = (reply: WorkerReply) => self.postMessage(reply);
  let store: WrapperStore | undefined;
  try {
    const start = msg.data;
    const sink = start.trace ? new TraceSink(start.trace) : new NullSink();
    const layers: Decider[] = [new RuleDecider(start.policies)];
    if (start.wrappers.length) {
      store = await WrapperStore.open(start.storePath);
      const kv = new Map<string, KvNamespace>();
      for (const w of start.wrappers) kv.set(w.spec.name, await store.load(w.spec.name));
      layers.push(new WrapperChain(start.wrappers, { engine: v8Engine, sink, kv, source: "seccomp" }));
    }
    const supervisor = new Supervisor(start.listener, {
      decider: new LayeredDecider(layers),
      sink,
      emulateOpens: start.emulateOpens,
    });
    post({ type: "ready" });
    const summary = await supervisor.run(() => store?.flush());
    await store?.close();
    post({ type: "done", summary });
  } catch (e) {
    post({ type: "error", message: (e as Error).stack ?? String(e) });
  }
  self.close();
};
