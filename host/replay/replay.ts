/**
 * Replays recorded activity through policies offline: the real WSS
 * (host/wss/supervisor.ts) over a ReplaySource, with the policies' rules and
 * their wrappers loaded as `run` loads them (fresh, empty key-value stores,
 * so a replay never depends on a machine's state). The result is what
 * happened to each recorded event: the verdict, the alerts (rule ids and
 * wrappers' alerts), a kill, a wrapper's fault.
 *
 * @module
 */
import { type Decider, describeVerdict, type EventSink, LayeredDecider } from "../decider.ts";
import type { HostEvent, LifecycleEvent, SyscallEvent } from "../events.ts";
import { WrapperChain } from "../runtime/chain.ts";
import { v8Engine } from "../runtime/engine.ts";
import { loadPolicyWrappers } from "../runtime/load.ts";
import { KvNamespace } from "../store/kv.ts";
import type { RecordedEvent } from "../trace/recording.ts";
import { REPLAY_SESSION, ReplaySource } from "./replay_source.ts";
import { buildInterest } from "../wss/interest.ts";
import { Wss } from "../wss/supervisor.ts";
import type { Policy } from "../policy/policy.ts";
import { RuleDecider } from "../policy/rule_decider.ts";

/** What the replayed policies made of one recorded event. */
export interface Outcome {
  /** Index into the recording. */
  index: number;
  recorded: SyscallEvent | LifecycleEvent;
  /** 1-based line of the recording. */
  line: number;
  /** "allow", "deny EACCES", "kill" (pre calls; a post hook's kill, a lifecycle kill). */
  verdict: string;
  /** Rule ids, and wrappers' alerts as "wrapper: message". */
  alerts: string[];
  /** Wrapper or host faults while it was played. */
  faults: string[];
  /** A post event recorded after its pre event: the index of that pre event, whose outcome includes this one's. */
  resultOf?: number;
  /** A pre event's recorded result, where the recording has its post event. */
  result?: { ret: number; errno?: string };
  /** Not played: the replay killed its process before it. */
  skipped?: boolean;
  /** Ids of deny and kill rules that matched (their verdict is the outcome; they are not alerts). */
  rules: string[];
}

/** Replays `events` through `policies`; one outcome per recorded event, in order. */
export async function replay(policies: Policy[], events: RecordedEvent[]): Promise<Outcome[]> {
  const source = new ReplaySource(events);
  const outcomes: Outcome[] = events.map(({ event, line }, index) => ({
    index,
    recorded: event,
    line,
    verdict: "allow",
    alerts: [],
    faults: [],
    rules: [],
  }));
  const enforcing = new Set(policies.flatMap((p) => p.rules.filter((r) => r.action !== "alert").map((r) => r.id)));
  const at = () => outcomes[Math.max(0, source.current)];
  const sink: EventSink = {
    wantsSyscalls: true,
    emit(e: HostEvent) {
      const o = at();
      if (e.kind === "syscall" || e.kind === "exec") {
        // A `when: success` exec rule fires on the exec event (the new program), as in a live run.
        for (const a of e.alerts ?? []) {
          const list = enforcing.has(a) ? o.rules : o.alerts;
          if (!list.includes(a)) list.push(a);
        }
        if (e.kind === "syscall" && e.verdict && e.verdict !== "allow") o.verdict = e.verdict;
      } else if (e.kind === "alert") {
        const a = `${e.wrapper}: ${e.message}`;
        if (!o.alerts.includes(a)) o.alerts.push(a);
      } else if (e.kind === "fault") o.faults.push(`${e.wrapper}: ${e.message}`);
    },
    flush() {},
  };
  const wrappers = await loadPolicyWrappers(policies, v8Engine, source.capabilities);
  // The results the recording's source reported: a `when: success` rule on another call fires at the attempt there.
  const layers: Decider[] = [new RuleDecider(policies, source.capabilities.post)];
  if (wrappers.length) {
    const kv = new Map(wrappers.map((w) => [w.spec.name, new KvNamespace([], () => {})]));
    layers.push(
      new WrapperChain(wrappers, {
        engine: v8Engine,
        sink,
        kv,
        source: source.capabilities.name,
        rewrite: source.capabilities.rewrite,
      }),
    );
  }
  const wss = new Wss({
    source,
    decider: new LayeredDecider(layers),
    sink,
    wrappers: wrappers.map((w) => w.spec),
    interest: buildInterest(policies, wrappers, true),
    programOf: (pid) => source.programOf(pid),
    alive: () => true,
  });
  wss.attach(REPLAY_SESSION, 0);
  await wss.run({ idleMs: 1000, idle: () => source.done ? wss.stop() : undefined });
  for (const [index, verdict] of source.answers) {
    if (verdict.action !== "allow") outcomes[index].verdict = describeVerdict(verdict);
  }
  for (const index of source.kills) outcomes[index].verdict = "kill";
  for (const index of source.skipped) outcomes[index].skipped = true;
  for (const [postIndex, pre] of source.paired) {
    // One call, recorded twice (before and with its result): what fired on either is the call's.
    const o = outcomes[postIndex], p = outcomes[pre];
    o.resultOf = pre;
    const post = o.recorded as SyscallEvent;
    p.result = { ret: post.ret ?? 0, ...(post.errno ? { errno: post.errno } : {}) };
    for (const a of o.alerts) if (!p.alerts.includes(a)) p.alerts.push(a);
    if (o.verdict === "kill") p.verdict = "kill";
    p.faults.push(...o.faults);
  }
  wss.close();
  return outcomes;
}

/** Whether anything fired on the event. */
export function fired(o: Outcome): boolean {
  return o.resultOf === undefined && (o.verdict !== "allow" || o.alerts.length > 0 || o.faults.length > 0);
}
