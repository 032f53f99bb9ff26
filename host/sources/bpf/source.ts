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
import type { BpfRecord, InterestEntry } from "./layout.ts";
import { BpfTracer, type BpfTracerOptions } from "./tracer.ts";
import { execKillEntries, type KernelExecRule } from "./exec_rules.ts";

/** How long one poll turns records into events before it looks at the ring again. */
export const DECODE_BUDGET_MS = 2;
/** Records decoded between two looks at the ring. */
const CHUNK = 128;
/** Records kept waiting here before the host stops taking more from the ring. */
export const MAX_BACKLOG = 1 << 20;

/** How the source opens. */
export interface BpfSourceOptions extends BpfTracerOptions {
  /** Which calls to report (syscall number → entry): host/sources/bpf/interest.ts builds it. */
  interest: ReadonlyMap<number, InterestEntry>;
  /** Exec rules the programs enforce at sched_process_exec (./exec_rules.ts), their files stat'ed at open. */
  execKills?: readonly KernelExecRule[];
}

/** The loaded bpf source. */
export class BpfSource {
  readonly #tracer: BpfTracer;
  readonly #decoder = new BpfEventDecoder();
  /** Records taken from the ring and not yet decoded, in ring order; #next indexes the first batch. */
  readonly #queue: BpfRecord[][] = [];
  #next = 0;

  private constructor(tracer: BpfTracer) {
    this.#tracer = tracer;
  }

  /** Loads and attaches the programs and sets the interest. */
  static open(options: BpfSourceOptions): BpfSource {
    const tracer = BpfTracer.load(options);
    try {
      tracer.setInterest(options.interest);
      if (options.execKills) tracer.setExecKills(execKillEntries(options.execKills).entries);
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

  /**
   * Waits up to `timeoutMs` (blocking this thread) unless records are already waiting, then turns waiting records
   * into events for at most {@linkcode DECODE_BUDGET_MS}, taking what the ring holds between chunks. Decoding a
   * record into an event costs several times what taking it from the ring does, so the ring is kept empty and the
   * backlog waits here (up to {@linkcode MAX_BACKLOG} records; past that the ring fills and the programs count what
   * they drop).
   */
  poll(timeoutMs: number): HostEvent[] {
    this.#take(this.#tracer.poll(this.#backlog() ? 0 : timeoutMs));
    const out: HostEvent[] = [];
    const deadline = performance.now() + DECODE_BUDGET_MS;
    while (this.#backlog() && performance.now() < deadline) {
      this.#decodeSome(out, CHUNK);
      if (this.#backlog() < MAX_BACKLOG) this.#take(this.#tracer.drain());
    }
    return out;
  }

  /**
   * The events of every record still here or in the ring, then a report of records dropped that no later record
   * reported (the per-CPU totals against what came in-band), so no loss goes unsaid.
   */
  finish(): HostEvent[] {
    this.#take(this.#tracer.drain());
    const events: HostEvent[] = [];
    this.#decodeSome(events, Infinity);
    const unreported = this.#tracer.lostTotal() - this.#decoder.lost;
    if (unreported > 0) {
      this.#decoder.lost += unreported;
      events.push(lostReport(unreported, Date.now(), "at the end of the run"));
    }
    return events;
  }

  #take(records: BpfRecord[]): void {
    if (records.length) this.#queue.push(records);
  }

  #backlog(): number {
    let n = -this.#next;
    for (const batch of this.#queue) n += batch.length;
    return n;
  }

  #decodeSome(out: HostEvent[], max: number): void {
    let left = max;
    while (left > 0 && this.#queue.length) {
      const batch = this.#queue[0];
      const end = Math.min(batch.length, this.#next + left);
      for (let i = this.#next; i < end; i++) {
        for (const e of this.#decoder.decode(batch[i])) out.push(e);
      }
      left -= end - this.#next;
      this.#next = end;
      if (this.#next === batch.length) {
        this.#queue.shift();
        this.#next = 0;
      }
    }
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
