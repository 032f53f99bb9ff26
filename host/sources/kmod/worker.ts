/**
 * The kernel-module source's thread: the source-independent worker
 * (../worker_common.ts) with the /dev/idwrap loop. The interest mask and the
 * fail mode follow the enforcement, and are set again on every reload.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { serveWorker } from "../worker_common.ts";
import { failsClosed as failClosed } from "../../wss/interest.ts";
import { interestMask } from "./interest.ts";
import { KmodSupervisor } from "./supervisor.ts";

/** The worker's settings (SourceThreadOptions.config). */
export interface KmodWorkerConfig {
  systemWide?: boolean;
  timeoutMs?: number;
  device?: string;
}

serveWorker("kmod", ({ decider, sink, enforcement, config }) => {
  const c = config as KmodWorkerConfig;
  const wantsAll = sink.wantsSyscalls;
  const supervisor = new KmodSupervisor({
    decider,
    sink,
    interest: interestMask(enforcement.policies, enforcement.wrappers, wantsAll),
    failClosed: failClosed(enforcement.policies, enforcement.wrappers),
    timeoutMs: c.timeoutMs,
    systemWide: c.systemWide,
    device: c.device,
  });
  return {
    wakeFd: supervisor.wakeFd,
    // If this thread dies, closing the device gives every waiting call the fail mode at once.
    failClosedFds: [supervisor.fd],
    attach: (session, pid) => supervisor.addSession(session, pid),
    reload: (d, e) => {
      supervisor.setInterest(interestMask(e.policies, e.wrappers, wantsAll));
      supervisor.setDecider(d);
    },
    processes: () => supervisor.processes(),
    stop: () => supervisor.stop(),
    close: () => supervisor.close(),
    run: (options) => supervisor.run(options),
  };
});
