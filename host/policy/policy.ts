/**
 * Policy files (YAML): what to observe and which rules decide calls. A bad
 * file is refused with its path, line, field and what was expected.
 *
 * @module
 */
import { isMap, isSeq, LineCounter, parseDocument } from "yaml";
import { errnoNumber } from "../errno.ts";
import { resolveSyscalls } from "../syscalls/mod.ts";

/** What a rule does when it matches. */
export type RuleAction = "alert" | "deny" | "kill";

/** One rule, validated. */
export interface Rule {
  id: string;
  /** Names or %groups, as written. */
  syscalls: string[];
  /** Glob on the decoded path; absent matches every call. */
  path?: string;
  action: RuleAction;
  /** For deny: the errno number. */
  errno: number;
}

/** What happens to a call when a wrapper fails on it. */
export type FailMode = "closed" | "open";

/** A wrapper a policy loads, validated. */
export interface WrapperSpec {
  /** Unique among loaded wrappers; names its key-value store. */
  name: string;
  /** A built-in wrapper's name (`wrappers/<name>/`), or a path to a .wasm (absolute, or relative to the policy). */
  module: string;
  /** Settings the wrapper reads with settings_get, as text. */
  settings: Record<string, string>;
  fail: FailMode;
  /** Memory cap per instance, MiB. */
  memoryMiB: number;
  /** CPU budget per hook call, in metering units. */
  budget: number;
  /** Consecutive failures before the wrapper is unloaded. */
  maxFailures: number;
  /** May read the clock. */
  clock: boolean;
}

/** A validated policy. */
export interface Policy {
  name: string;
  file: string;
  /** Syscalls (names or %groups) reported even when no rule examines them. */
  observe: string[];
  rules: Rule[];
  /** Wrappers, in load (layer) order. */
  wrappers: WrapperSpec[];
}

/** Defaults of a wrapper entry (docs/abi.md, Limits). */
export const WRAPPER_DEFAULTS = { fail: "closed", memoryMiB: 16, budget: 10_000_000, maxFailures: 5 } as const;

/** A policy file that cannot be used, with where and why. */
export class PolicyError extends Error {
  constructor(readonly file: string, readonly line: number, readonly field: string, detail: string) {
    super(`${file}:${line}: ${field}: ${detail}`);
    this.name = "PolicyError";
  }
}

const ACTIONS: readonly RuleAction[] = ["alert", "deny", "kill"];

/**
 * Parses and validates a policy.
 *
 * @param text the file's content
 * @param file its path, for messages
 */
export function parsePolicy(text: string, file: string): Policy {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  if (doc.errors.length) {
    const e = doc.errors[0];
    throw new PolicyError(file, lines.linePos(e.pos[0]).line, "(syntax)", e.message.split("\n")[0]);
  }
  const lineOf = (path: (string | number)[]): number => {
    for (let p = path; p.length >= 0; p = p.slice(0, -1)) {
      const node = (p.length ? doc.getIn(p, true) : doc.contents) as unknown as { range?: [number] } | undefined;
      if (node?.range) return lines.linePos(node.range[0]).line;
      if (p.length === 0) break;
    }
    return 1;
  };
  const fail = (path: (string | number)[], detail: string): never => {
    const field = path.map((p) => typeof p === "number" ? `[${p}]` : `.${p}`).join("").replace(/^\./, "") ||
      "(document)";
    throw new PolicyError(file, lineOf(path), field, detail);
  };
  if (!isMap(doc.contents)) fail([], "expected a mapping with name, observe and rules");
  const root = doc.toJS() as Record<string, unknown>;
  const known = new Set(["version", "name", "observe", "rules", "wrappers"]);
  for (const key of Object.keys(root)) {
    if (!known.has(key)) fail([key], `unknown field, expected one of ${[...known].join(", ")}`);
  }
  if (root.version !== undefined && root.version !== 1) {
    fail(["version"], `expected 1, got ${JSON.stringify(root.version)}`);
  }
  const name = root.name ?? file.replace(/^.*\//, "").replace(/\.ya?ml$/, "");
  if (typeof name !== "string" || !name) fail(["name"], "expected a non-empty string");

  const syscallList = (path: (string | number)[], value: unknown): string[] => {
    const list = typeof value === "string" ? [value] : value;
    if (!Array.isArray(list) || list.some((s) => typeof s !== "string")) {
      fail(path, "expected a syscall name, a %group, or a list of them");
    }
    try {
      resolveSyscalls(list as string[]);
    } catch (e) {
      fail(path, (e as Error).message);
    }
    return list as string[];
  };
  const observe = root.observe === undefined ? [] : syscallList(["observe"], root.observe);

  const rules: Rule[] = [];
  if (root.rules !== undefined && !isSeq(doc.get("rules"))) fail(["rules"], "expected a list of rules");
  const ids = new Set<string>();
  ((root.rules ?? []) as unknown[]).forEach((raw, i) => {
    const at = (f: string) => ["rules", i, f];
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) fail(["rules", i], "expected a mapping");
    const r = raw as Record<string, unknown>;
    for (const key of Object.keys(r)) {
      if (!["id", "syscalls", "path", "action", "errno"].includes(key)) {
        fail(at(key), "unknown field, expected one of id, syscalls, path, action, errno");
      }
    }
    const id = r.id ?? `rule-${i + 1}`;
    if (typeof id !== "string" || !id) fail(at("id"), "expected a non-empty string");
    if (ids.has(id as string)) fail(at("id"), `duplicate rule id "${id}"`);
    ids.add(id as string);
    if (r.syscalls === undefined) fail(["rules", i], "missing field syscalls");
    const syscalls = syscallList(at("syscalls"), r.syscalls);
    if (r.path !== undefined && (typeof r.path !== "string" || !r.path)) fail(at("path"), "expected a glob string");
    const action = r.action ?? "alert";
    if (!ACTIONS.includes(action as RuleAction)) {
      fail(at("action"), `expected one of ${ACTIONS.join(", ")}, got ${JSON.stringify(action)}`);
    }
    let errno = 1; // EPERM
    if (r.errno !== undefined) {
      if (action !== "deny") fail(at("errno"), "only a deny rule takes an errno");
      const n = typeof r.errno === "string" ? errnoNumber(r.errno) : undefined;
      if (n === undefined) fail(at("errno"), `expected an errno name such as EACCES, got ${JSON.stringify(r.errno)}`);
      errno = n!;
    }
    rules.push({ id: id as string, syscalls, path: r.path as string | undefined, action: action as RuleAction, errno });
  });
  const wrappers = parseWrappers(root.wrappers, file, fail);
  return { name: name as string, file, observe, rules, wrappers };
}

const WRAPPER_FIELDS = ["name", "module", "settings", "fail", "memory", "budget", "max_failures", "clock"];

function parseWrappers(
  raw: unknown,
  file: string,
  fail: (path: (string | number)[], detail: string) => never,
): WrapperSpec[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) fail(["wrappers"], "expected a list of wrappers");
  const names = new Set<string>();
  return (raw as unknown[]).map((entry, i) => {
    const at = (f: string) => ["wrappers", i, f];
    if (typeof entry === "string") entry = { name: entry, module: entry };
    if (typeof entry !== "object" || entry === null || Array.isArray(entry)) {
      fail(["wrappers", i], "expected a wrapper name or a mapping with name and module");
    }
    const w = entry as Record<string, unknown>;
    for (const key of Object.keys(w)) {
      if (!WRAPPER_FIELDS.includes(key)) fail(at(key), `unknown field, expected one of ${WRAPPER_FIELDS.join(", ")}`);
    }
    const name = w.name ??
      (typeof w.module === "string" ? w.module.replace(/^.*\//, "").replace(/\.wasm$/, "") : undefined);
    if (typeof name !== "string" || !/^[A-Za-z0-9_.-]+$/.test(name)) {
      fail(at("name"), "expected a name of letters, digits, '.', '_' or '-'");
    }
    if (names.has(name as string)) fail(at("name"), `duplicate wrapper name "${name}"`);
    names.add(name as string);
    const module = w.module ?? name;
    if (typeof module !== "string" || !module) {
      fail(at("module"), "expected a built-in wrapper name or a path to a .wasm file");
    }
    let resolved = module as string;
    if (resolved.includes("/") || resolved.endsWith(".wasm")) {
      if (!resolved.startsWith("/")) resolved = file.replace(/[^/]*$/, "") + resolved;
      try {
        Deno.statSync(resolved);
      } catch {
        fail(at("module"), `no such file: ${resolved}`);
      }
    }
    const settings: Record<string, string> = {};
    if (w.settings !== undefined) {
      if (typeof w.settings !== "object" || w.settings === null || Array.isArray(w.settings)) {
        fail(at("settings"), "expected a mapping of setting names to values");
      }
      for (const [k, v] of Object.entries(w.settings as Record<string, unknown>)) {
        settings[k] = typeof v === "string" ? v : JSON.stringify(v);
      }
    }
    const failMode = w.fail ?? WRAPPER_DEFAULTS.fail;
    if (failMode !== "closed" && failMode !== "open") {
      fail(at("fail"), `expected closed or open, got ${JSON.stringify(failMode)}`);
    }
    const positive = (field: string, value: unknown, fallback: number): number => {
      if (value === undefined) return fallback;
      if (typeof value !== "number" || !Number.isInteger(value) || value <= 0) {
        fail(at(field), `expected a positive whole number, got ${JSON.stringify(value)}`);
      }
      return value as number;
    };
    const clock = w.clock ?? false;
    if (typeof clock !== "boolean") fail(at("clock"), "expected true or false");
    return {
      name: name as string,
      module: resolved,
      settings,
      fail: failMode as FailMode,
      memoryMiB: positive("memory", w.memory, WRAPPER_DEFAULTS.memoryMiB),
      budget: positive("budget", w.budget, WRAPPER_DEFAULTS.budget),
      maxFailures: positive("max_failures", w.max_failures, WRAPPER_DEFAULTS.maxFailures),
      clock: clock as boolean,
    };
  });
}

/** Reads and parses a policy file; a missing file is a PolicyError too. */
export function loadPolicy(file: string): Policy {
  let text: string;
  try {
    text = Deno.readTextFileSync(file);
  } catch (e) {
    throw new PolicyError(file, 0, "(file)", `cannot read: ${(e as Error).message}`);
  }
  return parsePolicy(text, file);
}
