/**
 * The records and map values of kmod/bpf/idwrap_bpf.h, mirrored (little-endian,
 * x86-64). tests/sources/bpf/layout_test.ts compiles the C header and checks
 * every offset and size here against it.
 *
 * @module
 */

/** Record kinds (IDW_ENTER …). */
export const KIND = { ENTER: 1, EXIT: 2, FORK: 3, EXEC: 4, GONE: 5, SKIPPED: 6 } as const;

/** Record flags (IDW_F_*). */
export const FLAG = {
  COPIES: 0x01,
  COMPAT: 0x02,
  PATH_FAULT: 0x04,
  PATH2_FAULT: 0x08,
  DATA_FAULT: 0x10,
  DATA_TRUNC: 0x20,
  UNFOLLOWED: 0x40,
  EXEC_KILLED: 0x80,
  /** ENTER: `ret` is the process's call window after this call (the seq filter's, IDW_F_WINDOW). */
  WINDOW: 0x100,
} as const;

/** Interest flags (IDW_I_*). */
export const INTEREST_FLAG = { ENTER: 0x01, EXIT: 0x02, WINDOW: 0x04, FILTERABLE: 0x08, ARGV: 0x10 } as const;

/** An argv copy (IDW_I_ARGV) holds at most this many strings (IDW_ARGV_MAX), in DATA_MAX bytes. */
export const ARGV_MAX = 32;

/** A call in a window: its number + 1 in IDW_WINDOW_BITS bits; a window holds the last six (IDW_WINDOW_MASK). */
export const WINDOW_BITS = 10;
export const WINDOW_MASK = (1n << 60n) - 1n;

/** struct idw_seqf_arm (seqf_armed's value), struct idw_seqf_state, struct idw_seqf_key (seqf_known's key). */
export const SEQF_ARM = { filter: 0, gen: 4, mask: 8, size: 16 } as const;
export const SEQF_STATE = { window: 0, skipped: 8, gen: 16, size: 24 } as const;
export const SEQF_KEY = { filter: 0, window: 8, size: 16 } as const;
/**
 * struct idw_seqf_file (seqf_programs' key): an executable's inode, s_dev (kernel encoding), the inode's generation
 * and the id of the mount it was exec'd through (an EXEC record's args[0], args[1], args[3], args[4]); and the name it
 * was exec'd by: its directory's inode and FNV-1a of its last component.
 */
export const SEQF_FILE = { ino: 0, dev: 8, gen: 16, mnt_id: 20, parent: 24, name_hash: 32, size: 40 } as const;

/** Watch modes (IDW_MODE_*). */
export const MODE = { PIDS: 0, CGROUP: 1 } as const;

export const PATH_MAX = 256;
export const DATA_MAX = 512;
export const MAX_SYSCALLS = 512;

/** Offsets in struct idw_file (exec_kill's key: a file by identity), and its size. */
export const FILE_KEY = { ino: 0, dev: 8, size: 16 } as const;

/** Offsets in struct idw_head, and its size. */
export const HEAD = {
  ktime: 0,
  kind: 8,
  flags: 12,
  tgid: 16,
  tid: 20,
  nr: 24,
  lost: 28,
  ret: 32,
  args: 40,
  uid: 88,
  gid: 92,
  size: 96,
} as const;

/** Offsets in struct idw_copy_rec, and its size. */
export const COPY = {
  path_len: 96,
  path2_len: 98,
  data_len: 100,
  path: 104,
  path2: 104 + PATH_MAX,
  data: 104 + 2 * PATH_MAX,
  size: 104 + 2 * PATH_MAX + DATA_MAX,
} as const;

/** The size of struct idw_path_rec: struct idw_copy_rec's prefix up to the end of `path`. */
export const PATH_REC_SIZE = COPY.path + PATH_MAX;

/** struct idw_interest: flags, then the argument indexes (-1: none). */
export const INTEREST = { flags: 0, path_arg: 1, path2_arg: 2, data_arg: 3, len_arg: 4, size: 8 } as const;

/** struct idw_config (.rodata). */
export const CONFIG = { mode: 0, cgroup_id: 8, wake_bytes: 16, size: 24 } as const;

/** One record as the programs wrote it. */
export interface BpfRecord {
  /** bpf_ktime_get_ns(): CLOCK_MONOTONIC, nanoseconds. */
  ktime: bigint;
  kind: number;
  flags: number;
  tgid: number;
  tid: number;
  nr: number;
  /** Records this CPU dropped (ring full) just before this one. */
  lost: number;
  ret: bigint;
  /** The six argument registers. */
  args: BigUint64Array;
  uid: number;
  gid: number;
  path?: Uint8Array;
  path2?: Uint8Array;
  data?: Uint8Array;
}

/** What one syscall's entry in the `interest` map asks for. */
export interface InterestEntry {
  enter: boolean;
  exit: boolean;
  /** Argument indexes (0–5) to copy as paths, a buffer, and the buffer's length. */
  pathArg?: number;
  path2Arg?: number;
  dataArg?: number;
  lenArg?: number;
  /** The argument (0–5) that is an argv (execve's): its strings are copied, NUL-separated, as the record's data. */
  argvArg?: number;
  /** The call enters its process's window (the filtering wrapper declares it). */
  window?: boolean;
  /** Only the filtering wrapper consumes it: the kernel drops it when its window is known. */
  filterable?: boolean;
}

/**
 * A record read in place: the fields are read from the ring's copy when asked, and the copies are views of it (no
 * per-record allocation but this object). Most records are read for a few integers only; a path or buffer costs
 * something only when a wrapper or rule reads it (docs/bpf.md, "Host side"). The bytes must not be written again.
 */
class RecordView implements BpfRecord {
  readonly #v: DataView;
  readonly #bytes: Uint8Array;
  readonly flags: number;

  constructor(bytes: Uint8Array, flags: number) {
    this.#bytes = bytes;
    this.#v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.flags = flags;
  }

  get ktime(): bigint {
    return this.#v.getBigUint64(HEAD.ktime, true);
  }
  /** ktime in milliseconds, as a number (no BigInt on the hot path). */
  get ktimeMs(): number {
    return (this.#v.getUint32(HEAD.ktime, true) + this.#v.getUint32(HEAD.ktime + 4, true) * 2 ** 32) / 1e6;
  }
  get kind(): number {
    return this.#v.getUint32(HEAD.kind, true);
  }
  get tgid(): number {
    return this.#v.getUint32(HEAD.tgid, true);
  }
  get tid(): number {
    return this.#v.getUint32(HEAD.tid, true);
  }
  get nr(): number {
    return this.#v.getInt32(HEAD.nr, true);
  }
  get lost(): number {
    return this.#v.getUint32(HEAD.lost, true);
  }
  get ret(): bigint {
    return this.#v.getBigInt64(HEAD.ret, true);
  }
  /** The six registers: a view when the record is 8-byte aligned in its buffer (it is, from the tracer), else a copy. */
  get args(): BigUint64Array {
    const at = this.#bytes.byteOffset + HEAD.args;
    return at % 8 === 0
      ? new BigUint64Array(this.#bytes.buffer, at, 6)
      : new BigUint64Array(this.#bytes.slice(HEAD.args, HEAD.args + 48).buffer);
  }
  get uid(): number {
    return this.#v.getUint32(HEAD.uid, true);
  }
  get gid(): number {
    return this.#v.getUint32(HEAD.gid, true);
  }
  get path(): Uint8Array | undefined {
    if (!(this.flags & FLAG.COPIES) || this.flags & FLAG.PATH_FAULT) return undefined;
    const n = Math.min(this.#v.getUint16(COPY.path_len, true), PATH_MAX);
    return n ? this.#bytes.subarray(COPY.path, COPY.path + n) : undefined;
  }
  get path2(): Uint8Array | undefined {
    if (!(this.flags & FLAG.COPIES) || this.flags & FLAG.PATH2_FAULT || this.#bytes.length < COPY.size) {
      return undefined;
    }
    const n = Math.min(this.#v.getUint16(COPY.path2_len, true), PATH_MAX);
    return n ? this.#bytes.subarray(COPY.path2, COPY.path2 + n) : undefined;
  }
  get data(): Uint8Array | undefined {
    if (!(this.flags & FLAG.COPIES) || this.#bytes.length < COPY.size) return undefined;
    const n = Math.min(this.#v.getUint16(COPY.data_len, true), DATA_MAX);
    return n ? this.#bytes.subarray(COPY.data, COPY.data + n) : undefined;
  }
}

/** A record's ktime in milliseconds (CLOCK_MONOTONIC), without BigInt arithmetic where the record allows it. */
export function ktimeMs(rec: BpfRecord): number {
  return rec instanceof RecordView ? rec.ktimeMs : Number(rec.ktime) / 1e6;
}

/**
 * A record's bytes as a {@linkcode BpfRecord}, read in place (the bytes must stay as they are while the record is
 * used); throws on a size that is neither record size.
 */
export function decodeRecord(bytes: Uint8Array): BpfRecord {
  if (bytes.length < HEAD.size) throw new Error(`A bpf record of ${bytes.length} bytes is shorter than its head`);
  const flags = bytes[HEAD.flags] | bytes[HEAD.flags + 1] << 8 | bytes[HEAD.flags + 2] << 16 |
    bytes[HEAD.flags + 3] << 24;
  if (flags & FLAG.COPIES && bytes.length < COPY.size && bytes.length < PATH_REC_SIZE) {
    throw new Error(`A bpf copy record of ${bytes.length} bytes, expected ${PATH_REC_SIZE} or ${COPY.size}`);
  }
  return new RecordView(bytes, flags >>> 0);
}

/** An interest map value. */
export function encodeInterest(e: InterestEntry): Uint8Array {
  const b = new Uint8Array(INTEREST.size);
  const v = new DataView(b.buffer);
  if (e.filterable && !e.window) throw new RangeError("interest filterable: a filterable call must be in the window");
  v.setUint8(
    INTEREST.flags,
    (e.enter ? INTEREST_FLAG.ENTER : 0) | (e.exit ? INTEREST_FLAG.EXIT : 0) | (e.window ? INTEREST_FLAG.WINDOW : 0) |
      (e.filterable ? INTEREST_FLAG.FILTERABLE : 0),
  );
  const idx = (i: number | undefined, field: string) => {
    if (i === undefined) return -1;
    if (!Number.isInteger(i) || i < 0 || i > 5) throw new RangeError(`interest ${field}: expected 0–5, got ${i}`);
    return i;
  };
  v.setInt8(INTEREST.path_arg, idx(e.pathArg, "pathArg"));
  v.setInt8(INTEREST.path2_arg, idx(e.path2Arg, "path2Arg"));
  // A buffer without its length cannot be copied: both or neither.
  const data = idx(e.dataArg, "dataArg"), len = idx(e.lenArg, "lenArg"), argv = idx(e.argvArg, "argvArg");
  if ((data < 0) !== (len < 0)) throw new RangeError("interest dataArg and lenArg: give both or neither");
  // An argv is copied into the buffer's place: one or the other.
  if (argv >= 0 && data >= 0) throw new RangeError("interest argvArg: not with dataArg (both copy into data)");
  if (argv >= 0) v.setUint8(INTEREST.flags, v.getUint8(INTEREST.flags) | INTEREST_FLAG.ARGV);
  v.setInt8(INTEREST.data_arg, argv >= 0 ? argv : data);
  v.setInt8(INTEREST.len_arg, len);
  return b;
}

/** The .rodata config. */
export function encodeConfig(mode: number, cgroupId: bigint, wakeBytes: number): Uint8Array {
  const b = new Uint8Array(CONFIG.size);
  const v = new DataView(b.buffer);
  v.setUint32(CONFIG.mode, mode, true);
  v.setBigUint64(CONFIG.cgroup_id, cgroupId, true);
  v.setBigUint64(CONFIG.wake_bytes, BigInt(wakeBytes), true);
  return b;
}

/**
 * A copy record made on the host: `rec`'s head with `flags`, `data` and `path` (by default its own) (a held execve
 * enter given the argv and name its exec record copied: transport.ts). Fresh bytes, so it outlives the ring's; no dropped-record count (the
 * original carried it).
 */
export function copyRecordWith(
  rec: BpfRecord,
  flags: number,
  data: Uint8Array | undefined,
  path: Uint8Array | undefined = rec.path,
): BpfRecord {
  const b = new Uint8Array(COPY.size);
  const v = new DataView(b.buffer);
  v.setBigUint64(HEAD.ktime, rec.ktime, true);
  v.setUint32(HEAD.kind, rec.kind, true);
  v.setUint32(HEAD.flags, flags | FLAG.COPIES, true);
  v.setUint32(HEAD.tgid, rec.tgid, true);
  v.setUint32(HEAD.tid, rec.tid, true);
  v.setInt32(HEAD.nr, rec.nr, true);
  v.setBigInt64(HEAD.ret, rec.ret, true);
  rec.args.forEach((a, i) => v.setBigUint64(HEAD.args + 8 * i, a, true));
  v.setUint32(HEAD.uid, rec.uid, true);
  v.setUint32(HEAD.gid, rec.gid, true);
  const name = path ?? new Uint8Array(0);
  b.set(name.subarray(0, PATH_MAX), COPY.path);
  v.setUint16(COPY.path_len, Math.min(name.length, PATH_MAX), true);
  const bytes = (data ?? new Uint8Array(0)).subarray(0, DATA_MAX);
  b.set(bytes, COPY.data);
  v.setUint16(COPY.data_len, bytes.length, true);
  return decodeRecord(b);
}
