/**
 * The supervisor's thread. The seccomp source starts one Worker per wrapped
 * tree; it builds the decider and sink from plain data, serves the
 * listener synchronously, and reports its summary when the tree is gone.
 *
 * @module
 */
/// <reference lib="deno.worker" />
import type { Policy } from "../../policy/policy.ts";
import { RuleDecider } from "../../policy/rule_decider.ts";
import { TraceSink, type TraceSinkOptions } from "../../trace/sink.ts";
import { NullSink } from "../../decider.ts";
import { Supervisor, type SupervisorSummary } from "./supervisor.ts";

/** The message that starts a supervisor. */
export interface WorkerStart {
  listener: number;
  policies: Policy[];
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
  try {
    const start = msg.data;
    const decider = new RuleDecider(start.policies);
    const sink = start.trace ? new TraceSink(start.trace) : new NullSink();
    const supervisor = new Supervisor(start.listener, {
      decider,
      sink,
      emulateOpens: start.emulateOpens,
    });
    post({ type: "ready" });
    const summary = await supervisor.run();
    post({ type: "done", summary });
  } catch (e) {
    post({ type: "error", message: (e as Error).stack ?? String(e) });
  }
  self.close();
};
