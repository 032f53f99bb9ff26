/**
 * Kernel-side help a transport runs beside its tree — the network deny programs of docs/bpf.md ("Decisions in the
 * kernel") — handed to the transport by the layer that chose the source (host/sources/run.ts), so that no event source
 * imports another.
 *
 * @module
 */
import type { SourceName } from "../events.ts";
import type { Policy } from "../policy/policy.ts";
import type { TraceSinkOptions } from "../trace/sink.ts";
import type { OnEvents } from "./thread.ts";

/** A sidecar running for one tree. */
export interface TreeSidecar {
  /** Puts the tree's first process (the launcher, before it execs the command) where the sidecar acts. */
  place(pid: number): void;
  /** Detaches, reporting what is left. */
  stop(): Promise<void>;
}

/** What a sidecar reports to, and how it warns. */
export interface SidecarOptions {
  source: SourceName;
  onEvents?: OnEvents;
  trace?: TraceSinkOptions;
  onWarning?: (message: string) => void;
}

/** Starts a sidecar for these policies, or says there is nothing for it to do here (undefined). */
export type StartSidecar = (policies: readonly Policy[], options: SidecarOptions) => TreeSidecar | undefined;
