/**
 * Conditions on a call's decoded arguments, as a rule, a macro, a `not:` or
 * an exception writes them (docs/policy.md, "Conditions"): the path, open
 * flags in the user's words, execve's argv, a socket address's family,
 * address and port, kill's signal and target; in exceptions also the
 * process's program, parent and user. Parsed and checked here with the
 * policy; matched by host/policy/match.ts.
 *
 * Conditions are plain data (structured-clonable: they cross to the
 * supervisor's worker with the policy).
 *
 * @module
 */
import { globProblem } from "./criteria.ts";

/** Open flags in a rule's words, each a test on the call's O_* flags. */
export const OPEN_FLAG_WORDS = [
  "read",
  "write",
  "create",
  "truncate",
  "append",
  "exclusive",
  "directory",
  "nofollow",
  "path",
  "tmpfile",
  "cloexec",
  "nonblock",
  "sync",
] as const;
export type OpenFlagWord = typeof OPEN_FLAG_WORDS[number];

/** Socket address families a rule names (the decoded address's prefix). */
export const FAMILIES = ["inet", "inet6", "unix", "netlink", "packet"] as const;

/** kill targets by their relation to the caller, or a pid. */
export const TARGET_WORDS = ["self", "group", "all", "other"] as const;
export type Target = typeof TARGET_WORDS[number] | number;

/** Signal numbers by name (x86_64, asm-generic/signal.h). */
export const SIGNALS: Readonly<Record<string, number>> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGILL: 4,
  SIGTRAP: 5,
  SIGABRT: 6,
  SIGBUS: 7,
  SIGFPE: 8,
  SIGKILL: 9,
  SIGUSR1: 10,
  SIGSEGV: 11,
  SIGUSR2: 12,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
  SIGSTKFLT: 16,
  SIGCHLD: 17,
  SIGCONT: 18,
  SIGSTOP: 19,
  SIGTSTP: 20,
  SIGTTIN: 21,
  SIGTTOU: 22,
  SIGURG: 23,
  SIGXCPU: 24,
  SIGXFSZ: 25,
  SIGVTALRM: 26,
  SIGPROF: 27,
  SIGWINCH: 28,
  SIGIO: 29,
  SIGPWR: 30,
  SIGSYS: 31,
};

/** A set of conditions: every present one must hold; a list within one holds if any entry does. */
export interface Condition {
  /** Globs on the call's (canonical) path. */
  path?: string[];
  /** Open flag words: the call's flags include any of them. */
  flags?: OpenFlagWord[];
  /** Globs: some argument of execve's argv (argv[0] included) matches one. */
  argv?: string[];
  /** Globs per argv position: argv[i] matches one of its globs, for every position given. */
  argvAt?: Record<number, string[]>;
  /** Inclusive port ranges of the socket address. */
  port?: [number, number][];
  /** Globs on the address without family and port ("127.0.0.1", "10.*", "[::1]", a unix path). */
  address?: string[];
  family?: string[];
  /** Signal numbers. */
  signal?: number[];
  target?: Target[];
  /** Exceptions and `not` only: globs on the program (as activation criteria). */
  program?: string[];
  parent?: string[];
  /** Real uids. */
  user?: number[];
}

/** The condition fields of a rule, a macro or `not:`. */
export const CALL_FIELDS = ["path", "flags", "argv", "port", "address", "family", "signal", "target"] as const;
/** The fields an exception (and `not:`) may also name: the process's. */
export const PROCESS_FIELDS = ["program", "parent", "user"] as const;

type Path = (string | number)[];
type Fail = (path: Path, detail: string) => never;

/** Named lists (`lists:`) a value may reference as `$name`. */
export type Lists = ReadonlyMap<string, unknown[]>;

/** Resolves `$name` references in a value: a list name expands to its entries. */
function expand(v: unknown, path: Path, lists: Lists, fail: Fail): unknown[] {
  const items = Array.isArray(v) ? v : [v];
  const out: unknown[] = [];
  items.forEach((item, i) => {
    const at = Array.isArray(v) ? [...path, i] : path;
    if (typeof item === "string" && item.startsWith("$")) {
      const list = lists.get(item.slice(1));
      if (!list) {
        fail(
          at,
          `unknown list ${JSON.stringify(item.slice(1))}: expected one of lists: ${
            [...lists.keys()].join(", ") || "none defined"
          }`,
        );
      }
      out.push(...list!);
    } else out.push(item);
  });
  if (out.length === 0) fail(path, "expected a value or a non-empty list of them");
  return out;
}

/** Globs, checked: a leading "!" is refused (picomatch would negate it silently). */
export function parseGlobs(v: unknown, path: Path, lists: Lists, fail: Fail): string[] {
  return expand(v, path, lists, fail).map((g) => {
    if (typeof g !== "string") fail(path, `expected a glob string, got ${JSON.stringify(g)}`);
    const s = g as string;
    if (s.startsWith("!")) {
      fail(path, `bad glob ${JSON.stringify(s)}: a leading "!" does not negate here; write the condition under not:`);
    }
    const problem = globProblem(s);
    if (problem) fail(path, `bad glob ${JSON.stringify(s)}: ${problem}`);
    return s;
  });
}

function words<T extends string>(v: unknown, path: Path, lists: Lists, fail: Fail, allowed: readonly T[]): T[] {
  return expand(v, path, lists, fail).map((w) => {
    if (typeof w !== "string" || !(allowed as readonly string[]).includes(w)) {
      fail(path, `expected one of ${allowed.join(", ")}, got ${JSON.stringify(w)}`);
    }
    return w as T;
  });
}

/** Parses one condition field's value into `out`. */
function parseField(
  key: string,
  v: unknown,
  at: Path,
  lists: Lists,
  fail: Fail,
  out: Condition,
  ids: (v: unknown, path: Path) => number,
): void {
  switch (key) {
    case "path":
    case "address":
    case "program":
    case "parent":
      out[key] = parseGlobs(v, at, lists, fail);
      return;
    case "flags":
      out.flags = words(v, at, lists, fail, OPEN_FLAG_WORDS);
      return;
    case "family":
      out.family = words(v, at, lists, fail, FAMILIES);
      return;
    case "argv":
      if (v !== null && typeof v === "object" && !Array.isArray(v)) {
        const byPos: Record<number, string[]> = {};
        for (const [k, g] of Object.entries(v as Record<string, unknown>)) {
          if (!/^[0-9]+$/.test(k)) fail([...at, k], "expected an argument position (0, 1, …)");
          byPos[Number(k)] = parseGlobs(g, [...at, k], lists, fail);
        }
        if (Object.keys(byPos).length === 0) fail(at, "expected at least one argument position");
        out.argvAt = byPos;
      } else out.argv = parseGlobs(v, at, lists, fail);
      return;
    case "port":
      out.port = expand(v, at, lists, fail).map((p) => {
        const m = typeof p === "string" ? /^([0-9]+)-([0-9]+)$/.exec(p) : null;
        const range: [number, number] = m ? [Number(m[1]), Number(m[2])] : [p as number, p as number];
        if (
          !range.every((n) => Number.isInteger(n) && n >= 0 && n <= 65535) || range[0] > range[1]
        ) fail(at, `expected a port (0 to 65535) or a range "LOW-HIGH", got ${JSON.stringify(p)}`);
        return range;
      });
      return;
    case "signal":
      out.signal = expand(v, at, lists, fail).map((s) => {
        if (typeof s === "number" && Number.isInteger(s) && s >= 0 && s <= 64) return s;
        const name = typeof s === "string" ? (s.startsWith("SIG") ? s : `SIG${s}`).toUpperCase() : "";
        if (SIGNALS[name] === undefined) {
          fail(at, `expected a signal name (SIGKILL, TERM…) or number 0 to 64, got ${JSON.stringify(s)}`);
        }
        return SIGNALS[name];
      });
      return;
    case "target":
      out.target = expand(v, at, lists, fail).map((t) => {
        if (typeof t === "number" && Number.isInteger(t)) return t;
        if (typeof t !== "string" || !(TARGET_WORDS as readonly string[]).includes(t)) {
          fail(at, `expected one of ${TARGET_WORDS.join(", ")} or a pid, got ${JSON.stringify(t)}`);
        }
        return t as Target;
      });
      return;
    case "user":
      out.user = expand(v, at, lists, fail).map((u, i) => ids(u, Array.isArray(v) ? [...at, i] : at));
      return;
  }
}

/**
 * Parses the condition fields of `raw` (a rule, macro, `not:` or exception entry) into a Condition; other keys are
 * left to the caller. `process`: the process fields (program, parent, user) are allowed too.
 */
export function parseCondition(
  raw: Record<string, unknown>,
  at: Path,
  lists: Lists,
  fail: Fail,
  ids: (v: unknown, path: Path) => number,
  process = false,
): Condition {
  const out: Condition = {};
  const fields: readonly string[] = process ? [...CALL_FIELDS, ...PROCESS_FIELDS] : CALL_FIELDS;
  for (const [key, v] of Object.entries(raw)) {
    if (fields.includes(key)) parseField(key, v, [...at, key], lists, fail, out, ids);
  }
  return out;
}

/** Whether a condition has no field at all. */
export function isEmpty(c: Condition): boolean {
  return Object.keys(c).length === 0;
}

/** Both conditions at once (a field in both: each must hold, so the lists are kept apart in `and`). */
export function conjoin(a: Condition, b: Condition): Condition[] {
  return isEmpty(a) ? [b] : isEmpty(b) ? [a] : [a, b];
}
