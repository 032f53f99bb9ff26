/**
 * The bpf event source, as one object: the loaded programs
 * ({@linkcode BpfTracer}) and the decoder of their records into events
 * ({@linkcode BpfEventDecoder}). Observe-only: every event it yields has
 * already happened in the kernel; deny and kill stay on seccomp (docs/bpf.md,
 * "Next: the hybrid").
 *
 * @module
 */
import type { HostEvent } from "../../events.ts";
import { BpfEventDecoder, lostReport } from "./events.ts";
import type { InterestEntry } from "./layout.ts";
import { BpfTracer, type BpfTracerOptions } from "./tracer.ts";

/** How the source opens. */
export interface BpfSourceOptions extends BpfTracerOptions {
  /** Which calls to report (syscall number → entry): host/sources/bpf/interest.ts builds it. */
  interest: ReadonlyMap<number, InterestEntry>;
}

/** The loaded bpf source. */
export class BpfSource {
  readonly #tracer: BpfTracer;
  readonly #decoder = new BpfEventDecoder();

  private constructor(tracer: BpfTracer) {
    this.#tracer = tracer;
  }

  /** Loads and attaches the programs and sets the interest. */
  static open(options: BpfSourceOptions): BpfSource {
    const tracer = BpfTracer.load(options);
    try {
      tracer.setInterest(options.interest);
    } catch (e) {
      tracer.close();
      throw e;
    }
    return new BpfSource(tracer);
  }

  /** The tracer underneath (for the watched set's state, the lost counters). */
  get tracer(): BpfTracer {
    return this.#tracer;
  }

  /** Watches process `pid` and the processes it makes from now on. */
  watch(pid: number, session = 1): void {
    this.#decoder.seed(pid);
    this.#tracer.watch(pid, session);
  }

  /** Waits up to `timeoutMs` (blocking this thread), then returns the events of every record waiting. */
  poll(timeoutMs: number): HostEvent[] {
    return this.#tracer.poll(timeoutMs).flatMap((r) => this.#decoder.decode(r));
  }

  /**
   * The events still in the ring, then a report of records dropped that no later record reported (the per-CPU
   * totals against what came in-band), so no loss goes unsaid.
   */
  finish(): HostEvent[] {
    const events = this.#tracer.drain().flatMap((r) => this.#decoder.decode(r));
    const unreported = this.#tracer.lostTotal() - this.#decoder.lost;
    if (unreported > 0) {
      this.#decoder.lost += unreported;
      events.push(lostReport(unreported, Date.now(), "at the end of the run"));
    }
    return events;
  }

  /** Records dropped so far (reported). */
  get lost(): number {
    return this.#decoder.lost;
  }

  /** Detaches and frees everything. */
  close(): void {
    this.#tracer.close();
  }
}
