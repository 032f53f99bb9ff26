/**
 * on_supervisor_loss (issue 17): when the supervisor of a tree dies for good — here SIGKILLed, so none of its
 * clean-up runs — idwrap-holder gives the tree the chosen answer: `kill` (the default) ends it, `deny` fails each
 * notified call with EPERM at a bounded rate. Never the kernel's ENOSYS storm. Each test has its control in it: the
 * same run with the holder SIGKILLed first (what idwrap did before the holder) shows the ENOSYS storm, so the test can
 * fail. Real `idwrap run` processes, a real seccomp filter, as root and as an ordinary user.
 */
import { scratchDir } from "../temp.ts";
import { ensureUser, writePolicy } from "../helpers.ts";
import { dirname } from "node:path";
import { LOSS_POLICY, startStorm, supervisorLossDeny, supervisorLossKill } from "../sources/seccomp/holder_harness.ts";

const USER_BASE = await scratchDir({ prefix: "idwrap-loss-home-" });
await Deno.chmod(USER_BASE, 0o755);
const USER_HOME = `${USER_BASE}/home`;

const policy = await writePolicy(LOSS_POLICY);
await Deno.chmod(dirname(policy), 0o755); // the ordinary user reads it too

for (const who of ["root", "an ordinary user"] as const) {
  Deno.test(`on_supervisor_loss kill (${who}): idwrap SIGKILLed, the tree is killed, no call fails with ENOSYS`, async () => {
    // As an ordinary user: its own Deno cache, kept from one run to the next (the first compiles idwrap).
    const user = who === "root" ? undefined : { uid: await ensureUser("idwrap-loss"), home: USER_HOME };
    await supervisorLossKill((mode, seconds) => startStorm({ policy, mode, seconds, user }));
  });
}

Deno.test("on_supervisor_loss deny: idwrap SIGKILLed, every open fails with EPERM at a bounded rate, never ENOSYS", () =>
  supervisorLossDeny((mode, seconds) => startStorm({ policy, mode, seconds })));
