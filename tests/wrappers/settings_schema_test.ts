/**
 * Every shipped wrapper declares its settings (wrappers/<name>/settings.json, ABI 1.3), and the declarations follow
 * the sources: each setting a wrapper's AssemblyScript reads is declared, each declared one is read, and the built
 * module carries the file as its `idwrap.settings` section. baseline's defaults equal its built-in ones.
 *
 * @module
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { SETTINGS_SECTION } from "../../host/runtime/abi.ts";
import { parseSettingsSchema } from "../../host/runtime/settings.ts";
import { summarize } from "../../host/runtime/wasm/mod.ts";
import { ROOT } from "../helpers.ts";

/** The wrapper folders (an index.ts; not the SDK). */
const WRAPPERS = [...Deno.readDirSync(`${ROOT}wrappers`)]
  .filter((e) => e.isDirectory && e.name !== "sdk" && e.name !== "abi")
  .map((e) => e.name)
  .filter((n) => {
    try {
      return Deno.statSync(`${ROOT}wrappers/${n}/index.ts`).isFile;
    } catch {
      return false;
    }
  })
  .sort();

/** The text of a wrapper's own sources and of the sibling files they import (`from "../httpd/spec"`). */
function sources(name: string): string {
  const seen = new Set<string>();
  const read = (path: string): string => {
    if (seen.has(path)) return "";
    seen.add(path);
    const t = Deno.readTextFileSync(`${ROOT}wrappers/${path}`);
    let text = t;
    for (const m of t.matchAll(/from\s+"\.\.\/([\w-]+)\/([\w-]+)"/g)) {
      if (m[1] !== "sdk") text += read(`${m[1]}/${m[2]}.ts`);
    }
    return text;
  };
  let text = "";
  for (const e of Deno.readDirSync(`${ROOT}wrappers/${name}`)) {
    if (e.isFile && e.name.endsWith(".ts")) text += read(`${name}/${e.name}`);
  }
  return text;
}

/** The setting names a wrapper's sources read through the SDK's setting readers (and baseline's per-rule responses). */
function settingsRead(name: string): string[] {
  const text = sources(name);
  const read = new Set<string>();
  // A name ending in "." is a prefix completed at run time (baseline's `"response." + RULES[i]`, below).
  for (const m of text.matchAll(/\b(?:setting|settingOr|settingInt|listSetting)\("([^"]+)"/g)) {
    if (!m[1].endsWith(".")) read.add(m[1]);
  }
  if (/setting\("response\." \+ RULES\[i\]\)/.test(text)) {
    const rules = text.match(/const RULES: StaticArray<string> = \[([^\]]*)\]/);
    assert(rules, `${name}: RULES not found`);
    for (const r of rules[1].matchAll(/"([^"]+)"/g)) read.add(`response.${r[1]}`);
  }
  return [...read].sort();
}

Deno.test("every shipped wrapper declares exactly the settings its sources read", () => {
  assert(WRAPPERS.length >= 17, WRAPPERS.join());
  for (const name of WRAPPERS) {
    const schema = parseSettingsSchema(Deno.readTextFileSync(`${ROOT}wrappers/${name}/settings.json`));
    assertEquals([name, [...schema.keys()].sort()], [name, settingsRead(name)]);
  }
});

Deno.test("every built wrapper carries its settings.json as its settings section", () => {
  for (const name of WRAPPERS) {
    const { custom } = summarize(Deno.readFileSync(`${ROOT}build/wrappers/${name}.wasm`));
    const sections = custom.filter((c) => c.name === SETTINGS_SECTION).map((c) => new TextDecoder().decode(c.payload));
    assertEquals([name, sections], [name, [Deno.readTextFileSync(`${ROOT}wrappers/${name}/settings.json`)]]);
  }
});

Deno.test("baseline's declared defaults are its built-in ones (lists and per-rule responses)", () => {
  const schema = parseSettingsSchema(Deno.readTextFileSync(`${ROOT}wrappers/baseline/settings.json`));
  const src = Deno.readTextFileSync(`${ROOT}wrappers/baseline/settings.ts`);
  const consts = new Map<string, string[]>();
  for (const m of src.matchAll(/const (D_\w+) = ((?:'[^']*'(?:\s*\+\s*)?)+);/g)) {
    consts.set(m[1], JSON.parse([...m[2].matchAll(/'([^']*)'/g)].map((p) => p[1]).join("")));
  }
  let lists = 0;
  for (const m of src.matchAll(/listSetting\("(\w+)", (D_\w+|"\[\]")\)/g)) {
    assertEquals([m[1], schema.get(m[1])?.default], [m[1], m[2] === '"[]"' ? [] : consts.get(m[2])]);
    lists++;
  }
  assertEquals(lists, 20);
  const rules = Deno.readTextFileSync(`${ROOT}wrappers/baseline/rules.ts`);
  const names = [...rules.match(/const RULES: StaticArray<string> = \[([^\]]*)\]/)![1].matchAll(/"([^"]+)"/g)].map((
    m,
  ) => m[1]);
  const defaults = rules.match(/const DEFAULT_RESPONSES: StaticArray<i32> = \[([^\]]*)\]/)![1].split(",")
    .map((s) => s.trim()).filter(Boolean).map((s) => s.replace("RESP_", "").toLowerCase());
  assertEquals(names.length, defaults.length);
  for (const [i, n] of names.entries()) {
    assertEquals([n, schema.get(`response.${n}`)?.default], [n, defaults[i]]);
  }
});
