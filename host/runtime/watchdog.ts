/**
 * The wall-clock watchdog over hooks. V8 cannot interrupt WebAssembly from
 * the thread that runs it, and the budget counts only instructions (a loop of
 * slow host imports, or a host bug, can still take minutes), so the
 * supervisor thread marks each outermost hook call in a SharedArrayBuffer
 * ({@link HookWatch}, two stores per hook) and the main thread watches it
 * ({@link HookWatchdog}): a hook still running after the limit — or when
 * idwrap gets SIGINT/SIGTERM while a hook has been running a while — is
 * stopped by terminating the supervisor thread (Worker.terminate interrupts
 * running wasm). Its owner then closes the listeners, so every waiting and
 * later notified call of the wrapped processes fails (fail closed) and
 * `idwrap run` kills its command.
 *
 * @module
 */

/** Slots of the shared buffer. */
const SEQ = 0; // outermost hook calls so far
const DEPTH = 1; // hooks running (nested through emit); 0: idle
const WRAPPER = 2; // the running outermost hook's wrapper index
const HOOK = 3; // and which hook (HOOK_NAMES)
const SLOTS = 4;
/** Hook time per wrapper index after the slots: [calls, seconds] as float64 pairs (metrics; the supervisor writes). */
const TIMED_WRAPPERS = 256;
const TIMES_OFFSET = SLOTS * 4;
/** Then one float64: the calls the source notified on this thread (metrics, live). */
const NOTIFIED_OFFSET = TIMES_OFFSET + TIMED_WRAPPERS * 16;
const BUFFER_BYTES = NOTIFIED_OFFSET + 8;

/** The hooks, by the number a HookWatch stores. */
export const HOOK_NAMES = ["idwrap_on_syscall", "idwrap_on_abstract", "idwrap_on_lifecycle", "idwrap_init"] as const;
export type HookName = typeof HOOK_NAMES[number];

/** The supervisor thread's side: marks hook calls. One per thread ({@link hookWatch}). */
export class HookWatch {
  #slots = new Int32Array(new SharedArrayBuffer(BUFFER_BYTES), 0, SLOTS);
  #times = new Float64Array(this.#slots.buffer, TIMES_OFFSET, TIMED_WRAPPERS * 2);
  #notified = new Float64Array(this.#slots.buffer, NOTIFIED_OFFSET, 1);
  #wrapper = 0;
  #started = 0;

  /** Writes to `buffer` from now on (a watchdog's, made on the main thread). */
  attach(buffer: SharedArrayBuffer): void {
    this.#slots = new Int32Array(buffer, 0, SLOTS);
    this.#times = new Float64Array(buffer, TIMES_OFFSET, TIMED_WRAPPERS * 2);
    this.#notified = new Float64Array(buffer, NOTIFIED_OFFSET, 1);
  }

  /** The source handed the supervisor a call (counted for the metrics as it happens; summaries count per tree). */
  notified(): void {
    this.#notified[0]++;
  }

  /** A hook of wrapper `wrapper` starts; only the outermost one is timed (nested hooks count in its time). */
  enter(wrapper: number, hook: HookName): void {
    const s = this.#slots;
    if (s[DEPTH]++ === 0) {
      s[WRAPPER] = wrapper;
      s[HOOK] = HOOK_NAMES.indexOf(hook);
      s[SEQ]++;
      this.#wrapper = wrapper;
      this.#started = performance.now();
    }
  }

  leave(): void {
    if (--this.#slots[DEPTH] === 0 && this.#wrapper < TIMED_WRAPPERS) {
      // One writer (this thread); the main thread only reads, and a torn read is one hook off at most.
      this.#times[this.#wrapper * 2]++;
      this.#times[this.#wrapper * 2 + 1] += (performance.now() - this.#started) / 1000;
    }
  }
}

/** Time spent in one wrapper's outermost hooks. */
export interface HookTime {
  wrapper: string;
  calls: number;
  seconds: number;
}

/** This thread's HookWatch: the wrapper chain marks its hooks on it; the worker attaches it to the watchdog's buffer. */
export const hookWatch = new HookWatch();

/** Why a watchdog stopped a hook. */
export interface Overdue {
  /** The wrapper's index in the enforced list, and its name where known. */
  wrapper: number;
  name: string;
  hook: HookName;
  /** How long the hook had run, ms (to the check's resolution). */
  ranMs: number;
  /** The limit it passed, or the signal that came while it ran. */
  cause: { limitMs: number } | { signal: Deno.Signal };
}

/** How a watchdog watches. */
export interface HookWatchdogOptions {
  /** A hook running longer is stopped. @default 10000 */
  limitMs?: number;
  /** How often to look. @default 50 */
  periodMs?: number;
  /**
   * SIGINT/SIGTERM stop a hook that has run at least this long (hooks take microseconds). The watchdog listens for them
   * only while such a hook runs, so that otherwise their default (or the owner's handling) stands: a signal that comes
   * earlier is the owner's alone (`idwrap run` passes it to the command), and the hook then ends by its budget or the
   * limit. @default 100
   */
  signalAfterMs?: number;
}

/** A hook must finish within this; the budget (10^7 units by default) takes milliseconds. */
export const HOOK_WALL_CLOCK_LIMIT_MS = 10_000;

const SIGNALS: Deno.Signal[] = ["SIGINT", "SIGTERM"];

/**
 * The main thread's side: polls the buffer and calls `onOverdue` once, for the first hook that runs past the limit
 * or is running (for at least `signalAfterMs`) when idwrap gets SIGINT or SIGTERM. Its timer does not keep the
 * process alive.
 */
export class HookWatchdog {
  readonly buffer = new SharedArrayBuffer(BUFFER_BYTES);
  #names: string[] = [];
  readonly #slots = new Int32Array(this.buffer, 0, SLOTS);
  readonly #times = new Float64Array(this.buffer, TIMES_OFFSET, TIMED_WRAPPERS * 2);
  /** Per index, the times already credited to the names it had before a reload; per name, what they came to. */
  readonly #base = new Float64Array(TIMED_WRAPPERS * 2);
  readonly #credited = new Map<string, { calls: number; seconds: number }>();
  readonly #timer: ReturnType<typeof setInterval>;
  readonly #limitMs: number;
  readonly #signalAfterMs: number;
  #seen = -1;
  #since = 0;
  #fired = false;
  #signalHandlers: (() => void)[] = [];

  constructor(readonly onOverdue: (o: Overdue) => void, options: HookWatchdogOptions = {}) {
    this.#limitMs = options.limitMs ?? HOOK_WALL_CLOCK_LIMIT_MS;
    this.#signalAfterMs = options.signalAfterMs ?? 100;
    this.#timer = setInterval(() => this.#check(), options.periodMs ?? 50);
    Deno.unrefTimer(this.#timer as unknown as number); // Deno's timers are numbers; the node types say otherwise
  }

  /** Wrapper names by index (the enforced list; replaced on reload). */
  get names(): string[] {
    return this.#names;
  }

  /** A reload's list: what each index ran so far is credited to its old name, and counts afresh for the new. */
  set names(names: string[]) {
    this.#names.forEach((name, i) => this.#credit(name, i));
    this.#names = names;
  }

  #credit(name: string, i: number): void {
    if (i >= TIMED_WRAPPERS) return;
    const c = this.#credited.get(name) ?? { calls: 0, seconds: 0 };
    c.calls += this.#times[i * 2] - this.#base[i * 2];
    c.seconds += this.#times[i * 2 + 1] - this.#base[i * 2 + 1];
    this.#base[i * 2] = this.#times[i * 2];
    this.#base[i * 2 + 1] = this.#times[i * 2 + 1];
    this.#credited.set(name, c);
  }

  /** Calls the source notified on the watched thread so far. */
  notifiedCalls(): number {
    return new Float64Array(this.buffer, NOTIFIED_OFFSET, 1)[0];
  }

  /** Calls of and time in each wrapper's outermost hooks since the thread started, by wrapper name. */
  hookTimes(): HookTime[] {
    this.#names.forEach((name, i) => this.#credit(name, i));
    return [...this.#credited].map(([wrapper, c]) => ({ wrapper, calls: c.calls, seconds: c.seconds }));
  }

  /** How long the current outermost hook has run, ms; 0 when none runs. */
  #running(): number {
    const s = this.#slots;
    if (Atomics.load(s, DEPTH) <= 0) {
      this.#seen = -1;
      return 0;
    }
    const seq = Atomics.load(s, SEQ);
    if (seq !== this.#seen) [this.#seen, this.#since] = [seq, performance.now()];
    return performance.now() - this.#since;
  }

  #check(): void {
    if (this.#fired) return;
    const ran = this.#running();
    if (ran >= this.#limitMs) return this.#fire(ran, { limitMs: this.#limitMs });
    // Listen for signals only while a hook runs long: otherwise their default (or the owner's handling) stands.
    if (ran >= this.#signalAfterMs && !this.#signalHandlers.length) {
      this.#signalHandlers = SIGNALS.map((signal) => {
        const handler = () => {
          const now = this.#running();
          if (now >= this.#signalAfterMs) this.#fire(now, { signal });
        };
        Deno.addSignalListener(signal, handler);
        return () => Deno.removeSignalListener(signal, handler);
      });
    } else if (ran < this.#signalAfterMs) this.#unlisten();
  }

  #fire(ranMs: number, cause: Overdue["cause"]): void {
    this.#fired = true;
    this.#unlisten();
    const wrapper = Atomics.load(this.#slots, WRAPPER);
    const hook = HOOK_NAMES[Atomics.load(this.#slots, HOOK)] ?? "idwrap_on_syscall";
    this.onOverdue({ wrapper, name: this.names[wrapper] ?? `#${wrapper}`, hook, ranMs: Math.round(ranMs), cause });
  }

  #unlisten(): void {
    this.#signalHandlers.forEach((remove) => remove());
    this.#signalHandlers = [];
  }

  /** Stops watching. */
  close(): void {
    clearInterval(this.#timer);
    this.#unlisten();
  }
}

/** What a watchdog's stop says: the wrapper, the hook, why, and what follows. */
export function describeOverdue(o: Overdue): string {
  const why = "limitMs" in o.cause
    ? `ran past the wall-clock limit of ${o.cause.limitMs} ms`
    : `was still running (${o.ranMs} ms) when idwrap got ${o.cause.signal}`;
  return `wrapper "${o.name}": ${o.hook} ${why}; the supervisor thread was stopped, so the wrapped processes' ` +
    `notified calls fail (fail closed)`;
}
