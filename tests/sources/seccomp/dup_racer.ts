/**
 * A worker (another thread of the test's process) standing for a stray close and reuse in idwrap during an emulated
 * open: told to go, it waits a given while, then puts another object at the open's fd number (dup3), once, and says
 * so. The test puts the number back before the next try.
 *
 * Control block (Int32Array over a SharedArrayBuffer): [0] the phase (IDLE, GO, DONE, QUIT), [1] how long to wait (ns)
 * before the swap.
 *
 * @module
 */
import { libc } from "../../../host/unsafe/libc.ts";

export const IDLE = 0, GO = 1, DONE = 2, QUIT = 3;
const SYS_DUP3 = 292n, O_CLOEXEC = 0o2000000n;

/** What the racer is told once: the number, the fd it copies there, and the control block. */
export interface RacerJob {
  n: number;
  stray: number;
  control: SharedArrayBuffer;
}

// deno-lint-ignore no-explicit-any
const worker = globalThis as any;
// Only as a worker: the test imports the constants above.
if (typeof worker.WorkerGlobalScope === "function") worker.onmessage = serve;

function serve(e: MessageEvent<RacerJob>): void {
  const { n, stray } = e.data;
  const ctl = new Int32Array(e.data.control);
  worker.postMessage("started");
  for (;;) {
    Atomics.wait(ctl, 0, IDLE);
    const phase = Atomics.load(ctl, 0);
    if (phase === QUIT) break;
    if (phase !== GO) continue;
    const until = performance.now() + ctl[1] / 1e6; // busy: a sleep's wake-up is coarser than an open
    while (performance.now() < until) { /* wait */ }
    libc.symbols.syscall(SYS_DUP3, BigInt(stray), BigInt(n), O_CLOEXEC, 0n, 0n, 0n);
    Atomics.store(ctl, 0, DONE);
    Atomics.notify(ctl, 0);
  }
  worker.postMessage("stopped");
}
