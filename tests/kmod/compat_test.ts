/**
 * A 32-bit supervisor can use /dev/idwrap (issue 20 item 6): an i386 program
 * (tests/kmod/client/compat32.c, freestanding, raw int 0x80 calls) opens the
 * device and runs VERSION, CONFIG, INTEREST and STATS through the module's
 * compat_ioctl, in Debian's kernel under qemu (before: ENOTTY for each).
 *
 * Ignored (with the reason printed) when tests/kmod/setup.sh has not run.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { buildModule, CLIENT_DIR, kernel, ROOT, runInVm, SETUP_HINT } from "./harness.ts";

const k = await kernel();
const skip = "missing" in k;
if (skip) console.log(`tests/kmod (compat): SKIPPED: ${k.missing}. To run these tests: ${SETUP_HINT}`);

/** Builds the i386 client without a 32-bit libc (the kernel's uapi headers are the same for both ABIs). */
async function buildCompatClient(): Promise<string> {
  const out = `${CLIENT_DIR}compat32`;
  await Deno.mkdir(CLIENT_DIR, { recursive: true });
  const cc = await new Deno.Command("cc", {
    args: [
      "-m32",
      "-static",
      "-nostdlib",
      "-ffreestanding",
      "-fno-pic",
      "-fno-stack-protector",
      "-O2",
      "-Wall",
      `-I${ROOT}kmod`,
      "-I/usr/include/x86_64-linux-gnu",
      "-o",
      out,
      `${ROOT}tests/kmod/client/compat32.c`,
    ],
  }).output();
  if (!cc.success) throw new Error(`cannot build compat32: ${new TextDecoder().decode(cc.stderr)}`);
  return out;
}

Deno.test({
  name: "kmod device: a 32-bit supervisor's ioctls work (compat_ioctl)",
  ignore: skip,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const ko = await buildModule();
    const client = await buildCompatClient();
    const r = await runInVm(`
insmod /host${ko} || { echo "insmod failed"; exit 1; }
/host${client}
/host${client}
rmmod idwrap && echo "rmmod ok"
dmesg | grep -E 'WARNING|BUG|Oops|general protection' || true
`);
    console.log(r.output.split("\n").filter((l) => l.startsWith("open=")).join("\n"));
    const lines = r.output.split("\n").filter((l) => l.startsWith("open="));
    assertEquals(lines.length, 2, r.output);
    for (const line of lines) {
      assert(/^open=[0-9]+ /.test(line), `the device opens: ${line}`);
      assert(line.includes(" version=1 "), `VERSION: ${line}`);
      assert(line.includes(" config=0 ") && line.includes(" interest=0 ") && line.includes(" stats=0 "), line);
    }
    assert(r.output.includes("rmmod ok"), r.output);
    assert(!/WARNING|BUG|Oops|general protection/.test(r.output), r.output);
  },
});
