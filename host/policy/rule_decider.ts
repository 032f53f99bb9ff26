/**
 * Decides calls by a policy's rules: the first deny or kill that matches
 * wins; matching alert rules are recorded on the event — at the attempt, or
 * for `when: success` once the call succeeded (its post event, or for an
 * exec the new program's exec event), where the source reports that.
 *
 * @module
 */
import picomatch from "picomatch";
import { AllowAll } from "../decider.ts";
import type { HostEvent, LifecycleEvent, SyscallEvent, Verdict } from "../events.ts";
import { ALLOW } from "../events.ts";
import type { HookTally } from "../hook_counts.ts";
import { resolveSyscalls, syscallName, syscallNumber } from "../syscalls/mod.ts";
import { type ExeAttributes, matchesCriteria, type ProcessFacts, readExeAttributes } from "./criteria_match.ts";
import { conditionHolds } from "./match.ts";
import { fsTypeOf, OVERLAYFS_SUPER_MAGIC } from "../unsafe/statfs.ts";
import type { Policy, Rule } from "./policy.ts";

interface CompiledRule {
  rule: Rule;
  /** The rule's path (version 1 form), when it has no `match`. */
  path?: string[];
  /** Fires once the call succeeded (an alert rule, where the source reports the result). */
  onSuccess: boolean;
}

/** Calls that reach a file without a path: a rule on the open family covers them too (decided by identity). */
const PATHLESS_OPENS: Readonly<Record<string, string>> = { open_by_handle_at: "open" };
const OPENS = new Set(["open", "openat", "openat2", "creat"]);
const EXECS = new Set(["execve", "execveat"]);
/** mmap: a deny or kill rule on exec with a path also covers an executable mapping of its file (the loader's way). */
export const MMAP = syscallNumber("mmap")!;

/** Files larger than this are not compared by content (an exec rule's program is far smaller). */
const MAX_COMPARED_BYTES = 64 * 1024 * 1024;
export const PROT_EXEC = 4;

/**
 * Whether a rule stops a program by its file: a deny or kill on an exec with a path. `ld.so PROG` runs PROG with only
 * an exec of the loader, which then maps PROG with PROT_EXEC: that mapping is decided as an exec of PROG.
 */
export function stopsProgram(rule: Rule): boolean {
  let stops = stopping.get(rule);
  if (stops === undefined) {
    const nrs = resolveSyscalls(rule.syscalls);
    // A rule that names mmap itself decides it as any call.
    stops = rule.action !== "alert" && hasPath(rule) && !nrs.has(MMAP) &&
      [...nrs].some((nr) => EXECS.has(syscallName(nr)));
    stopping.set(rule, stops);
  }
  return stops;
}
const stopping = new WeakMap<Rule, boolean>();

/** Whether a rule has a path condition (its own `path`, or one in `match`). */
function hasPath(rule: Rule): boolean {
  return rule.path !== undefined || (rule.match ?? []).some((c) => c.path !== undefined);
}

/**
 * The calls a rule covers: those it names, and for a path rule on opens the opens that take no path
 * (open_by_handle_at), so that a handle to a protected file is decided as the file is.
 */
export function ruleSyscalls(rule: Rule): Set<number> {
  const nrs = resolveSyscalls(rule.syscalls);
  const names = new Set(rule.syscalls.flatMap((n) => n.startsWith("%") ? [] : [n]));
  for (const [pathless, family] of Object.entries(PATHLESS_OPENS)) {
    if (hasPath(rule) && [...names].some((n) => OPENS.has(n)) && family === "open") {
      nrs.add(syscallNumber(pathless)!);
    }
  }
  if (stopsProgram(rule)) nrs.add(MMAP);
  return nrs;
}

/** The calls whose results a source reports: every call, or these (docs/policy.md, "when"). */
export type ResultsSeen = "all" | ReadonlySet<number>;

/** Whether an alert rule fires on success for call `nr` on a source that reports these results. */
export function firesOnSuccess(rule: Rule, nr: number, results: ResultsSeen, name: string): boolean {
  if (rule.action !== "alert" || rule.when !== "success") return false;
  // An exec's success is the new program's exec event, which every source reports.
  return results === "all" || results.has(nr) || EXECS.has(name);
}

/** A rule's match waiting for its call's result. */
interface Pending {
  nr: number;
  rules: Rule[];
}

/** A Decider over one or more policies' rules, in file order. */
export class RuleDecider extends AllowAll {
  override readonly syscalls: ReadonlySet<number>;
  readonly #byNr = new Map<number, CompiledRule[]>();
  /** Calls some rule wants the result of. */
  readonly #post = new Set<number>();
  /** Literal rule paths found missing, and when. */
  readonly #missing = new Map<string, number>();
  /** A rule's file's bytes, by path, while its dev:ino, size and mtime stay (for #sameContent). */
  readonly #contents = new Map<string, { key: string; bytes: Uint8Array }>();
  /** Per process (pid): its facts, for scopes and exceptions (set at its spawn and every exec). */
  readonly #facts = new Map<number, { facts: ProcessFacts; exe?: ExeAttributes | null; scopes: Map<Rule, boolean> }>();
  /** Per thread: matches of `when: success` rules waiting for the call's result. */
  readonly #pending = new Map<number, Pending>();

  /**
   * @param results the calls whose results the source reports ("all": kmod, bpf); an alert rule on another call fires
   *   at the attempt, as `when: attempt`.
   */
  constructor(policies: Policy[], results: ResultsSeen = "all") {
    super();
    const all = new Set<number>();
    for (const policy of policies) {
      for (const nr of resolveSyscalls(policy.observe)) all.add(nr);
      for (const rule of policy.rules) {
        for (const nr of ruleSyscalls(rule)) {
          const onSuccess = firesOnSuccess(rule, nr, results, syscallName(nr));
          const compiled: CompiledRule = {
            rule,
            path: rule.match === undefined && rule.path !== undefined ? [rule.path] : undefined,
            onSuccess,
          };
          if (onSuccess) this.#post.add(nr);
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

  override examinesPost(nr: number): boolean {
    return this.#post.has(nr);
  }

  /** A process's (new) program: its facts, for scopes and exceptions. */
  override bind(
    pid: number,
    wrappers: ReadonlySet<number> | undefined,
    _tally?: HookTally,
    facts?: ProcessFacts,
  ): void {
    if (!wrappers) {
      this.#facts.delete(pid);
      return;
    }
    if (facts) this.#facts.set(pid, { facts, scopes: new Map() });
  }

  override decide(event: SyscallEvent): Verdict {
    const success: Rule[] = [];
    for (const { rule, path, onSuccess } of this.#byNr.get(event.nr) ?? []) {
      if (!this.#ruleMatches(rule, path, event)) continue;
      if (rule.action === "alert") {
        if (onSuccess) success.push(rule);
        else record(event, rule);
        continue;
      }
      record(event, rule);
      return rule.action === "kill" ? { action: "kill" } : { action: "deny", errno: rule.errno };
    }
    // Every attempt replaces the thread's last one: a failed exec's match never fires at a later exec.
    if (success.length) this.#pending.set(event.tid, { nr: event.nr, rules: success });
    else this.#pending.delete(event.tid);
    return ALLOW;
  }

  /** A call's result, or a new program: the `when: success` matches it settles fire. */
  override observe(event: HostEvent): Verdict {
    if (event.kind === "syscall" && event.phase === "post") {
      const p = this.#pending.get(event.tid);
      if (p?.nr !== event.nr) return ALLOW;
      this.#pending.delete(event.tid);
      if (event.errno === undefined && (event.ret ?? 0) >= 0) { for (const rule of p.rules) record(event, rule); }
    } else if (event.kind === "exec") {
      // The exec ran: the thread that made it is now the leader (de_thread), so look at every thread of the process.
      for (const [tid, p] of this.#pending) {
        if (!EXECS.has(syscallName(p.nr)) || !this.#sameProcess(tid, event.pid)) continue;
        this.#pending.delete(tid);
        for (const rule of p.rules) record(event, rule);
      }
    } else if (event.kind === "exit") {
      this.#pending.delete(event.pid);
      this.#facts.delete(event.pid);
    }
    return ALLOW;
  }

  #sameProcess(tid: number, pid: number): boolean {
    if (tid === pid) return true;
    try {
      return Deno.statSync(`/proc/${pid}/task/${tid}`).isDirectory;
    } catch {
      return false;
    }
  }

  #ruleMatches(rule: Rule, path: string[] | undefined, event: SyscallEvent): boolean {
    if (event.nr === MMAP && stopsProgram(rule)) return this.#mapsProgram(rule, event);
    const pathMatch = (globs: readonly string[], e: SyscallEvent) => this.#pathMatches(globs, e);
    if (path && !this.#pathMatches(path, event)) return false;
    if (!rule.match && !rule.not && !rule.except && !rule.scope) return true;
    const facts = this.#factsOf(event);
    if (rule.scope && !this.#inScope(rule, event.pid, facts)) return false;
    for (const c of rule.match ?? []) if (!conditionHolds(c, event, facts, pathMatch)) return false;
    // A path in `not` or `except` is an exemption: it must hold for every file the call names (docs/policy.md).
    const exempt = (globs: readonly string[], e: SyscallEvent) => this.#pathExempt(globs, e, rule);
    for (const c of rule.not ?? []) if (conditionHolds(c, event, facts, exempt)) return false;
    for (const x of rule.except ?? []) {
      if (x.values.some((c) => conditionHolds(c, event, facts, exempt))) return false;
    }
    return true;
  }

  /**
   * An executable mapping of the file an exec rule names (the source decodes the mapped fd's file: path and dev:ino):
   * by the rule's literal paths' identity or its globs on the file's canonical path, in the rule's scope. The exec's
   * other conditions (argv, exceptions) have no meaning for a mapping: the file alone decides.
   */
  #mapsProgram(rule: Rule, event: SyscallEvent): boolean {
    const d = event.decoded;
    if (d.ident === undefined && d.path === undefined) return false;
    if (!this.#fileMatches(ruleGlobs(rule), d.path, d.ident, event.pid)) return false;
    return !rule.scope || this.#inScope(rule, event.pid, this.#factsOf(event));
  }

  /** The process's facts as bound; a process never bound (a test's event): its program, parent unknown. */
  #factsOf(event: SyscallEvent): ProcessFacts {
    const known = this.#facts.get(event.pid)?.facts;
    if (known && known.exe === event.program.exe) return known;
    const p = event.program;
    return { pid: event.pid, exe: p.exe, argv0: p.argv0, uid: p.uid, gid: p.gid, parentExe: known?.parentExe ?? "" };
  }

  /** The rule's scope holds for the process (cached per program: facts are set again at every exec). */
  #inScope(rule: Rule, pid: number, facts: ProcessFacts): boolean {
    const entry = this.#facts.get(pid);
    const cached = entry?.facts === facts ? entry.scopes.get(rule) : undefined;
    if (cached !== undefined) return cached;
    const exe = () => {
      if (entry?.facts !== facts) return readExeAttributes(`/proc/${pid}/exe`);
      if (entry.exe === undefined) entry.exe = readExeAttributes(`/proc/${pid}/exe`) ?? null;
      return entry.exe ?? undefined;
    };
    const holds = matchesCriteria(rule.scope!, facts, exe);
    if (entry?.facts === facts) entry.scopes.set(rule, holds);
    return holds;
  }

  /**
   * One of the files the call names (its path, or the second one: rename's and link's target) matches: its path
   * (canonical where the source resolves it) matches a glob, or — for a literal path — it is the very file the rule
   * names (same dev:ino: a hard link, a handle, any alias). The rule's file is stat'ed at each check, in the host's
   * world, so a file replaced since is the new file (a missing one once a second).
   */
  #pathMatches(globs: readonly string[], event: SyscallEvent): boolean {
    const pid = EXECS.has(event.syscall) ? event.pid : undefined;
    return filesOf(event).some(([path, ident]) => this.#fileMatches(globs, path, ident, pid));
  }

  /**
   * @param execBy for an exec (or an executable mapping) by this process: a file on an overlayfs with the very bytes
   *   of a literal's file matches too — a view of the program (`unshare -Urm` + a lower dir of /usr/bin: a new
   *   dev:ino, nothing written; rt9 F3). A copy elsewhere is another program (docs/policy.md).
   */
  #fileMatches(
    globs: readonly string[],
    path: string | undefined,
    ident: string | undefined,
    execBy?: number,
  ): boolean {
    for (const g of globs) {
      if (path !== undefined && matcher(g)(path)) return true;
      const literals = literalsOf(g);
      if (literals === undefined || ident === undefined) continue;
      if (literals.some((literal) => ident === this.#identOf(literal))) return true;
      if (execBy !== undefined && path !== undefined && literals.some((l) => this.#sameContent(l, execBy, path))) {
        return true;
      }
    }
    return false;
  }

  /**
   * Whether the file `pid` execs at `path` (in its own root and mount namespace, reached through /proc/PID/root) is on
   * an overlayfs and holds the same bytes as the rule's file `literal`. Sizes first: only a file of the very size on
   * an overlay is read.
   */
  #sameContent(literal: string, pid: number, path: string): boolean {
    let mine: Deno.FileInfo, theirs: Deno.FileInfo;
    const where = `/proc/${pid}/root${path}`;
    try {
      mine = Deno.statSync(literal);
      theirs = Deno.statSync(where);
    } catch {
      return false;
    }
    if (!mine.isFile || !theirs.isFile || mine.size !== theirs.size || mine.size > MAX_COMPARED_BYTES) return false;
    if (fsTypeOf(where) !== OVERLAYFS_SUPER_MAGIC) return false;
    const key = `${mine.dev}:${mine.ino}:${mine.size}:${mine.mtime?.getTime()}`;
    let cached = this.#contents.get(literal);
    try {
      if (cached?.key !== key) {
        cached = { key, bytes: Deno.readFileSync(literal) };
        this.#contents.set(literal, cached);
      }
      const bytes = Deno.readFileSync(where);
      return bytes.length === cached.bytes.length && bytes.every((b, i) => b === cached!.bytes[i]);
    } catch {
      return false;
    }
  }

  /**
   * A path exemption (`not`/`except`) holds for the call: every file it names is named by an exempt glob — by name
   * only, and only for a file that has no other name: not a file the rule names by identity under another name (a
   * hard link of the protected file into the exempt directory), nor a regular file with more than one link (any
   * file linked in from outside), nor one whose links cannot be checked (its dev:ino is not what the host sees at
   * that name). A file that does not exist yet (to be created) has no other name.
   */
  #pathExempt(globs: readonly string[], event: SyscallEvent, rule: Rule): boolean {
    const files = filesOf(event);
    if (!files.length) return false;
    return files.every(([path, ident]) => {
      if (path === undefined || !globs.some((g) => matcher(g)(path))) return false;
      const own = ruleGlobs(rule);
      if (ident !== undefined && !this.#fileMatches(own, path, undefined) && this.#fileMatches(own, undefined, ident)) {
        return false;
      }
      let info: Deno.FileInfo | undefined;
      try {
        info = Deno.statSync(path);
      } catch {
        return ident === undefined;
      }
      if (ident !== undefined && `${info.dev}:${info.ino}` !== ident) return false;
      return !(info.isFile && (info.nlink ?? 1) > 1);
    });
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

/** The files a call names: [path, dev:ino] of its path, and of its second path where it has one. */
function filesOf(event: SyscallEvent): [string | undefined, string | undefined][] {
  const d = event.decoded;
  const out: [string | undefined, string | undefined][] = [];
  if (d.path !== undefined || d.ident !== undefined) out.push([d.path, d.ident]);
  if (d.path2 !== undefined || d.ident2 !== undefined) out.push([d.path2, d.ident2]);
  return out;
}

/** A rule's own path globs (its `path`, and those of its `match` conditions). */
function ruleGlobs(rule: Rule): string[] {
  return [...(rule.path !== undefined ? [rule.path] : []), ...(rule.match ?? []).flatMap((c) => c.path ?? [])];
}

/** Records a matched rule on an event: its id, and its ATT&CK ids and tags. */
function record(event: SyscallEvent | LifecycleEvent, rule: Rule): void {
  const e = event;
  (e.alerts ??= []).push(rule.id);
  if (e.kind === "exec" || (e.kind === "syscall" && e.phase === "post")) (e.onSuccess ??= []).push(rule.id);
  for (const t of rule.attack ?? []) if (!(e.attack ??= []).includes(t)) e.attack.push(t);
  for (const t of rule.tags ?? []) if (!(e.tags ??= []).includes(t)) e.tags.push(t);
}

const matchers = new Map<string, (s: string) => boolean>();
function matcher(glob: string): (s: string) => boolean {
  let m = matchers.get(glob);
  if (!m) matchers.set(glob, m = picomatch(glob, { dot: true }));
  return m;
}

const literalCache = new Map<string, string[] | undefined>();
function literalsOf(glob: string): string[] | undefined {
  if (!literalCache.has(glob)) literalCache.set(glob, literalPaths(glob));
  return literalCache.get(glob);
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
