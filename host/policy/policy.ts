/**
 * Policy files (YAML): what to observe and which rules decide calls. A bad
 * file is refused with its path, line, field and what was expected.
 *
 * @module
 */
import { isAlias, isMap, isSeq, LineCounter, parseDocument, visit } from "yaml";
import { errnoNumber } from "../errno.ts";
import { argKinds, resolveSyscalls, syscallName } from "../syscalls/mod.ts";
import { type Criteria, parseCriteria } from "./criteria.ts";
import { lookupId } from "./nss.ts";
import { type Condition, isEmpty, type Lists, parseCondition } from "./conditions.ts";
import { validateSchema } from "./schema.ts";

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
  /** Conditions on the call that must all hold (the rule's own fields, then its macros'); absent: none. */
  match?: Condition[];
  /** The rule does not match a call for which one of these holds (`not:`). */
  not?: Condition[];
  /** Falco's exceptions: named sets of field values that turn the rule off for a call. */
  except?: RuleException[];
  /** The processes the rule applies to (activation criteria); absent: every process. */
  scope?: Criteria;
  /**
   * `attempt`: before the call; `success`: once it succeeded (alert rules only). Absent: attempt. A `version: 2` file's
   * alert rules without `when` get `success`.
   */
  when?: RuleWhen;
  /** MITRE ATT&CK technique ids (T1059, T1059.004). */
  attack?: string[];
  tags?: string[];
}

/** When a rule fires: before the call runs, or once it succeeded. */
export type RuleWhen = "attempt" | "success";

/** One named exception of a rule: it is off for a call that one of `values` matches. */
export interface RuleException {
  name: string;
  values: Condition[];
}

/** What happens to a call when a wrapper fails on it. */
export type FailMode = "closed" | "open";

/** What a `fail: closed` wrapper that failed `max_failures` times in a row in a process does to that process. */
export type MaxFailuresAction = "kill" | "deny";

/**
 * The response when a wrapper raises an alert during a pre hook of a call it may deny: report it only, make the call
 * fail with EPERM, or kill the process.
 */
export type AlertResponse = "alert" | "deny" | "kill";

/** A wrapper a policy loads, validated. */
export interface WrapperSpec {
  /** Unique among loaded wrappers; names its key-value store. */
  name: string;
  /** A built-in wrapper's name (`wrappers/<name>/`), or a path to a .wasm (absolute, or relative to the policy). */
  module: string;
  /** Settings the wrapper reads with settings_get, as text. */
  settings: Record<string, string>;
  /**
   * Where the entry was written: the policy file, the entry's line, and each setting as YAML gave it with its line
   * (the settings check against the wrapper's schema names them: host/runtime/load.ts).
   */
  origin?: { file: string; line: number; settings: Record<string, { value: unknown; line: number }> };
  fail: FailMode;
  /** Memory cap per instance, MiB. */
  memoryMiB: number;
  /** CPU budget per hook call, in metering units. */
  budget: number;
  /** Failures in a row in one process before the wrapper gives up on it: closed, on_max_failures; open, disabled. */
  maxFailures: number;
  /**
   * fail: closed only (YAML `on_max_failures`): after max_failures in a process, kill it, or deny every call of it the
   * wrapper examines. Absent: "kill".
   */
  onMaxFailures?: MaxFailuresAction;
  /** May read the clock. */
  clock: boolean;
  /** Which processes the wrapper is bound to; absent: every process. */
  activate?: Criteria;
  /** When these match, the wrapper is not bound, even if `activate` matches. */
  deactivate?: Criteria;
  /** What an alert in a pre hook of a call the wrapper may deny does (YAML `on_alert`); "alert" by default. */
  onAlert: AlertResponse;
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
  /** What is valid but likely a hole (`file:line: field: why`): `policy check` and `run` print them. */
  warnings?: string[];
}

/** Defaults of a wrapper entry (docs/abi.md, Limits). */
export const WRAPPER_DEFAULTS = {
  fail: "closed",
  memoryMiB: 16,
  budget: 10_000_000,
  maxFailures: 5,
  onMaxFailures: "kill",
  onAlert: "alert",
} as const;

/**
 * The largest values of a wrapper entry's numbers: `memory` in MiB (WebAssembly's 65,536 pages of 64 KiB),
 * `budget` in metering units (the fuel counter is a 32-bit signed integer), `max_failures`.
 */
export const WRAPPER_LIMITS = { memory: 4096, budget: 0x7fffffff, max_failures: 0x7fffffff } as const;

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
  let root: Record<string, unknown>;
  try {
    root = doc.toJS();
  } catch (e) {
    // An alias to no anchor (`program: *sh`, where a glob was meant) is only found here.
    let line = 1;
    const anchors = new Set<string>();
    visit(doc, (_key, node) => {
      if (isAlias(node)) {
        if (anchors.has(node.source)) return;
        if (node.range) line = lines.linePos(node.range[0]).line;
        return visit.BREAK;
      }
      const anchor = (node as { anchor?: string }).anchor;
      if (anchor) anchors.add(anchor);
    });
    throw new PolicyError(file, line, "(syntax)", `${(e as Error).message}; quote a value that starts with "*"`);
  }
  const known = new Set(["version", "name", "observe", "rules", "wrappers", "lists", "macros"]);
  for (const key of Object.keys(root)) {
    if (!known.has(key)) fail([key], `unknown field, expected one of ${[...known].join(", ")}`);
  }
  if (root.version !== undefined && root.version !== 1 && root.version !== 2) {
    fail(["version"], `expected 1 or 2, got ${JSON.stringify(root.version)}`);
  }
  // Version 2: an alert rule fires on success unless it says otherwise; version 1's fire at the attempt, as they did.
  const whenDefault: RuleWhen = root.version === 2 ? "success" : "attempt";
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
  const lists = parseLists(root.lists, fail);
  const uid = (v: unknown, path: (string | number)[]): number => {
    if (typeof v === "number" && Number.isSafeInteger(v) && v >= 0 && v <= 0xffffffff) return v;
    if (typeof v === "string" && /^[0-9]+$/.test(v)) return uid(Number(v), path);
    const id = typeof v === "string" ? lookupId("passwd", v) : undefined;
    if (id === undefined) {
      fail(path, `expected a user name (known to getent passwd) or uid, got ${JSON.stringify(v)}`);
    }
    return id!;
  };
  const macros = parseMacros(root.macros, lists, fail, uid);

  const rules: Rule[] = [];
  const warnings: string[] = [];
  if (root.rules !== undefined && !isSeq(doc.get("rules"))) fail(["rules"], "expected a list of rules");
  const ids = new Set<string>();
  ((root.rules ?? []) as unknown[]).forEach((raw, i) => {
    const at = (f: string) => ["rules", i, f];
    if (typeof raw !== "object" || raw === null || Array.isArray(raw)) fail(["rules", i], "expected a mapping");
    const r = raw as Record<string, unknown>;
    for (const key of Object.keys(r)) {
      if (!(RULE_FIELDS as readonly string[]).includes(key)) {
        fail(at(key), `unknown field, expected one of ${RULE_FIELDS.join(", ")}`);
      }
    }
    const id = r.id ?? `rule-${i + 1}`;
    if (typeof id !== "string" || !id) fail(at("id"), "expected a non-empty string");
    if (ids.has(id as string)) fail(at("id"), `duplicate rule id "${id}"`);
    ids.add(id as string);
    if (r.syscalls === undefined) fail(["rules", i], "missing field syscalls");
    const syscalls = syscallList(at("syscalls"), r.syscalls);
    if (r.path !== undefined && (typeof r.path !== "string" || !r.path) && !Array.isArray(r.path)) {
      fail(at("path"), "expected a glob string");
    }
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
    const own = parseCondition(r, ["rules", i], lists, fail, uid);
    // A single glob written as such stays `path` (the version 1 form); everything else is a condition in `match`.
    const legacyPath = typeof r.path === "string" && !r.path.startsWith("$") ? r.path : undefined;
    const match = isEmpty(own) ? [] : [own];
    if (r.macro !== undefined) match.push(...macroRefs(r.macro, at("macro"), macros, fail));
    // A signal condition can only hold on a call that carries a signal: on another it never matches, silently.
    if (match.some((c) => c.signal)) {
      const bare = [...resolveSyscalls(syscalls)].map(syscallName).filter((n) => !argKinds(n).includes("signal"));
      if (bare.length) {
        fail(
          at(r.signal !== undefined ? "signal" : "macro"),
          `signal: never matches ${bare.join(", ")}, which carr${bare.length === 1 ? "ies" : "y"} no signal ` +
            `(the signal calls: kill, tkill, tgkill, rt_sigqueueinfo, rt_tgsigqueueinfo, pidfd_send_signal)`,
        );
      }
    }
    const not = r.not === undefined ? undefined : parseNot(r.not, at("not"), lists, macros, fail, uid);
    const except = r.except === undefined ? undefined : parseExcept(r.except, at("except"), lists, fail, uid);
    const scope = r.scope === undefined
      ? undefined
      : parseCriteria(r.scope, at("scope"), fail, "exclude programs with the rule's not: { program: … }");
    if (r.when !== undefined && r.when !== "attempt" && r.when !== "success") {
      fail(at("when"), `expected attempt or success, got ${JSON.stringify(r.when)}`);
    }
    if (r.when === "success" && action !== "alert") {
      fail(at("when"), `a ${action} rule acts before the call runs: only an alert rule can wait for success`);
    }
    const attack = r.attack === undefined
      ? undefined
      : strings(r.attack, at("attack"), fail, ATTACK_ID, "an ATT&CK technique id such as T1059 or T1059.004");
    const tags = r.tags === undefined
      ? undefined
      : strings(r.tags, at("tags"), fail, /^[^\s]+$/, "a tag without spaces");
    if (action !== "alert") {
      for (const [field, names] of baseNamePrograms(not, except, scope)) {
        const where = field === "scope" ? at("scope") : at(field);
        warnings.push(
          `${file}:${lineOf(where)}: rules[${i}].${field}: ${names.map((n) => JSON.stringify(n)).join(", ")} ` +
            `name${names.length === 1 ? "s" : ""} a program by its base name, which any copy of a program ` +
            `(cp /bin/sh ./${names[0].replace(/[*?]/g, "x")}) also has: name it by its full path (/usr/bin/…)`,
        );
      }
    }
    rules.push({
      id: id as string,
      syscalls,
      path: legacyPath,
      action: action as RuleAction,
      errno,
      ...(match.length && !(match.length === 1 && onlyPath(match[0]) && legacyPath !== undefined) ? { match } : {}),
      ...(not ? { not } : {}),
      ...(except ? { except } : {}),
      ...(scope ? { scope } : {}),
      ...(r.when !== undefined
        ? { when: r.when as RuleWhen }
        : action === "alert" && whenDefault === "success"
        ? { when: whenDefault }
        : {}),
      ...(attack ? { attack } : {}),
      ...(tags ? { tags } : {}),
    });
  });
  const wrappers = parseWrappers(root.wrappers, file, fail, lineOf);
  // The shipped schema (policies/schema.json) checks what the checks above do not (the editor's view of the format).
  const problem = validateSchema(root);
  if (problem) fail(problem.path, problem.message);
  return { name: name as string, file, observe, rules, wrappers, ...(warnings.length ? { warnings } : {}) };
}

/**
 * The program and parent globs without "/" (matched on the base name: docs/policy.md, "Programs") in a deny or kill
 * rule's `not`, `except` and `scope`: an exception by base name is met by any program of that name, a copy of a shell
 * included, so it is a way out of the rule.
 */
function baseNamePrograms(
  not: Condition[] | undefined,
  except: RuleException[] | undefined,
  scope: Criteria | undefined,
): [string, string[]][] {
  const bare = (globs: (string[] | undefined)[]) => globs.flatMap((g) => g ?? []).filter((g) => !g.includes("/"));
  const out: [string, string[]][] = [];
  const add = (field: string, names: string[]) => names.length && out.push([field, [...new Set(names)]]);
  add("not", bare((not ?? []).flatMap((c) => [c.program, c.parent])));
  add("except", bare((except ?? []).flatMap((x) => x.values.flatMap((c) => [c.program, c.parent]))));
  add("scope", bare([scope?.program, scope?.parent]));
  return out;
}

/** The fields of a rule. */
export const RULE_FIELDS = [
  "id",
  "syscalls",
  "path",
  "flags",
  "argv",
  "port",
  "address",
  "family",
  "signal",
  "target",
  "macro",
  "not",
  "except",
  "scope",
  "when",
  "action",
  "errno",
  "attack",
  "tags",
] as const;

const ATTACK_ID = /^T[0-9]{4}(\.[0-9]{3})?$/;

type Fail = (path: (string | number)[], detail: string) => never;
type Uid = (v: unknown, path: (string | number)[]) => number;

function onlyPath(c: Condition): boolean {
  return Object.keys(c).length === 1 && c.path !== undefined && c.path.length === 1;
}

function strings(v: unknown, at: (string | number)[], fail: Fail, re: RegExp, expected: string): string[] {
  const list = Array.isArray(v) ? v : [v];
  return list.map((s, i) => {
    if (typeof s !== "string" || !re.test(s)) {
      fail(Array.isArray(v) ? [...at, i] : at, `expected ${expected}, got ${JSON.stringify(s)}`);
    }
    return s as string;
  });
}

const NAME = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** `lists:` a mapping of names to lists of values, referenced as `$name`. */
function parseLists(raw: unknown, fail: Fail): Lists {
  const out = new Map<string, unknown[]>();
  if (raw === undefined) return out;
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    fail(["lists"], "expected a mapping of list names to lists of values");
  }
  for (const [name, list] of Object.entries(raw as Record<string, unknown>)) {
    if (!NAME.test(name)) fail(["lists", name], "expected a list name of letters, digits, '_' or '-'");
    if (!Array.isArray(list) || list.some((v) => v === null || typeof v === "object")) {
      fail(["lists", name], "expected a list of strings or numbers");
    }
    out.set(name, list as unknown[]);
  }
  return out;
}

/** `macros:` a mapping of names to conditions, used by rules' `macro:` and `not:`. */
function parseMacros(raw: unknown, lists: Lists, fail: Fail, uid: Uid): Map<string, Condition> {
  const out = new Map<string, Condition>();
  if (raw === undefined) return out;
  if (typeof raw !== "object" || raw === null || Array.isArray(raw)) {
    fail(["macros"], "expected a mapping of macro names to conditions");
  }
  for (const [name, c] of Object.entries(raw as Record<string, unknown>)) {
    if (!NAME.test(name)) fail(["macros", name], "expected a macro name of letters, digits, '_' or '-'");
    out.set(name, conditionMapping(c, ["macros", name], lists, fail, uid, true));
  }
  return out;
}

/** A mapping of condition fields only (a macro, a `not:` entry). */
function conditionMapping(
  c: unknown,
  at: (string | number)[],
  lists: Lists,
  fail: Fail,
  uid: Uid,
  process: boolean,
): Condition {
  const fields = process ? CONDITION_FIELDS_WITH_PROCESS : CONDITION_FIELDS;
  if (typeof c !== "object" || c === null || Array.isArray(c)) {
    fail(at, `expected a mapping of conditions (${fields.join(", ")})`);
  }
  for (const key of Object.keys(c as object)) {
    if (!fields.includes(key)) fail([...at, key], `unknown condition, expected one of ${fields.join(", ")}`);
  }
  const out = parseCondition(c as Record<string, unknown>, at, lists, fail, uid, process);
  if (isEmpty(out)) fail(at, `expected at least one condition (${fields.join(", ")})`);
  return out;
}

const CONDITION_FIELDS = ["path", "flags", "argv", "port", "address", "family", "signal", "target"];
const CONDITION_FIELDS_WITH_PROCESS = [...CONDITION_FIELDS, "program", "parent", "user"];

function macroRefs(v: unknown, at: (string | number)[], macros: Map<string, Condition>, fail: Fail): Condition[] {
  const names = Array.isArray(v) ? v : [v];
  return names.map((n, i) => {
    const m = typeof n === "string" ? macros.get(n) : undefined;
    if (!m) {
      const known = [...macros.keys()].join(", ") || "none defined";
      fail(Array.isArray(v) ? [...at, i] : at, `unknown macro ${JSON.stringify(n)}: expected one of macros: ${known}`);
    }
    return m!;
  });
}

/** `not:` a condition mapping, a macro name, or a list of them: the rule is off where any holds. */
function parseNot(
  v: unknown,
  at: (string | number)[],
  lists: Lists,
  macros: Map<string, Condition>,
  fail: Fail,
  uid: Uid,
): Condition[] {
  const items = Array.isArray(v) ? v : [v];
  if (items.length === 0) fail(at, "expected a condition mapping, a macro name, or a non-empty list of them");
  return items.map((item, i) => {
    const path = Array.isArray(v) ? [...at, i] : at;
    if (typeof item === "string") return macroRefs(item, path, macros, fail)[0];
    return conditionMapping(item, path, lists, fail, uid, true);
  });
}

/**
 * `except:` Falco's exceptions: a list of `{name, fields, values}`; each entry of `values` gives one value per field
 * (a value may be a list: any of it), and a call that all of an entry's values match is not the rule's.
 */
function parseExcept(v: unknown, at: (string | number)[], lists: Lists, fail: Fail, uid: Uid): RuleException[] {
  if (!Array.isArray(v) || v.length === 0) fail(at, "expected a list of exceptions {name, fields, values}");
  const names = new Set<string>();
  return (v as unknown[]).map((e, i) => {
    const here = [...at, i];
    if (typeof e !== "object" || e === null || Array.isArray(e)) {
      fail(here, "expected a mapping {name, fields, values}");
    }
    const x = e as Record<string, unknown>;
    for (const key of Object.keys(x)) {
      if (!["name", "fields", "values"].includes(key)) {
        fail([...here, key], "unknown field, expected name, fields, values");
      }
    }
    if (typeof x.name !== "string" || !NAME.test(x.name)) fail([...here, "name"], "expected a name");
    if (names.has(x.name as string)) fail([...here, "name"], `duplicate exception name "${x.name}"`);
    names.add(x.name as string);
    const fields = Array.isArray(x.fields) ? x.fields : x.fields === undefined ? undefined : [x.fields];
    if (!fields || fields.length === 0 || fields.some((f) => !CONDITION_FIELDS_WITH_PROCESS.includes(f as string))) {
      fail([...here, "fields"], `expected a list of fields from ${CONDITION_FIELDS_WITH_PROCESS.join(", ")}`);
    }
    if (new Set(fields).size !== fields!.length) fail([...here, "fields"], "a field is named twice");
    if (!Array.isArray(x.values) || x.values.length === 0) {
      fail([...here, "values"], `expected a list of value tuples, one value per field (${fields!.join(", ")})`);
    }
    const values = (x.values as unknown[]).map((tuple, j) => {
      const tat = [...here, "values", j];
      const t = fields!.length === 1 && !Array.isArray(tuple) ? [tuple] : tuple;
      if (!Array.isArray(t) || t.length !== fields!.length) {
        fail(tat, `expected ${fields!.length} values, one per field (${fields!.join(", ")})`);
      }
      const raw: Record<string, unknown> = {};
      fields!.forEach((f, k) => raw[f as string] = (t as unknown[])[k]);
      // Messages name the tuple's position: map each field back to its index.
      const relocate: Fail = (p, d) => {
        const k = fields!.indexOf(p[tat.length] as string);
        return fail(
          k >= 0
            ? [...tat, ...(fields!.length === 1 && !Array.isArray(tuple) ? [] : [k]), ...p.slice(tat.length + 1)]
            : p,
          d,
        );
      };
      return parseCondition(raw, tat, lists, relocate, uid, true);
    });
    return { name: x.name as string, values };
  });
}

const WRAPPER_FIELDS = [
  "name",
  "module",
  "settings",
  "fail",
  "memory",
  "budget",
  "max_failures",
  "on_max_failures",
  "clock",
  "activate",
  "deactivate",
  "on_alert",
];

const ALERT_RESPONSES: readonly AlertResponse[] = ["alert", "deny", "kill"];

/** Folders under wrappers/ that hold no wrapper. */
const NOT_WRAPPERS = new Set(["sdk", "abi"]);

/**
 * The built-in wrappers: the folders under wrappers/ with an index.ts (sdk and abi aside). Where there is no source
 * tree (a compiled idwrap), the modules under build/wrappers/; undefined when neither can be read (no check then).
 */
export function builtinWrappers(): string[] | undefined {
  const list = (dir: URL, pick: (e: Deno.DirEntry) => string | undefined): string[] | undefined => {
    try {
      const out: string[] = [];
      for (const e of Deno.readDirSync(dir)) {
        const name = pick(e);
        if (name !== undefined) out.push(name);
      }
      return out.sort();
    } catch {
      return undefined;
    }
  };
  const src = new URL("../../wrappers/", import.meta.url);
  return list(src, (e) => {
    if (!e.isDirectory || NOT_WRAPPERS.has(e.name)) return undefined;
    try {
      return Deno.statSync(new URL(`${e.name}/index.ts`, src)).isFile ? e.name : undefined;
    } catch {
      return undefined;
    }
  }) ?? list(new URL("../../build/wrappers/", import.meta.url), (e) => {
    return e.isFile && e.name.endsWith(".wasm") ? e.name.slice(0, -".wasm".length) : undefined;
  });
}

function parseWrappers(
  raw: unknown,
  file: string,
  fail: (path: (string | number)[], detail: string) => never,
  lineOf: (path: (string | number)[]) => number,
): WrapperSpec[] {
  if (raw === undefined) return [];
  if (!Array.isArray(raw)) fail(["wrappers"], "expected a list of wrappers");
  const names = new Set<string>();
  let builtins: string[] | undefined | null = null;
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
    } else {
      if (builtins === null) builtins = builtinWrappers();
      if (builtins && !builtins.includes(resolved)) {
        fail(
          at("module"),
          `unknown built-in wrapper ${JSON.stringify(resolved)}: expected one of ${
            builtins.join(", ")
          } or a path to a .wasm file`,
        );
      }
    }
    const settings: Record<string, string> = {};
    // A plain record, not a Map: specs travel to worker threads and into JSON.
    const given: Record<string, { value: unknown; line: number }> = {};
    if (w.settings !== undefined) {
      if (typeof w.settings !== "object" || w.settings === null || Array.isArray(w.settings)) {
        fail(at("settings"), "expected a mapping of setting names to values");
      }
      for (const [k, v] of Object.entries(w.settings as Record<string, unknown>)) {
        settings[k] = typeof v === "string" ? v : JSON.stringify(v);
        given[k] = { value: v, line: lineOf(["wrappers", i, "settings", k]) };
      }
    }
    const failMode = w.fail ?? WRAPPER_DEFAULTS.fail;
    if (failMode !== "closed" && failMode !== "open") {
      fail(at("fail"), `expected closed or open, got ${JSON.stringify(failMode)}`);
    }
    // The bounds `run` enforces when it loads the wrapper (WRAPPER_LIMITS), refused here with file, line and field.
    const positive = (field: keyof typeof WRAPPER_LIMITS, value: unknown, fallback: number): number => {
      if (value === undefined) return fallback;
      const max = WRAPPER_LIMITS[field];
      const expected = `expected a whole number from 1 to ${max}`;
      if (typeof value !== "number") fail(at(field), `${expected}, got ${JSON.stringify(value)}`);
      const n = value as number;
      if (!Number.isFinite(n)) fail(at(field), `${expected}, got ${n} (a number out of range)`);
      if (!Number.isInteger(n) || n < 1 || n > max) fail(at(field), `${expected}, got ${n}`);
      return n;
    };
    const memoryMiB = positive("memory", w.memory, WRAPPER_DEFAULTS.memoryMiB);
    const budget = positive("budget", w.budget, WRAPPER_DEFAULTS.budget);
    const maxFailures = positive("max_failures", w.max_failures, WRAPPER_DEFAULTS.maxFailures);
    const onMaxFailures = w.on_max_failures ?? WRAPPER_DEFAULTS.onMaxFailures;
    if (w.on_max_failures !== undefined && failMode === "open") {
      fail(
        at("on_max_failures"),
        "applies to fail: closed wrappers only (a fail: open wrapper is disabled after max_failures)",
      );
    }
    if (onMaxFailures !== "kill" && onMaxFailures !== "deny") {
      fail(at("on_max_failures"), `expected kill or deny, got ${JSON.stringify(onMaxFailures)}`);
    }
    const clock = w.clock ?? false;
    if (typeof clock !== "boolean") fail(at("clock"), "expected true or false");
    const onAlert = w.on_alert ?? WRAPPER_DEFAULTS.onAlert;
    if (!ALERT_RESPONSES.includes(onAlert as AlertResponse)) {
      fail(at("on_alert"), `expected one of ${ALERT_RESPONSES.join(", ")}, got ${JSON.stringify(onAlert)}`);
    }
    const activate = w.activate === undefined ? undefined : parseCriteria(w.activate, at("activate"), fail);
    const deactivate = w.deactivate === undefined ? undefined : parseCriteria(w.deactivate, at("deactivate"), fail);
    return {
      name: name as string,
      module: resolved,
      settings,
      origin: { file, line: lineOf(["wrappers", i]), settings: given },
      fail: failMode as FailMode,
      memoryMiB,
      budget,
      maxFailures,
      onMaxFailures: onMaxFailures as MaxFailuresAction,
      clock: clock as boolean,
      ...(activate ? { activate } : {}),
      ...(deactivate ? { deactivate } : {}),
      onAlert: onAlert as AlertResponse,
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
