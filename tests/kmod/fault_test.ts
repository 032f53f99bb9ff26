/**
 * The module's failure paths, driven for real with the test-only build
 * (`make IDWRAP_FAULT_INJECT=1`, kmod/idwrap_fault.c; docs/kmod.md, "The
 * fault-injection build"): each allocation site is made to fail in a VM and
 * every failure must end as a deny or a kill, never an unwatched child or a
 * call run unchecked; the IBT guard is forced on; tasks still in
 * idwrap_pre() emit records while the session ends and the module unloads,
 * many times. One boot; its kernel log must stay clean and the module must
 * unload at the end. The production build has none of these knobs.
 *
 * Run on another kernel with IDWRAP_KMOD_KERNEL (docs/kmod.md, "Kernels").
 */
import assert from "node:assert/strict";
import { buildClients, buildModule, kernel, KMOD_BUILD, runInVm, SETUP_HINT } from "./harness.ts";

const k = await kernel();
const skip = "missing" in k;
if (skip) console.log(`tests/kmod: SKIPPED: ${k.missing}. To run these tests: ${SETUP_HINT}`);

/** Kernel messages that mean something went wrong. */
const BAD = /WARNING|BUG|Oops|lockup|scheduling while atomic|Call Trace|general protection|refcount_t/;

/** Rounds of "tasks in idwrap_pre while the session ends and the module unloads". */
const TIMER_ROUNDS = 10;

async function script(): Promise<string> {
  const ko = await buildModule();
  const fko = await buildModule({ faultInject: true });
  const { ctl, work } = await buildClients();
  return `
KO=/host${ko}
FKO=/host${fko}
C=${ctl}
W=${work}
ctl() { timeout -s KILL 60 chroot /host $C "$@"; }
sec() { echo "=== $1"; }
P=/sys/module/idwrap/parameters
# fault SITE NTH TIMES: fail allocations at SITE from its NTH on, TIMES of them (-1: all).
fault() { echo -n "$1" > $P/fail_site; echo "$3" > $P/fail_times; echo "$2" > $P/fail_nth; }
nofault() { echo "injected $(cat $P/injected)"; echo 0 > $P/fail_nth; }
echo SECRET > /host/tmp/secret; echo PUBLIC > /host/tmp/public
for v in v0 v1 v2 v3 v4; do touch /host/tmp/$v; done
sec production
insmod $KO || echo "insmod failed"
[ -d $P ] && echo "params: $(ls $P | tr '\\n' ' ')" || echo "params: none"
grep -E "^(ibt_kernel|ibt) " /proc/idwrap
ctl --selftest | grep -E "^(VERSION|OPEN-FAILED)"
rmmod idwrap && echo "rmmod ok"
insmod $FKO || echo "insmod fault build failed"
echo "params: $(ls $P | tr '\\n' ' ')"
sec ibt
echo Y > $P/force_ibt
grep -E "^ibt " /proc/idwrap
ctl --selftest | grep -E "^(VERSION|OPEN-FAILED)"
echo "ibt-log $(dmesg | grep -c 'not opening /dev/idwrap: kernel IBT is enabled')"
echo N > $P/force_ibt
ctl --selftest | grep -E "^(VERSION|OPEN-FAILED)"
sec unwrapped
chroot /host $W forkopen /tmp/secret
chroot /host $W kill-self; echo "kill-self status $?"
sec ring
fault ring 1 -1
ctl -- $W open /tmp/secret | grep -E "^(OPEN-FAILED|open )"
nofault
sec watch-ioctl
fault watch 1 1
ctl --deny openat:/tmp/secret:EACCES -- $W forkopen /tmp/secret | grep -E "^(WATCH-FAILED|forkopen|CHILD-STATUS)"
nofault
sleep 1
sec watch-fork-control
ctl --deny openat:/tmp/secret:EACCES -- $W forkopen /tmp/secret | grep -E "^(forkopen|CHILD-STATUS)"
sec watch-fork
fault watch 2 -1
ctl --deny openat:/tmp/secret:EACCES -- $W forkopen /tmp/secret | grep -E "^(forkopen|CHILD-STATUS)"
nofault
sec record-control
ctl --decide unlinkat -- $W unlink /tmp/v0 | grep -E "^(survived|CHILD-STATUS)"
[ -e /host/tmp/v0 ] && echo "v0 exists" || echo "v0 gone"
sec record
fault record 1 -1
ctl --fail deny --decide unlinkat -- $W unlink /tmp/v1 | grep -E "^(survived|CHILD-STATUS)"
nofault
[ -e /host/tmp/v1 ] && echo "v1 exists" || echo "v1 gone"
sec expect
fault expect 1 -1
ctl --fail deny --decide unlinkat -- $W unlink /tmp/v2 | grep -E "^(survived|CHILD-STATUS)"
nofault
[ -e /host/tmp/v2 ] && echo "v2 exists" || echo "v2 gone"
sec open-control
ctl --decide openat -- $W openrel /tmp public | grep -E "^(openrel|CHILD-STATUS)"
sec open
fault open 1 -1
ctl --decide openat -- $W openrel /tmp public | grep -E "^(openrel|CHILD-STATUS)"
nofault
sec tstate-control
ctl --rewrite kill:1:0 -- $W kill-self | grep -E "^(alive|CHILD-STATUS)"
sec tstate
fault tstate 1 -1
ctl --rewrite kill:1:0 -- $W kill-self | grep -E "^(alive|CHILD-STATUS)"
nofault
sec defer-control
ctl --exec-sync -- $W open /tmp/public | grep -E "^(open |CHILD-STATUS)"
sec defer
fault defer 1 -1
ctl --fail deny --exec-sync -- $W open /tmp/public | grep -E "^(open |CHILD-STATUS)"
nofault
sec defer-post
fault defer 1 -1
ctl --fail deny --post-kill unlinkat -- $W unlink /tmp/v3 | grep -E "^(survived|CHILD-STATUS|EV SYSCALL .*POST)"
nofault
sec unload-fault
rmmod idwrap && echo "rmmod ok"
sec timer
# Observed opens whose string is not resident: copied in idwrap_pre(), which sleeps 4 s (a task in module code
# while the session ends, and after: rmmod-spin unloads the moment the last one leaves); the wake timer, if armed,
# would fire 3 s later, after the module has gone.
for r in $(seq 1 ${TIMER_ROUNDS}); do
  insmod $FKO observe_sleep_ms=4000 wake_delay_ms=3000 || { echo "round $r: insmod failed"; break; }
  ctl --pre openat --seconds 60 -- $W faultopens 6000 4 > /tmp/t.log &
  i=0; until grep -qE "^inflight [1-9]" /proc/idwrap || [ $i -ge 100 ]; do sleep 0.05; i=$((i+1)); done
  inf=$(sed -n 's/^inflight //p' /proc/idwrap)
  kill -9 $(sed -n 's/^PID //p' /tmp/t.log)
  i=0; until grep -q "^opener 0$" /proc/idwrap || [ $i -ge 100 ]; do sleep 0.05; i=$((i+1)); done
  echo "round $r inflight-at-close $inf after-close $(sed -n 's/^inflight //p' /proc/idwrap) $(grep '^wake_timer' /proc/idwrap)"
  chroot /host $W rmmod-spin idwrap 20000 | sed "s/^/round $r /"
  wait
done
sleep 4
grep -q "^idwrap " /proc/modules && echo "module still there" || echo "module gone"
`;
}

type Sections = Map<string, string>;
let boot: Promise<Sections> | undefined;

function run(): Promise<Sections> {
  return boot ??= (async () => {
    const body = await script();
    const r = await runInVm(`${body}\nsec dmesg\ndmesg\n`, { timeoutMs: 420_000, singleThreadTcg: true });
    console.log(`  fault boot: ${(r.ms / 1000).toFixed(1)} s`);
    await Deno.writeTextFile(`${KMOD_BUILD}fault-boot.out`, r.output).catch(() => {});
    const out = new Map<string, string>();
    for (const part of r.output.split(/^=== /m).slice(1)) {
      const nl = part.indexOf("\n");
      out.set(part.slice(0, nl), part.slice(nl + 1));
    }
    assert.ok(out.has("dmesg"), `the boot did not reach the end:\n${r.output}`);
    return out;
  })();
}

async function section(name: string): Promise<string> {
  const text = (await run()).get(name);
  assert.ok(text !== undefined, `no section ${name}`);
  return text;
}

/** The kernel the boot runs was built with CONFIG_X86_KERNEL_IBT=y (its headers' .config). */
async function ibtKernel(): Promise<boolean> {
  if ("missing" in k) return false;
  return /^CONFIG_X86_KERNEL_IBT=y$/m.test(await Deno.readTextFile(`${k.headers}/.config`));
}

Deno.test({
  name: "kmod fault build: the production module has no test knobs (modinfo, sysfs); the test build has them",
  ignore: skip,
  async fn() {
    const info = await new Deno.Command("/sbin/modinfo", { args: ["-p", await buildModule()] }).output();
    assert.ok(info.success);
    assert.equal(new TextDecoder().decode(info.stdout).trim(), "");
    const finfo = await new Deno.Command("/sbin/modinfo", { args: ["-p", await buildModule({ faultInject: true })] })
      .output();
    assert.match(new TextDecoder().decode(finfo.stdout), /^fail_nth:/m);
    const t = await section("production");
    assert.match(t, /^params: none$/m);
    assert.match(t, /^rmmod ok$/m);
    assert.match(t, /^params: .*fail_nth .*force_ibt /m);
  },
});

Deno.test({
  name: "kmod IBT guard: with IBT on (forced) the device refuses to open and says why; the real detection reads off",
  ignore: skip,
  async fn() {
    const p = await section("production");
    // The real path: the kernel's own answer (the CPU feature), off under TCG (no CET) on every kernel.
    assert.match(p, new RegExp(`^ibt_kernel ${(await ibtKernel()) ? "y" : "n"}$`, "m"));
    assert.match(p, /^ibt off$/m);
    assert.match(p, /^VERSION \d+$/m);
    const t = await section("ibt");
    const [forced, after] = t.split("ibt-log");
    assert.match(forced, /^ibt on$/m);
    assert.match(forced, /^OPEN-FAILED Operation not supported$/m);
    assert.doesNotMatch(forced, /^VERSION/m);
    assert.match(t, /^ibt-log [1-9]/m);
    // Guard off again: it opens (the refusal was the guard's).
    assert.match(after, /^VERSION \d+$/m);
  },
});

Deno.test({
  name: "kmod fault: no memory for the session's ring: the device does not open, the workload never runs",
  ignore: skip,
  async fn() {
    const t = await section("ring");
    assert.match(t, /^OPEN-FAILED Cannot allocate memory$/m);
    assert.doesNotMatch(t, /^open /m);
    assert.match(t, /^injected [1-9]/m);
  },
});

Deno.test({
  name: "kmod fault: no memory for a watch entry: WATCH fails (the child never runs); at fork the child dies unwatched",
  ignore: skip,
  async fn() {
    const u = await section("unwrapped");
    // The attack, unwrapped: a forked child reads the secret.
    assert.match(u, /^forkopen child fd=\d+ errno=- data=SECRET$/m);
    const w = await section("watch-ioctl");
    assert.match(w, /^WATCH-FAILED Cannot allocate memory$/m);
    assert.doesNotMatch(w, /^forkopen/m);
    const c = await section("watch-fork-control");
    assert.match(c, /^forkopen child fd=-1 errno=Permission denied data=$/m);
    assert.match(c, /^forkopen child-exit status=0$/m);
    const t = await section("watch-fork");
    // The child's watch entry could not be made: killed before it ran, never an unwatched child.
    assert.doesNotMatch(t, /^forkopen child fd=/m);
    assert.match(t, /^forkopen child-killed sig=9$/m);
    assert.match(t, /^forkopen parent fd=-1 errno=Permission denied data=$/m);
    assert.doesNotMatch(t, /SECRET/);
    assert.match(t, /^injected [1-9]/m);
  },
});

Deno.test({
  name: "kmod fault: no memory for a decided call's record or its copies: the call fails, never runs undecided",
  ignore: skip,
  async fn() {
    const c = await section("record-control");
    assert.match(c, /^survived unlink=0$/m);
    assert.match(c, /^v0 gone$/m);
    for (const [name, victim] of [["record", "v1"], ["expect", "v2"]]) {
      const t = await section(name);
      assert.match(t, /^survived unlink=-1$/m, `${name}:\n${t}`);
      assert.match(t, new RegExp(`^${victim} exists$`, "m"), `${name}:\n${t}`);
      assert.match(t, /^injected [1-9]/m, `${name}:\n${t}`);
    }
  },
});

Deno.test({
  name: "kmod fault: no memory for the emulated open's joined name: the open fails (ENOMEM), opens nothing",
  ignore: skip,
  async fn() {
    assert.match(await section("open-control"), /^openrel fd=\d+ errno=- data=PUBLIC$/m);
    const t = await section("open");
    assert.match(t, /^openrel fd=-1 errno=Cannot allocate memory data=$/m);
    assert.match(t, /^injected [1-9]/m);
  },
});

Deno.test({
  name: "kmod fault: no memory for a rewritten register's note: the call is not run (neither original nor rewritten)",
  ignore: skip,
  async fn() {
    // Unwrapped, kill-self dies (SIGKILL: 128 + 9); rewritten, it lives and kill() returned 0.
    assert.match(await section("unwrapped"), /^kill-self status 137$/m);
    assert.match(await section("tstate-control"), /^alive ret=0 /m);
    const t = await section("tstate");
    assert.match(t, /^alive ret=-12 /m);
    assert.match(t, /^injected [1-9]/m);
  },
});

Deno.test({
  name: "kmod fault: no memory for a deferred decision (EXEC_SYNC, POST_DECIDE): the process is killed",
  ignore: skip,
  async fn() {
    assert.match(await section("defer-control"), /^open fd=\d+ errno=- .*data=PUBLIC$/m);
    const t = await section("defer");
    // The exec's decision could not be queued: killed before the new program ran.
    assert.doesNotMatch(t, /^open /m);
    assert.match(t, /^CHILD-STATUS 9$/m);
    assert.match(t, /^injected [1-9]/m);
    const p = await section("defer-post");
    assert.match(p, /^CHILD-STATUS 9$/m);
    assert.doesNotMatch(p, /survived/);
    // Killed by the fail path: no POST record ever reached the supervisor.
    assert.doesNotMatch(p, /^EV SYSCALL .*POST/m);
    assert.match(p, /^injected [1-9]/m);
  },
});

Deno.test({
  name: `kmod wake timer: ${TIMER_ROUNDS} x tasks in idwrap_pre emit while the session ends and the module unloads`,
  ignore: skip,
  async fn() {
    const t = await section("timer");
    const rounds = t.split("\n").filter((l) => /^round \d+ inflight-at-close/.test(l));
    assert.equal(rounds.length, TIMER_ROUNDS, t);
    // Most rounds really ended the session with tasks inside the module (the workload's 4 threads sleep there), and
    // still had them when the session had ended: the unload waited for them (more than one delete_module).
    assert.ok(rounds.filter((l) => / inflight-at-close [1-9] after-close [1-9]/.test(l)).length >= TIMER_ROUNDS / 2, t);
    const spins = t.split("\n").filter((l) => /^round \d+ rmmod-spin ok tries=([2-9]|\d\d+) /.test(l));
    assert.ok(spins.length >= TIMER_ROUNDS / 2, t);
    // After the session ended, no timer armed (a 3 s delay: it would still be pending here).
    for (const l of rounds) assert.match(l, / wake_timer idle$/, t);
    assert.equal(t.split("\n").filter((l) => /^round \d+ rmmod-spin ok /.test(l)).length, TIMER_ROUNDS, t);
    assert.match(t, /^module gone$/m);
  },
});

Deno.test({
  name: "kmod fault boot: the module unloads after every injected failure and the kernel log stays clean",
  ignore: skip,
  async fn() {
    assert.match(await section("unload-fault"), /^rmmod ok$/m);
    const log = await section("dmesg");
    assert.deepEqual(log.split("\n").filter((l) => BAD.test(l)), [], log);
    assert.match(log, /test build: failing allocation \d+ at watch/);
  },
});
