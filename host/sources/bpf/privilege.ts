/**
 * Who may load the bpf programs, and the refusal a run gets when it cannot be served: shared by the source
 * (supervise.ts) and the network programs (net_run.ts), which the seccomp and hybrid runs start too.
 *
 * @module
 */

/** The bpf source cannot serve what was asked, or this process cannot load it: bad usage, exit 2. */
export class BpfRefusal extends Error {
  override name = "BpfRefusal";
}

/** Effective capabilities that let a process load and attach the programs (linux/capability.h). */
const CAP_SYS_ADMIN = 21n, CAP_PERFMON = 38n, CAP_BPF = 39n;

/**
 * Why this process cannot load the bpf programs, or undefined when it can: tracing programs need CAP_BPF and
 * CAP_PERFMON, or CAP_SYS_ADMIN (root has them).
 *
 * @param status /proc/self/status's text
 */
export function bpfPrivilegeProblem(status = Deno.readTextFileSync("/proc/self/status")): string | undefined {
  const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  if (hex === undefined) return "cannot read the effective capabilities (/proc/self/status has no CapEff)";
  const eff = BigInt(`0x${hex}`);
  const has = (cap: bigint) => (eff >> cap & 1n) === 1n;
  if (has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON))) return undefined;
  return `uid ${Deno.uid()} lacks CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN), which loading the bpf programs needs: ` +
    "run idwrap as root, or use --source seccomp (any user)";
}
