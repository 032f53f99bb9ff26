/**
 * Red team rt9 F2: on the bpf source an int 0x80 call and io_uring_setup run (this source only observes), but their
 * records said "denied" (ENOSYS, EPERM), and an alert rule on the file an i386 open read stayed silent (the record had
 * no path). Records now tell the truth: no verdict, the alert idwrap.unrefused-call with what ran, the i386 open's
 * path copied and judged by the rules as the x86_64 open. Controls in the same test: the programs show the calls ran
 * (their own output), and `cat` of the file is alerted. As root and as an ordinary user.
 */
import { deepStrictEqual as assertEquals, match as assertMatch, ok as assert } from "node:assert/strict";
import { bpfPrivilegeProblem } from "../../../host/sources/bpf/supervise.ts";
import { UNREFUSED_ALERT } from "../../../host/wss/refusal.ts";
import { compileC } from "../../../tools/build.ts";
import { calls, ensureUser, prog, ROOT, traced, writePolicy } from "../../helpers.ts";

const INT80 = `${ROOT}build/tests/bpf_int80_open`;
await Deno.mkdir(`${ROOT}build/tests`, { recursive: true });
await compileC(`${ROOT}tests/sources/bpf/fixtures/int80_open.c`, INT80, ["-no-pie"]);

Deno.test({
  name:
    "bpf: an int 0x80 open and io_uring_setup are recorded as run, not denied, and the open is judged by the file's alert rule (rt9 F2), as root and as an ordinary user",
  ignore: bpfPrivilegeProblem() !== undefined,
  async fn() {
    const policy = await writePolicy(`version: 1
name: unrefused
rules:
  - id: hostname-read
    syscalls: [open, openat]
    path: /etc/hostname
    action: alert
`);
    const uid = await ensureUser("idwrap-alice");
    const as = ["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "--"];
    for (const prefix of [[], as]) {
      const who = prefix.length ? "idwrap-alice" : "root";
      const run = (cmd: string[]) => traced("run", ["--source", "bpf", "-p", policy], [...prefix, ...cmd]);

      const control = await run(["/bin/cat", "/etc/hostname"]);
      assertEquals(control.code, 0, control.stderr);
      assert(calls(control.events).some((e) => e.alerts?.includes("hostname-read")), `${who}: cat was not alerted`);

      const int80 = await run([INT80, "/etc/hostname"]);
      assertEquals(int80.code, 0, int80.stderr);
      assertMatch(int80.stdout, /^open [0-9]+\nread [1-9][0-9]*$/m, `${who}: the i386 open and read ran`);
      const open = calls(int80.events).find((e) => e.abi === "i386" && e.syscall === "open");
      assert(open, `${who}: no record of the i386 open: ${JSON.stringify(calls(int80.events))}`);
      assertEquals(open.verdict, undefined, `${who}: the i386 open is recorded as ${open.verdict}`);
      assertEquals(open.decoded.path, "/etc/hostname");
      assertEquals(open.alerts, ["hostname-read", UNREFUSED_ALERT]);
      assertMatch(open.reason ?? "", /i386 system call ran/);
      assertEquals(int80.summary?.denied ?? 0, 0);

      const uring = await run([prog("iouring")]);
      assertEquals(uring.code, 0, uring.stderr);
      assertMatch(uring.stdout, /io_uring_setup ok/, `${who}: io_uring_setup ran`);
      const setup = calls(uring.events).find((e) => e.syscall === "io_uring_setup");
      assert(setup, `${who}: no record of io_uring_setup`);
      assertEquals(setup.verdict, undefined, `${who}: io_uring_setup is recorded as ${setup.verdict}`);
      assertEquals(setup.alerts, [UNREFUSED_ALERT]);
      assertMatch(setup.reason ?? "", /io_uring_setup ran/);
    }
  },
});
