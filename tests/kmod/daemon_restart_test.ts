/**
 * `idwrap daemon --system-wide` across `idwrap daemon --restart`, for real:
 * Debian's kernel under qemu (./harness.ts), the module built here, `./idwrap`
 * run in the guest through `chroot /host`. One boot, two rounds:
 *
 * - carry (the default): a program started outside idwrap (a copy of dash
 *   named `wsh`, wrapped because the policy's criteria name it) is denied an
 *   open by a rule and alerted on another before the restart; the daemon
 *   re-executes itself keeping /dev/idwrap open; the same process, which did
 *   not exec again, is still denied and still alerted on after it (the new
 *   program learns it from its next call). A second wrapped program (`wsh2`,
 *   a copy of bash) opens a file five times a second through the restart:
 *   each of its calls is answered, by the daemon or, past the module's
 *   timeout, with the policy's fail action — none hangs.
 * - control (IDWRAP_DAEMON_KMOD_CARRY=0, the behaviour before): the session
 *   ends at the restart and the new one does not know the program: its open
 *   of the denied file succeeds, and no alert is recorded after the restart.
 *
 * Then the kernel log must hold no warning, bug or oops, and the module must
 * unload. Ignored (with the reason printed) when tests/kmod/setup.sh has not run.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import {
  buildModule,
  guestSections,
  kernel,
  ROOT,
  runInVm,
  sectionReader,
  type Sections,
  SETUP_HINT,
} from "./harness.ts";
import { watToWasm } from "../runtime/wat.ts";
import { denyOpenWat } from "../sources/kmod/wrappers.ts";

const k = await kernel();
const skip = "missing" in k;
if (skip) console.log(`tests/kmod (daemon restart): SKIPPED: ${k.missing}. To run these tests: ${SETUP_HINT}`);

/** Files the guest reads: under the repository (the guest's /tmp is its own tmpfs). */
const V = `${ROOT}build/kmod/restarttest`;
const IDWRAP = `${ROOT}idwrap`;
const T = "/tmp/k"; // the guest's scratch dir (inside the chroot)

/** The watched program's loop: one command a line on its fifo, each answered on its output; no exec, no fork. */
const LOOP = `exec 3<> "$1/ctl"
exec 4>> "$1/out"
while read cmd <&3; do
  { read x < ${T}/denied; } 2>/dev/null; echo "$cmd-deny=$?" >&4
  { read x < ${T}/forbidden; } 2>/dev/null; echo "$cmd-forbid=$?" >&4
  { read x < ${T}/alerted; } 2>/dev/null; echo "$cmd-alert=$?" >&4
  [ "$cmd" = quit ] && exit 0
done
`;

/**
 * Opens a file five times a second until told to stop: calls in flight across the restart. bash's `read -t` on a fifo
 * no one writes is the pause (no exec, no fork; a tighter loop starves the emulated guest, the restart with it).
 */
const SPIN =
  `exec 5<> ${T}/pause; while [ ! -e ${T}/stopspin ]; do read x < ${T}/public; echo $?; read -t 0.2 <&5; done; exit 0`;

const guestScript = () => `
set -u
export NO_COLOR=1
sec() { echo "@@S $1"; }
mkdir -p ${T}
printf 'SECRET denied\\n' > ${T}/denied; printf 'FORBIDDEN\\n' > ${T}/forbidden
printf 'ALERTED\\n' > ${T}/alerted; printf 'PUBLIC\\n' > ${T}/public
cp /bin/dash ${T}/wsh; cp /bin/bash ${T}/wsh2; mkfifo ${T}/pause
waitfor() { n=0; until grep -q "$1" "$2" || [ $n -ge 600 ]; do sleep 0.5; n=$((n+1)); done; grep -q "$1" "$2"; }
# round NAME [ENV=VALUE]: a daemon, a program it wraps, a restart, the program's calls before and after.
round() {
  R=${T}/$1; mkdir -p $R; mkfifo $R/ctl; : > $R/out
  DOPTS="--system-wide --no-watch -p ${V}/restart.yaml --run-dir /tmp/run-$1 --store /tmp/$1.kv"
  env $2 ${IDWRAP} daemon $DOPTS >$R/daemon.log 2>&1 &
  DPID=$!
  waitfor "serving users" $R/daemon.log; echo "daemon-ready=$?"
  ${T}/wsh ${V}/loop.sh $R &
  WPID=$!
  echo before > $R/ctl
  waitfor "before-alert" $R/out
  rm -f ${T}/stopspin
  ${T}/wsh2 -c '${SPIN}' > $R/spin.out 2> $R/spin.err &
  SPID=$!
  waitfor "^0" $R/spin.out
  t0=$(cut -d' ' -f1 /proc/uptime)
  ${IDWRAP} daemon --restart $DOPTS > $R/restart.out 2>&1; echo "restart-rc=$?"
  # --restart gives up waiting after 2 minutes; under emulation on a loaded machine the daemon may take longer.
  n=0; until [ $(grep -c "serving users" $R/daemon.log) -ge 2 ] || [ $n -ge 600 ]; do sleep 0.5; n=$((n+1)); done
  echo "restart-seconds=$(awk "BEGIN{print $(cut -d' ' -f1 /proc/uptime) - $t0}")"
  echo "same-pid=$(grep -c "restarted in place (pid $DPID)" $R/daemon.log)"
  # The spinning program goes on being answered after the restart: a few more of its opens, then it stops.
  lines=$(wc -l < $R/spin.out); n=0
  until [ $(wc -l < $R/spin.out) -ge $((lines + 5)) ] || [ $n -ge 240 ]; do sleep 0.5; n=$((n+1)); done
  touch ${T}/stopspin; wait $SPID; echo "spin-rc=$?"
  echo "spin-statuses=$(sort -u $R/spin.out | tr '\\n' ' ')"
  echo "spin-last=$(tail -n 1 $R/spin.out)"
  echo quit > $R/ctl
  wait $WPID; echo "wsh-rc=$?"
  cat $R/out
  grep -E "^(timeouts|waited|denied) " /proc/idwrap
  kill -TERM $DPID; wait $DPID; echo "daemon-rc=$?"
  ${IDWRAP} audit query --store /tmp/$1.kv --json > $R/audit.jsonl 2>&1; echo "audit-rc=$?"
  echo "wsh-records pid=$WPID alerted=$(grep '"seen-alerted"' $R/audit.jsonl | grep -c "\\"process.pid\\":$WPID[,}]") denied=$(grep '"no-denied"' $R/audit.jsonl | grep -c "\\"process.pid\\":$WPID[,}]")"
  sec $1-log; cat $R/daemon.log $R/restart.out; echo "spin stderr:"; sort $R/spin.err | uniq -c
}
sec carry; round carry IDWRAP_DAEMON_KMOD_CARRY=1
sec control; round control IDWRAP_DAEMON_KMOD_CARRY=0
sec end
`;

/** The busybox side: load the module, run the guest script in the chroot, show the kernel's complaints. */
const vmScript = (ko: string) => `
insmod /host${ko} || { echo "@@S fatal"; echo "insmod failed"; exit 1; }
chroot /host /bin/sh ${V}/guest.sh
echo "@@S dmesg"
dmesg | grep -E 'WARNING|BUG|Oops|INFO: task|rcu_sched|lockup|general protection|refcount_t' || true
echo "@@S unload"
rmmod idwrap && echo "rmmod ok"
`;

let booted: Promise<Sections> | undefined;

/** Boots once for all tests. */
function vm(): Promise<Sections> {
  return booted ??= (async () => {
    const ko = await buildModule();
    await Deno.mkdir(V, { recursive: true });
    await Deno.writeFile(`${V}/deny.wasm`, watToWasm(denyOpenWat(`${T}/forbidden`)));
    // The wrapper's criteria wrap `wsh` system-wide; the rules apply to what is wrapped.
    await Deno.writeTextFile(
      `${V}/restart.yaml`,
      `version: 1
name: kmod-restart
rules:
  - { id: no-denied, syscalls: [openat], path: "${T}/denied", action: deny, errno: EACCES }
  - { id: seen-alerted, syscalls: [openat], path: "${T}/alerted", action: alert }
wrappers:
  - name: forbid
    module: ${V}/deny.wasm
    activate: { program: [wsh, wsh2] }
`,
    );
    await Deno.writeTextFile(`${V}/loop.sh`, LOOP);
    await Deno.writeTextFile(`${V}/guest.sh`, guestScript());
    const r = await runInVm(vmScript(ko), { timeoutMs: 900_000 });
    console.log(`  one boot for the daemon restart tests: ${(r.ms / 1000).toFixed(0)} s (output: ${V}/output.txt)`);
    await Deno.writeTextFile(`${V}/output.txt`, r.output);
    return guestSections(r.output);
  })();
}

const section = sectionReader(vm);

/** `key=value` of a round's output. */
function value(text: string, key: string): string {
  const m = text.match(new RegExp(`^${key}=(.*)$`, "m"));
  assert(m, `no ${key}= in:\n${text}`);
  return m[1];
}

/** The restart happened in place; `--restart` said so, or gave up waiting for it (2 minutes) on a slow guest. */
function restarted(out: string, log: string): void {
  assertEquals(value(out, "same-pid"), "1", out + log);
  const rc = value(out, "restart-rc");
  assert(rc === "0" || log.includes("does not serve 120 s after it restarted"), out + log);
  assert((log.match(/serving users/g) ?? []).length === 2, out + log);
}

/** How many audit records of the program's alert rule and deny rule a round's store holds. */
function records(text: string): [number, number] {
  const rec = text.match(/^wsh-records pid=\d+ alerted=(\d+) denied=(\d+)$/m);
  assert(rec, `no wsh-records line in:\n${text}`);
  return [Number(rec[1]), Number(rec[2])];
}

Deno.test({
  name: "kmod (VM): a system-wide daemon's restart keeps the module's session: the program it wrapped is still denied",
  ignore: skip,
  async fn() {
    const out = await section("carry");
    const log = await section("carry-log");
    const all = out + log;
    assertEquals(value(out, "daemon-ready"), "0", all);
    restarted(out, log);
    // Before: wrapped (rule deny: 2, the wrapper's deny: 2, the alert rule allows: 0).
    assertEquals([value(out, "before-deny"), value(out, "before-forbid"), value(out, "before-alert")], ["2", "2", "0"]);
    // After, the same process (it never exec'd again): still denied by the rule and the wrapper.
    assertEquals([value(out, "quit-deny"), value(out, "quit-forbid"), value(out, "quit-alert")], ["2", "2", "0"], all);
    assertEquals(value(out, "wsh-rc"), "0", all);
    assert(log.includes("the kernel module's session goes on"), log);
    // Its alert and deny are recorded before and after the restart: twice the control's records, which end with it.
    const [alerted, denied] = records(out);
    const [alertedOnce, deniedOnce] = records(await section("control"));
    assert(alertedOnce > 0 && deniedOnce > 0, all);
    assertEquals([alerted, denied], [2 * alertedOnce, 2 * deniedOnce], all);
    // Calls in flight across the restart: every one answered (0), or failed by the module's fail action at its
    // timeout (bash's 1 for a redirection that failed: EPERM); the program stopped when asked, and its last opens were
    // answered again.
    assertEquals(value(out, "spin-rc"), "0", all);
    assert(/^(0 |0 1 )$/.test(value(out, "spin-statuses")), all);
    assert(
      !/Operation not permitted/.test(log) ||
        /\d+ \/tmp\/k\/wsh2: line 1: \/tmp\/k\/public: Operation not permitted/.test(log),
      log,
    );
    assertEquals(value(out, "spin-last"), "0", all);
    assertEquals(value(out, "daemon-rc"), "0", all);
  },
});

Deno.test({
  name: "kmod (VM): control: with IDWRAP_DAEMON_KMOD_CARRY=0 the session ends at the restart and the program is free",
  ignore: skip,
  async fn() {
    const out = await section("control");
    const log = await section("control-log");
    const all = out + log;
    restarted(out, log);
    assertEquals([value(out, "before-deny"), value(out, "before-forbid"), value(out, "before-alert")], ["2", "2", "0"]);
    // The new session does not know the program: its opens go through, unrecorded.
    assertEquals([value(out, "quit-deny"), value(out, "quit-forbid"), value(out, "quit-alert")], ["0", "0", "0"], all);
    assert(log.includes("the kernel module's session ends at the restart"), log);
    const [alerted, denied] = records(out);
    assert(alerted > 0 && denied > 0, all); // before the restart (after: compared with the carry round)
  },
});

Deno.test({
  name: "kmod (VM): daemon restarts: the kernel log has no warning, bug or lockup; the module unloads",
  ignore: skip,
  async fn() {
    assertEquals((await section("dmesg")).trim(), "");
    assert((await section("unload")).includes("rmmod ok"));
  },
});
