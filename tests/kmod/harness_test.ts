/**
 * The kernel-module harness end to end: Debian's kernel boots under qemu, the
 * idwrap module built here against Debian's headers loads there, its device
 * works, it unloads cleanly, and Deno runs in the guest through the chroot.
 *
 * Skipped (with the reason) only when tests/kmod/setup.sh has not been run.
 */
import assert from "node:assert/strict";
import { buildClients, buildModule, kernel, ROOT, runInVm, SETUP_HINT } from "./harness.ts";

const k = await kernel();
const skip = "missing" in k;
if (skip) {
  console.log(`tests/kmod: SKIPPED: ${k.missing}. To run these tests: ${SETUP_HINT}`);
}
const release = skip ? "" : k.release;

/** Seconds a run took, for the log. */
function took(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}

Deno.test({
  name: "kmod harness: the guest runs Debian's extracted kernel",
  ignore: skip,
  async fn() {
    const r = await runInVm('uname -r; echo "host: $(ls /host/work >/dev/null && echo mounted)"; exit 7');
    console.log(`  boot + script + poweroff: ${took(r.ms)}`);
    assert.equal(r.code, 7, r.output);
    assert.equal(r.output, `${release}\nhost: mounted\n`);
  },
});

// What loading an out-of-tree, unsigned module may add to dmesg, and nothing
// else that matches /WARNING|BUG|Oops|[Tt]aint/ (anywhere in dmesg, boot included).
const TOLERATED = [
  /^idwrap: loading out-of-tree module taints kernel\.$/,
  /^idwrap: module verification failed: signature and\/or required key missing - tainting kernel$/,
];
// /proc/sys/kernel/tainted after that: TAINT_OOT_MODULE (O, bit 12) | TAINT_UNSIGNED_MODULE (E, bit 13).
const TAINT_OE = (1 << 12) | (1 << 13);

Deno.test({
  name: "kmod: idwrap.ko builds against Debian's headers, loads, serves /dev/idwrap 0600 and records, unloads cleanly",
  ignore: skip,
  async fn() {
    const ko = await buildModule();
    const { ctl } = await buildClients();
    // The .modinfo section names the kernel it was built for.
    const vermagic = new TextDecoder("latin1").decode(await Deno.readFile(ko)).match(/vermagic=([^\0]*)/)?.[1];
    assert.equal(vermagic?.split(" ")[0], release, `vermagic: ${vermagic}`);
    const script = `
echo "tainted-before $(cat /proc/sys/kernel/tainted)"
insmod /host${ko} && echo "insmod ok"
ls -l /dev/idwrap
echo "proc: $(head -3 /proc/idwrap | tr '\\n' ' ')"
echo "records: $(chroot /host ${ctl} -- /bin/true | grep -E '^EV (EXEC|EXIT) ' | cut -d' ' -f2 | tr '\\n' ' ')"
grep '^idwrap ' /proc/modules | cut -d' ' -f1,3,5
echo "tainted-after $(cat /proc/sys/kernel/tainted)"
rmmod idwrap && echo "rmmod ok"
[ -e /dev/idwrap ] && echo "device still there" || echo "device gone"
grep -q '^idwrap ' /proc/modules && echo "module still there" || echo "module gone"
echo "--- dmesg"
dmesg
`;
    const r = await runInVm(script);
    console.log(`  boot + module test: ${took(r.ms)}`);
    assert.equal(r.code, 0, r.output);
    const [head, dmesg = ""] = r.output.split("--- dmesg\n");
    const lines = head.trimEnd().split("\n");
    assert.equal(lines[0], "tainted-before 0", head);
    assert.equal(lines[1], "insmod ok", head);
    assert.match(lines[2], /^crw------- +1 0 +0 +10, +\d+ .* \/dev\/idwrap$/, head);
    assert.equal(lines[3], "proc: version 0.2 abi 1 opener 0 ", head);
    // read() hands out records: a watched /bin/true's exec and exit.
    assert.equal(lines[4], "records: EXEC EXIT ", head);
    assert.equal(lines[5], "idwrap 0 Live", head);
    assert.equal(lines[6], `tainted-after ${TAINT_OE}`, head);
    assert.deepEqual(lines.slice(7), ["rmmod ok", "device gone", "module gone"], head);

    const bad = dmesg.split("\n")
      .map((l) => l.replace(/^\[[ \d.]+\] /, ""))
      .filter((l) => /WARNING|BUG|Oops|[Tt]aint/.test(l))
      .filter((l) => !TOLERATED.some((re) => re.test(l)));
    assert.deepEqual(bad, [], `unexpected kernel messages:\n${dmesg}`);
    for (const re of TOLERATED) assert.ok(dmesg.split("\n").some((l) => re.test(l.replace(/^\[[ \d.]+\] /, ""))));
    assert.match(dmesg, /idwrap: version 0\.2, abi 1, \/dev\/idwrap \(minor \d+\)/);
    assert.match(dmesg, /idwrap: unloaded/);
  },
});

Deno.test({
  name: "kmod harness: Deno runs inside the guest through chroot /host",
  ignore: skip,
  async fn() {
    const deno = `${ROOT}node_modules/.bin/deno`;
    const script = `
start=$(cut -d' ' -f1 /proc/uptime)
NO_COLOR=1 chroot /host ${deno} eval 'console.log(1 + 1); console.log(Deno.osRelease())'
rc=$?
echo "deno-seconds $start $(cut -d' ' -f1 /proc/uptime)"
exit $rc
`;
    const r = await runInVm(script);
    assert.equal(r.code, 0, r.output);
    const lines = r.output.trimEnd().split("\n");
    assert.deepEqual(lines.slice(0, 2), ["2", release], r.output);
    const m = lines[2]?.match(/^deno-seconds ([\d.]+) ([\d.]+)$/);
    assert.ok(m, r.output);
    console.log(`  boot + deno: ${took(r.ms)}; deno eval in the guest: ${(Number(m[2]) - Number(m[1])).toFixed(1)} s`);
  },
});
