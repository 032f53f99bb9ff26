/**
 * What the supervisor asks about each call. A source hands every notified
 * call to one Decider and every event to one EventSink; the no-op versions
 * let callers skip "enabled?" checks.
 *
 * @module
 */
import type { HostEvent, SyscallEvent, Verdict } from "./events.ts";
import { ALLOW } from "./events.ts";

/** Decides the fate of notified calls. */
export interface Decider {
  /** x86_64 syscall numbers this decider must see (the filter notifies them). */
  readonly syscalls: ReadonlySet<number>;
  /** Whether `decide` looks at calls of this number; if not, they run unexamined. */
  examines(nr: number): boolean;
  /** The verdict for one call; `event` is fully decoded. */
  decide(event: SyscallEvent): Verdict;
}

/** Receives every event, after the verdict was given. */
export interface EventSink {
  /** Whether syscall events are wanted at all (decoding them costs). */
  readonly wantsSyscalls: boolean;
  emit(event: HostEvent): void;
  /** Called when the source is idle and at the end. */
  flush(): void;
}

/** Lets everything run. */
export class AllowAll implements Decider {
  readonly syscalls: ReadonlySet<number>;
  constructor(syscalls: Iterable<number> = []) {
    this.syscalls = new Set(syscalls);
  }
  examines(): boolean {
    return false;
  }
  decide(): Verdict {
    return ALLOW;
  }
}

/** Drops every event. */
export class NullSink implements EventSink {
  readonly wantsSyscalls = false;
  emit(): void {}
  flush(): void {}
}
