/**
 * What the table benchmark must undo (servers, audit rules, temp files) on exit,
 * failure or Ctrl-C.
 *
 * @module
 */
type Cleanup = () => void | Promise<void>;
const cleanups = new Map<number, Cleanup>();
let nextCleanup = 0;

/** Registers something to undo on exit, failure or Ctrl-C; returns its handle for `undo`. */
export function onCleanup(fn: Cleanup): number {
  cleanups.set(++nextCleanup, fn);
  return nextCleanup;
}

/** Runs one registered cleanup now (and forgets it). */
export async function undo(handle: number): Promise<void> {
  const fn = cleanups.get(handle);
  cleanups.delete(handle);
  if (fn) await fn();
}

/** Forgets a cleanup without running it (what it undoes is already undone). */
export function forget(handle: number): void {
  cleanups.delete(handle);
}

/** Runs every registered cleanup, latest first; never throws. */
export async function cleanupAll(): Promise<void> {
  for (const h of [...cleanups.keys()].reverse()) {
    try {
      await undo(h);
    } catch (e) {
      console.error(`bench: cleanup failed: ${(e as Error).message}`);
    }
  }
}

/** On SIGINT/SIGTERM: clean up, then exit 130. */
export function cleanupOnSignals(): void {
  let busy = false;
  const handler = async () => {
    if (busy) return;
    busy = true;
    console.error("\nbench: interrupted; stopping servers, deleting audit rules, removing temp files");
    await cleanupAll();
    Deno.exit(130);
  };
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) Deno.addSignalListener(sig, handler);
}
