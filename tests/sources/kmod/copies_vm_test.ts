/**
 * Arguments the kernel reads again after the decision (issue 13, kmod item 2), for real: the module built here in
 * Debian's kernel under qemu, `./idwrap run --source kmod`. An xattr's name: a WAT wrapper denies setxattr of
 * `trusted.no` while race_xattr.c's thread flips the name between `trusted.ok` and `trusted.no` (Watson, WOOT 2007);
 * unwrapped in the same boot the flips reach the kernel's copy (the control, so the test can fail); wrapped the denied
 * attribute is never set, the allowed calls still succeed, and the flips the kernel's copy caught are refused and
 * alerted (idwrap.argument-raced). openat2's `open_how`: a decided openat2 is refused (ENOSYS: programs fall back to
 * openat, which runs on the copy) and recorded with its reason.
 *
 * IDWRAP_KMOD_RACE_ROUNDS sets the wrapped tries (default 2,000). Ignored (with the reason printed) when
 * tests/kmod/setup.sh has not run.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import {
  buildModule,
  guestSections,
  kernel,
  runInVm,
  sectionReader,
  type Sections,
  SETUP_HINT,
} from "../../kmod/harness.ts";
import { prog, ROOT } from "../../helpers.ts";
import { watToWasm } from "../../runtime/wat.ts";
import { denyXattrWat } from "./wrappers.ts";

const k = await kernel();
const skip = "missing" in k;
if (skip) console.log(`tests/sources/kmod (copies VM): SKIPPED: ${k.missing}. To run these tests: ${SETUP_HINT}`);

const V = `${ROOT}build/kmod/copiestest`;
const IDWRAP = `${ROOT}idwrap`;
const ROUNDS = Number(Deno.env.get("IDWRAP_KMOD_RACE_ROUNDS") ?? 2000);
const X = prog("race_xattr");

const guestScript = `
set -u
export NO_COLOR=1 IDWRAP_STORE=/tmp/copies.kv
mkdir -p /tmp/x && : > /tmp/x/f
echo "@@S bare-xattr"; ${X} /tmp/x/f trusted.ok trusted.no 3000
echo "@@S bare-openat2"; ${X} openat2 /etc/hostname
${IDWRAP} run --source kmod --json -o /tmp/copies.jsonl -p ${V}/copies.yaml -- /bin/sh -c '
  echo "@@S kmod-xattr"; ${X} /tmp/x/f trusted.ok trusted.no ${ROUNDS}
  echo "@@S kmod-openat2"; ${X} openat2 /etc/hostname' 2>/tmp/copies.err
rc=$?
echo "@@S kmod-end"
echo "idwrap-rc=$rc"
tail -c 2000 /tmp/copies.err
echo "raced $(grep -F idwrap.argument-raced /tmp/copies.jsonl | grep -F setxattr | grep -c -F refused)"
echo "denied $(grep -F setxattr /tmp/copies.jsonl | grep -c -F 'deny EACCES')"
echo "openat2 $(grep -c -F 'openat2 is refused' /tmp/copies.jsonl)"
`;

const vmScript = (ko: string) => `
insmod /host${ko} || { echo "@@S fatal"; echo "insmod failed"; exit 1; }
chroot /host /bin/sh ${V}/guest.sh
sec() { echo "@@S $1"; }
sec dmesg
dmesg | grep -E 'WARNING|BUG|Oops|INFO: task|rcu_sched|lockup|general protection|idwrap' || true
rmmod idwrap && echo "rmmod ok"
`;

let booted: Promise<Sections> | undefined;

function vm(): Promise<Sections> {
  return booted ??= (async () => {
    const ko = await buildModule();
    await Deno.mkdir(V, { recursive: true });
    await Deno.writeFile(`${V}/xattr.wasm`, watToWasm(denyXattrWat("trusted.no")));
    await Deno.writeTextFile(
      `${V}/copies.yaml`,
      `version: 1
name: kmod-copies
rules:
  - id: protect
    syscalls: [open, openat, openat2]
    path: /nonexistent/*
    action: deny
wrappers:
  - name: no-xattr
    module: ${V}/xattr.wasm
    activate: { program: race_xattr }
`,
    );
    await Deno.writeTextFile(`${V}/guest.sh`, guestScript);
    const r = await runInVm(vmScript(ko), { timeoutMs: 900_000 });
    console.log(`  one boot for the kmod copies tests: ${(r.ms / 1000).toFixed(0)} s (output: ${V}/output.txt)`);
    await Deno.writeTextFile(`${V}/output.txt`, r.output);
    return guestSections(r.output);
  })();
}

const section = sectionReader(vm);

Deno.test({
  name: "kmod: a racing thread never gets a denied xattr name set; the flips the kernel caught are refused (VM)",
  ignore: skip,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const bare = await section("bare-xattr");
    const b = bare.match(/calls (\d+) wins (\d+)/);
    assert(b && Number(b[2]) > 0, `the attack must work unwrapped: ${bare}`);
    const wrapped = await section("kmod-xattr");
    const m = wrapped.match(/calls (\d+) wins (\d+)/);
    assert(m, wrapped);
    assertEquals(Number(m[2]), 0, `the denied attribute was set: ${wrapped}`);
    assert(Number(m[1]) > ROUNDS / 4, `the allowed calls still succeed: ${wrapped}`);
    const end = await section("kmod-end");
    assert(/idwrap-rc=0/.test(end), end);
    assert(Number(end.match(/denied (\d+)/)?.[1]) > 0, `the wrapper denied the flips it saw: ${end}`);
    assert(Number(end.match(/raced (\d+)/)?.[1]) > 0, `the flips after the decision were refused: ${end}`);
  },
});

Deno.test({
  name: "kmod: a decided openat2 is refused with ENOSYS and recorded with why (VM)",
  ignore: skip,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    assert((await section("bare-openat2")).includes("openat2 fd"), await section("bare-openat2"));
    const wrapped = await section("kmod-openat2");
    assert(wrapped.includes("openat2 refused: Function not implemented"), wrapped);
    assert(Number((await section("kmod-end")).match(/openat2 (\d+)/)?.[1]) >= 1, await section("kmod-end"));
  },
});

Deno.test({
  name: "kmod: the kernel log is clean after the copy races and the module unloads (VM)",
  ignore: skip,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const log = await section("dmesg");
    assert(!/WARNING|BUG|Oops|INFO: task|lockup|general protection/.test(log), log);
    assert(log.includes("rmmod ok"), log);
  },
});
