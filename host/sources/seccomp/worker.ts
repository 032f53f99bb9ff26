/**
 * The seccomp supervisor's thread. One Worker serves every wrapped tree of a
 * host (one in `idwrap run`, many in the daemon), so all wrappers' instances
 * and their key-value view live on one thread. The messaging, the store and
 * the decider are the source-independent worker's (../worker_common.ts);
 * this file supplies the seccomp loop.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import { answerFirstCalls } from "./interest.ts";
import { serveWorker } from "../worker_common.ts";
import { Supervisor } from "./supervisor.ts";

serveWorker("seccomp", ({ decider, sink, enforcement: e, config }) => {
  const supervisor = new Supervisor({
    decider,
    sink,
    emulateOpens: config.emulateOpens as boolean,
    answerFirst: answerFirstCalls(e.policies, e.wrappers),
    wrappers: e.wrappers.map((w) => w.spec),
  });
  return {
    wakeFd: supervisor.wakeFd,
    failClosedFds: [],
    attach: (session, listener) => void supervisor.addSession(session, listener),
    reload: (d, e) => supervisor.setDecider(d, answerFirstCalls(e.policies, e.wrappers), e.wrappers.map((w) => w.spec)),
    processes: () => supervisor.processes(),
    stop: () => supervisor.stop(),
    close: () => supervisor.close(),
    run: (options) => supervisor.run(options),
  };
});
