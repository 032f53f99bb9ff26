/**
 * The instruction decoder of the code section: the immediates of each
 * opcode, so that an immediate is never mistaken for an opcode. The MVP plus
 * sign extension, saturating truncation, bulk memory, reference types,
 * multi-value, multi-memory memargs and tail calls; SIMD, threads and
 * exception handling are refused.
 *
 * @module
 */
import { hex, type Reader, skipValType } from "./binary.ts";

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
export const IMM = new Uint8Array(256);

/** Immediates of each 0xFC sub-opcode (0–17). */
const _IMM_FC = new Uint8Array(18);

function _fill(table: Uint8Array, from: number, to: number, kind: number): void {
  table.fill(kind, from, to + 1);
}
_fill(IMM, 0x00, 0x01, IMM_NONE); // unreachable, nop
_fill(IMM, 0x02, 0x04, IMM_BLOCK); // block, loop, if
_fill(IMM, 0x05, 0x05, IMM_NONE); // else
_fill(IMM, 0x06, 0x0a, IMM_EXCEPTIONS); // try, catch, throw, rethrow, throw_ref
_fill(IMM, 0x0b, 0x0b, IMM_NONE); // end
_fill(IMM, 0x0c, 0x0d, IMM_U32); // br, br_if
_fill(IMM, 0x0e, 0x0e, IMM_BR_TABLE);
_fill(IMM, 0x0f, 0x0f, IMM_NONE); // return
_fill(IMM, 0x10, 0x10, IMM_U32); // call
_fill(IMM, 0x11, 0x11, IMM_U32X2); // call_indirect: type, table
_fill(IMM, 0x12, 0x12, IMM_U32); // return_call
_fill(IMM, 0x13, 0x13, IMM_U32X2); // return_call_indirect
_fill(IMM, 0x18, 0x19, IMM_EXCEPTIONS); // delegate, catch_all
_fill(IMM, 0x1a, 0x1b, IMM_NONE); // drop, select
_fill(IMM, 0x1c, 0x1c, IMM_SELECT_T); // typed select
_fill(IMM, 0x20, 0x26, IMM_U32); // local.get/set/tee, global.get/set, table.get/set
_fill(IMM, 0x28, 0x3e, IMM_MEMARG); // loads and stores
_fill(IMM, 0x3f, 0x40, IMM_U32); // memory.size, memory.grow: memory index
_fill(IMM, 0x41, 0x41, IMM_I32);
_fill(IMM, 0x42, 0x42, IMM_I64);
_fill(IMM, 0x43, 0x43, IMM_F32);
_fill(IMM, 0x44, 0x44, IMM_F64);
_fill(IMM, 0x45, 0xc4, IMM_NONE); // numeric operators, sign extension 0xc0–0xc4
_fill(IMM, 0xd0, 0xd0, IMM_HEAP_TYPE); // ref.null
_fill(IMM, 0xd1, 0xd1, IMM_NONE); // ref.is_null
_fill(IMM, 0xd2, 0xd2, IMM_U32); // ref.func
_fill(IMM, 0xfc, 0xfc, IMM_PREFIX_FC);
_fill(IMM, 0xfd, 0xfd, IMM_SIMD);
_fill(IMM, 0xfe, 0xfe, IMM_THREADS);
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
function _skipBlockType(r: Reader): void {
  const at = r.pos;
  const b = r.pos < r.end ? r.bytes[r.pos] : -1; // -1: let s33 report the truncation
  if (b === 0x40) r.pos++; // empty
  else if ((b >= 0x7b && b <= 0x7f) || b === 0x70 || b === 0x6f || b === 0x63 || b === 0x64) {
    skipValType(r, "block type");
  } else if (r.s33("block type") < 0) r.fail("invalid block type", at); // a type index (multi-value)
}

/** Skips the immediates of kind `kind` of the instruction `op`, which started at byte `at`. */
export function skipImmediates(r: Reader, kind: number, op: number, at: number): void {
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
      for (let i = 0; i < n; i++) skipValType(r, "select type");
      return;
    }
    case IMM_HEAP_TYPE:
      r.s33("heap type");
      return;
    case IMM_PREFIX_FC: {
      const sub = r.u32("0xfc sub-opcode");
      const subKind = sub < _IMM_FC.length ? _IMM_FC[sub] : IMM_UNKNOWN;
      if (subKind === IMM_UNKNOWN) r.fail(`unknown opcode 0xfc ${sub}`, at);
      return skipImmediates(r, subKind, op, at);
    }
    case IMM_SIMD:
      return r.fail(`SIMD opcode ${hex(op)}`, at, " is not supported");
    case IMM_THREADS:
      return r.fail(`threads (atomics) opcode ${hex(op)}`, at, " is not supported");
    case IMM_EXCEPTIONS:
      return r.fail(`exception-handling opcode ${hex(op)}`, at, " is not supported");
    default:
      return r.fail(`unknown opcode ${hex(op)}`, at);
  }
}
