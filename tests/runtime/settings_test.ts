/**
 * ABI 1.3's settings schema (docs/abi.md, "Settings"): the schema's own
 * validation, the check of a policy's settings against it (each kind of
 * error), and loading: a 1.3 module's `idwrap.settings` section is read and
 * enforced, a module of an older minor still loads with its settings
 * unchecked, a 1.3 module without the section declares no settings.
 *
 * @module
 */
import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { SETTINGS_SECTION } from "../../host/runtime/abi.ts";
import { v8Engine } from "../../host/runtime/engine.ts";
import { loadWrapper, WrapperLoadError, WrapperSettingsError } from "../../host/runtime/module.ts";
import {
  appendCustomSection,
  checkSettings,
  type GivenSetting,
  parseSettingsSchema,
} from "../../host/runtime/settings.ts";
import { WRAPPER_DEFAULTS, type WrapperSpec } from "../../host/policy/policy.ts";
import { watToWasm } from "./wat.ts";

const SCHEMA = {
  settings: {
    mode: { type: "enum", values: ["record", "detect"], default: "detect", description: "what to do" },
    window: { type: "int", min: 1, max: 6, default: 6, description: "how long" },
    strict: { type: "bool", default: false, description: "whether strict" },
    spool: { type: "path", required: true, description: "where" },
    ports: { type: "list", items: "port-range", default: [80], description: "ports" },
    names: { type: "list", items: "string", description: "names" },
  },
};
const schema = parseSettingsSchema(JSON.stringify(SCHEMA));

const given = (o: Record<string, unknown>) =>
  new Map<string, GivenSetting>(Object.entries(o).map(([k, value], i) => [k, { value, line: 10 + i }]));

Deno.test("settings check: valid values pass, in YAML's types or as the text a wrapper reads", () => {
  assertEquals(
    checkSettings(
      schema,
      given({ mode: "record", window: 6, strict: true, spool: "/var/spool", ports: [21, "40000-40100"], names: [] }),
    ),
    [],
  );
  assertEquals(
    checkSettings(schema, given({ window: "3", strict: "false", spool: "/s", ports: "80, 443", names: '["a","b"]' })),
    [],
  );
});

Deno.test("settings check: each kind of error is named with the setting, its line and what was expected", () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ spool: "/s", colour: "blue" }, "colour@11: unknown setting, expected one of mode, window, strict, spool, ports"],
    [{ spool: "/s", mode: "detcet" }, 'mode@11: expected one of record|detect, got "detcet"'],
    [{ spool: "/s", window: 7 }, "window@11: expected an integer from 1 to 6, got 7"],
    [{ spool: "/s", window: "six" }, 'window@11: expected an integer from 1 to 6, got "six"'],
    [{ spool: "/s", window: 2.5 }, "window@11: expected an integer from 1 to 6, got 2.5"],
    [{ spool: "/s", strict: "maybe" }, 'strict@11: expected true or false, got "maybe"'],
    [{ spool: "spool" }, 'spool@10: expected an absolute path, got "spool"'],
    [
      { spool: "/s", ports: ["eighty"] },
      'ports@11: expected a list of ports or LO-HI port ranges (0 to 65535), item 1 is "eighty"',
    ],
    [
      { spool: "/s", ports: [80, 70000] },
      "ports@11: expected a list of ports or LO-HI port ranges (0 to 65535), item 2 is 70000",
    ],
    [
      { spool: "/s", ports: ["90-80"] },
      'ports@11: expected a list of ports or LO-HI port ranges (0 to 65535), item 1 is "90-80"',
    ],
    [{ spool: "/s", names: { a: 1 } }, 'names@11: expected a list of strings, got {"a":1}'],
    [{ spool: "/s", names: ["a", 3] }, "names@11: expected a list of strings, item 2 is 3"],
    [{ mode: "record" }, "spool@-: required (where), expected an absolute path"],
  ];
  for (const [values, want] of cases) {
    const got = checkSettings(schema, given(values)).map((p) => `${p.setting}@${p.line ?? "-"}: ${p.detail}`);
    assert(got.length === 1 && got[0].startsWith(want), `${JSON.stringify(values)}: ${JSON.stringify(got)}`);
  }
  assertEquals(
    checkSettings(new Map(), given({ x: 1 })).map((p) => p.detail),
    ["unknown setting: this wrapper declares no settings"],
  );
});

Deno.test("settings schema: a malformed schema is refused, saying which setting and field", () => {
  const bad: [unknown, RegExp][] = [
    [{ settings: { a: { type: "float", description: "x" } } }, /setting "a": type: expected one of bool, int/],
    [{ settings: { a: { type: "enum", description: "x" } } }, /setting "a": values: an enum needs/],
    [{ settings: { a: { type: "int" } } }, /setting "a": description/],
    [{ settings: { a: { type: "int", min: 5, max: 1, description: "x" } } }, /min is above max/],
    [{ settings: { a: { type: "string", min: 1, description: "x" } } }, /only an int/],
    [{ settings: { a: { type: "list", description: "x" } } }, /setting "a": items/],
    [
      { settings: { a: { type: "int", max: 3, default: 4, description: "x" } } },
      /setting "a": default: expected an integer of at most 3, got 4/,
    ],
    [{ settings: { a: { type: "bool", description: "x", extra: 1 } } }, /unknown field "extra"/],
    [{ settings: { "a b": { type: "bool", description: "x" } } }, /a name is/],
    [{ other: {} }, /expected \{"settings"/],
  ];
  for (const [value, want] of bad) throws(() => parseSettingsSchema(JSON.stringify(value)), want);
  throws(() => parseSettingsSchema("{"), /not JSON/);
});

/** A wrapper of ABI 1.`minor` that declares nothing; `section`, when given, is appended as its settings section. */
function module(minor: number, section?: string | string[]): Uint8Array {
  let bytes: Uint8Array = watToWasm(`(module
    (memory (export "memory") 1)
    (func (export "idwrap_abi_version") (result i32) (i32.const ${0x10000 | minor}))
    (func (export "idwrap_declare") (result i32) (i32.const 0)))`);
  for (const s of section === undefined ? [] : [section].flat()) {
    bytes = appendCustomSection(bytes, SETTINGS_SECTION, new TextEncoder().encode(s));
  }
  return bytes;
}

const spec = (settings: Record<string, string>): WrapperSpec => ({
  name: "w",
  module: "/x/w.wasm",
  settings,
  fail: "closed",
  memoryMiB: WRAPPER_DEFAULTS.memoryMiB,
  budget: WRAPPER_DEFAULTS.budget,
  maxFailures: WRAPPER_DEFAULTS.maxFailures,
  clock: false,
  onAlert: "alert",
});

const load = (bytes: Uint8Array, settings: Record<string, string>) =>
  loadWrapper(spec(settings), bytes, v8Engine, "/x/w.wasm");

Deno.test("settings at load: a 1.3 module's section is enforced; an older module loads with its settings unchecked", () => {
  const json = JSON.stringify(SCHEMA);
  // 1.3 with its schema: good settings load, a bad one is refused before any process runs.
  const ok = load(module(3, json), { spool: "/s", window: "2" });
  assertEquals([...ok.settings!.keys()], Object.keys(SCHEMA.settings));
  throws(() => load(module(3, json), { spool: "/s", window: "9" }), (e: unknown) => {
    assert(e instanceof WrapperSettingsError, String(e));
    assertEquals(e.message, 'wrapper w, setting "window": expected an integer from 1 to 6, got "9"');
    return true;
  });
  // The same settings on 1.2 and 1.0 modules (even with a section: it means nothing before 1.3) load, unchecked.
  for (const minor of [0, 2]) {
    for (const section of [undefined, json]) {
      const old = load(module(minor, section), { window: "9", colour: "blue" });
      assertEquals([old.abiMinor, old.settings], [minor, undefined]);
    }
  }
  // 1.3 without a section declares no settings: any setting is unknown; none loads.
  assertEquals(load(module(3), {}).settings, new Map());
  throws(() => load(module(3), { colour: "blue" }), /setting "colour": unknown setting: this wrapper declares no/);
  // A broken or repeated section refuses the module.
  throws(() => load(module(3, "{"), {}), (e: unknown) => {
    assert(
      e instanceof WrapperLoadError &&
        /"idwrap.settings" section is not a valid settings schema: not JSON/.test(e.message),
    );
    return true;
  });
  throws(() => load(module(3, [json, json]), {}), /it has 2 "idwrap.settings" sections, expected one/);
});
