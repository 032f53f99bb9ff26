/**
 * A wrapper's settings schema (docs/abi.md, "Settings", ABI 1.3): the JSON
 * a module carries in its `idwrap.settings` custom section, how it is read
 * and checked, and how a policy's settings are checked against it. Reading a
 * custom section needs no instance, so `policy check` and `run` refuse a bad
 * setting before any wrapper code runs.
 *
 * @module
 */
import { SETTINGS_SECTION } from "./abi.ts";

/** The types a setting may have. */
export const SETTING_TYPES = ["bool", "int", "string", "path", "port-range", "enum", "list"] as const;
export type SettingType = typeof SETTING_TYPES[number];
/** The types a list's items may have. */
export const ITEM_TYPES = ["string", "path", "int", "port-range"] as const;
export type ItemType = typeof ITEM_TYPES[number];

/** One declared setting. */
export interface SettingDecl {
  type: SettingType;
  /** One line for `policy check` and docs. */
  description: string;
  /** enum: the allowed values. */
  values?: string[];
  /** int (and a list of int): the smallest and largest allowed value. */
  min?: number;
  max?: number;
  /** list: the items' type. */
  items?: ItemType;
  /** The wrapper's value when the policy sets none (documentation: the wrapper applies it). */
  default?: unknown;
  /** The wrapper refuses to start without it. */
  required?: boolean;
}

/** What a module declares: setting name → declaration. */
export type SettingsSchema = Map<string, SettingDecl>;

const DECL_FIELDS = ["type", "description", "values", "min", "max", "items", "default", "required"];
const NAME = /^[A-Za-z0-9_.-]+$/;

/**
 * Parses and validates a schema's JSON text.
 *
 * @throws Error saying which setting and field is wrong
 */
export function parseSettingsSchema(text: string): SettingsSchema {
  let root: unknown;
  try {
    root = JSON.parse(text);
  } catch (e) {
    throw new Error(`not JSON: ${(e as Error).message}`);
  }
  const isObject = (v: unknown): v is Record<string, unknown> =>
    typeof v === "object" && v !== null && !Array.isArray(v);
  if (!isObject(root) || !isObject(root.settings) || Object.keys(root).some((k) => k !== "settings")) {
    throw new Error(`expected {"settings": {name: declaration, …}}`);
  }
  const out: SettingsSchema = new Map();
  for (const [name, raw] of Object.entries(root.settings)) {
    const bad = (detail: string): never => {
      throw new Error(`setting "${name}": ${detail}`);
    };
    if (!NAME.test(name)) bad("a name is letters, digits, '.', '_' or '-'");
    if (!isObject(raw)) bad("expected a mapping with type and description");
    const d = raw as Record<string, unknown>;
    for (const k of Object.keys(d)) {
      if (!DECL_FIELDS.includes(k)) bad(`unknown field "${k}" (${DECL_FIELDS.join(", ")})`);
    }
    if (!(SETTING_TYPES as readonly unknown[]).includes(d.type)) {
      bad(`type: expected one of ${SETTING_TYPES.join(", ")}`);
    }
    if (typeof d.description !== "string" || !d.description) bad("description: expected a non-empty line");
    const decl: SettingDecl = { type: d.type as SettingType, description: d.description as string };
    if (d.type === "enum") {
      if (!Array.isArray(d.values) || !d.values.length || d.values.some((v) => typeof v !== "string")) {
        bad("values: an enum needs a non-empty list of strings");
      }
      decl.values = d.values as string[];
    } else if (d.values !== undefined) bad("values: only an enum has values");
    if (d.type === "list") {
      if (!(ITEM_TYPES as readonly unknown[]).includes(d.items)) bad(`items: expected one of ${ITEM_TYPES.join(", ")}`);
      decl.items = d.items as ItemType;
    } else if (d.items !== undefined) bad("items: only a list has items");
    const numeric = d.type === "int" || decl.items === "int";
    for (const k of ["min", "max"] as const) {
      if (d[k] === undefined) continue;
      if (!numeric) bad(`${k}: only an int (or a list of int) has a range`);
      if (!Number.isSafeInteger(d[k])) bad(`${k}: expected an integer`);
      decl[k] = d[k] as number;
    }
    if (decl.min !== undefined && decl.max !== undefined && decl.min > decl.max) bad("min is above max");
    if (d.required !== undefined && typeof d.required !== "boolean") bad("required: expected true or false");
    if (d.required) decl.required = true;
    if (d.default !== undefined) {
      const problem = checkValue(decl, d.default);
      if (problem) bad(`default: ${problem}`);
      decl.default = d.default;
    }
    out.set(name, decl);
  }
  return out;
}

/** What a declaration accepts, for messages: `an integer from 1 to 6`, `one of record|detect`. */
export function expected(d: SettingDecl): string {
  const range = (what: string) => {
    if (d.min !== undefined && d.max !== undefined) return `${what} from ${d.min} to ${d.max}`;
    if (d.min !== undefined) return `${what} of at least ${d.min}`;
    if (d.max !== undefined) return `${what} of at most ${d.max}`;
    return what;
  };
  const item: Record<ItemType, string> = {
    string: "strings",
    path: "absolute paths",
    int: range("integers"),
    "port-range": "ports or LO-HI port ranges (0 to 65535)",
  };
  switch (d.type) {
    case "bool":
      return "true or false";
    case "int":
      return range("an integer");
    case "string":
      return "a string";
    case "path":
      return "an absolute path";
    case "port-range":
      return "a port or a LO-HI port range (0 to 65535)";
    case "enum":
      return `one of ${d.values!.join("|")}`;
    case "list":
      return `a list of ${item[d.items!]}`;
  }
}

/** Why one scalar (a setting, or a list's item) does not fit `type`; undefined if it fits. */
function checkScalar(type: SettingType | ItemType, d: SettingDecl, v: unknown): string | undefined {
  switch (type) {
    case "bool":
      return v === true || v === false || v === "true" || v === "false" ? undefined : "not true or false";
    case "int": {
      // A quoted number is what the wrapper reads anyway (settings reach it as text).
      const n = typeof v === "string" && /^\s*[+-]?[0-9]+\s*$/.test(v) ? Number(v) : v;
      if (typeof n !== "number" || !Number.isSafeInteger(n)) return "not an integer";
      if ((d.min !== undefined && n < d.min) || (d.max !== undefined && n > d.max)) return "out of range";
      return undefined;
    }
    case "string":
      return typeof v === "string" ? undefined : "not a string";
    case "path":
      return typeof v === "string" && v.startsWith("/") ? undefined : "not an absolute path";
    case "port-range": {
      const m = typeof v === "number"
        ? [String(v), String(v)]
        : typeof v === "string"
        ? /^\s*([0-9]{1,5})\s*(?:-\s*([0-9]{1,5})\s*)?$/.exec(v)?.slice(1)
        : undefined;
      if (!m) return "not a port or LO-HI range";
      const lo = Number(m[0]), hi = Number(m[1] ?? m[0]);
      return Number.isInteger(lo) && lo >= 0 && hi <= 65535 && lo <= hi ? undefined : "not a port or LO-HI range";
    }
    case "enum":
      return typeof v === "string" && d.values!.includes(v) ? undefined : "not allowed";
    case "list":
      return "a list";
  }
}

/** The items of a list value: a YAML sequence, or text (a JSON array, or comma-separated, as the wrappers read it). */
function listItems(v: unknown): unknown[] | undefined {
  if (Array.isArray(v)) return v;
  if (typeof v !== "string") return undefined;
  const t = v.trim();
  if (t.startsWith("[")) {
    try {
      const parsed = JSON.parse(t);
      return Array.isArray(parsed) ? parsed : undefined;
    } catch {
      return undefined;
    }
  }
  return t.split(",").map((s) => s.trim()).filter((s) => s !== "");
}

/** Why a value does not fit its declaration (`expected …, got …`); undefined if it fits. */
export function checkValue(d: SettingDecl, v: unknown): string | undefined {
  const got = (x: unknown) => `got ${JSON.stringify(x)}`;
  if (d.type !== "list") return checkScalar(d.type, d, v) ? `expected ${expected(d)}, ${got(v)}` : undefined;
  const items = listItems(v);
  if (!items) return `expected ${expected(d)}, ${got(v)}`;
  for (const [i, item] of items.entries()) {
    if (checkScalar(d.items!, d, item)) return `expected ${expected(d)}, item ${i + 1} is ${JSON.stringify(item)}`;
  }
  return undefined;
}

/** One setting a policy gives, with where. */
export interface GivenSetting {
  value: unknown;
  line: number;
}

/** One refused setting: the setting's name (and its line), and what was expected. */
export interface SettingProblem {
  setting: string;
  line?: number;
  detail: string;
}

/** Every problem of a policy's settings against a schema: unknown names, values that do not fit, required ones missing. */
export function checkSettings(schema: SettingsSchema, given: Map<string, GivenSetting>): SettingProblem[] {
  const problems: SettingProblem[] = [];
  for (const [name, { value, line }] of given) {
    const d = schema.get(name);
    if (!d) {
      const known = [...schema.keys()];
      problems.push({
        setting: name,
        line,
        detail: known.length
          ? `unknown setting, expected one of ${known.join(", ")}`
          : "unknown setting: this wrapper declares no settings",
      });
      continue;
    }
    const problem = checkValue(d, value);
    if (problem) problems.push({ setting: name, line, detail: problem });
  }
  for (const [name, d] of schema) {
    if (d.required && !given.has(name)) {
      problems.push({ setting: name, detail: `required (${d.description}), expected ${expected(d)}` });
    }
  }
  return problems;
}

/**
 * The schema a module carries, from its summary's custom sections: undefined when it has no `idwrap.settings`
 * section (for a 1.3 module: it declares no settings).
 *
 * @throws Error when the section is repeated or its content is not a valid schema
 */
export function readSettingsSection(custom: { name: string; payload: Uint8Array }[]): SettingsSchema | undefined {
  const sections = custom.filter((c) => c.name === SETTINGS_SECTION);
  if (sections.length === 0) return undefined;
  if (sections.length > 1) throw new Error(`it has ${sections.length} "${SETTINGS_SECTION}" sections, expected one`);
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(sections[0].payload);
  } catch {
    throw new Error(`its "${SETTINGS_SECTION}" section is not UTF-8`);
  }
  try {
    return parseSettingsSchema(text);
  } catch (e) {
    throw new Error(`its "${SETTINGS_SECTION}" section is not a valid settings schema: ${(e as Error).message}`);
  }
}

/** `bytes` with a custom section `name` holding `payload` appended (the build adds a wrapper's settings.json so). */
export function appendCustomSection(bytes: Uint8Array, name: string, payload: Uint8Array): Uint8Array<ArrayBuffer> {
  const leb = (n: number): number[] => {
    const out: number[] = [];
    do {
      let b = n & 0x7f;
      n >>>= 7;
      if (n) b |= 0x80;
      out.push(b);
    } while (n);
    return out;
  };
  const nameBytes = new TextEncoder().encode(name);
  const content = [...leb(nameBytes.length), ...nameBytes, ...payload];
  const out = new Uint8Array(bytes.length + 1 + leb(content.length).length + content.length);
  out.set(bytes);
  out.set([0, ...leb(content.length), ...content], bytes.length);
  return out;
}
