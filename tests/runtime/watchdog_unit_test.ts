/**
 * HookWatch / HookWatchdog in one thread: what counts as one hook call for the
 * wall-clock limit (the end-to-end stops are in watchdog_test.ts).
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { describeOverdue, HookWatch, HookWatchdog, type Overdue } from "../../host/runtime/watchdog.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function watch(run: (w: HookWatch) => Promise<void>): Promise<Overdue[]> {
  const fired: Overdue[] = [];
  const dog = new HookWatchdog((o) => fired.push(o), { limitMs: 200, periodMs: 10 });
  dog.names = ["emitter", "subscriber"];
  const w = new HookWatch();
  w.attach(dog.buffer);
  try {
    await run(w);
  } finally {
    dog.close();
  }
  return fired;
}

Deno.test("HookWatchdog: nested hooks (emit) do not restart the outer hook's clock", async () => {
  const fired = await watch(async (w) => {
    w.enter(0, "idwrap_on_syscall");
    for (let i = 0; i < 40; i++) {
      w.enter(1, "idwrap_on_abstract"); // each subscriber call is short; the emitter's hook is not
      await sleep(5);
      w.leave();
      await sleep(5);
    }
    w.leave();
  });
  assertEquals(fired.map((o) => [o.name, o.hook, "limitMs" in o.cause]), [["emitter", "idwrap_on_syscall", true]]);
  assertEquals(
    describeOverdue(fired[0]).startsWith(
      `wrapper "emitter": idwrap_on_syscall ran past the wall-clock limit of 200 ms; the supervisor thread was stopped`,
    ),
    true,
  );
});

Deno.test("HookWatchdog: many short hooks in a row never fire it", async () => {
  const fired = await watch(async (w) => {
    for (let i = 0; i < 40; i++) {
      w.enter(0, "idwrap_on_syscall");
      await sleep(5);
      w.leave();
    }
  });
  assertEquals(fired, []);
});
