/**
 * One accurate report per kernel exec kill on the bpf source (red team rt8 M3): the host's own decision on the exec's
 * enter record used to be reported too, as a late kill ("the call was only observed"), before the kernel's. Now the
 * kill is reported once, as the kernel's, at sched_process_exec; the control is the same command unwrapped.
 */
import { scratchDir } from "../../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { calls, run, traced, writePolicy } from "../../helpers.ts";

Deno.test("bpf exec kill: one report, the kernel's, none as a late kill", async () => {
  const dir = await scratchDir({ prefix: "idwrap-execfix-" });
  try {
    const target = `${dir}/listed`;
    await Deno.copyFile("/usr/bin/echo", target);
    await Deno.chmod(target, 0o755);
    const policy = await writePolicy(`version: 2
name: exec-report
rules:
  - id: no-listed
    syscalls: "%exec"
    path: ${target}
    action: kill
`);
    const script = `${target} marker; echo rc=$?`;
    const control = await run("sh", ["-c", script]);
    assert(control.stdout.includes("marker"), `control: unwrapped the program runs: ${control.stdout}`);
    const { stdout, events } = await traced("run", ["--source", "bpf", "-p", policy], ["sh", "-c", script]);
    assert(!stdout.includes("marker") && stdout.includes("rc=137"), stdout);
    const reported = calls(events).filter((e) => e.alerts?.includes("no-listed") || e.verdict === "kill");
    assertEquals(reported.length, 1, JSON.stringify(reported, null, 1));
    assertEquals(reported[0].verdict, "kill");
    assert(/killed in the kernel at sched_process_exec/.test(reported[0].reason ?? ""), reported[0].reason);
    assert(!events.some((e) => e.kind === "syscall" && /late kill/.test(e.reason ?? "")));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
