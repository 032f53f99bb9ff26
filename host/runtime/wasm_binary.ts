/**
 * Reading and instrumenting ID wrapper binaries (docs/abi.md, "Limits and failures").
 *
 * V8 has no fuel, so the host rewrites each wrapper's binary when it loads it: the memory maximum is clamped to the
 * policy's cap, and a counter (the exported global `idwrap_fuel`) is decremented at every function entry, at the
 * top of every loop iteration and by size before each bulk memory or table operation, trapping when it runs out.
 * Inside a function the counter lives in a local, written back to the global around calls and at exits, so a loop
 * iteration costs a register decrement and a branch. A second added global holds a bulk operation's size. Only the
 * memory, global, export and code sections are rewritten; every other section, custom and unknown ones included, is
 * copied byte for byte.
 *
 * The code section is decoded instruction by instruction (so an immediate is never mistaken for an opcode) for the MVP
 * plus sign extension, saturating truncation, bulk memory, reference types, multi-value, multi-memory memargs and tail
 * calls. SIMD, threads and exception handling are refused.
 *
 * @module
 */

/** What an import or export is. */
export type WasmExternKind = "func" | "table" | "memory" | "global" | "tag";

/** One entry of the import section. */
export interface WasmImport {
  module: string;
  name: string;
  kind: WasmExternKind;
  /** A function's signature in the ABI's notation (see {@link signatureText}), e.g. `"ii>i"`. */
  signature?: string;
}

/** One entry of the export section; `index` is in the index space of `kind` (imports first). */
export interface WasmExport {
  name: string;
  kind: WasmExternKind;
  index: number;
  /** A function's signature in the ABI's notation (see {@link signatureText}), e.g. `">i"`. */
  signature?: string;
}

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
}

/** Thrown for malformed or unsupported binaries, with a message saying what and at which byte offset. */
export class WasmBinaryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WasmBinaryError";
  }
}

/** How {@link instrument} limits a module. */
export interface InstrumentOptions {
  /** The memory cap, in 64 KiB pages (0 to 65536). */
  maxMemoryPages: number;
  /**
   * The value `idwrap_fuel` starts with, before the host first sets it: the budget of the module's start function and
   * of anything else that runs during instantiation (0 to 2^31 - 1; default 10,000,000, the ABI's default budget).
   */
  initialFuel?: number;
}

/** The name of the fuel global's export. */
const FUEL_EXPORT = "idwrap_fuel";
/** The ABI's default per-call budget, used as the initial fuel unless the caller gives one. */
const DEFAULT_INITIAL_FUEL = 10_000_000;
/** Largest number of 64 KiB pages a 32-bit memory can have. */
const MAX_PAGES = 65536;

const SEC_CUSTOM = 0;
const SEC_TYPE = 1;
const SEC_IMPORT = 2;
const SEC_FUNCTION = 3;
const SEC_MEMORY = 5;
const SEC_GLOBAL = 6;
const SEC_EXPORT = 7;
const SEC_CODE = 10;
/** Known non-custom section ids in the order the binary format requires them (tag 13 sits between memory and global). */
const SECTION_ORDER: readonly number[] = [1, 2, 3, 4, 5, 13, 6, 7, 8, 9, 12, 10, 11];
const SECTION_NAMES: Readonly<Record<number, string>> = {
  1: "type",
  2: "import",
  3: "function",
  4: "table",
  5: "memory",
  6: "global",
  7: "export",
  8: "start",
  9: "element",
  10: "code",
  11: "data",
  12: "data count",
  13: "tag",
};
const KINDS: readonly WasmExternKind[] = ["func", "table", "memory", "global", "tag"];
const KIND_GLOBAL = 3;

const _utf8 = new TextDecoder("utf-8", { fatal: true });
const _utf8Encoder = new TextEncoder();

/** `0x1f` style hex for messages. */
function _hex(n: number): string {
  return `0x${n.toString(16).padStart(2, "0")}`;
}

/** A cursor over `bytes[pos, end)`; failures name the absolute byte offset in the whole binary. */
class _Reader {
  pos: number;
  constructor(
    readonly bytes: Uint8Array,
    readonly context: string,
    pos = 0,
    readonly end = bytes.length,
  ) {
    this.pos = pos;
  }

  /** Throws a WasmBinaryError: "<context>: <what> at byte <at><tail>". */
  fail(what: string, at = this.pos, tail = ""): never {
    throw new WasmBinaryError(`${this.context}: ${what} at byte ${at}${tail}`);
  }

  get done(): boolean {
    return this.pos >= this.end;
  }

  u8(what: string): number {
    if (this.pos >= this.end) this.fail(`truncated ${what}`);
    return this.bytes[this.pos++];
  }

  u32(what: string): number {
    return this._leb(32, false, what);
  }

  s32(what: string): number {
    return this._leb(32, true, what);
  }

  s33(what: string): number {
    return this._leb(33, true, what);
  }

  /** Skips an s64 (its value is never needed: instructions are copied as they are). */
  s64(what: string): void {
    this._leb(64, true, what);
  }

  /** Advances past `n` bytes. */
  skip(n: number, what: string): void {
    if (n > this.end - this.pos) this.fail(`truncated ${what} (${n} bytes)`);
    this.pos += n;
  }

  /** A reader over the next `size` bytes; this one moves past them. */
  sub(size: number, what: string): _Reader {
    const start = this.pos;
    this.skip(size, what);
    return new _Reader(this.bytes, this.context, start, start + size);
  }

  /** A length-prefixed UTF-8 string. */
  name(what: string): string {
    const start = this.pos;
    const len = this.u32(`${what} length`);
    this.skip(len, what);
    try {
      return _utf8.decode(this.bytes.subarray(this.pos - len, this.pos));
    } catch {
      return this.fail(`invalid UTF-8 in ${what}`, start);
    }
  }

  /** Throws unless the reader is exactly at its end (a section or body must hold nothing more). */
  expectEnd(what: string): void {
    if (this.pos !== this.end) this.fail(`${this.end - this.pos} unexpected bytes at the end of ${what}`);
  }

  /**
   * A LEB128 integer of at most `bits` bits. The last permitted byte must not continue and its unused high bits must
   * be zero (unsigned) or copies of the sign bit (signed). Values above 2^53 are approximate (only s64 gets there).
   */
  private _leb(bits: number, signed: boolean, what: string): number {
    const start = this.pos;
    const maxBytes = Math.ceil(bits / 7);
    let result = 0;
    let scale = 1;
    for (let i = 0; i < maxBytes; i++) {
      const byte = this.u8(what);
      if (i === maxBytes - 1) {
        const used = bits - 7 * i; // payload bits this byte may carry
        const high = signed ? 0x7f & ~((1 << (used - 1)) - 1) : 0x7f & ~((1 << used) - 1);
        const rest = byte & high;
        if (byte & 0x80 || (rest !== 0 && !(signed && rest === high))) {
          this.fail(`malformed or too large ${what}`, start);
        }
      }
      result += (byte & 0x7f) * scale;
      scale *= 128;
      if (!(byte & 0x80)) return signed && byte & 0x40 ? result - scale : result;
    }
    return this.fail(`malformed ${what}`, start); // unreachable: the last byte never continues
  }
}

/** A growable byte buffer. */
class _Writer {
  private buf = new Uint8Array(256);
  length = 0;

  private _room(n: number): void {
    if (this.length + n <= this.buf.length) return;
    const bigger = new Uint8Array(Math.max(this.buf.length * 2, this.length + n));
    bigger.set(this.buf.subarray(0, this.length));
    this.buf = bigger;
  }

  byte(b: number): this {
    this._room(1);
    this.buf[this.length++] = b;
    return this;
  }

  bytes(src: Uint8Array): this {
    this._room(src.length);
    this.buf.set(src, this.length);
    this.length += src.length;
    return this;
  }

  u32(n: number): this {
    do {
      const b = n & 0x7f;
      n = Math.floor(n / 128);
      this.byte(n ? b | 0x80 : b);
    } while (n);
    return this;
  }

  s32(n: number): this {
    for (;;) {
      const b = n & 0x7f;
      n >>= 7;
      const last = (n === 0 && !(b & 0x40)) || (n === -1 && b & 0x40);
      this.byte(last ? b : b | 0x80);
      if (last) return this;
    }
  }

  name(s: string): this {
    const utf8 = _utf8Encoder.encode(s);
    return this.u32(utf8.length).bytes(utf8);
  }

  /** A section: its id, its size, then `content`. */
  section(id: number, content: Uint8Array): this {
    return this.byte(id).u32(content.length).bytes(content);
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.length);
  }

  /** What was written, without copying it (valid until the next write or reset). */
  view(): Uint8Array {
    return this.buf.subarray(0, this.length);
  }

  /** Empties the buffer, keeping its room. */
  reset(): this {
    this.length = 0;
    return this;
  }
}

/** Where one section lies: its id byte, its content, its end. */
interface _Section {
  id: number;
  start: number;
  content: number;
  end: number;
}

/** Checks the header and splits the binary into sections, refusing known sections out of order or repeated. */
function _readSections(bytes: Uint8Array, context: string): _Section[] {
  const r = new _Reader(bytes, context);
  if (bytes.length < 8) r.fail("truncated header (magic and version)", 0);
  if (bytes[0] !== 0x00 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
    r.fail("not a WebAssembly binary (bad magic)", 0);
  }
  const version = bytes[4] | bytes[5] << 8 | bytes[6] << 16 | bytes[7] << 24;
  if (version !== 1) r.fail(`unsupported binary version ${_hex(version >>> 0)}`, 4);
  r.pos = 8;
  const sections: _Section[] = [];
  let lastRank = -1;
  while (!r.done) {
    const start = r.pos;
    const id = r.u8("section id");
    const size = r.u32("section size");
    const content = r.pos;
    r.skip(size, `section ${id}`);
    const rank = SECTION_ORDER.indexOf(id);
    if (rank >= 0) {
      if (rank <= lastRank) r.fail(`${SECTION_NAMES[id]} section out of order or repeated`, start);
      lastRank = rank;
    }
    sections.push({ id, start, content, end: r.pos });
  }
  return sections;
}

/** A reader over a section's content. */
function _contentReader(bytes: Uint8Array, context: string, s: _Section): _Reader {
  return new _Reader(bytes, context, s.content, s.end);
}

/** Skips a value type: a number or reference type, or a typed-function-references `(ref null? ht)`. */
function _skipValType(r: _Reader, what: string): void {
  const at = r.pos;
  const b = r.u8(what);
  if ((b >= 0x7b && b <= 0x7f) || b === 0x70 || b === 0x6f) return;
  if (b === 0x63 || b === 0x64) {
    r.s33("heap type");
    return;
  }
  r.fail(`unknown ${what} ${_hex(b)}`, at);
}

/** Reads limits (flags, initial, optional maximum); refuses memory64 and other flags. */
function _readLimits(r: _Reader, what: string): { flags: number; initial: number; maximum?: number } {
  const at = r.pos;
  const flags = r.u8(`${what} limits`);
  if (flags > 3) r.fail(`unsupported ${what} limits flags ${_hex(flags)} (memory64 is not supported)`, at);
  const initial = r.u32(`${what} initial size`);
  if (!(flags & 1)) return { flags, initial };
  return { flags, initial, maximum: r.u32(`${what} maximum size`) };
}

/** Reads the import section; a function import carries its type index until {@link summarize} names it. */
function _readImports(r: _Reader): (WasmImport & { type?: number })[] {
  const imports: (WasmImport & { type?: number })[] = [];
  const count = r.u32("import count");
  for (let i = 0; i < count; i++) {
    const module = r.name("import module name");
    const name = r.name("import name");
    const at = r.pos;
    const kind = r.u8("import kind");
    let type: number | undefined;
    switch (kind) {
      case 0: // func: type index
        type = r.u32("import type index");
        break;
      case 1: // table: reference type, limits
        _skipValType(r, "table element type");
        _readLimits(r, "table");
        break;
      case 2: // memory: limits
        _readLimits(r, "memory");
        break;
      case 3: { // global: value type, mutability
        _skipValType(r, "global type");
        const mut = r.u8("global mutability");
        if (mut > 1) r.fail(`invalid global mutability ${_hex(mut)}`, r.pos - 1);
        break;
      }
      case 4: // tag: attribute, type index
        r.u8("tag attribute");
        r.u32("tag type index");
        break;
      default:
        r.fail(`unknown import kind ${_hex(kind)}`, at);
    }
    imports.push({ module, name, kind: KINDS[kind], ...(type === undefined ? {} : { type }) });
  }
  r.expectEnd("the import section");
  return imports;
}

/** Reads the export section. */
function _readExports(r: _Reader): WasmExport[] {
  const exports: WasmExport[] = [];
  const count = r.u32("export count");
  for (let i = 0; i < count; i++) {
    const name = r.name("export name");
    const at = r.pos;
    const kind = r.u8("export kind");
    if (kind >= KINDS.length) r.fail(`unknown export kind ${_hex(kind)}`, at);
    exports.push({ name, kind: KINDS[kind], index: r.u32("export index") });
  }
  r.expectEnd("the export section");
  return exports;
}

/**
 * Lists a module's imports and exports and its first defined memory, without compiling it.
 *
 * @throws WasmBinaryError if the binary is malformed or uses an unsupported encoding (e.g. memory64)
 */
export function summarize(bytes: Uint8Array): WasmSummary {
  const context = "Cannot read wrapper";
  const summary: WasmSummary = { imports: [], exports: [] };
  let types: string[] = [];
  let imports: (WasmImport & { type?: number })[] = [];
  let defined: number[] = [];
  for (const s of _readSections(bytes, context)) {
    const r = _contentReader(bytes, context, s);
    if (s.id === SEC_TYPE) types = _readSignatures(r);
    else if (s.id === SEC_IMPORT) imports = _readImports(r);
    else if (s.id === SEC_FUNCTION) defined = _readFunctions(r);
    else if (s.id === SEC_EXPORT) summary.exports = _readExports(r);
    else if (s.id === SEC_MEMORY && r.u32("memory count") > 0) {
      const { initial, maximum } = _readLimits(r, "memory");
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

/** Reads the type section as signatures in the ABI's notation: parameter letters, `>`, result letters. */
function _readSignatures(r: _Reader): string[] {
  const out: string[] = [];
  const count = r.u32("type count");
  for (let i = 0; i < count; i++) {
    const at = r.pos;
    const form = r.u8("type form");
    if (form !== 0x60) r.fail(`type form ${_hex(form)}`, at, " is not supported (only function types are)");
    let sig = "";
    for (const part of ["parameter", "result"]) {
      const n = r.u32(`${part} count`);
      for (let j = 0; j < n; j++) {
        const start = r.pos;
        _skipValType(r, `${part} type`);
        sig += r.pos - start === 1 ? _VAL_LETTERS[r.bytes[start]] ?? "?" : "?";
      }
      if (part === "parameter") sig += ">";
    }
    out.push(sig);
  }
  r.expectEnd("the type section");
  return out;
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

// Immediate kinds of one-byte opcodes (0 means unknown opcode).
const IMM_UNKNOWN = 0;
const IMM_NONE = 1;
const IMM_BLOCK = 2; // block type
const IMM_U32 = 3;
const IMM_U32X2 = 4;
const IMM_BR_TABLE = 5;
const IMM_MEMARG = 6;
const IMM_I32 = 7;
const IMM_I64 = 8;
const IMM_F32 = 9;
const IMM_F64 = 10;
const IMM_SELECT_T = 11; // vector of value types
const IMM_HEAP_TYPE = 12;
const IMM_PREFIX_FC = 13;
const IMM_SIMD = 14;
const IMM_THREADS = 15;
const IMM_EXCEPTIONS = 16;

/** Immediates of each one-byte opcode. */
const _IMM = new Uint8Array(256);
/** Immediates of each 0xFC sub-opcode (0–17). */
const _IMM_FC = new Uint8Array(18);
function _fill(table: Uint8Array, from: number, to: number, kind: number): void {
  table.fill(kind, from, to + 1);
}
_fill(_IMM, 0x00, 0x01, IMM_NONE); // unreachable, nop
_fill(_IMM, 0x02, 0x04, IMM_BLOCK); // block, loop, if
_fill(_IMM, 0x05, 0x05, IMM_NONE); // else
_fill(_IMM, 0x06, 0x0a, IMM_EXCEPTIONS); // try, catch, throw, rethrow, throw_ref
_fill(_IMM, 0x0b, 0x0b, IMM_NONE); // end
_fill(_IMM, 0x0c, 0x0d, IMM_U32); // br, br_if
_fill(_IMM, 0x0e, 0x0e, IMM_BR_TABLE);
_fill(_IMM, 0x0f, 0x0f, IMM_NONE); // return
_fill(_IMM, 0x10, 0x10, IMM_U32); // call
_fill(_IMM, 0x11, 0x11, IMM_U32X2); // call_indirect: type, table
_fill(_IMM, 0x12, 0x12, IMM_U32); // return_call
_fill(_IMM, 0x13, 0x13, IMM_U32X2); // return_call_indirect
_fill(_IMM, 0x18, 0x19, IMM_EXCEPTIONS); // delegate, catch_all
_fill(_IMM, 0x1a, 0x1b, IMM_NONE); // drop, select
_fill(_IMM, 0x1c, 0x1c, IMM_SELECT_T); // typed select
_fill(_IMM, 0x20, 0x26, IMM_U32); // local.get/set/tee, global.get/set, table.get/set
_fill(_IMM, 0x28, 0x3e, IMM_MEMARG); // loads and stores
_fill(_IMM, 0x3f, 0x40, IMM_U32); // memory.size, memory.grow: memory index
_fill(_IMM, 0x41, 0x41, IMM_I32);
_fill(_IMM, 0x42, 0x42, IMM_I64);
_fill(_IMM, 0x43, 0x43, IMM_F32);
_fill(_IMM, 0x44, 0x44, IMM_F64);
_fill(_IMM, 0x45, 0xc4, IMM_NONE); // numeric operators, sign extension 0xc0–0xc4
_fill(_IMM, 0xd0, 0xd0, IMM_HEAP_TYPE); // ref.null
_fill(_IMM, 0xd1, 0xd1, IMM_NONE); // ref.is_null
_fill(_IMM, 0xd2, 0xd2, IMM_U32); // ref.func
_fill(_IMM, 0xfc, 0xfc, IMM_PREFIX_FC);
_fill(_IMM, 0xfd, 0xfd, IMM_SIMD);
_fill(_IMM, 0xfe, 0xfe, IMM_THREADS);
_fill(_IMM_FC, 0, 7, IMM_NONE); // saturating truncations
_fill(_IMM_FC, 8, 8, IMM_U32X2); // memory.init: data, memory
_fill(_IMM_FC, 9, 9, IMM_U32); // data.drop
_fill(_IMM_FC, 10, 10, IMM_U32X2); // memory.copy: memory, memory
_fill(_IMM_FC, 11, 11, IMM_U32); // memory.fill: memory
_fill(_IMM_FC, 12, 12, IMM_U32X2); // table.init: element, table
_fill(_IMM_FC, 13, 13, IMM_U32); // elem.drop
_fill(_IMM_FC, 14, 14, IMM_U32X2); // table.copy
_fill(_IMM_FC, 15, 17, IMM_U32); // table.grow, table.size, table.fill

/** Skips a block type: empty (0x40), a value type, or an s33 type index. */
function _skipBlockType(r: _Reader): void {
  const at = r.pos;
  const b = r.pos < r.end ? r.bytes[r.pos] : -1; // -1: let s33 report the truncation
  if (b === 0x40) r.pos++; // empty
  else if ((b >= 0x7b && b <= 0x7f) || b === 0x70 || b === 0x6f || b === 0x63 || b === 0x64) {
    _skipValType(r, "block type");
  } else if (r.s33("block type") < 0) r.fail("invalid block type", at); // a type index (multi-value)
}

/** Skips the immediates of kind `kind` of the instruction `op`, which started at byte `at`. */
function _skipImmediates(r: _Reader, kind: number, op: number, at: number): void {
  switch (kind) {
    case IMM_NONE:
      return;
    case IMM_BLOCK:
      return _skipBlockType(r);
    case IMM_U32:
      r.u32("index immediate");
      return;
    case IMM_U32X2:
      r.u32("index immediate");
      r.u32("index immediate");
      return;
    case IMM_BR_TABLE: {
      const n = r.u32("br_table size");
      for (let i = 0; i <= n; i++) r.u32("br_table label"); // n labels, then the default
      return;
    }
    case IMM_MEMARG: {
      const align = r.u32("memarg alignment");
      if (align & 0x40) r.u32("memarg memory index"); // multi-memory
      r.u32("memarg offset");
      return;
    }
    case IMM_I32:
      r.s32("i32 constant");
      return;
    case IMM_I64:
      return r.s64("i64 constant");
    case IMM_F32:
      return r.skip(4, "f32 constant");
    case IMM_F64:
      return r.skip(8, "f64 constant");
    case IMM_SELECT_T: {
      const n = r.u32("select type count");
      for (let i = 0; i < n; i++) _skipValType(r, "select type");
      return;
    }
    case IMM_HEAP_TYPE:
      r.s33("heap type");
      return;
    case IMM_PREFIX_FC: {
      const sub = r.u32("0xfc sub-opcode");
      const subKind = sub < _IMM_FC.length ? _IMM_FC[sub] : IMM_UNKNOWN;
      if (subKind === IMM_UNKNOWN) r.fail(`unknown opcode 0xfc ${sub}`, at);
      return _skipImmediates(r, subKind, op, at);
    }
    case IMM_SIMD:
      return r.fail(`SIMD opcode ${_hex(op)}`, at, " is not supported");
    case IMM_THREADS:
      return r.fail(`threads (atomics) opcode ${_hex(op)}`, at, " is not supported");
    case IMM_EXCEPTIONS:
      return r.fail(`exception-handling opcode ${_hex(op)}`, at, " is not supported");
    default:
      return r.fail(`unknown opcode ${_hex(op)}`, at);
  }
}

/** A function type: how many parameters, and its results as they are encoded (to compare and reuse as a block type). */
interface _FuncType {
  params: number;
  resultCount: number;
  results: Uint8Array;
}

/** Reads the type section; only function types (0x60) are accepted (GC's rec groups, structs and arrays are not). */
function _readTypes(r: _Reader): _FuncType[] {
  const types: _FuncType[] = [];
  const count = r.u32("type count");
  for (let i = 0; i < count; i++) {
    const at = r.pos;
    const form = r.u8("type form");
    if (form !== 0x60) r.fail(`type form ${_hex(form)}`, at, " is not supported (only function types are)");
    const params = r.u32("parameter count");
    for (let j = 0; j < params; j++) _skipValType(r, "parameter type");
    const resultCount = r.u32("result count");
    const start = r.pos;
    for (let j = 0; j < resultCount; j++) _skipValType(r, "result type");
    types.push({ params, resultCount, results: r.bytes.subarray(start, r.pos) });
  }
  r.expectEnd("the type section");
  return types;
}

/** Reads the function section: each defined function's type index. */
function _readFunctions(r: _Reader): number[] {
  const typeIndices: number[] = [];
  const count = r.u32("function count");
  for (let i = 0; i < count; i++) typeIndices.push(r.u32("function type index"));
  r.expectEnd("the function section");
  return typeIndices;
}

/** V8's limit on a function's locals, parameters included; a function at it keeps the global-only metering. */
const LOCAL_LIMIT = 50_000;

/** The LEB128 (u32) encoding of `n`. */
function _leb(n: number): number[] {
  return [...new _Writer().u32(n).finish()];
}

/**
 * The global-only metering sequence for the fuel global `g`: `fuel -= 1; if (fuel < 0) unreachable`. It needs no
 * local, leaves the operand stack as it found it and opens no label that surrounds other code, so it can go anywhere
 * an instruction sequence can start. Used for functions that cannot get a fuel local (see {@link _Metering}).
 */
function _globalMeter(g: number): Uint8Array {
  const idx = _leb(g);
  return Uint8Array.of(
    ...[0x23, ...idx], // global.get g
    ...[0x41, 0x01], // i32.const 1
    0x6b, // i32.sub
    ...[0x24, ...idx], // global.set g
    ...[0x23, ...idx], // global.get g
    ...[0x41, 0x00], // i32.const 0
    0x48, // i32.lt_s
    ...[0x04, 0x40], // if (no result)
    0x00, // unreachable
    0x0b, // end
  );
}

/**
 * The 0xFC bulk operations whose cost grows with their size operand (the top of the stack), and how many bytes
 * (memory) or entries (tables) one fuel unit pays for, as a right shift: 32 bytes (a loop iteration moves about as
 * much), 2 table entries. memory.init/copy/fill, table.init/copy/grow/fill.
 */
const _BULK_SHIFT: ReadonlyMap<number, number> = new Map([[8, 5], [10, 5], [11, 5], [12, 1], [14, 1], [15, 1], [
  17,
  1,
]]);

/**
 * The sequence before a bulk operation: `N = size; fuel -= size >>> shift; if (fuel < 0) <exhausted>; push N`, with the
 * scratch global `n` for the size and the fuel in local `f` (written back to global `g` before the trap) or, without
 * a local, in `g` itself. The shift keeps the charge below 2^31, so the subtraction cannot wrap.
 */
function _bulkMeter(g: number, n: number, shift: number, f?: number): Uint8Array {
  const G = _leb(g), N = _leb(n);
  const charge = [0x23, ...N, 0x41, shift, 0x76, 0x6b]; // global.get N; i32.const shift; i32.shr_u; i32.sub
  const body = f === undefined
    ? [0x23, ...G, ...charge, 0x24, ...G, 0x23, ...G, 0x41, 0x00, 0x48, 0x04, 0x40, 0x00, 0x0b]
    : [
      0x20,
      ..._leb(f),
      ...charge,
      0x22,
      ..._leb(f),
      0x41,
      0x00,
      0x48,
      0x04,
      0x40,
      0x20,
      ..._leb(f),
      0x24,
      ...G,
      0x00,
      0x0b,
    ];
  return Uint8Array.of(0x24, ...N, ...body, 0x23, ...N);
}

/** The instruction sequences of the local-fuel metering for one fuel local index (see {@link _Metering}). */
interface _LocalSeqs {
  /** After the local declarations: `$f = G - 1; if ($f < 0) <exhausted>` (the wrapper block follows). */
  entry: Uint8Array;
  /** At the top of a loop body: `$f -= 1; if ($f < 0) <exhausted>`. */
  loop: Uint8Array;
  /** `G = $f`: before calls and at the function's exit. */
  writeBack: Uint8Array;
  /** `$f = G`: after calls (the callee spent fuel from the global). */
  reload: Uint8Array;
}

/**
 * How the code section is metered, one function at a time.
 *
 * Each defined function gets an i32 local `$f` holding its fuel, so a loop iteration costs a decrement and a branch
 * on a register rather than a global load and store. The local is loaded from the global `G` at entry (and
 * decremented there), written back to `G` before every call (the callee spends from `G`), reloaded after every call
 * that returns, and written back when the function exits. Every exit is made to pass one place: the body is wrapped in
 * a block with the function's results, after which `G = $f` and the function's own `end` follow. The wrapper is the
 * outermost label inside the function, so a branch that targeted the function's label (relative depth = nesting
 * depth) now lands at the wrapper's end with the same values; `return` becomes `br` to the wrapper. When `$f` goes
 * below 0 the code writes it back first and then traps, so the host sees `G < 0` after a budget trap.
 *
 * A function that cannot have the wrapper or the local keeps the global-only metering ({@link _globalMeter}): one
 * with several results and no type `[] -> [results]` in the type section to name as the wrapper's block type, or one
 * at V8's limit on locals. Either way the accounting is the same: one unit per function entry and per loop iteration.
 */
class _Metering {
  readonly #g: number[];
  readonly #globalMeter: Uint8Array;
  readonly #seqs = new Map<number, _LocalSeqs>();
  /** Block types (encoded) for result lists, keyed by the results' encoding. */
  readonly #blockTypes = new Map<string, Uint8Array | undefined>();
  /** Where a body is built before its size is known. */
  readonly #scratch = new _Writer();

  constructor(readonly fuelIndex: number, readonly types: _FuncType[]) {
    this.#g = _leb(fuelIndex);
    this.#globalMeter = _globalMeter(fuelIndex);
  }

  /** The wrapper block's block type for a function of type `t`, or undefined when there is none to use. */
  blockType(t: _FuncType): Uint8Array | undefined {
    if (t.resultCount === 0) return Uint8Array.of(0x40);
    if (t.resultCount === 1) return t.results;
    const key = t.results.join(",");
    if (!this.#blockTypes.has(key)) {
      const k = this.types.findIndex((u) =>
        u.params === 0 && u.results.length === t.results.length && u.results.every((b, i) => b === t.results[i])
      );
      this.#blockTypes.set(key, k < 0 ? undefined : new _Writer().s32(k).finish()); // an s33 type index
    }
    return this.#blockTypes.get(key);
  }

  /** The local-fuel sequences for fuel local `f`. */
  seqs(f: number): _LocalSeqs {
    let seqs = this.#seqs.get(f);
    if (!seqs) {
      const g = this.#g, l = _leb(f);
      const check = [
        ...[0x22, ...l], // local.tee $f
        ...[0x41, 0x00], // i32.const 0
        0x48, // i32.lt_s
        ...[0x04, 0x40], // if (no result)
        ...[0x20, ...l, 0x24, ...g], // G = $f
        0x00, // unreachable
        0x0b, // end
      ];
      seqs = {
        entry: Uint8Array.of(0x23, ...g, 0x41, 0x01, 0x6b, ...check), // global.get G; i32.const 1; i32.sub; ...
        loop: Uint8Array.of(0x20, ...l, 0x41, 0x01, 0x6b, ...check), // local.get $f; i32.const 1; i32.sub; ...
        writeBack: Uint8Array.of(0x20, ...l, 0x24, ...g), // local.get $f; global.set G
        reload: Uint8Array.of(0x23, ...g, 0x21, ...l), // global.get G; local.set $f
      };
      this.#seqs.set(f, seqs);
    }
    return seqs;
  }

  /** Copies one function body of type `t` (`r` spans it, without its size) to `out`, size first, metered. */
  body(r: _Reader, t: _FuncType, out: _Writer): void {
    const bytes = r.bytes;
    const start = r.pos;
    const groups = r.u32("local declaration count");
    const groupsEnd = r.pos;
    let locals = t.params;
    for (let i = 0; i < groups; i++) {
      locals += r.u32("local count");
      _skipValType(r, "local type");
    }
    const blockType = this.blockType(t);
    const seqs = blockType && locals < LOCAL_LIMIT ? this.seqs(locals) : undefined;
    const w = this.#scratch.reset();
    if (seqs) { // one more declaration, (local $f i32), then the entry check and the wrapper block
      w.u32(groups + 1).bytes(bytes.subarray(groupsEnd, r.pos)).byte(0x01).byte(0x7f);
      w.bytes(seqs.entry).byte(0x02).bytes(blockType!);
    } else w.bytes(bytes.subarray(start, r.pos)).bytes(this.#globalMeter);
    let copied = r.pos; // what of the body is in `w` (or replaced there)
    for (let depth = 1; depth > 0;) { // depth: labels open inside the function, its own (or the wrapper) included
      const at = r.pos;
      const op = r.u8("function body (no final end)");
      _skipImmediates(r, _IMM[op], op, at);
      switch (op) {
        case 0x0b: // end
          depth--;
          break;
        case 0x02: // block
        case 0x04: // if
          depth++;
          break;
        case 0x03: // loop: meter at the top of its body
          depth++;
          w.bytes(bytes.subarray(copied, r.pos)).bytes(seqs ? seqs.loop : this.#globalMeter);
          copied = r.pos;
          break;
        case 0x0f: // return: br to the wrapper, which writes the fuel back
          if (!seqs) break;
          w.bytes(bytes.subarray(copied, at)).byte(0x0c).u32(depth - 1);
          copied = r.pos;
          break;
        case 0x10: // call
        case 0x11: // call_indirect
          if (!seqs) break;
          w.bytes(bytes.subarray(copied, at)).bytes(seqs.writeBack).bytes(bytes.subarray(at, r.pos)).bytes(seqs.reload);
          copied = r.pos;
          break;
        case 0xfc: { // a bulk operation: charge its size first
          const end = r.pos;
          r.pos = at + 1;
          const shift = _BULK_SHIFT.get(r.u32("0xfc sub-opcode"));
          r.pos = end;
          if (shift === undefined) break;
          const meter = _bulkMeter(this.fuelIndex, this.fuelIndex + 1, shift, seqs ? locals : undefined);
          w.bytes(bytes.subarray(copied, at)).bytes(meter).bytes(bytes.subarray(at, r.pos));
          copied = r.pos;
          break;
        }
        case 0x12: // return_call: never comes back here
        case 0x13: // return_call_indirect
          if (!seqs) break;
          w.bytes(bytes.subarray(copied, at)).bytes(seqs.writeBack);
          copied = at;
          break;
      }
    }
    r.expectEnd("a function body, after its final end,");
    w.bytes(bytes.subarray(copied, r.end)); // up to the final end (the wrapper's, with the local)
    if (seqs) w.bytes(seqs.writeBack).byte(0x0b); // the function's own end
    out.u32(w.length).bytes(w.view());
  }

  /** The code section's new content: every body metered; `typeIndices` from the function section. */
  code(r: _Reader, typeIndices: number[]): Uint8Array {
    const out = new _Writer();
    const at = r.pos;
    const count = r.u32("function body count");
    if (count !== typeIndices.length) {
      r.fail(`function body count ${count}`, at, ` differs from the function section's ${typeIndices.length}`);
    }
    out.u32(count);
    for (let i = 0; i < count; i++) {
      const t = this.types[typeIndices[i]];
      if (!t) r.fail(`type index ${typeIndices[i]} of function body ${i}`, r.pos, " is out of range");
      const size = r.u32("function body size");
      this.body(r.sub(size, "function body"), t, out);
    }
    r.expectEnd("the code section");
    return out.finish();
  }
}

/** The memory section's new content: each memory's maximum clamped to `cap` pages (set to it when absent). */
function _clampMemories(r: _Reader, cap: number): Uint8Array {
  const out = new _Writer();
  const count = r.u32("memory count");
  out.u32(count);
  for (let i = 0; i < count; i++) {
    const at = r.pos;
    const { flags, initial, maximum } = _readLimits(r, "memory");
    if (initial > cap) r.fail(`initial memory size (${initial} pages)`, at, ` exceeds the cap of ${cap} pages`);
    out.byte(flags | 1).u32(initial).u32(Math.min(maximum ?? cap, cap)); // flag bit 0: has a maximum
  }
  r.expectEnd("the memory section");
  return out.finish();
}

/** The global section's new content (`r` over the old one, if any): the fuel global appended. */
function _appendFuelGlobal(r: _Reader | undefined, initialFuel: number): Uint8Array {
  const out = new _Writer();
  if (r) {
    out.u32(r.u32("global count") + 2).bytes(r.bytes.subarray(r.pos, r.end));
  } else out.u32(2);
  // (global (mut i32) (i32.const initialFuel)): the fuel; then (global (mut i32) (i32.const 0)): a bulk op's size
  out.byte(0x7f).byte(0x01).byte(0x41).s32(initialFuel).byte(0x0b);
  return out.byte(0x7f).byte(0x01).byte(0x41).s32(0).byte(0x0b).finish();
}

/** The export section's new content (`r` over the old one, if any): `idwrap_fuel` appended. */
function _appendFuelExport(r: _Reader | undefined, fuelIndex: number): Uint8Array {
  const out = new _Writer();
  if (r) {
    out.u32(r.u32("export count") + 1).bytes(r.bytes.subarray(r.pos, r.end));
  } else out.u32(1);
  return out.name(FUEL_EXPORT).byte(KIND_GLOBAL).u32(fuelIndex).finish();
}

/**
 * Makes a module safe to run under the ABI's limits; returns a new binary, `bytes` is not changed.
 *
 * 1. Each defined memory's maximum is clamped to `maxMemoryPages` (set to it when absent), so `memory.grow` past the
 *    cap returns -1. Imported memories are the host's own and left alone.
 * 2. Fuel metering: a new mutable i32 global, appended after the existing ones (so their indices stay valid) and
 *    exported as `idwrap_fuel`. At every function entry and at the top of every loop body the code does
 *    `fuel -= 1` and traps (`unreachable`, a WebAssembly.RuntimeError) when fuel < 0, leaving the global < 0. Inside a
 *    function the fuel is kept in a local and synchronized with the global at entry, around calls and at exit
 *    ({@link _Metering}). The host sets the global before each call; it starts at `initialFuel`.
 *
 * @throws WasmBinaryError if the binary is malformed, uses an unsupported feature (SIMD, threads, exceptions,
 *   memory64, GC types), needs more initial memory than the cap, or already exports `idwrap_fuel`
 * @throws RangeError for options out of range
 */
export function instrument(bytes: Uint8Array, options: InstrumentOptions): Uint8Array {
  const { maxMemoryPages: cap, initialFuel = DEFAULT_INITIAL_FUEL } = options;
  if (!Number.isInteger(cap) || cap < 0 || cap > MAX_PAGES) {
    throw new RangeError(`maxMemoryPages must be an integer from 0 to ${MAX_PAGES}, not ${cap}`);
  }
  if (!Number.isInteger(initialFuel) || initialFuel < 0 || initialFuel > 0x7fffffff) {
    throw new RangeError(`initialFuel must be an integer from 0 to 2^31 - 1, not ${initialFuel}`);
  }
  const context = "Cannot instrument wrapper";
  const sections = _readSections(bytes, context);
  const reader = (s: _Section) => _contentReader(bytes, context, s);
  const find = (id: number) => sections.find((s) => s.id === id);

  // The fuel global's index: after the imported globals and the defined ones.
  const [importSec, globalSec, exportSec] = [find(SEC_IMPORT), find(SEC_GLOBAL), find(SEC_EXPORT)];
  let fuelIndex = importSec ? _readImports(reader(importSec)).filter((i) => i.kind === "global").length : 0;
  if (globalSec) fuelIndex += reader(globalSec).u32("global count");
  if (exportSec && _readExports(reader(exportSec)).some((e) => e.name === FUEL_EXPORT)) {
    reader(exportSec).fail(`the export section`, exportSec.start, ` already exports "${FUEL_EXPORT}"`);
  }
  const [typeSec, functionSec] = [find(SEC_TYPE), find(SEC_FUNCTION)];
  const metering = new _Metering(fuelIndex, typeSec ? _readTypes(reader(typeSec)) : []);
  const typeIndices = functionSec ? _readFunctions(reader(functionSec)) : [];

  const out = new _Writer().bytes(bytes.subarray(0, 8)); // magic and version
  let globalDone = false;
  let exportDone = false;
  /** Creates the global and export sections, if the module has none, where a section of rank `rank` would go. */
  const addMissing = (rank: number) => {
    if (!globalDone && rank > SECTION_ORDER.indexOf(SEC_GLOBAL)) {
      out.section(SEC_GLOBAL, _appendFuelGlobal(undefined, initialFuel));
      globalDone = true;
    }
    if (!exportDone && rank > SECTION_ORDER.indexOf(SEC_EXPORT)) {
      out.section(SEC_EXPORT, _appendFuelExport(undefined, fuelIndex));
      exportDone = true;
    }
  };
  for (const s of sections) {
    if (s.id !== SEC_CUSTOM && SECTION_ORDER.includes(s.id)) addMissing(SECTION_ORDER.indexOf(s.id));
    switch (s.id) {
      case SEC_MEMORY:
        out.section(s.id, _clampMemories(reader(s), cap));
        break;
      case SEC_GLOBAL:
        out.section(s.id, _appendFuelGlobal(reader(s), initialFuel));
        globalDone = true;
        break;
      case SEC_EXPORT:
        out.section(s.id, _appendFuelExport(reader(s), fuelIndex));
        exportDone = true;
        break;
      case SEC_CODE:
        out.section(s.id, metering.code(reader(s), typeIndices));
        break;
      default: // every other section, custom and unknown ones included, byte for byte
        out.bytes(bytes.subarray(s.start, s.end));
    }
  }
  addMissing(Infinity);
  return out.finish();
}
