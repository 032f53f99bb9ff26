/**
 * The kernel-module source's thread: the source-independent worker
 * (../worker_common.ts) running the WSS (host/wss/supervisor.ts) over the
 * /dev/idwrap transport (./transport.ts). The interest and the fail mode
 * follow the enforcement, and are set again on every reload.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { buildInterest } from "../../wss/interest.ts";
import { Wss } from "../../wss/supervisor.ts";
import { serveWorker } from "../worker_common.ts";
import { KmodSource } from "./transport.ts";

/** The worker's settings (SourceThreadOptions.config). */
export interface KmodWorkerConfig {
  systemWide?: boolean;
  timeoutMs?: number;
  device?: string;
  /** An open device this thread takes over (and closes), instead of opening one (KmodSourceOptions.deviceFd). */
  deviceFd?: number;
}

/** How often processes that went without an EXIT record (a dropped one) are looked for. */
const SWEEP_MS = 1000;

serveWorker("kmod", ({ decider, sink, enforcement: e, config }) => {
  const c = config as KmodWorkerConfig;
  const wantsAll = sink.wantsSyscalls;
  const interest = buildInterest(e.policies, e.wrappers, wantsAll);
  const source = new KmodSource({
    interest,
    timeoutMs: c.timeoutMs,
    systemWide: c.systemWide,
    device: c.device,
    deviceFd: c.deviceFd,
  });
  const wss = new Wss({
    source,
    decider,
    sink,
    wrappers: e.wrappers.map((w) => w.spec),
    interest,
    sweepMs: SWEEP_MS,
    systemWide: c.systemWide,
  });
  return {
    wakeFd: source.wakeFd,
    // If this thread dies, closing the device gives every waiting call the fail mode at once.
    failClosedFds: [...source.failClosedFds],
    attach: (session, pid) => void wss.attach(session, pid),
    reload: (d, e) => wss.reload(d, e.wrappers.map((w) => w.spec), buildInterest(e.policies, e.wrappers, wantsAll)),
    processes: () => wss.processes(),
    stop: () => wss.stop(),
    close: () => wss.close(),
    run: (options) => wss.run(options),
  };
});
