/**
 * The WebAssembly binary format as the wrapper checks need it: a reader and
 * a writer of its encodings (LEB128, names), the module's sections in their
 * required order, and the parts of the import, export, function and memory
 * sections that both the summary (./summary.ts) and the metering
 * (./metering.ts) read. Failures are {@link WasmBinaryError}s naming the
 * byte offset.
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

/** Thrown for malformed or unsupported binaries, with a message saying what and at which byte offset. */
export class WasmBinaryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "WasmBinaryError";
  }
}

export const SEC_CUSTOM = 0;
export const SEC_TYPE = 1;
export const SEC_IMPORT = 2;
export const SEC_FUNCTION = 3;
export const SEC_MEMORY = 5;
export const SEC_GLOBAL = 6;
export const SEC_EXPORT = 7;
export const SEC_CODE = 10;

/** Known non-custom section ids in the order the binary format requires them (tag 13 sits between memory and global). */
export const SECTION_ORDER: readonly number[] = [1, 2, 3, 4, 5, 13, 6, 7, 8, 9, 12, 10, 11];
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
export const KIND_GLOBAL = 3;
const _utf8 = new TextDecoder("utf-8", { fatal: true });
const _utf8Encoder = new TextEncoder();

/** `0x1f` style hex for messages. */
export function hex(n: number): string {
  return `0x${n.toString(16).padStart(2, "0")}`;
}

/** A cursor over `bytes[pos, end)`; failures name the absolute byte offset in the whole binary. */
export class Reader {
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
    return this.leb(32, false, what);
  }

  s32(what: string): number {
    return this.leb(32, true, what);
  }

  s33(what: string): number {
    return this.leb(33, true, what);
  }

  /** Skips an s64 (its value is never needed: instructions are copied as they are). */
  s64(what: string): void {
    this.leb(64, true, what);
  }

  /** Advances past `n` bytes. */
  skip(n: number, what: string): void {
    if (n > this.end - this.pos) this.fail(`truncated ${what} (${n} bytes)`);
    this.pos += n;
  }

  /** A reader over the next `size` bytes; this one moves past them. */
  sub(size: number, what: string): Reader {
    const start = this.pos;
    this.skip(size, what);
    return new Reader(this.bytes, this.context, start, start + size);
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
  private leb(bits: number, signed: boolean, what: string): number {
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
export class Writer {
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
export interface Section {
  id: number;
  start: number;
  content: number;
  end: number;
}

/** Checks the header and splits the binary into sections, refusing known sections out of order or repeated. */
export function readSections(bytes: Uint8Array, context: string): Section[] {
  const r = new Reader(bytes, context);
  if (bytes.length < 8) r.fail("truncated header (magic and version)", 0);
  if (bytes[0] !== 0x00 || bytes[1] !== 0x61 || bytes[2] !== 0x73 || bytes[3] !== 0x6d) {
    r.fail("not a WebAssembly binary (bad magic)", 0);
  }
  const version = bytes[4] | bytes[5] << 8 | bytes[6] << 16 | bytes[7] << 24;
  if (version !== 1) r.fail(`unsupported binary version ${hex(version >>> 0)}`, 4);
  r.pos = 8;
  const sections: Section[] = [];
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
export function contentReader(bytes: Uint8Array, context: string, s: Section): Reader {
  return new Reader(bytes, context, s.content, s.end);
}

/** Skips a value type: a number or reference type, or a typed-function-references `(ref null? ht)`. */
export function skipValType(r: Reader, what: string): void {
  const at = r.pos;
  const b = r.u8(what);
  if ((b >= 0x7b && b <= 0x7f) || b === 0x70 || b === 0x6f) return;
  if (b === 0x63 || b === 0x64) {
    r.s33("heap type");
    return;
  }
  r.fail(`unknown ${what} ${hex(b)}`, at);
}

/** Reads limits (flags, initial, optional maximum); refuses memory64 and other flags. */
export function readLimits(r: Reader, what: string): { flags: number; initial: number; maximum?: number } {
  const at = r.pos;
  const flags = r.u8(`${what} limits`);
  if (flags > 3) r.fail(`unsupported ${what} limits flags ${hex(flags)} (memory64 is not supported)`, at);
  const initial = r.u32(`${what} initial size`);
  if (!(flags & 1)) return { flags, initial };
  return { flags, initial, maximum: r.u32(`${what} maximum size`) };
}

/** Reads the import section; a function import carries its type index until the summary (./summary.ts) names it. */
export function readImports(r: Reader): (WasmImport & { type?: number })[] {
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
        skipValType(r, "table element type");
        readLimits(r, "table");
        break;
      case 2: // memory: limits
        readLimits(r, "memory");
        break;
      case 3: { // global: value type, mutability
        skipValType(r, "global type");
        const mut = r.u8("global mutability");
        if (mut > 1) r.fail(`invalid global mutability ${hex(mut)}`, r.pos - 1);
        break;
      }
      case 4: // tag: attribute, type index
        r.u8("tag attribute");
        r.u32("tag type index");
        break;
      default:
        r.fail(`unknown import kind ${hex(kind)}`, at);
    }
    imports.push({ module, name, kind: KINDS[kind], ...(type === undefined ? {} : { type }) });
  }
  r.expectEnd("the import section");
  return imports;
}

/** Reads the export section. */
export function readExports(r: Reader): WasmExport[] {
  const exports: WasmExport[] = [];
  const count = r.u32("export count");
  for (let i = 0; i < count; i++) {
    const name = r.name("export name");
    const at = r.pos;
    const kind = r.u8("export kind");
    if (kind >= KINDS.length) r.fail(`unknown export kind ${hex(kind)}`, at);
    exports.push({ name, kind: KINDS[kind], index: r.u32("export index") });
  }
  r.expectEnd("the export section");
  return exports;
}

/** Reads the function section: each defined function's type index. */
export function readFunctions(r: Reader): number[] {
  const typeIndices: number[] = [];
  const count = r.u32("function count");
  for (let i = 0; i < count; i++) typeIndices.push(r.u32("function type index"));
  r.expectEnd("the function section");
  return typeIndices;
}

/** The LEB128 (u32) encoding of `n`. */
export function leb(n: number): number[] {
  return [...new Writer().u32(n).finish()];
}

/** A function type: each parameter's and result's value type as encoded, and the results back to back (to compare and reuse as a block type). */
export interface FuncType {
  paramTypes: Uint8Array[];
  resultTypes: Uint8Array[];
  results: Uint8Array;
}

/** Reads the type section; only function types (0x60) are accepted (GC's rec groups, structs and arrays are not). */
export function readTypes(r: Reader): FuncType[] {
  /** A vector of value types: each one's encoding, and all of them back to back. */
  const valueTypes = (part: string): { each: Uint8Array[]; bytes: Uint8Array } => {
    const n = r.u32(`${part} count`);
    const start = r.pos;
    const each: Uint8Array[] = [];
    for (let j = 0; j < n; j++) {
      const at = r.pos;
      skipValType(r, `${part} type`);
      each.push(r.bytes.subarray(at, r.pos));
    }
    return { each, bytes: r.bytes.subarray(start, r.pos) };
  };
  const types: FuncType[] = [];
  const count = r.u32("type count");
  for (let i = 0; i < count; i++) {
    const at = r.pos;
    const form = r.u8("type form");
    if (form !== 0x60) r.fail(`type form ${hex(form)}`, at, " is not supported (only function types are)");
    const params = valueTypes("parameter");
    const results = valueTypes("result");
    types.push({ paramTypes: params.each, resultTypes: results.each, results: results.bytes });
  }
  r.expectEnd("the type section");
  return types;
}
