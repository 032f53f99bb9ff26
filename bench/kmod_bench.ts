/**
 * The kernel module's cost per system call, inside one boot of Debian's 6.1
 * kernel under qemu (TCG): a getppid loop (bench/c/loop.c) bare, observed by
 * the module (PRE_OBSERVE, records read by idwrapctl), decided by it
 * (PRE_DECIDE, idwrapctl answers allow), and under the seccomp user-notify
 * floor supervisor (bench/c/floor_supervisor.c) for the comparison.
 * Everything is pinned to one vCPU (a cross-vCPU wakeup under TCG costs
 * milliseconds and would measure qemu, not the module). Under emulation the
 * absolute times mean little; the ratios are what we quote.
 *
 *   ./node_modules/.bin/deno run --allow-all bench/kmod_bench.ts [N] [N_DECIDED] [--save-run]
 *
 * @module
 */
import { buildClients, buildModule, kernel, KMOD_BUILD, ROOT, runInVm, SETUP_HINT } from "../tests/kmod/harness.ts";
import { keepResults, median, table } from "./_report.ts";

const positional = Deno.args.filter((a) => !a.startsWith("--"));
const [N, N_DECIDED] = [Number(positional[0] ?? 200_000), Number(positional[1] ?? 20_000)];
const RUNS = 3;

const k = await kernel();
if ("missing" in k) {
  console.log(`kmod bench: ${k.missing}; run ${SETUP_HINT}`);
  Deno.exit(0);
}

const ko = await buildModule();
const { ctl } = await buildClients();
const bin = `${KMOD_BUILD}bench/`;
await Deno.mkdir(bin, { recursive: true });
for (const name of ["loop", "floor_supervisor"]) {
  const out = await new Deno.Command("gcc", {
    args: ["-O2", "-Wall", "-o", `${bin}${name}`, `${ROOT}bench/c/${name}.c`],
  }).output();
  if (!out.success) throw new Error(`gcc ${name}: ${new TextDecoder().decode(out.stderr)}`);
}

// Each line: "<case> <calls> <elapsed ns>". loop.c writes its number to /tmp/n; under
// floor_supervisor (which runs it as \`LOOP N notified\`) to stdout. On 6.1 the floor supervisor
// does not see the POLLHUP it waits for once its child is gone: it is killed after the number.
const script = `
insmod /host${ko} || exit 1
run() { # case calls command...
  c=$1; n=$2; shift 2
  rm -f /host/tmp/n
  chroot /host taskset -c 0 "$@" >/dev/null 2>&1
  echo "$c $n $(cat /host/tmp/n)"
}
seccomp() { # calls
  rm -f /host/tmp/out
  chroot /host taskset -c 0 ${bin}floor_supervisor ${bin}loop $1 >/host/tmp/out 2>/dev/null &
  for i in $(seq 1 1200); do grep -qE '^[0-9]+$' /host/tmp/out && break; sleep 0.1; done
  kill -9 $!
  echo "seccomp $1 $(grep -E '^[0-9]+$' /host/tmp/out)"
}
for i in $(seq 1 ${RUNS}); do
  run bare ${N} ${bin}loop ${N} notified /tmp/n
  run observed ${N} ${ctl} --quiet --pre getppid -- ${bin}loop ${N} notified /tmp/n
  run decided ${N_DECIDED} ${ctl} --quiet --decide getppid -- ${bin}loop ${N_DECIDED} notified /tmp/n
  seccomp ${N_DECIDED}
done
grep -E "^(events|waited|lost) " /proc/idwrap
dmesg | grep -E "WARNING|BUG|Oops|lockup" || true
`;
const r = await runInVm(script, { timeoutMs: 600_000 });
if (r.code !== 0) throw new Error(r.output);
const per = new Map<string, number[]>();
for (const m of r.output.matchAll(/^(\w+) (\d+) (\d+)$/gm)) {
  per.set(m[1], [...per.get(m[1]) ?? [], Number(m[3]) / Number(m[2])]);
}
const bare = median(per.get("bare") ?? [NaN]);
const rows = [["getppid", "ns/call (median of 3)", "× bare"]];
for (const [name, xs] of per) rows.push([name, median(xs).toFixed(0), (median(xs) / bare).toFixed(2)]);
console.log(table(rows));
const seccomp = median(per.get("seccomp") ?? [NaN]);
const decided = median(per.get("decided") ?? [NaN]);
console.log(`decided / seccomp: ${(decided / seccomp).toFixed(2)}   (boot ${(r.ms / 1000).toFixed(0)} s)`);
console.log(r.output.split("\n").filter((l) => !/^\w+ \d+ \d+$/.test(l)).join("\n"));
await keepResults(ROOT, "kmod", {
  guest: { release: k.release, version: k.version },
  calls: { observed: N, decided: N_DECIDED },
  runs: RUNS,
  nsPerCall: Object.fromEntries(per),
  bootMs: r.ms,
});
