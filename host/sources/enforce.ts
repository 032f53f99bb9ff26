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
import type { ProgramIdentity, SourceName } from "../events.ts";
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

/** What a finished wrapped tree reports. */
export interface SupervisorSummary {
  /** Calls the source handed to the host (seccomp: notifications; kmod: syscall records). */
  notifications: number;
  denied: number;
  killed: number;
  /** Calls run by the supervisor (seccomp) or the module (kmod) on the checked arguments. */
  emulated: number;
  /** seccomp: SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP was accepted. */
  syncWakeUp: boolean;
  /** kmod: calls run with rewritten arguments. */
  rewritten?: number;
  /** kmod: observe records the module dropped (ring full). */
  lost?: number;
  /** Times the supervisor held calls while the audit log caught up (an alert flood's back-pressure), and for how long. */
  auditWaits?: { count: number; ms: number };
  /** Records the audit journal could not take (a full disk), other than calls' (those calls failed closed). */
  unjournaled?: number;
}

/** An empty summary. */
export function newSummary(): SupervisorSummary {
  return { notifications: 0, denied: 0, killed: 0, emulated: 0, syncWakeUp: false };
}

/** A row of `idwrap ps`. */
export interface ProcessEntry {
  pid: number;
  ppid: number;
  session: number;
  program: ProgramIdentity;
  wrappers: string[];
}

/** The decider for an enforcement: the policies' rules, then their wrappers (with their stores). */
export async function buildDecider(
  e: Enforcement,
  store: WrapperStore,
  sink: EventSink,
  source: SourceName,
): Promise<Decider> {
  const layers: Decider[] = [new RuleDecider(e.policies)];
  if (e.wrappers.length) {
    const kv = new Map<string, KvNamespace>();
    for (const w of e.wrappers) kv.set(w.spec.name, await store.load(w.spec.name));
    layers.push(
      new WrapperChain(e.wrappers, { engine: v8Engine, sink, kv, source, rewrite: capabilitiesOf(source).rewrite }),
    );
  }
  return new LayeredDecider(layers);
}
