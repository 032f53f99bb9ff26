/**
 * The main thread's handle on the seccomp supervisor Worker (worker.ts): the
 * source-independent SourceThread, handed listener fds.
 *
 * @module
 */
import type { OnEvents } from "../thread.ts";
import type { TraceSinkOptions } from "../../trace/sink.ts";
import type { Enforcement } from "../enforce.ts";
import { SourceThread } from "../thread.ts";

/** How the supervisor thread starts. */
export interface SupervisorThreadOptions extends Enforcement {
  storePath: string;
  trace?: TraceSinkOptions;
  emulateOpens: boolean;
  /** idwrap-holder's socket (./holder.ts), told the latest notification ids. */
  holderFd?: number;
  /** idwrap-holder's pid, guarded like the supervisor's. */
  holderPid?: number;
  /** Notable events (verdicts, alerts, faults, lifecycle), in batches. */
  onEvents?: OnEvents;
}

/** A running seccomp supervisor thread. */
export class SupervisorThread extends SourceThread {
  /** Starts the thread; resolves when it serves. */
  static start(options: SupervisorThreadOptions): Promise<SupervisorThread> {
    const { emulateOpens, holderFd, holderPid, ...rest } = options;
    const opts = { ...rest, config: { emulateOpens, holderFd, holderPid } };
    return SourceThread.startAt(new SupervisorThread(new URL("./worker.ts", import.meta.url), opts), opts);
  }

  /** Serves a tree's listener (the thread owns and closes the fd; closed here if the thread dies). */
  listen(session: number, listener: number): Promise<void> {
    return this.attachHandle(session, listener, listener);
  }
}
