/**
 * The hybrid source's thread: the source-independent worker
 * (../worker_common.ts) running the WSS over the hybrid transport
 * (./hybrid.ts): seccomp holds the decided calls, the bpf ring reports the
 * observed ones. The interest carries the tamper guard's calls as the
 * launcher's filter did (./hybrid_run.ts), so both split it the same way.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { buildInterest } from "../../wss/interest.ts";
import { Wss } from "../../wss/supervisor.ts";
import { guardFilter } from "../seccomp/tamper.ts";
import { serveWorker } from "../worker_common.ts";
import { HybridTransport } from "./hybrid.ts";

/** The worker's settings (SourceThreadOptions.config). */
export interface HybridWorkerConfig {
  emulateOpens: boolean;
  /** The ring's size in bytes (host/sources/bpf/tracer.ts). */
  ringBytes?: number;
  /** idwrap-holder's socket (../seccomp/holder.ts), told the latest notification ids. */
  holderFd?: number;
  /** idwrap-holder's pid, guarded like the supervisor's. */
  holderPid?: number;
  /** The launcher puts the tree in a Landlock domain (./landlock.ts): read-only opens are not held. */
  guardedByKernel?: boolean;
}

/** How often processes that went without an exit record (a dropped one) are looked for. */
const SWEEP_MS = 1000;
/** The longest a ring record below the wake-up threshold waits to be read (ms), as on the bpf source. */
const POLL_MS = 10;

serveWorker("hybrid", ({ decider, sink, enforcement: e, config }) => {
  const c = config as unknown as HybridWorkerConfig;
  const always = guardFilter(Deno.pid).always;
  const interest = (x: typeof e) => buildInterest(x.policies, x.wrappers, sink.wantsSyscalls, always);
  const source = new HybridTransport({
    interest: interest(e),
    emulateOpens: c.emulateOpens,
    ringBytes: c.ringBytes,
    holderFd: c.holderFd,
    holderPid: c.holderPid,
    guardedByKernel: c.guardedByKernel,
  });
  const wss = new Wss({
    source,
    decider,
    sink,
    wrappers: e.wrappers.map((w) => w.spec),
    interest: interest(e),
    sweepMs: SWEEP_MS,
  });
  return {
    wakeFd: source.wakeFd,
    failClosedFds: [...source.failClosedFds],
    attach: (session, listener, pid) => {
      if (pid === undefined) throw new Error("hybrid: attach without the launcher's pid");
      source.expectLauncher(session, pid);
      wss.attach(session, listener);
    },
    reload: (d, x) => wss.reload(d, x.wrappers.map((w) => w.spec), interest(x)),
    processes: () => wss.processes(),
    stop: () => wss.stop(),
    close: () => wss.close(),
    run: (options) => wss.run({ idleMs: POLL_MS, ...options }),
  };
});
