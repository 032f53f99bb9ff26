/**
 * Hook time for the metrics: each wrapper's outermost hooks are counted and timed, nested hooks count in the outer
 * one's time, and a reload that renames an index credits what ran before to the old name.
 *
 * @module
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { HookWatch, HookWatchdog } from "../../host/runtime/watchdog.ts";

function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) { /* spin */ }
}

Deno.test("hook time per wrapper: outermost hooks counted and timed, kept by name across a reload", () => {
  const dog = new HookWatchdog(() => {});
  try {
    const watch = new HookWatch();
    watch.attach(dog.buffer);
    dog.names = ["a", "b"];
    watch.enter(0, "idwrap_on_syscall");
    busy(20);
    watch.enter(1, "idwrap_on_abstract"); // nested: counts in a's time
    busy(5);
    watch.leave();
    watch.leave();
    watch.enter(1, "idwrap_on_syscall");
    watch.leave();
    const byName = (list: ReturnType<HookWatchdog["hookTimes"]>) => new Map(list.map((h) => [h.wrapper, h]));
    let t = byName(dog.hookTimes());
    assertEquals([t.get("a")?.calls, t.get("b")?.calls], [1, 1]);
    assert(t.get("a")!.seconds >= 0.025 && t.get("a")!.seconds < 1, String(t.get("a")!.seconds));
    assert(t.get("b")!.seconds < 0.02);
    // A reload puts "c" at index 0: a's time stays a's, c counts from zero.
    dog.names = ["c", "b"];
    watch.enter(0, "idwrap_on_syscall");
    watch.leave();
    t = byName(dog.hookTimes());
    assertEquals([t.get("a")?.calls, t.get("b")?.calls, t.get("c")?.calls], [1, 1, 1]);
    assert(t.get("a")!.seconds >= 0.025);
  } finally {
    dog.close();
  }
});
