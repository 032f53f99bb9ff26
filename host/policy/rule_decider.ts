/**
 * Decides calls by a policy's rules: the first deny or kill that matches
 * wins; matching alert rules are recorded on the event.
 *
 * @module
 */
import picomatch from "picomatch";
import { AllowAll } from "../decider.ts";
import type { SyscallEvent, Verdict } from "../events.ts";
import { ALLOW } from "../events.ts";
import { resolveSyscalls, syscallNumber } from "../syscalls/mod.ts";
import type { Policy, Rule } from "./policy.ts";

interface CompiledRule {
  rule: Rule;
  matchPath?: (path: string) => boolean;
  /** Literal paths (no glob, or only `{a,b}` alternatives of them): their files match under any name (dev:ino). */
  literals?: string[];
}

/** Calls that reach a file without a path: a rule on the open family covers them too (decided by identity). */
const PATHLESS_OPENS: Readonly<Record<string, string>> = { open_by_handle_at: "open" };
const OPENS = new Set(["open", "openat", "openat2", "creat"]);

/**
 * The calls a rule covers: those it names, and for a path rule on opens the opens that take no path
 * (open_by_handle_at), so that a handle to a protected file is decided as the file is.
 */
export function ruleSyscalls(rule: Rule): Set<number> {
  const nrs = resolveSyscalls(rule.syscalls);
  const names = new Set(rule.syscalls.flatMap((n) => n.startsWith("%") ? [] : [n]));
  for (const [pathless, family] of Object.entries(PATHLESS_OPENS)) {
    if (rule.path !== undefined && [...names].some((n) => OPENS.has(n)) && family === "open") {
      nrs.add(syscallNumber(pathless)!);
    }
  }
  return nrs;
}

/** A Decider over one or more policies' rules, in file order. */
export class RuleDecider extends AllowAll {
  override readonly syscalls: ReadonlySet<number>;
  readonly #byNr = new Map<number, CompiledRule[]>();
  /** Literal rule paths found missing, and when. */
  readonly #missing = new Map<string, number>();

  constructor(policies: Policy[]) {
    super();
    const all = new Set<number>();
    for (const policy of policies) {
      for (const nr of resolveSyscalls(policy.observe)) all.add(nr);
      for (const rule of policy.rules) {
        const compiled: CompiledRule = {
          rule,
          matchPath: rule.path === undefined ? undefined : picomatch(rule.path, { dot: true }),
          literals: rule.path === undefined ? undefined : literalPaths(rule.path),
        };
        for (const nr of ruleSyscalls(rule)) {
          all.add(nr);
          const list = this.#byNr.get(nr) ?? [];
          list.push(compiled);
          this.#byNr.set(nr, list);
        }
      }
    }
    this.syscalls = all;
  }

  override examines(nr: number): boolean {
    return this.#byNr.has(nr);
  }

  /** Rules match on decoded arguments (paths, flags, addresses). */
  override readsArgs(nr: number): boolean {
    return this.#byNr.has(nr);
  }

  override decide(event: SyscallEvent): Verdict {
    for (const { rule, matchPath, literals } of this.#byNr.get(event.nr) ?? []) {
      if (matchPath && !this.#matches(event, matchPath, literals)) continue;
      if (rule.action === "alert") {
        (event.alerts ??= []).push(rule.id);
        continue;
      }
      (event.alerts ??= []).push(rule.id);
      return rule.action === "kill" ? { action: "kill" } : { action: "deny", errno: rule.errno };
    }
    return ALLOW;
  }

  /**
   * The call's path (canonical where the source resolves it) matches the glob, or — for a literal path — the call
   * acts on the very file the rule names (same dev:ino: a hard link, a handle, any alias). The rule's file is stat'ed
   * at each check, in the host's world, so a file replaced since is the new file (a missing one once a second).
   */
  #matches(event: SyscallEvent, matchPath: (path: string) => boolean, literals: string[] | undefined): boolean {
    const d = event.decoded;
    if (d.path !== undefined && matchPath(d.path)) return true;
    if (literals === undefined || d.ident === undefined) return false;
    return literals.some((literal) => d.ident === this.#identOf(literal));
  }

  /** dev:ino of a rule's file; a missing file is looked at again after a second (a throw costs ~40 µs a call). */
  #identOf(path: string): string | undefined {
    const missing = this.#missing.get(path);
    if (missing !== undefined && performance.now() - missing < 1000) return undefined;
    try {
      const info = Deno.statSync(path);
      this.#missing.delete(path);
      return `${info.dev}:${info.ino}`;
    } catch {
      this.#missing.set(path, performance.now());
      return undefined;
    }
  }
}

/**
 * The files a path pattern names literally: itself when it has no glob, each alternative of `{a,b}` groups when those
 * are all it has (`{/etc/shadow,/etc/gshadow}`); undefined for a real glob (it names a set of names, not files).
 */
export function literalPaths(pattern: string): string[] | undefined {
  const open = pattern.indexOf("{");
  if (open < 0) return picomatch.scan(pattern).isGlob ? undefined : [pattern];
  const close = pattern.indexOf("}", open);
  const inner = pattern.slice(open + 1, close);
  if (close < 0 || inner.includes("{")) return undefined;
  const out: string[] = [];
  for (const alt of inner.split(",")) {
    const expanded = literalPaths(pattern.slice(0, open) + alt + pattern.slice(close + 1));
    if (!expanded) return undefined;
    out.push(...expanded);
  }
  return out;
}
