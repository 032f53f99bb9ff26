/**
 * The seccomp source's thread. One Worker serves every wrapped tree of a
 * host (one in `idwrap run`, many in the daemon), so all wrappers' instances
 * and their key-value view live on one thread. The messaging, the store and
 * the decider are the source-independent worker's (../worker_common.ts); it
 * runs the WSS (host/wss/supervisor.ts) over the seccomp transport
 * (./transport.ts).
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { buildInterest } from "../../wss/interest.ts";
import { Wss } from "../../wss/supervisor.ts";
import { serveWorker } from "../worker_common.ts";
import { SeccompSource } from "./transport.ts";

serveWorker("seccomp", ({ decider, sink, enforcement: e, config }) => {
  const source = new SeccompSource({
    emulateOpens: config.emulateOpens as boolean,
    holderFd: config.holderFd as number | undefined,
    holderPid: config.holderPid as number | undefined,
  });
  const interest = (x: typeof e) => buildInterest(x.policies, x.wrappers, sink.wantsSyscalls);
  const wss = new Wss({ source, decider, sink, wrappers: e.wrappers.map((w) => w.spec), interest: interest(e) });
  return {
    wakeFd: source.wakeFd,
    failClosedFds: [],
    attach: (session, listener) => void wss.attach(session, listener),
    reload: (d, x) => wss.reload(d, x.wrappers.map((w) => w.spec), interest(x)),
    processes: () => wss.processes(),
    stop: () => wss.stop(),
    close: () => wss.close(),
    run: (options) => wss.run(options),
  };
});
