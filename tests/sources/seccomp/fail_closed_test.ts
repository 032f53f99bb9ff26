/**
 * Killing the host while a wrapped program runs: the program ends (killed by
 * idwrap-holder, on_supervisor_loss kill, the default) or its next notified
 * call fails with EPERM (deny); never a success, never ENOSYS; nothing hangs.
 * tests/daemon/supervisor_loss_test.ts has the controls and the rates.
 */
import { scratchDir } from "../../temp.ts";
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { IDWRAP, prog, writePolicy } from "../../helpers.ts";
import { waitFor } from "../../daemon/daemon_helpers.ts";
import { ended, LOSS_POLICY, readOrUndefined } from "./holder_harness.ts";

const WAIT_MS = 15000;

for (const mode of ["kill", "deny"] as const) {
  Deno.test(`after the host is SIGKILLed, the wrapped program ends (on_supervisor_loss ${mode})`, async () => {
    const dir = await scratchDir({ prefix: "idwrap-failclosed-" });
    const policy = await writePolicy(LOSS_POLICY);
    const host = new Deno.Command(IDWRAP, {
      args: [
        "run",
        "-p",
        policy,
        "--on-supervisor-loss",
        mode,
        "-o",
        `${dir}/report`,
        "--",
        prog("spin_open"),
        "/etc/hostname",
        `${dir}/pid`,
        `${dir}/result`,
      ],
      stdin: "null",
    }).spawn();
    const pid = Number(await waitFor("the wrapped program to start", () => readOrUndefined(`${dir}/pid`), WAIT_MS));
    host.kill("SIGKILL");
    const status = await host.status;
    assertEquals(status.signal, "SIGKILL");

    await waitFor("the wrapped program to end", () => ended(pid) || undefined, WAIT_MS);
    // kill: ended before any call failed; deny: its next open failed with EPERM (not ENOSYS, not success).
    assertEquals(await readOrUndefined(`${dir}/result`), mode === "kill" ? undefined : "errno 1");
  });
}
