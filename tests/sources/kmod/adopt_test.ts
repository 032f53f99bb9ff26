/**
 * Adopting an open /dev/idwrap (a daemon's restart hands its device to the program it becomes): an fd that is not the
 * device, or not open, is refused with the reason, before anything is configured on it. The real device's adoption
 * runs in the kernel under qemu (tests/kmod/daemon_restart_test.ts).
 */
import { ok as assert, throws } from "node:assert/strict";
import { notTheDevice } from "../../../host/sources/kmod/device.ts";
import { KmodSource } from "../../../host/sources/kmod/transport.ts";
import { openPath } from "../../../host/unsafe/libc.ts";
import { O_CLOEXEC, O_RDWR } from "../../../host/unsafe/layouts.ts";
import { buildInterest } from "../../../host/wss/interest.ts";

Deno.test("kmod adopt: an fd of another file, or none, is not the device", () => {
  const fd = openPath("/dev/null", O_RDWR | O_CLOEXEC);
  assert(fd >= 0);
  assert(notTheDevice(fd)?.includes("it is /dev/null, not /dev/idwrap"), notTheDevice(fd));
  throws(
    () => new KmodSource({ interest: buildInterest([], [], false), deviceFd: fd, systemWide: true }),
    /the device handed over \(fd \d+\): it is \/dev\/null, not \/dev\/idwrap/,
  );
  // The source owned it: closed, so that no stray copy of a real device would hold its session open.
  assert(notTheDevice(fd)?.includes("not open"), notTheDevice(fd));
  assert(notTheDevice(987654)?.includes("not open"));
});
