/**
 * The hook ABI's list of imports (and exports, and its version) is written
 * four times: docs/abi.md (the contract third parties read),
 * host/runtime/abi.ts (what the host accepts), the AssemblyScript SDK's
 * declarations (wrappers/sdk/imports.ts) and the C header
 * (wrappers/abi/idwrap.h). This test reads all four and fails when any
 * differs from the host's in a name or a signature, naming the file and line.
 * ABI 1.3's settings section is named in all four too.
 *
 * Signatures are compared in the host's notation (`"ii>i"`: parameters,
 * `>`, results; i = i32, I = i64), each copy's types mapped to wasm32:
 * pointers and `usize` are i32.
 *
 * @module
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { ABI_EXPORTS, ABI_IMPORTS, ABI_MAJOR, ABI_MINOR, SETTINGS_SECTION } from "../../host/runtime/abi.ts";

const ROOT = new URL("../../", import.meta.url);
const read = (path: string) => Deno.readTextFileSync(new URL(path, ROOT));

/** One function as a copy declares it. */
interface Declared {
  signature: string;
  /** 1-based line of the declaration in its file. */
  line: number;
}
type Copy = Map<string, Declared>;

const lineAt = (text: string, index: number) => text.slice(0, index).split("\n").length;

/** A type of one copy's notation as a letter of the host's, or `?` for a type the ABI has not. */
function letter(type: string): string {
  const t = type.trim();
  if (/\*/.test(t)) return "i"; // a C pointer: i32 on wasm32
  return ({ i32: "i", u32: "i", usize: "i", int32_t: "i", uint32_t: "i", i64: "I", u64: "I", int64_t: "I" } as Record<
    string,
    string
  >)[t] ?? "?";
}

/** `(name: i32, len: i32) -> i64` (docs/abi.md) in the host's notation. */
function docSignature(text: string): string {
  const m = text.match(/^\((.*)\)\s*->\s*(\w+)$/);
  if (!m) return `? ${text}`;
  const params = m[1].trim() === "" ? [] : m[1].split(",").map((p) => letter(p.split(":")[1] ?? "?"));
  return `${params.join("")}>${m[2] === "void" ? "" : letter(m[2])}`;
}

/**
 * docs/abi.md: the rows of every table headed `| import |` (or `| export |`);
 * a row may name several functions (`event_pid` / `event_tid`).
 */
export function fromDocs(text: string, head: "import" | "export"): Copy {
  const out: Copy = new Map();
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    if (!new RegExp(`^\\|\\s*${head}\\s*\\|`).test(lines[i])) continue;
    for (let j = i + 2; j < lines.length && lines[j].startsWith("|"); j++) {
      const [names, signature] = lines[j].split("|").slice(1, 3).map((c) => c.trim());
      if (!signature.startsWith("`")) continue; // `memory` is a memory, not a function
      for (const n of names.matchAll(/`(\w+)`/g)) {
        out.set(n[1], { signature: docSignature(signature.replaceAll("`", "")), line: j + 1 });
      }
    }
  }
  return out;
}

/** The SDK: `@external("idwrap", "name") export declare function f(a: i32, …): i32;` (any other module is `?`). */
export function fromSdk(text: string): Copy {
  const out: Copy = new Map();
  const re = /@external\("([^"]*)",\s*"(\w+)"\)\s*export declare function \w+\(([^)]*)\):\s*(\w+);/g;
  for (const m of text.matchAll(re)) {
    const params = m[3].trim() === "" ? [] : m[3].split(",").map((p) => letter(p.split(":")[1] ?? "?"));
    const signature = `${params.join("")}>${m[4] === "void" ? "" : letter(m[4])}`;
    out.set(m[2], { signature: m[1] === "idwrap" ? signature : `? module "${m[1]}"`, line: lineAt(text, m.index) });
  }
  return out;
}

/** C parameters and result in the host's notation; `(void)` is none. */
function cSignature(result: string, params: string): string {
  const list = params.trim() === "void" || params.trim() === "" ? [] : params.split(",");
  // Drop the parameter's name: `const char *path` → `const char *`, `int32_t len` → `int32_t`.
  const types = list.map((p) => letter(p.trim().replace(/\b\w+$/, "").replace(/\bconst\b|\bstruct\b/g, "").trim()));
  return `${types.join("")}>${result.trim() === "void" ? "" : letter(result)}`;
}

/** The C header: `IDWRAP_IMPORT("name") int32_t f(…);`, declarations over several lines included. */
export function fromHeader(text: string): Copy {
  const out: Copy = new Map();
  for (const m of text.matchAll(/IDWRAP_IMPORT\("(\w+)"\)\s+([\w\s*]+?)\s*\b\w+\(([^)]*)\);/g)) {
    out.set(m[1], { signature: cSignature(m[2], m[3]), line: lineAt(text, m.index) });
  }
  return out;
}

/** The C header's prototypes of the module's exports: `int32_t idwrap_…(…);` at the start of a line. */
export function headerExports(text: string): Copy {
  const out: Copy = new Map();
  for (const m of text.matchAll(/^(int32_t|void|int64_t)\s+(idwrap_\w+)\(([^)]*)\);/gm)) {
    out.set(m[2], { signature: cSignature(m[1], m[3]), line: lineAt(text, m.index) });
  }
  return out;
}

/** What differs between the host's list and one copy, one line per difference. */
export function differences(host: Readonly<Record<string, string>>, copy: Copy, file: string): string[] {
  const problems: string[] = [];
  for (const [name, signature] of Object.entries(host)) {
    const got = copy.get(name);
    if (!got) problems.push(`${file}: "${name}" is missing (host/runtime/abi.ts: "${signature}")`);
    else if (got.signature !== signature) {
      problems.push(`${file}:${got.line}: "${name}" is "${got.signature}", host/runtime/abi.ts has "${signature}"`);
    }
  }
  for (const [name, got] of copy) {
    if (!Object.hasOwn(host, name)) problems.push(`${file}:${got.line}: "${name}" is not in host/runtime/abi.ts`);
  }
  return problems;
}

const COPIES = [
  { file: "docs/abi.md", parse: (t: string) => fromDocs(t, "import") },
  { file: "wrappers/sdk/imports.ts", parse: fromSdk },
  { file: "wrappers/abi/idwrap.h", parse: fromHeader },
] as const;

Deno.test("ABI imports: docs/abi.md, the SDK and the C header list the host's names and signatures", () => {
  for (const { file, parse } of COPIES) {
    const copy = parse(read(file));
    assert(copy.size > 0, `${file}: no import found; has its format changed?`);
    assertEquals(differences(ABI_IMPORTS, copy, file), []);
  }
});

Deno.test("ABI imports: no SDK file but imports.ts declares a host function", () => {
  const stray: string[] = [];
  for (const entry of Deno.readDirSync(new URL("wrappers/sdk/", ROOT))) {
    if (entry.name === "imports.ts" || !entry.name.endsWith(".ts")) continue;
    const text = read(`wrappers/sdk/${entry.name}`);
    for (const m of text.matchAll(/@external\(/g)) stray.push(`wrappers/sdk/${entry.name}:${lineAt(text, m.index)}`);
  }
  assertEquals(stray, []);
});

Deno.test("ABI exports: docs/abi.md and the C header list the host's names and signatures", () => {
  assertEquals(differences(ABI_EXPORTS, fromDocs(read("docs/abi.md"), "export"), "docs/abi.md"), []);
  assertEquals(differences(ABI_EXPORTS, headerExports(read("wrappers/abi/idwrap.h")), "wrappers/abi/idwrap.h"), []);
});

Deno.test("ABI version: docs/abi.md, the SDK and the C header say the host's", () => {
  const version = `0x${((ABI_MAJOR << 16) | ABI_MINOR).toString(16).padStart(8, "0")}`;
  assert(read("docs/abi.md").startsWith(`# idwrap hook ABI, version ${ABI_MAJOR}.${ABI_MINOR}\n`), "docs/abi.md title");
  assert(read("wrappers/sdk/index.ts").includes(`export const ABI_VERSION: i32 = ${version};`), "SDK ABI_VERSION");
  assert(read("wrappers/abi/idwrap.h").includes(`#define IDWRAP_ABI_VERSION ${version}\n`), "IDWRAP_ABI_VERSION");
});

/** The settings section's name as each copy gives it: the docs' `| custom section |` table, the SDK's and the header's constant. */
export const SECTION_NAME_READERS: readonly { file: string; name: (text: string) => string[] }[] = [
  {
    file: "docs/abi.md",
    name: (t) => {
      const lines = t.split("\n");
      const head = lines.findIndex((l) => /^\|\s*custom section\s*\|/.test(l));
      const out: string[] = [];
      for (let j = head + 2; head >= 0 && j < lines.length && lines[j].startsWith("|"); j++) {
        const m = lines[j].match(/^\|\s*`([^`]+)`/);
        if (m) out.push(m[1]);
      }
      return out;
    },
  },
  {
    file: "wrappers/sdk/index.ts",
    name: (t) => [...t.matchAll(/SETTINGS_SECTION: string = "([^"]*)"/g)].map((m) => m[1]),
  },
  {
    file: "wrappers/abi/idwrap.h",
    name: (t) => [...t.matchAll(/#define IDWRAP_SETTINGS_SECTION "([^"]*)"/g)].map((m) => m[1]),
  },
];

Deno.test("ABI settings section (1.3): docs/abi.md, the SDK and the C header name the host's", () => {
  for (const { file, name } of SECTION_NAME_READERS) assertEquals([file, name(read(file))], [file, [SETTINGS_SECTION]]);
  // The control: a renamed section in any copy is seen.
  for (const { file, name } of SECTION_NAME_READERS) {
    const renamed = read(file).replaceAll(SETTINGS_SECTION, "idwrap.setting");
    assert(name(renamed).join() !== SETTINGS_SECTION, `${file}: a renamed section is not reported`);
  }
});

// The controls: each reader sees a change of one name or one signature in its own copy.
Deno.test("ABI copies: a renamed import or a changed signature in any copy is reported", () => {
  const cases = [
    {
      file: "docs/abi.md",
      parse: COPIES[0].parse,
      from: "| `kv_delete` | `(key: i32, key_len: i32) -> i32`",
      to: "| `kv_delete` | `(key: i32, key_len: i64) -> i32`",
      expect: /"kv_delete" is "iI>i", host\/runtime\/abi\.ts has "ii>i"/,
    },
    {
      file: "wrappers/sdk/imports.ts",
      parse: COPIES[1].parse,
      from: '@external("idwrap", "event_pid")',
      to: '@external("idwrap", "event_ppid")',
      expect: /"event_pid" is missing/,
    },
    {
      file: "wrappers/abi/idwrap.h",
      parse: COPIES[2].parse,
      from: "int64_t clock_ns(void)",
      to: "int32_t clock_ns(void)",
      expect: /"clock_ns" is ">i", host\/runtime\/abi\.ts has ">I"/,
    },
    {
      file: "wrappers/abi/idwrap.h",
      parse: COPIES[2].parse,
      from: 'IDWRAP_IMPORT("wr_audit_printf") int32_t wr_audit_printf(const char *fmt, int32_t fmt_len,',
      to: 'IDWRAP_IMPORT("wr_audit_printf") int32_t wr_audit_printf(const char *fmt,',
      expect: /"wr_audit_printf" is "iii>i"/,
    },
  ];
  for (const c of cases) {
    const text = read(c.file);
    // Tolerate the table's column padding in docs/abi.md.
    const from = new RegExp(c.from.replace(/[.*+?^${}()|[\]\\]/g, "\\$&").replace(/ \\\| /g, "\\s*\\|\\s*"));
    assert(from.test(text), `${c.file}: the control's text "${c.from}" is not there any more`);
    const problems = differences(ABI_IMPORTS, c.parse(text.replace(from, c.to)), c.file);
    assert(problems.some((p) => c.expect.test(p)), `${c.file}: not reported: ${JSON.stringify(problems)}`);
  }
});
