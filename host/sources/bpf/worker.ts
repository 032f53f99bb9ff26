/**
 * The bpf source's thread: the source-independent worker (../worker_common.ts)
 * running the WSS (host/wss/supervisor.ts) over the bpf transport
 * (./transport.ts), as the kmod source's thread does over /dev/idwrap. The
 * interest follows the enforcement and is set again on every reload; an
 * interest this source cannot serve (a call to decide before it runs) is
 * refused by the transport.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { buildInterest } from "../../wss/interest.ts";
import { Wss } from "../../wss/supervisor.ts";
import { serveWorker } from "../worker_common.ts";
import { kernelExecRules } from "./exec_rules.ts";
import { undecidableOnBpf } from "./refusals.ts";
import { BpfTransport } from "./transport.ts";

/** The worker's settings (SourceThreadOptions.config). */
export interface BpfWorkerConfig {
  /** The ring's size in bytes (host/sources/bpf/tracer.ts). */
  ringBytes?: number;
}

/** How often processes that went without an exit record (a dropped one) are looked for. */
const SWEEP_MS = 1000;
/** The longest a record below the ring's wake-up threshold waits to be read (ms): run.ts's observer uses 5. */
const POLL_MS = 10;

serveWorker("bpf", ({ decider, sink, enforcement: e, config }) => {
  const c = config as BpfWorkerConfig;
  const wantsAll = sink.wantsSyscalls;
  const interest = buildInterest(e.policies, e.wrappers, wantsAll);
  const source = new BpfTransport({
    interest,
    ringBytes: c.ringBytes,
    execRules: kernelExecRules(e.policies),
  });
  const wss = new Wss({
    source,
    decider,
    sink,
    wrappers: e.wrappers.map((w) => w.spec),
    interest,
    sweepMs: SWEEP_MS,
  });
  return {
    wakeFd: source.wakeFd,
    // Nothing waits on this source: a dead thread leaves no call hanging.
    failClosedFds: [...source.failClosedFds],
    attach: (session, pid) => void wss.attach(session, pid),
    reload: (d, e) => {
      // As at the start (supervise.ts): nothing may decide a call here but the kernel's exec rules.
      const refused = undecidableOnBpf(e.policies, e.wrappers);
      if (refused.length) throw new Error(`Cannot reload on the bpf source: ${refused.join("; ")}`);
      source.setExecRules(kernelExecRules(e.policies));
      wss.reload(d, e.wrappers.map((w) => w.spec), buildInterest(e.policies, e.wrappers, wantsAll));
    },
    processes: () => wss.processes(),
    stop: () => wss.stop(),
    close: () => wss.close(),
    // Records below the ring's wake-up threshold wait for a poll timeout: a short one keeps events timely.
    run: (options) => wss.run({ idleMs: POLL_MS, ...options }),
  };
});
