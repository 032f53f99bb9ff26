/**
 * A `signal:` rule holds on every call that carries a signal (red team rt7 F4: a SIGKILL deny on the signal calls was
 * met by tkill, rt_sigqueueinfo and pidfd_send_signal, whose signal the host did not decode), and a `signal:` on a
 * call that carries none is refused with file and line instead of never matching. tests/progs/signal_forms.c sends
 * SIGKILL to a fresh child by each call; unwrapped every child dies (the control).
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { IDWRAP, prog, run, writePolicy } from "../helpers.ts";

const FORMS = [
  "kill",
  "kill-high-word",
  "tkill",
  "tgkill",
  "rt_sigqueueinfo",
  "rt_tgsigqueueinfo",
  "pidfd_send_signal",
];

Deno.test("a signal: deny holds on kill, tkill, tgkill, rt_sigqueueinfo, rt_tgsigqueueinfo and pidfd_send_signal", async () => {
  const bare = await run(prog("signal_forms"), []);
  assertEquals(bare.stdout.trim().split("\n"), FORMS.map((f) => `${f} KILLED`));
  const policy = await writePolicy(`version: 2
name: no-sigkill
rules:
  - id: no-sigkill
    syscalls: [kill, tkill, tgkill, rt_sigqueueinfo, rt_tgsigqueueinfo, pidfd_send_signal]
    signal: SIGKILL
    action: deny
`);
  const r = await run(IDWRAP, ["run", "-p", policy, "--", prog("signal_forms")]);
  assertEquals(r.code, 0, r.stderr);
  assertEquals(r.stdout.trim().split("\n"), FORMS.map((f) => `${f} held`), r.stderr);
  assert(/; \d+ calls notified, 7 denied,/.test(r.stderr), r.stderr);
});

Deno.test("a signal: condition on a call that carries no signal is refused with file and line", async () => {
  const policy = await writePolicy(`version: 2
name: bad-signal
rules:
  - id: odd
    syscalls: [kill, openat]
    signal: SIGKILL
    action: deny
`);
  const r = await run(IDWRAP, ["policy", "check", policy]);
  assertEquals(r.code, 2, r.stdout + r.stderr);
  assert(
    (r.stdout + r.stderr).includes(":6: rules[0].signal: signal: never matches openat, which carries no signal"),
    r.stdout + r.stderr,
  );
});
