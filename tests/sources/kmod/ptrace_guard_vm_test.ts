/**
 * The module's guard on the object (issue 13, kmod): no way to idwrap's process through what the kernel guards with
 * its ptrace access check, decided in security_ptrace_access_check() on the task the kernel is about to expose. For
 * real: the module built here in Debian's kernel under qemu, `./idwrap run --source kmod`, and procreach.c. Root in
 * the tree, once under a policy that decides no opens (observe only: opens never wait for the host, so the host's
 * guard never sees them) and once under the default policy, aims at idwrap: every fd of /proc/<idwrap>/fd (one is
 * its store, the journal), /proc/<idwrap>/root/<store>, readlink and open of /proc/<idwrap>/cwd, /proc/<idwrap>/mem
 * and a read, environ, map_files/, a dirfd of /proc/<idwrap> with openat("fd/N"), a symlink to /proc/<idwrap>/fd/N,
 * process_vm_readv, PTRACE_ATTACH, pidfd_getfd (by pidfd_open, and by a pidfd passed in over SCM_RIGHTS from
 * outside the tree). Controls in the same boot: each attack works as root outside the tree against a decoy root
 * process (and the fd attack against idwrap itself, from outside, during the run: idwrap holds its store), and from
 * inside the tree against the decoy (only idwrap is guarded). Wrapped: every attack on idwrap refused, idwrap
 * unharmed (the tree runs to its end, idwrap exits 0), the attempts counted (/proc/idwrap ptrace_refused) and
 * alerted (idwrap.supervisor-tamper, with the module's reason, in the run's records). Signals: a thread flips an fd between a zombie's /proc directory and
 * idwrap's while another sends SIGKILL through it with pidfd_send_signal (the host's guard reads the fd before the
 * kernel does): the same program kills a victim unwrapped; wrapped, idwrap lives through every try, and the module
 * counts the races it caught (/proc/idwrap kill_refused).
 *
 * IDWRAP_TEST_KO=path/to/idwrap.ko (under the repository: the guest sees the host's / at /host) runs the boot with
 * that module instead of the one built here: with one built without the guard, the attacks succeed.
 *
 * Ignored (with the reason printed) when tests/kmod/setup.sh has not run.
 */
import { ok as assert } from "node:assert/strict";
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

const k = await kernel();
const skip = "missing" in k;
if (skip) console.log(`tests/sources/kmod (ptrace guard VM): SKIPPED: ${k.missing}. To run these tests: ${SETUP_HINT}`);

const V = `${ROOT}build/kmod/ptraceguard`;
const IDWRAP = `${ROOT}idwrap`;
const P = prog("procreach");
const RACE = prog("race_pidsignal");
/** pidfd_send_signal(SIGKILL) tries through an fd a thread flips between a zombie's and the target's /proc dir. */
const RACE_TRIES = 2000;
/** Attacks given a file to find (the decoy's open file, idwrap's store). */
const FILE_ATTACKS = ["fd", "root", "dirfd", "symlink", "getfd"];
const PLAIN_ATTACKS = ["cwd", "mem", "environ", "map_files", "vmread", "ptrace"];
const ATTACKS = [...FILE_ATTACKS, ...PLAIN_ATTACKS, "getfd-recv"];
/** The attacks that reach the kernel's ptrace access check under the observe-only policy (the others' calls are
 * the host guard's first: pidfd_open, pidfd_getfd, ptrace, process_vm_readv wait for it in every kmod mask). */
const KERNEL_ONLY = ["fd", "root", "dirfd", "symlink", "cwd", "mem", "environ", "map_files"];
const POLICIES = ["observe", "default"];

/** The attacks, against $T with file $F, each in its own section PREFIX-ATTACK. */
const attacks = (prefix: string) =>
  [
    `for a in ${FILE_ATTACKS.join(" ")}; do echo "@@S ${prefix}-$a"; ${P} $a $T $F; done`,
    `for a in ${PLAIN_ATTACKS.join(" ")}; do echo "@@S ${prefix}-$a"; ${P} $a $T; done`,
  ].join("\n");

const tree = `
sup=$(awk "/^opener/ {print \\$2}" /proc/idwrap)
echo $sup > /tmp/sup
while [ ! -e /tmp/go ]; do sleep 0.1; done
echo "@@S $POL-opener"; echo "opener $sup"
T=$sup F=$IDWRAP_STORE
${attacks("$POL")}
echo "@@S $POL-getfd-recv"; ${P} getfd-recv /tmp/$POL.sock $F
echo "@@S $POL-decoy-fd"; ${P} fd $D /tmp/decoy.txt
kill -0 $sup && echo "idwrap alive"
# The default policy refuses our open of /proc/<idwrap> (the host's guard): a pidfd of it from outside the tree, then.
if [ $POL = observe ]; then sock=; else sock=/tmp/$POL-race.sock; fi
echo "@@S $POL-race"; ${RACE} $sup ${RACE_TRIES} $sock
echo "@@S $POL-tree-end"; echo "tree ran to its end"
`;

const guestScript = `
set -u
export NO_COLOR=1 P=${P}
echo decoy > /tmp/decoy.txt
/bin/sh -c 'exec 7</tmp/decoy.txt; exec sleep 1000' & export D=$!
sleep 0.5
T=$D F=/tmp/decoy.txt
${attacks("bare")}
${P} sendpidfd $D /tmp/bare.sock >/dev/null &
echo "@@S bare-getfd-recv"; ${P} getfd-recv /tmp/bare.sock /tmp/decoy.txt
kill -0 $D && echo "decoy alive"
sleep 1000 & victim=$!
echo "@@S bare-race"; ${RACE} $victim ${RACE_TRIES}
for POL in ${POLICIES.join(" ")}; do
  export POL IDWRAP_STORE=/tmp/$POL.kv
  rm -f /tmp/sup /tmp/go
  if [ $POL = observe ]; then pol=${V}/observe.yaml; else pol=${ROOT}policies/default.yaml; fi
  ${IDWRAP} run --source kmod --json -o /tmp/$POL.jsonl -p $pol -- /bin/sh ${V}/tree.sh 2>/tmp/$POL.err &
  w=$!
  n=0; while [ ! -s /tmp/sup ] && [ $n -lt 600 ]; do sleep 0.2; n=$((n+1)); done
  sup=$(cat /tmp/sup)
  echo "@@S $POL-outside-fd"; ${P} fd $sup $IDWRAP_STORE
  ${P} sendpidfd $sup /tmp/$POL.sock >/dev/null &
  [ $POL = observe ] || ${P} sendpidfd $sup /tmp/$POL-race.sock >/dev/null &
  touch /tmp/go
  wait $w; rc=$?
  echo "@@S $POL-end"
  echo "idwrap-rc=$rc"
  tail -c 1500 /tmp/$POL.err
  echo "refused-records $(grep -c -F 'refused by the source' /tmp/$POL.jsonl)"
  echo "tamper-records $(grep -c -F 'supervisor-tamper' /tmp/$POL.jsonl)"
  echo "module-alerts $(grep -F 'refused by the module' /tmp/$POL.jsonl | grep -c -F 'supervisor-tamper')"
  grep -F -e 'refused by the source' -e 'supervisor-tamper' /tmp/$POL.jsonl | grep -o -E '"(name|syscall)":"[a-z0-9_]+"' | sort | uniq -c
  echo "@@S $POL-stats"; cat /proc/idwrap
done
`;

const vmScript = (ko: string) => `
insmod /host${ko} || { echo "@@S fatal"; echo "insmod failed"; exit 1; }
chroot /host /bin/sh ${V}/guest.sh
echo "@@S dmesg"
dmesg | grep -E 'WARNING|BUG|Oops|INFO: task|rcu_sched|lockup|general protection|idwrap' || true
rmmod idwrap && echo "rmmod ok"
`;

let booted: Promise<Sections> | undefined;

function vm(): Promise<Sections> {
  return booted ??= (async () => {
    const ko = Deno.env.get("IDWRAP_TEST_KO") ?? await buildModule();
    await Deno.mkdir(V, { recursive: true });
    await Deno.writeTextFile(
      `${V}/observe.yaml`,
      `version: 1
name: kmod-observe-only
rules:
  - id: exec-seen
    syscalls: [execve]
    action: alert
`,
    );
    await Deno.writeTextFile(`${V}/tree.sh`, tree);
    await Deno.writeTextFile(`${V}/guest.sh`, guestScript);
    const r = await runInVm(vmScript(ko), { timeoutMs: 900_000 });
    console.log(`  one boot for the kmod ptrace guard tests: ${(r.ms / 1000).toFixed(0)} s (output: ${V}/output.txt)`);
    await Deno.writeTextFile(`${V}/output.txt`, r.output);
    return guestSections(r.output);
  })();
}

const section = sectionReader(vm);

const count = (text: string, key: string): number => Number(text.match(new RegExp(`${key} (\\d+)`))?.[1]);

for (const a of ATTACKS) {
  Deno.test({
    name: `kmod (VM): root in the tree cannot reach idwrap by ${a}, whatever the policy (the attack works outside)`,
    ignore: skip,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      const bare = await section(`bare-${a}`);
      assert(bare.includes(`${a} ok`), `the attack works against a decoy outside the tree: ${bare}`);
      for (const pol of POLICIES) {
        const wrapped = await section(`${pol}-${a}`);
        assert(wrapped.includes(`${a} refused:`), `${pol} policy: ${wrapped}`);
      }
    },
  });
}

for (const pol of POLICIES) {
  Deno.test({
    name: `kmod (VM): ${pol} policy: idwrap holds its store, lives on, and only idwrap is guarded`,
    ignore: skip,
    sanitizeResources: false,
    sanitizeOps: false,
    async fn() {
      assert(/opener \d+/.test(await section(`${pol}-opener`)), await section(`${pol}-opener`));
      const outside = await section(`${pol}-outside-fd`);
      assert(outside.includes("fd ok"), `root outside the tree opens idwrap's store through /proc: ${outside}`);
      const decoy = await section(`${pol}-decoy-fd`);
      assert(decoy.includes("fd ok"), `the tree still reaches a process outside it: ${decoy}`);
      const end = await section(`${pol}-tree-end`);
      assert(end.includes("tree ran to its end"), end);
      assert(/idwrap-rc=0/.test(await section(`${pol}-end`)), await section(`${pol}-end`));
    },
  });
}

Deno.test({
  name: `kmod (VM): a thread flipping a /proc/<idwrap> fd under pidfd_send_signal never SIGKILLs idwrap ` +
    `(${RACE_TRIES} tries per policy)`,
  ignore: skip,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const bare = await section("bare-race");
    assert(/ won 1/.test(bare), `the race kills a victim outside any tree: ${bare}`);
    for (const pol of POLICIES) {
      const race = await section(`${pol}-race`);
      assert(new RegExp(`tries ${RACE_TRIES} sent \\d+ refused [1-9]\\d* won 0`).test(race), `${pol}: ${race}`);
      assert(/idwrap-rc=0/.test(await section(`${pol}-end`)), await section(`${pol}-end`));
    }
  },
});

Deno.test({
  name: "kmod (VM): the module counts and reports the attempts it refused; the log is clean and the module unloads",
  ignore: skip,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    // Observe only: no open waits for the host, so every refusal of the KERNEL_ONLY attacks is the module's.
    const observed = count(await section("observe-stats"), "ptrace_refused");
    assert(observed >= KERNEL_ONLY.length, `ptrace_refused ${observed}: ${await section("observe-stats")}`);
    const end = await section("observe-end");
    // Each alerted as an attempt on the supervisor, with the module's reason.
    assert(count(end, "module-alerts") >= KERNEL_ONLY.length, end);
    // Default policy: the host's guard refuses and alerts what it sees first; the module refuses the rest.
    const all = count(await section("default-stats"), "ptrace_refused");
    const dend = await section("default-end");
    assert(all > observed || count(dend, "tamper-records") >= KERNEL_ONLY.length, `${all} ${observed}: ${dend}`);
    assert(count(dend, "tamper-records") >= KERNEL_ONLY.length, dend);
    assert(count(dend, "module-alerts") >= 1, `the race's catches, alerted: ${dend}`);
    // The signal race: the host's guard read the fd while it named the zombie, the kernel found idwrap there.
    const killed = count(await section("default-stats"), "kill_refused");
    assert(killed >= 1, `kill_refused ${killed}: no race reached the kernel (${await section("default-stats")})`);
    const log = await section("dmesg");
    assert(!/WARNING|BUG|Oops|INFO: task|lockup|general protection/.test(log), log);
    assert(log.includes("rmmod ok"), log);
  },
});
