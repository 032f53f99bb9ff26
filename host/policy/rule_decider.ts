/**
 * Decides calls by a policy's rules: the first deny or kill that matches
 * wins; matching alert rules are recorded on the event.
 *
 * @module
 */
import picomatch from "picomatch";
import type { Decider } from "../decider.ts";
import type { SyscallEvent, Verdict } from "../events.ts";
import { ALLOW } from "../events.ts";
import { resolveSyscalls } from "../syscalls/mod.ts";
import type { Policy, Rule } from "./policy.ts";

interface CompiledRule {
  rule: Rule;
  matchPath?: (path: string) => boolean;
}

/** A Decider over one or more policies' rules, in file order. */
export class RuleDecider implements Decider {
  readonly syscalls: ReadonlySet<number>;
  readonly #byNr = new Map<number, CompiledRule[]>();

  constructor(policies: Policy[]) {
    const all = new Set<number>();
    for (const policy of policies) {
      for (const nr of resolveSyscalls(policy.observe)) all.add(nr);
      for (const rule of policy.rules) {
        const compiled: CompiledRule = {
          rule,
          matchPath: rule.path === undefined ? undefined : picomatch(rule.path, { dot: true }),
        };
        for (const nr of resolveSyscalls(rule.syscalls)) {
          all.add(nr);
          const list = this.#byNr.get(nr) ?? [];
          list.push(compiled);
          this.#byNr.set(nr, list);
        }
      }
    }
    this.syscalls = all;
  }

  examines(nr: number): boolean {
    return this.#byNr.has(nr);
  }

  decide(event: SyscallEvent): Verdict {
    for (const { rule, matchPath } of this.#byNr.get(event.nr) ?? []) {
      if (matchPath && (event.decoded.path === undefined || !matchPath(event.decoded.path))) continue;
      if (rule.action === "alert") {
        (event.alerts ??= []).push(rule.id);
        continue;
      }
      (event.alerts ??= []).push(rule.id);
      return rule.action === "kill" ? { action: "kill" } : { action: "deny", errno: rule.errno };
    }
    return ALLOW;
  }
}
