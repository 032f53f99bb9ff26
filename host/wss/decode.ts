/**
 * Turns raw argument registers into the decoded fields of an event, by the
 * argument kinds of host/syscalls. Flag names follow the kernel's uapi
 * headers (asm-generic/fcntl.h, linux/sched.h) so they read like strace.
 * Shared by both sources: seccomp reads pointed-to bytes from the caller's
 * memory, the kernel module hands over its own copies ({@link ArgReader}).
 *
 * @module
 */
import type { DecodedArgs } from "../events.ts";
import { type ArgKind, argKinds } from "../syscalls/mod.ts";
import { MAX_BYTES, type TargetMemory } from "../unsafe/memory.ts";
import { sockaddrToString } from "../net/address.ts";

const AT_FDCWD = -100;
/** The most of a write's buffer an event carries. */
export const MAX_DATA = MAX_BYTES;

const O_ACCMODE = ["O_RDONLY", "O_WRONLY", "O_RDWR", "O_ACCMODE"];
const O_FLAGS: [number, string][] = [
  [0o100, "O_CREAT"],
  [0o200, "O_EXCL"],
  [0o400, "O_NOCTTY"],
  [0o1000, "O_TRUNC"],
  [0o2000, "O_APPEND"],
  [0o4000, "O_NONBLOCK"],
  [0o10000, "O_DSYNC"],
  [0o20000, "O_ASYNC"],
  [0o40000, "O_DIRECT"],
  [0o200000, "O_DIRECTORY"],
  [0o400000, "O_NOFOLLOW"],
  [0o1000000, "O_NOATIME"],
  [0o2000000, "O_CLOEXEC"],
  [0o4010000, "O_SYNC"],
  [0o10000000, "O_PATH"],
  [0o20200000, "O_TMPFILE"],
  [0o100000, "O_LARGEFILE"],
];
const AT_FLAGS: [number, string][] = [
  [0x100, "AT_SYMLINK_NOFOLLOW"],
  [0x200, "AT_REMOVEDIR"],
  [0x400, "AT_SYMLINK_FOLLOW"],
  [0x800, "AT_NO_AUTOMOUNT"],
  [0x1000, "AT_EMPTY_PATH"],
];
const CLONE_FLAGS: [number, string][] = [
  [0x100, "CLONE_VM"],
  [0x200, "CLONE_FS"],
  [0x400, "CLONE_FILES"],
  [0x800, "CLONE_SIGHAND"],
  [0x1000, "CLONE_PIDFD"],
  [0x2000, "CLONE_PTRACE"],
  [0x4000, "CLONE_VFORK"],
  [0x8000, "CLONE_PARENT"],
  [0x10000, "CLONE_THREAD"],
  [0x20000, "CLONE_NEWNS"],
  [0x40000, "CLONE_SYSVSEM"],
  [0x80000, "CLONE_SETTLS"],
  [0x100000, "CLONE_PARENT_SETTID"],
  [0x200000, "CLONE_CHILD_CLEARTID"],
  [0x800000, "CLONE_UNTRACED"],
  [0x1000000, "CLONE_CHILD_SETTID"],
  [0x2000000, "CLONE_NEWCGROUP"],
  [0x4000000, "CLONE_NEWUTS"],
  [0x8000000, "CLONE_NEWIPC"],
  [0x10000000, "CLONE_NEWUSER"],
  [0x20000000, "CLONE_NEWPID"],
  [0x40000000, "CLONE_NEWNET"],
];

function bits(value: number, table: [number, string][], first: string[] = []): string {
  const names = [...first];
  let rest = value;
  for (const [bit, name] of table) {
    if ((value & bit) === bit) {
      names.push(name);
      rest &= ~bit;
    }
  }
  if (rest) names.push("0x" + (rest >>> 0).toString(16));
  return names.join("|") || "0";
}

/** open(2) flags as `O_WRONLY|O_CREAT|O_TRUNC`. */
export function openFlagsToString(flags: number): string {
  // O_TMPFILE and O_SYNC contain O_DIRECTORY and O_DSYNC: name the composite once.
  let table = O_FLAGS;
  if ((flags & 0o20200000) === 0o20200000) table = table.filter(([b]) => b !== 0o200000);
  if ((flags & 0o4010000) === 0o4010000) table = table.filter(([b]) => b !== 0o10000);
  return bits(flags & ~3, table, [O_ACCMODE[flags & 3]]);
}

/** clone(2) flags, with the exit signal in the low byte. */
export function cloneFlagsToString(flags: number): string {
  const signal = flags & 0xff;
  const named = bits(flags & ~0xff, CLONE_FLAGS);
  return signal ? `${named === "0" ? "" : named + "|"}${signal === 17 ? "SIGCHLD" : "sig" + signal}` : named;
}

/**
 * Where pointed-to arguments come from. `undefined` means the pointer could
 * not be read (a fault); `null` that the source does not carry this kind of
 * argument at all (not a fault: the field stays absent).
 */
export interface ArgReader {
  /** The `nth` (0, 1) path argument of the call, at `raw`. */
  path(raw: bigint, nth: number): string | undefined | null;
  /** execve's argv, at `raw`. */
  argv(raw: bigint): string[] | undefined | null;
  /** `len` bytes at `raw`, argument `index` of this kind (sockaddr, data, clone_args, open_how). */
  bytes(raw: bigint, len: number, kind: ArgKind, index: number): Uint8Array | undefined | null;
}

/** Reads a seccomp caller's memory (thread `pid`) with process_vm_readv. */
export function memoryReader(pid: number, memory: TargetMemory): ArgReader {
  return {
    path: (raw) => memory.readString(pid, raw),
    argv: (raw) => memory.readStringArray(pid, raw),
    bytes: (raw, len) => memory.readBytes(pid, raw, len),
  };
}

/** Signed 32-bit view of a register holding an int. */
const int32 = (v: bigint) => Number(BigInt.asIntN(32, v));

/**
 * Decodes the arguments of one call.
 *
 * @param name the syscall's name
 * @param args the six argument registers
 * @param reader where pointed-to arguments come from
 */
export function decodeArgs(
  name: string,
  args: BigUint64Array,
  reader: ArgReader,
): DecodedArgs {
  const kinds = argKinds(name);
  const out: DecodedArgs = {};
  let paths = 0;
  const fault = (what: string) => out.fault ??= what;
  kinds.forEach((kind: ArgKind, i: number) => {
    const raw = args[i];
    switch (kind) {
      case "dirfd":
        if (out.dirfd === undefined) out.dirfd = int32(raw) === AT_FDCWD ? "AT_FDCWD" : int32(raw);
        break;
      case "path": {
        const nth = paths++;
        const s = reader.path(raw, nth);
        if (s === null) break;
        if (s === undefined) {
          if (raw !== 0n) fault(`arg${i}`);
        } else if (nth === 0) out.path = s;
        else out.path2 = s;
        break;
      }
      case "oflags":
        out.flags = openFlagsToString(Number(raw & 0xffffffffn));
        break;
      case "atflags":
        out.flags = bits(Number(raw & 0xffffffffn), AT_FLAGS);
        break;
      case "mode": {
        // open's mode means something only with O_CREAT or O_TMPFILE, as strace shows it.
        const flags = kinds.includes("oflags") ? Number(args[kinds.indexOf("oflags")] & 0xffffffffn) : 0o100;
        if (flags & 0o100 || (flags & 0o20200000) === 0o20200000) out.mode = "0" + Number(raw & 0o7777n).toString(8);
        break;
      }
      case "argv":
        if (out.argv === undefined) {
          const argv = reader.argv(raw);
          if (argv === undefined) fault(`arg${i}`);
          else if (argv !== null) out.argv = argv;
        }
        break;
      case "sockaddr": {
        const len = Number(args[i + 1] & 0xffffn);
        if (raw === 0n || len === 0) break;
        const bytes = reader.bytes(raw, Math.min(len, 128), kind, i);
        if (bytes) out.addr = sockaddrToString(bytes);
        else if (bytes === undefined) fault(`arg${i}`);
        break;
      }
      case "clone_flags":
        out.cloneFlags = cloneFlagsToString(Number(raw & 0xffffffffn));
        break;
      case "clone_args": {
        // struct clone_args starts with u64 flags (linux/sched.h).
        const bytes = reader.bytes(raw, 8, kind, i);
        if (bytes) {
          const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
          out.cloneFlags = cloneFlagsToString(Number(v.getBigUint64(0, true) & 0xffffffffn));
        } else if (bytes === undefined) fault(`arg${i}`);
        break;
      }
      case "open_how": {
        // struct open_how { u64 flags; u64 mode; u64 resolve; } (linux/openat2.h)
        const bytes = reader.bytes(raw, 24, kind, i);
        if (bytes) {
          const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
          out.flags = openFlagsToString(Number(v.getBigUint64(0, true) & 0xffffffffn));
          out.mode = "0" + Number(v.getBigUint64(8, true) & 0o7777n).toString(8);
        } else if (bytes === undefined) fault(`arg${i}`);
        break;
      }
      case "signal":
        out.signal = int32(raw);
        break;
      case "data": {
        // What a write will write, up to MAX_DATA bytes (the ABI's event_data).
        const len = Math.min(Number(args[i + 1] & 0xffffffffn), MAX_DATA);
        if (len === 0) out.data = new Uint8Array(0);
        else {
          const bytes = reader.bytes(raw, len, kind, i);
          if (bytes) out.data = bytes;
          else if (bytes === undefined) fault(`arg${i}`);
        }
        break;
      }
    }
  });
  return out;
}
