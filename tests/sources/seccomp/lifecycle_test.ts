/**
 * Children, grandchildren and threads are all seen; an execve is reported
 * with the new program's identity; every process's exit is reported.
 */
import { scratchDir } from "../../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import type { LifecycleEvent } from "../../../host/events.ts";
import { calls, prog, traced } from "../../helpers.ts";

Deno.test("a child's and a grandchild's fork, exec and exit are reported with their new identity", async () => {
  const r = await traced("trace", ["-e", "%file"], [prog("forkexec"), "/etc/hostname"]);
  assertEquals(r.code, 0);
  const life = r.events.filter((e): e is LifecycleEvent => e.kind !== "syscall");
  const spawns = life.filter((e) => e.kind === "spawn");
  assertEquals(spawns.length, 3, JSON.stringify(spawns));
  // A process is reported at its first notified call (forks are not notified), so the order is not the tree's.
  const childOf = (pid: number) => spawns.filter((s) => s.ppid === pid);
  const roots = spawns.filter((s) => !spawns.some((p) => p.pid === s.ppid));
  assertEquals(roots.length, 1, JSON.stringify(spawns));
  const root = roots[0];
  assertEquals(childOf(root.pid).length, 1, JSON.stringify(spawns));
  const child = childOf(root.pid)[0];
  assertEquals(childOf(child.pid).length, 1, JSON.stringify(spawns));
  const grandchild = childOf(child.pid)[0];
  const execs = (pid: number) => life.filter((e) => e.kind === "exec" && e.pid === pid).map((e) => e.program.exe);
  assertEquals(execs(root.pid), [prog("forkexec")]);
  assertEquals(execs(child.pid), ["/usr/bin/cat"]);
  assertEquals(execs(grandchild.pid), ["/usr/bin/true"]);
  const exits = life.filter((e) => e.kind === "exit").map((e) => e.pid).sort();
  assertEquals(exits, [root.pid, child.pid, grandchild.pid].sort());
  // Calls after the exec carry the new identity.
  const catOpen = calls(r.events).find((e) => e.pid === child.pid && e.decoded.path === "/etc/hostname");
  assertEquals(catOpen?.program.exe, "/usr/bin/cat");
});

Deno.test("every thread of a multi-threaded program is seen", async () => {
  const dir = await scratchDir({ prefix: "idwrap-threads-" });
  const r = await traced("trace", ["-e", "openat"], [prog("threads"), dir]);
  assertEquals(r.code, 0);
  const opens = calls(r.events, "pre").filter((e) => e.decoded.path?.startsWith(`${dir}/thread-`));
  assertEquals(opens.length, 12);
  const pids = new Set(opens.map((e) => e.pid));
  const tids = new Set(opens.map((e) => e.tid));
  assertEquals(pids.size, 1);
  assertEquals(tids.size, 4);
  assert(![...tids].includes([...pids][0]), "the main thread opened none of them");
  for (let t = 0; t < 4; t++) {
    const mine = opens.filter((e) => e.decoded.path!.includes(`thread-${t}-`));
    assertEquals(new Set(mine.map((e) => e.tid)).size, 1, `thread ${t}'s opens come from one tid`);
    assertEquals(mine.map((e) => e.decoded.path), [0, 1, 2].map((i) => `${dir}/thread-${t}-${i}`));
  }
});

Deno.test("a signal-heavy program's notified calls complete correctly (WAIT_KILLABLE_RECV)", async () => {
  const r = await traced("trace", ["-e", "openat"], [prog("signals"), "/etc/hostname", "2000"]);
  assertEquals(r.code, 0, r.stdout + r.stderr);
  assert(/^opens 2000 failed 0 eintr 0 ticks [1-9]/.test(r.stdout), r.stdout);
  const opens = calls(r.events, "post").filter((e) => e.decoded.path === "/etc/hostname");
  assertEquals(opens.length, 2000);
  assert(opens.every((e) => (e.ret ?? -1) >= 0), "every emulated open succeeded");
});
