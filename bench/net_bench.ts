/**
 * What the kernel's network decisions cost (docs/bpf.md, "Decisions in the kernel"): a loop of UDP connects to an
 * allowed port (socket, connect, close: tests/progs/net_attack.c `loop`) under a policy with one network deny rule,
 * bare, unwatched while a run's programs are attached (at the cgroup v2 root: every connect runs them), in the
 * programs' cgroup alone, and under `idwrap run` on seccomp without and with the programs and on bpf
 * (the programs alone judge the connects); ratios to bare's median from the same run.
 *
 *   deno task build && deno run --allow-all bench/net_bench.ts [--rounds 5] [--connects 5000]
 *
 * Every round runs every case once, in a rotated order. The per-connect time is measured by the program, so idwrap's
 * own start is not in it.
 *
 * @module
 */
import { scratchDir } from "../tests/temp.ts";
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";
import { median, table } from "./_report.ts";
import { compileKernelNet } from "../host/policy/net_kernel.ts";
import { parsePolicy } from "../host/policy/policy.ts";
import { KernelNet } from "../host/sources/bpf/net.ts";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const ATTACK = `${ROOT}build/tests/net_attack`;
const POLICY = `version: 2
name: c2-port
rules:
  - { id: c2-port, syscalls: [connect, sendto, sendmsg, sendmmsg], action: deny, port: [4444] }
`;

const { values } = parseArgs({ options: { rounds: { type: "string" }, connects: { type: "string" } } });
const rounds = Number(values.rounds ?? 5), connects = String(values.connects ?? 5000);
const policyFile = `${await scratchDir()}/policy.yaml`;
await Deno.writeTextFile(policyFile, POLICY);
/** Runs `fn` while one run's programs are attached (at the cgroup v2 root, acting on their tree's cgroup). */
async function withNet(fn: (net: KernelNet) => Promise<number>): Promise<number> {
  const net = KernelNet.open(compileKernelNet([parsePolicy(POLICY, policyFile)]));
  try {
    return await fn(net);
  } finally {
    net.close();
  }
}

async function nsPerConnect(cmd: string, args: string[], env: Record<string, string> = {}): Promise<number> {
  const out = await new Deno.Command(cmd, { args, env, stdout: "piped", stderr: "null" }).output();
  const m = new TextDecoder().decode(out.stdout).match(/ns_per_connect ([\d.]+)/);
  if (!m) throw new Error(`${cmd} ${args.join(" ")}: no result`);
  return Number(m[1]);
}

const loop = [ATTACK, "loop", "29234", connects];
const idwrap = (source: string) => [`${ROOT}idwrap`, "run", "--source", source, "-p", policyFile, "--", ...loop];
const cases: [string, () => Promise<number>][] = [
  ["bare", () => nsPerConnect(loop[0], loop.slice(1))],
  // Every connect of the machine runs the programs while a run is attached: what an unwatched one pays.
  ["bare, unwatched, a run's programs attached", () => withNet(() => nsPerConnect(loop[0], loop.slice(1)))],
  [
    "bare, in the programs' cgroup",
    () =>
      withNet((net) => nsPerConnect("sh", ["-c", `echo $$ > ${net.cgroup}/cgroup.procs && exec ${loop.join(" ")}`])),
  ],
  [
    "seccomp, rule on seccomp only",
    () => nsPerConnect(idwrap("seccomp")[0], idwrap("seccomp").slice(1), { IDWRAP_KERNEL_NET: "0" }),
  ],
  ["seccomp + kernel programs", () => nsPerConnect(idwrap("seccomp")[0], idwrap("seccomp").slice(1))],
  ["bpf source, kernel programs alone", () => nsPerConnect(idwrap("bpf")[0], idwrap("bpf").slice(1))],
];
const results = new Map<string, number[]>(cases.map(([id]) => [id, []]));
for (let r = 0; r < rounds; r++) {
  for (let i = 0; i < cases.length; i++) {
    const [id, fn] = cases[(i + r) % cases.length];
    results.get(id)!.push(await fn());
  }
}
const bare = median(results.get("bare")!);
console.log(`UDP socket + connect + close, ${connects} per run, ${rounds} runs; medians (ns) and ratio to bare`);
console.log(table([
  ["case", "ns per connect", "vs bare", "runs"],
  ...[...results].map(([id, xs]) => [
    id,
    median(xs).toFixed(0),
    `${(median(xs) / bare).toFixed(2)}×`,
    xs.map((x) => x.toFixed(0)).join(" "),
  ]),
]));
