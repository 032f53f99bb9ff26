/**
 * The TypeScript mirror of kmod/idwrap_uapi.h: the /dev/idwrap protocol
 * (constants, ioctl numbers, struct layouts), a parser from the bytes read()
 * returns to typed records, and encoders for what the host writes.
 * tests/sources/kmod/uapi_test.ts compiles a C program against the real
 * header and checks every number here against it.
 *
 * @module
 */

/** IDWRAP_ABI_VERSION. */
export const ABI_VERSION = 1;
/** IDWRAP_MAX_SYSCALLS: x86_64 numbers below this are addressable in an interest mask. */
export const MAX_SYSCALLS = 512;

/** IDWRAP_CFG_*. */
export const CFG = { ALL_PROCESSES: 0x1, EXEC_SYNC: 0x2 } as const;
/** IDWRAP_ACT_*: verdict actions and the fail action. */
export const ACT = { ALLOW: 0, DENY: 1, KILL: 2, REWRITE: 3 } as const;
/** IDWRAP_PRE_OBSERVE … IDWRAP_POST_DECIDE: one byte per syscall in the interest mask. */
export const INTEREST = { PRE_OBSERVE: 0x1, PRE_DECIDE: 0x2, POST_OBSERVE: 0x4, POST_DECIDE: 0x8 } as const;
/** IDWRAP_WATCH_*. */
export const WATCH = { NO_CHILDREN: 0x1 } as const;
/** IDWRAP_EV_*: record types. */
export const EV = { SYSCALL: 1, FORK: 2, EXEC: 3, EXIT: 4, LOST: 5 } as const;
/** IDWRAP_EVF_*: record flags. */
export const EVF = {
  POST: 0x0001,
  VERDICT: 0x0002,
  COMPAT: 0x0004,
  X32: 0x0008,
  FAULT: 0x0010,
  TRUNC: 0x0020,
  EMULATED: 0x0040,
  WATCHED: 0x0080,
  THREAD: 0x0100,
  DENIED: 0x0200,
  JOINED: 0x0400,
  RACED: 0x0800,
} as const;
/** IDWRAP_VF_*: verdict flags (EXEC records). */
export const VF = { WATCH: 0x1, UNWATCH: 0x2 } as const;

/** struct idwrap_config (64 bytes): u32 abi, flags, timeout_ms, fail_action; s32 fail_errno; u32 ring_bytes, data_max, reserved[9]. */
export const CONFIG = {
  size: 64,
  abi: 0,
  flags: 4,
  timeout_ms: 8,
  fail_action: 12,
  fail_errno: 16,
  ring_bytes: 20,
  data_max: 24,
  reserved: 28,
} as const;

/** struct idwrap_interest: u8 mask[MAX_SYSCALLS]. */
export const INTEREST_SIZE = MAX_SYSCALLS;

/** struct idwrap_watch (8 bytes): s32 pid; u32 flags. */
export const WATCH_STRUCT = { size: 8, pid: 0, flags: 4 } as const;

/** struct idwrap_event (144 bytes, then path, path2, data, zeros to 8). */
export const EVENT = {
  size: 144,
  size_: 0,
  type: 4,
  flags: 6,
  id: 8,
  time_ns: 16,
  pid: 24,
  tid: 28,
  ppid: 32,
  uid: 36,
  gid: 40,
  euid: 44,
  egid: 48,
  nr: 52,
  args: 56,
  ret: 104,
  lost: 112,
  path_len: 120,
  path2_len: 122,
  data_len: 124,
  comm: 128,
} as const;

/** struct idwrap_verdict (40 bytes, then path_len bytes of a new path). */
export const VERDICT = {
  size: 40,
  id: 0,
  action: 8,
  err: 12,
  flags: 16,
  arg: 20,
  value: 24,
  path_len: 32,
  reserved: 36,
} as const;

/** struct idwrap_stats (80 bytes): ten u64 counters, in this order. */
export const STATS_FIELDS = [
  "events",
  "waited",
  "lost",
  "timeouts",
  "denied",
  "killed",
  "rewritten",
  "emulated",
  "watched",
  "inflight",
] as const;
export const STATS_SIZE = STATS_FIELDS.length * 8;

/** The ioctl magic. */
export const IOC_MAGIC = 0xd1;

// <asm-generic/ioctl.h>: dir (2 bits) << 30 | size (14 bits) << 16 | type << 8 | nr.
const IOC_NONE = 0, IOC_WRITE = 1, IOC_READ = 2;
const ioc = (dir: number, nr: number, size: number) => ((dir << 30) | (size << 16) | (IOC_MAGIC << 8) | nr) >>> 0;

/** IDWRAP_IOC_*: ioctl requests. */
export const IOC = {
  VERSION: ioc(IOC_NONE, 0, 0),
  CONFIG: ioc(IOC_WRITE, 1, CONFIG.size),
  INTEREST: ioc(IOC_WRITE, 2, INTEREST_SIZE),
  WATCH: ioc(IOC_WRITE, 3, WATCH_STRUCT.size),
  UNWATCH: ioc(IOC_WRITE, 4, WATCH_STRUCT.size),
  STATS: ioc(IOC_READ, 5, STATS_SIZE),
} as const;

/** One event record, parsed. */
export interface KmodRecord {
  /** The whole record's size (with payload and padding). */
  size: number;
  type: number;
  flags: number;
  id: bigint;
  timeNs: bigint;
  pid: number;
  tid: number;
  ppid: number;
  uid: number;
  gid: number;
  euid: number;
  egid: number;
  nr: number;
  /** The six raw argument registers. */
  args: BigUint64Array;
  /** post: the result (-errno on error); EXIT: the wait status. */
  ret: bigint;
  lost: bigint;
  comm: string;
  /** The first path, without its NUL. */
  path?: string;
  path2?: string;
  /** A write's buffer, a sockaddr, execve's argv (NUL-separated). */
  data?: Uint8Array;
}

/** A record that cannot be parsed: the stream is out of step with this mirror. */
export class RecordError extends Error {}

const decoder = new TextDecoder();

/** Bytes up to (not including) the first NUL. */
function cstring(bytes: Uint8Array): string {
  const end = bytes.indexOf(0);
  return decoder.decode(end < 0 ? bytes : bytes.subarray(0, end));
}

/**
 * Parses the record at `offset` of `buf` (what one read() returned).
 *
 * @returns the record; its `size` is where the next one starts
 * @throws RecordError when the bytes do not make a record
 */
export function parseRecord(buf: Uint8Array, offset = 0): KmodRecord {
  if (buf.length - offset < EVENT.size) {
    throw new RecordError(`a record needs ${EVENT.size} bytes, ${buf.length - offset} left`);
  }
  const v = new DataView(buf.buffer, buf.byteOffset + offset, buf.length - offset);
  const size = v.getUint32(EVENT.size_, true);
  if (size < EVENT.size || size % 8 !== 0 || size > buf.length - offset) {
    throw new RecordError(`bad record size ${size} (${buf.length - offset} bytes left)`);
  }
  const pathLen = v.getUint16(EVENT.path_len, true);
  const path2Len = v.getUint16(EVENT.path2_len, true);
  const dataLen = v.getUint32(EVENT.data_len, true);
  if (EVENT.size + pathLen + path2Len + dataLen > size) {
    throw new RecordError(`payload (${pathLen}+${path2Len}+${dataLen}) exceeds the record's ${size} bytes`);
  }
  const args = new BigUint64Array(6);
  for (let i = 0; i < 6; i++) args[i] = v.getBigUint64(EVENT.args + i * 8, true);
  const start = buf.byteOffset + offset;
  const slice = (from: number, len: number) => new Uint8Array(buf.buffer, start + from, len);
  const rec: KmodRecord = {
    size,
    type: v.getUint16(EVENT.type, true),
    flags: v.getUint16(EVENT.flags, true),
    id: v.getBigUint64(EVENT.id, true),
    timeNs: v.getBigUint64(EVENT.time_ns, true),
    pid: v.getInt32(EVENT.pid, true),
    tid: v.getInt32(EVENT.tid, true),
    ppid: v.getInt32(EVENT.ppid, true),
    uid: v.getUint32(EVENT.uid, true),
    gid: v.getUint32(EVENT.gid, true),
    euid: v.getUint32(EVENT.euid, true),
    egid: v.getUint32(EVENT.egid, true),
    nr: v.getUint32(EVENT.nr, true),
    args,
    ret: v.getBigInt64(EVENT.ret, true),
    lost: v.getBigUint64(EVENT.lost, true),
    comm: cstring(slice(EVENT.comm, 16)),
  };
  let at = EVENT.size;
  if (pathLen) rec.path = cstring(slice(at, pathLen));
  at += pathLen;
  if (path2Len) rec.path2 = cstring(slice(at, path2Len));
  at += path2Len;
  if (dataLen) rec.data = slice(at, dataLen).slice();
  return rec;
}

/** Every record in one read()'s bytes. */
export function parseRecords(buf: Uint8Array): KmodRecord[] {
  const out: KmodRecord[] = [];
  for (let at = 0; at < buf.length;) {
    const r = parseRecord(buf, at);
    out.push(r);
    at += r.size;
  }
  return out;
}

/** What the host answers to one waiting record. */
export interface KmodVerdict {
  id: bigint;
  action: number;
  /** DENY: a positive errno. */
  err?: number;
  /** VF_* (EXEC records). */
  flags?: number;
  /** REWRITE: which argument (0..5) and its new value. */
  arg?: number;
  value?: bigint;
  /** REWRITE of an emulated open: the new path. */
  path?: string;
}

const encoder = new TextEncoder();

/** The bytes of one verdict for write(): the struct, then the path with its NUL where there is one. */
export function encodeVerdict(verdict: KmodVerdict): Uint8Array {
  const path = verdict.path === undefined ? undefined : encoder.encode(verdict.path + "\0");
  const out = new Uint8Array(VERDICT.size + (path?.length ?? 0));
  const v = new DataView(out.buffer);
  v.setBigUint64(VERDICT.id, verdict.id, true);
  v.setUint32(VERDICT.action, verdict.action, true);
  v.setInt32(VERDICT.err, verdict.err ?? 0, true);
  v.setUint32(VERDICT.flags, verdict.flags ?? 0, true);
  v.setUint32(VERDICT.arg, verdict.arg ?? 0, true);
  v.setBigUint64(VERDICT.value, BigInt.asUintN(64, verdict.value ?? 0n), true);
  v.setUint32(VERDICT.path_len, path?.length ?? 0, true);
  if (path) out.set(path, VERDICT.size);
  return out;
}

/** struct idwrap_config's fields (defaults as the header says: 0 = the module's default). */
export interface KmodConfig {
  flags?: number;
  timeoutMs?: number;
  failAction?: number;
  failErrno?: number;
  ringBytes?: number;
  dataMax?: number;
}

/** The bytes of a struct idwrap_config. */
export function encodeConfig(c: KmodConfig): Uint8Array {
  const out = new Uint8Array(CONFIG.size);
  const v = new DataView(out.buffer);
  v.setUint32(CONFIG.abi, ABI_VERSION, true);
  v.setUint32(CONFIG.flags, c.flags ?? 0, true);
  v.setUint32(CONFIG.timeout_ms, c.timeoutMs ?? 0, true);
  v.setUint32(CONFIG.fail_action, c.failAction ?? ACT.ALLOW, true);
  v.setInt32(CONFIG.fail_errno, c.failErrno ?? 0, true);
  v.setUint32(CONFIG.ring_bytes, c.ringBytes ?? 0, true);
  v.setUint32(CONFIG.data_max, c.dataMax ?? 0, true);
  return out;
}

/** The bytes of a struct idwrap_interest, from syscall number → INTEREST bits. */
export function encodeInterest(mask: ReadonlyMap<number, number>): Uint8Array {
  const out = new Uint8Array(INTEREST_SIZE);
  for (const [nr, bits] of mask) {
    if (nr < 0 || nr >= MAX_SYSCALLS) throw new RangeError(`syscall ${nr} is outside the interest mask`);
    out[nr] = bits;
  }
  return out;
}

/** The bytes of a struct idwrap_watch. */
export function encodeWatch(pid: number, flags = 0): Uint8Array {
  const out = new Uint8Array(WATCH_STRUCT.size);
  const v = new DataView(out.buffer);
  v.setInt32(WATCH_STRUCT.pid, pid, true);
  v.setUint32(WATCH_STRUCT.flags, flags, true);
  return out;
}

/** struct idwrap_stats, parsed. */
export type KmodStats = Record<(typeof STATS_FIELDS)[number], number>;

/** Parses a struct idwrap_stats. */
export function parseStats(buf: Uint8Array): KmodStats {
  const v = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  return Object.fromEntries(STATS_FIELDS.map((f, i) => [f, Number(v.getBigUint64(i * 8, true))])) as KmodStats;
}

/** execve's argv as the EXEC record's data carries it (NUL-separated). */
export function splitArgv(data: Uint8Array | undefined): string[] {
  if (!data || data.length === 0) return [];
  const text = decoder.decode(data);
  const parts = text.split("\0");
  if (parts.at(-1) === "") parts.pop();
  return parts;
}
