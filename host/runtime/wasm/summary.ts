/**
 * What the host needs to know about a wrapper binary before instantiating
 * it: its imports and exports with their signatures (in the ABI's notation,
 * `"ii>i"`) and its first defined memory, without compiling it.
 *
 * @module
 */
import {
  contentReader,
  type FuncType,
  readExports,
  readFunctions,
  readImports,
  readLimits,
  readSections,
  readTypes,
  SEC_EXPORT,
  SEC_FUNCTION,
  SEC_IMPORT,
  SEC_MEMORY,
  SEC_TYPE,
  type WasmExport,
  type WasmImport,
} from "./binary.ts";

/** A memory's size limits, in 64 KiB pages. */
export interface MemoryLimits {
  initial: number;
  maximum?: number;
}

/** What the host needs to know about a module before instantiating it. */
export interface WasmSummary {
  imports: WasmImport[];
  exports: WasmExport[];
  /** The first defined (not imported) memory, if any. */
  memory?: MemoryLimits;
  /** Custom sections (id 0), in file order: name and payload (docs/abi.md, "Settings"). */
  custom: { name: string; payload: Uint8Array }[];
}

/**
 * Lists a module's imports and exports and its first defined memory, without compiling it.
 *
 * @throws WasmBinaryError if the binary is malformed or uses an unsupported encoding (e.g. memory64)
 */
export function summarize(bytes: Uint8Array): WasmSummary {
  const context = "Cannot read wrapper";
  const summary: WasmSummary = { imports: [], exports: [], custom: [] };
  let types: string[] = [];
  let imports: (WasmImport & { type?: number })[] = [];
  let defined: number[] = [];
  for (const s of readSections(bytes, context)) {
    const r = contentReader(bytes, context, s);
    if (s.id === 0) {
      const name = r.name("custom section name");
      summary.custom.push({ name, payload: bytes.subarray(r.pos, s.end) });
    } else if (s.id === SEC_TYPE) types = readTypes(r).map(_signature);
    else if (s.id === SEC_IMPORT) imports = readImports(r);
    else if (s.id === SEC_FUNCTION) defined = readFunctions(r);
    else if (s.id === SEC_EXPORT) summary.exports = readExports(r);
    else if (s.id === SEC_MEMORY && r.u32("memory count") > 0) {
      const { initial, maximum } = readLimits(r, "memory");
      summary.memory = maximum === undefined ? { initial } : { initial, maximum };
    }
  }
  // The function index space: imported functions first, then the defined ones; each by its type index.
  const funcTypes = [...imports.filter((i) => i.kind === "func").map((i) => i.type!), ...defined];
  const named = (t: number | undefined) => t === undefined ? {} : { signature: types[t] ?? `type ${t}?` };
  summary.imports = imports.map(({ type, ...i }) => ({ ...i, ...(i.kind === "func" ? named(type) : {}) }));
  for (const e of summary.exports) if (e.kind === "func") Object.assign(e, named(funcTypes[e.index]));
  return summary;
}

/** Letters of the signature notation: i32 i, i64 I, f32 f, f64 F, v128 v, funcref r, externref e; others `?`. */
const _VAL_LETTERS: Record<number, string> = {
  0x7f: "i",
  0x7e: "I",
  0x7d: "f",
  0x7c: "F",
  0x7b: "v",
  0x70: "r",
  0x6f: "e",
};

/** A value type's letter in the signature notation; `?` for one the notation has not. */
function _letter(encoded: Uint8Array): string {
  return encoded.length === 1 ? _VAL_LETTERS[encoded[0]] ?? "?" : "?";
}

/** A function type as a signature in the ABI's notation: parameter letters, `>`, result letters. */
function _signature(t: FuncType): string {
  return `${t.paramTypes.map(_letter).join("")}>${t.resultTypes.map(_letter).join("")}`;
}

const _VAL_NAMES: Record<string, string> = {
  i: "i32",
  I: "i64",
  f: "f32",
  F: "f64",
  v: "v128",
  r: "funcref",
  e: "externref",
};

/**
 * A signature of the ABI's notation (`"iI>i"`: parameters, `>`, results) as WebAssembly text writes it:
 * `(i32, i64) -> i32`, `() -> void`.
 */
export function signatureText(signature: string): string {
  const [params, results] = signature.split(">");
  const list = (s: string) => [...s].map((c) => _VAL_NAMES[c] ?? "?").join(", ");
  return `(${list(params)}) -> ${results ? (results.length > 1 ? `(${list(results)})` : list(results)) : "void"}`;
}
