/**
 * What the bpf source refuses before a run: the rules and wrappers that need a call decided before it runs, which
 * an observer cannot do (the kernel's own decisions, exec_rules.ts and net_run.ts, excepted).
 *
 * @module
 */
import type { Policy } from "../../policy/policy.ts";
import { DECLARE_DENY } from "../../runtime/abi.ts";
import type { WrapperModule } from "../../runtime/module.ts";
import { resolveSyscalls, syscallName } from "../../syscalls/mod.ts";
import { EXEC_NRS, execRuleProblem, isKernelExecRule } from "./exec_rules.ts";

/**
 * What in the policies needs a call decided before it runs, one line per rule or wrapper with its calls: the bpf
 * source only observes, so each is a reason to refuse the run.
 */
export function undecidableOnBpf(policies: Policy[], wrappers: WrapperModule[]): string[] {
  const out: string[] = [];
  for (const policy of policies) {
    for (const rule of policy.rules) {
      // An exec rule on literal program paths is enforced by the programs at sched_process_exec (a deny as a kill).
      if (rule.action === "alert" || isKernelExecRule(rule)) continue;
      const nrs = [...resolveSyscalls(rule.syscalls)];
      const calls = nrs.map(syscallName).join(", ");
      // An exec rule the kernel cannot decide says why (a glob, an argv condition, a script).
      const why = nrs.every((nr) => EXEC_NRS.has(nr)) ? `: not decided in the kernel: ${execRuleProblem(rule)}` : "";
      out.push(`${policy.file}: rule "${rule.id}" (action ${rule.action}) on ${calls}${why}`);
    }
  }
  // Wrapper names are unique across the policies (loadPolicyWrappers refuses a second one).
  const fileOf = new Map(policies.flatMap((p) => p.wrappers.map((w) => [w.name, p.file] as const)));
  for (const w of wrappers) {
    const calls = [...w.declarations.syscalls].filter(([, flags]) => flags & DECLARE_DENY).map(([nr]) =>
      syscallName(nr)
    );
    if (!calls.length) continue;
    out.push(`${fileOf.get(w.spec.name) ?? "(policy)"}: wrapper "${w.spec.name}" declares DENY on ${calls.join(", ")}`);
  }
  return out;
}
