/**
 * Instrumenting ID wrapper binaries (docs/abi.md, "Limits and failures").
 *
 * V8 has no fuel, so the host rewrites each wrapper's binary when it loads it: the memory maximum is clamped to the
 * policy's cap, and a counter (the exported global `idwrap_fuel`) is decremented at every function entry, at the
 * top of every loop iteration and by size before each bulk memory or table operation, trapping when it runs out.
 * Inside a function the counter lives in a local, written back to the global around calls and at exits, so a loop
 * iteration costs a register decrement and a branch. A second added global holds a bulk operation's size. Only the
 * memory, global, export and code sections are rewritten; every other section, custom and unknown ones included, is
 * copied byte for byte.
 *
 * The code section is decoded instruction by instruction (./opcodes.ts).
 *
 * @module
 */
import {
  contentReader,
  type FuncType,
  KIND_GLOBAL,
  leb,
  Reader,
  readExports,
  readFunctions,
  readImports,
  readLimits,
  readSections,
  readTypes,
  SEC_CODE,
  SEC_CUSTOM,
  SEC_EXPORT,
  SEC_FUNCTION,
  SEC_GLOBAL,
  SEC_IMPORT,
  SEC_MEMORY,
  SEC_TYPE,
  type Section,
  SECTION_ORDER,
  skipValType,
  Writer,
} from "./binary.ts";
import { IMM, skipImmediates } from "./opcodes.ts";

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

/** V8's limit on a function's locals, parameters included; a function at it keeps the global-only metering. */
const LOCAL_LIMIT = 50_000;

/**
 * The global-only metering sequence for the fuel global `g`: `fuel -= 1; if (fuel < 0) unreachable`. It needs no
 * local, leaves the operand stack as it found it and opens no label that surrounds other code, so it can go anywhere
 * an instruction sequence can start. Used for functions that cannot get a fuel local (see {@link _Metering}).
 */
function _globalMeter(g: number): Uint8Array {
  const idx = leb(g);
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
  const G = leb(g), N = leb(n);
  const charge = [0x23, ...N, 0x41, shift, 0x76, 0x6b]; // global.get N; i32.const shift; i32.shr_u; i32.sub
  const body = f === undefined
    ? [0x23, ...G, ...charge, 0x24, ...G, 0x23, ...G, 0x41, 0x00, 0x48, 0x04, 0x40, 0x00, 0x0b]
    : [
      0x20,
      ...leb(f),
      ...charge,
      0x22,
      ...leb(f),
      0x41,
      0x00,
      0x48,
      0x04,
      0x40,
      0x20,
      ...leb(f),
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
  readonly #scratch = new Writer();

  constructor(readonly fuelIndex: number, readonly types: FuncType[]) {
    this.#g = leb(fuelIndex);
    this.#globalMeter = _globalMeter(fuelIndex);
  }

  /** The wrapper block's block type for a function of type `t`, or undefined when there is none to use. */
  blockType(t: FuncType): Uint8Array | undefined {
    if (t.resultTypes.length === 0) return Uint8Array.of(0x40);
    if (t.resultTypes.length === 1) return t.results;
    const key = t.results.join(",");
    if (!this.#blockTypes.has(key)) {
      const k = this.types.findIndex((u) =>
        u.paramTypes.length === 0 && u.results.length === t.results.length &&
        u.results.every((b, i) => b === t.results[i])
      );
      this.#blockTypes.set(key, k < 0 ? undefined : new Writer().s32(k).finish()); // an s33 type index
    }
    return this.#blockTypes.get(key);
  }

  /** The local-fuel sequences for fuel local `f`. */
  seqs(f: number): _LocalSeqs {
    let seqs = this.#seqs.get(f);
    if (!seqs) {
      const g = this.#g, l = leb(f);
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
  body(r: Reader, t: FuncType, out: Writer): void {
    const bytes = r.bytes;
    const start = r.pos;
    const groups = r.u32("local declaration count");
    const groupsEnd = r.pos;
    let locals = t.paramTypes.length;
    for (let i = 0; i < groups; i++) {
      locals += r.u32("local count");
      skipValType(r, "local type");
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
      skipImmediates(r, IMM[op], op, at);
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
  code(r: Reader, typeIndices: number[]): Uint8Array {
    const out = new Writer();
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
function _clampMemories(r: Reader, cap: number): Uint8Array {
  const out = new Writer();
  const count = r.u32("memory count");
  out.u32(count);
  for (let i = 0; i < count; i++) {
    const at = r.pos;
    const { flags, initial, maximum } = readLimits(r, "memory");
    if (initial > cap) r.fail(`initial memory size (${initial} pages)`, at, ` exceeds the cap of ${cap} pages`);
    out.byte(flags | 1).u32(initial).u32(Math.min(maximum ?? cap, cap)); // flag bit 0: has a maximum
  }
  r.expectEnd("the memory section");
  return out.finish();
}

/** The global section's new content (`r` over the old one, if any): the fuel global appended. */
function _appendFuelGlobal(r: Reader | undefined, initialFuel: number): Uint8Array {
  const out = new Writer();
  if (r) {
    out.u32(r.u32("global count") + 2).bytes(r.bytes.subarray(r.pos, r.end));
  } else out.u32(2);
  // (global (mut i32) (i32.const initialFuel)): the fuel; then (global (mut i32) (i32.const 0)): a bulk op's size
  out.byte(0x7f).byte(0x01).byte(0x41).s32(initialFuel).byte(0x0b);
  return out.byte(0x7f).byte(0x01).byte(0x41).s32(0).byte(0x0b).finish();
}

/** The export section's new content (`r` over the old one, if any): `idwrap_fuel` appended. */
function _appendFuelExport(r: Reader | undefined, fuelIndex: number): Uint8Array {
  const out = new Writer();
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
  const sections = readSections(bytes, context);
  const reader = (s: Section) => contentReader(bytes, context, s);
  const find = (id: number) => sections.find((s) => s.id === id);

  // The fuel global's index: after the imported globals and the defined ones.
  const [importSec, globalSec, exportSec] = [find(SEC_IMPORT), find(SEC_GLOBAL), find(SEC_EXPORT)];
  let fuelIndex = importSec ? readImports(reader(importSec)).filter((i) => i.kind === "global").length : 0;
  if (globalSec) fuelIndex += reader(globalSec).u32("global count");
  if (exportSec && readExports(reader(exportSec)).some((e) => e.name === FUEL_EXPORT)) {
    reader(exportSec).fail(`the export section`, exportSec.start, ` already exports "${FUEL_EXPORT}"`);
  }
  const [typeSec, functionSec] = [find(SEC_TYPE), find(SEC_FUNCTION)];
  const metering = new _Metering(fuelIndex, typeSec ? readTypes(reader(typeSec)) : []);
  const typeIndices = functionSec ? readFunctions(reader(functionSec)) : [];

  const out = new Writer().bytes(bytes.subarray(0, 8)); // magic and version
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
