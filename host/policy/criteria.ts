/**
 * Activation criteria as a policy writes them: which processes a wrapper is
 * bound to, by the program they run, who invoked it, their parent, and the
 * executable file's attributes (set-id bits, owner, content hash). Parsed
 * and checked here, with the policy (docs/policy.md); the WSS evaluates them
 * (host/policy/criteria_match.ts) when it first sees a process and at every execve.
 *
 * Criteria are plain data (structured-clonable, so they cross to the
 * supervisor's worker with the policy).
 *
 * @module
 */
import { type IdDatabase, lookupId } from "./nss.ts";
import picomatch from "picomatch";

export interface Criteria {
  /** `all: true`: every process. Never combined with other conditions. */
  all?: true;
  /** Globs on the program: one with "/" on the exe path, one without on the exe's base name (never argv0). */
  program?: string[];
  /** Real uids of the invoker (names resolved at parse time). */
  user?: number[];
  /** Real gids. */
  group?: number[];
  /** Globs on the parent's exe: one with "/" on its path, one without on its base name. */
  parent?: string[];
  /** The exe file has (true) or lacks (false) S_ISUID. */
  setuid?: boolean;
  /** The exe file has (true) or lacks (false) S_ISGID. */
  setgid?: boolean;
  /** Uids owning the exe file. */
  owner?: number[];
  /** Lower-case hex SHA-256 digests of the exe file's content. */
  sha256?: string[];
}

/** The condition keys, in documentation order. */
export const CRITERIA_KEYS = [
  "all",
  "program",
  "user",
  "group",
  "parent",
  "setuid",
  "setgid",
  "owner",
  "sha256",
] as const;

type Path = (string | number)[];
type Fail = (path: Path, detail: string) => never;

/**
 * Why a glob is refused, or undefined if it is fine. The rule: not empty;
 * no leading "!" (picomatch would negate it: exclude with `deactivate`
 * instead); "\" escapes the next character; every "[" opens a class closed
 * by a later "]" (a "]" right after "[" or "[^" belongs to the class), and
 * "[!" is refused (picomatch does not negate with it: write "[^"); "{" and
 * "}" outside classes balance; picomatch.makeRe compiles it.
 */
export function globProblem(
  glob: string,
  negation = "exclude programs with deactivate instead",
): string | undefined {
  if (!glob) return "empty glob";
  if (glob.startsWith("!")) return `a leading "!" would negate it; ${negation}`;
  let braces = 0;
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === "\\") {
      i++;
      continue;
    }
    if (c === "[") {
      const start = i;
      let j = i + 1;
      if (glob[j] === "!") return `"[!" does not negate a class here: write "[^"`;
      if (glob[j] === "^") j++;
      if (glob[j] === "]") j++;
      for (; j < glob.length && glob[j] !== "]"; j++) if (glob[j] === "\\") j++;
      if (j >= glob.length) return `unclosed "[" at offset ${start}`;
      i = j;
    } else if (c === "{") {
      braces++;
    } else if (c === "}") {
      if (braces === 0) return `"}" at offset ${i} without a "{"`;
      braces--;
    }
  }
  if (braces > 0) return `unclosed "{"`;
  try {
    picomatch.makeRe(glob, { dot: true });
  } catch (e) {
    return (e as Error).message;
  }
  return undefined;
}

/**
 * Parses activation or deactivation criteria (or a rule's scope); `at` is where they are in the policy, for messages;
 * `negation` says how to exclude instead of a leading "!".
 */
export function parseCriteria(raw: unknown, at: Path, fail: Fail, negation?: string): Criteria {
  const keys = CRITERIA_KEYS.join(", ");
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    fail(at, `expected a mapping of conditions (${keys})`);
  }
  const r = raw as Record<string, unknown>;
  for (const key of Object.keys(r)) {
    if (!(CRITERIA_KEYS as readonly string[]).includes(key)) {
      fail([...at, key], `unknown condition, expected one of ${keys}`);
    }
  }
  if (Object.keys(r).length === 0) fail(at, `expected at least one condition (${keys})`);
  const out: Criteria = {};

  if (r.all !== undefined) {
    if (r.all !== true) fail([...at, "all"], `expected true (to bind a wrapper to no process, remove it)`);
    if (Object.keys(r).length > 1) fail([...at, "all"], "all: true cannot be combined with other conditions");
    out.all = true;
    return out;
  }

  /** A scalar or a list of scalars, each checked by `one`, with its own path for messages. */
  const list = <T>(key: string, expected: string, one: (v: unknown, path: Path) => T): T[] => {
    const v = r[key];
    if (Array.isArray(v)) {
      if (v.length === 0) fail([...at, key], `expected ${expected} or a non-empty list of them`);
      return v.map((item, i) => one(item, [...at, key, i]));
    }
    if (v === null || typeof v === "object") fail([...at, key], `expected ${expected} or a list of them`);
    return [one(v, [...at, key])];
  };
  const globs = (key: string) =>
    list(key, "a glob", (v, path) => {
      if (typeof v !== "string") fail(path, `expected a glob, got ${JSON.stringify(v)}`);
      const problem = globProblem(v as string, negation);
      if (problem) fail(path, `bad glob ${JSON.stringify(v)}: ${problem}`);
      return v as string;
    });
  const ids = (key: string, kind: "user" | "group", db: IdDatabase) => {
    const expected = kind === "user" ? "a user name or uid" : "a group name or gid";
    return list(key, expected, (v, path) => {
      if (typeof v === "number" || (typeof v === "string" && /^[0-9]+$/.test(v))) {
        const n = Number(v);
        if (!Number.isSafeInteger(n) || n < 0 || n > 0xffffffff) fail(path, `expected ${expected}, got ${v}`);
        return n;
      }
      if (typeof v !== "string" || !v) fail(path, `expected ${expected}, got ${JSON.stringify(v)}`);
      const id = lookupId(db, v as string);
      if (id === undefined) fail(path, `unknown ${kind} ${JSON.stringify(v)} (not found by getent ${db})`);
      return id!;
    });
  };
  const bool = (key: string) => {
    if (typeof r[key] !== "boolean") fail([...at, key], `expected true or false, got ${JSON.stringify(r[key])}`);
    return r[key] as boolean;
  };

  if (r.program !== undefined) out.program = globs("program");
  if (r.user !== undefined) out.user = ids("user", "user", "passwd");
  if (r.group !== undefined) out.group = ids("group", "group", "group");
  if (r.parent !== undefined) out.parent = globs("parent");
  if (r.setuid !== undefined) out.setuid = bool("setuid");
  if (r.setgid !== undefined) out.setgid = bool("setgid");
  if (r.owner !== undefined) out.owner = ids("owner", "user", "passwd");
  if (r.sha256 !== undefined) {
    out.sha256 = list("sha256", "a SHA-256 digest", (v, path) => {
      if (typeof v === "number") {
        fail(path, "expected 64 hexadecimal digits (quote the digest: YAML read it as a number)");
      }
      if (typeof v !== "string" || !/^[0-9a-fA-F]{64}$/.test(v)) {
        fail(path, `expected 64 hexadecimal digits, got ${JSON.stringify(v)}`);
      }
      return (v as string).toLowerCase();
    });
  }
  return out;
}
