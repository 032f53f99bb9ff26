/**
 * What every event source's supervisor thread shares, whatever delivers the
 * events: the enforcement it is given (policies' rules, then their
 * wrappers), the decider built from it, and the shapes of the process table
 * and the per-tree summary. (The sink that journals notable events and
 * batches them for the main thread is host/audit/journal_sink.ts.)
 *
 * @module
 */
import { type Decider, type EventSink, LayeredDecider } from "../decider.ts";
import type { SourceName } from "../events.ts";
import type { Policy } from "../policy/policy.ts";
import { RuleDecider } from "../policy/rule_decider.ts";
import { WrapperChain } from "../runtime/chain.ts";
import { v8Engine } from "../runtime/engine.ts";
import type { WrapperModule } from "../runtime/module.ts";
import type { KvNamespace, WrapperStore } from "../store/kv.ts";
import { capabilitiesOf } from "./capabilities.ts";

/** What a supervisor enforces: policies' rules, then their wrappers. */
export interface Enforcement {
  policies: Policy[];
  /** Loaded and validated on the main thread (WebAssembly.Module is cloneable). */
  wrappers: WrapperModule[];
}

export { newSummary, type ProcessEntry, type SupervisorSummary } from "../wss/summary.ts";

/** The decider for an enforcement: the policies' rules, then their wrappers (with their stores). */
export async function buildDecider(
  e: Enforcement,
  store: WrapperStore,
  sink: EventSink,
  source: SourceName,
): Promise<Decider> {
  const layers: Decider[] = [new RuleDecider(e.policies, capabilitiesOf(source).post)];
  if (e.wrappers.length) {
    const kv = new Map<string, KvNamespace>();
    for (const w of e.wrappers) kv.set(w.spec.name, await store.load(w.spec.name));
    layers.push(
      new WrapperChain(e.wrappers, { engine: v8Engine, sink, kv, source, rewrite: capabilitiesOf(source).rewrite }),
    );
  }
  return new LayeredDecider(layers);
}
