/**
 * The paper's wrapper library (Table 1; docs/abi.md, "The paper's
 * library"). Functions that return null leave the reason in lastStatus().
 */
import { wr_audit, wr_audit_printf, wr_fstat, wr_stat } from "./imports";
import { fetchString, fillGetAddr, fillPeerName, fillSockName, input, inputLen, setStatus } from "./buffer";

/** Size of the wr_stat record. */
export const WR_STAT_SIZE: i32 = 48;

const STAT: usize = memory.data(WR_STAT_SIZE, 8);

// st_mode bits (octal, as in <sys/stat.h>).
export const S_IFMT: u32 = 0o170000;
export const S_IFREG: u32 = 0o100000;
export const S_IFDIR: u32 = 0o040000;
export const S_IFLNK: u32 = 0o120000;
export const S_ISUID: u32 = 0o4000;
export const S_ISGID: u32 = 0o2000;
export const S_IROTH: u32 = 0o004;
export const S_IWOTH: u32 = 0o002;

/** A wr_stat record: what stat(2) says about a file, as the process sees it. */
export class WrStat {
  dev: u64 = 0;
  ino: u64 = 0;
  mode: u32 = 0;
  uid: u32 = 0;
  gid: u32 = 0;
  nlink: u32 = 0;
  size: u64 = 0;
  /** Seconds since the epoch. */
  mtime: i64 = 0;

  /** Reads the 48-byte record at ptr (layout in docs/abi.md). */
  static read(ptr: usize): WrStat {
    const s = new WrStat();
    s.dev = load<u64>(ptr, 0);
    s.ino = load<u64>(ptr, 8);
    s.mode = load<u32>(ptr, 16);
    s.uid = load<u32>(ptr, 20);
    s.gid = load<u32>(ptr, 24);
    s.nlink = load<u32>(ptr, 28);
    s.size = load<u64>(ptr, 32);
    s.mtime = load<i64>(ptr, 40);
    return s;
  }

  /** Others may read it. */
  worldReadable(): bool {
    return (this.mode & S_IROTH) != 0;
  }

  /** Others may write it. */
  worldWritable(): bool {
    return (this.mode & S_IWOTH) != 0;
  }

  isRegular(): bool {
    return (this.mode & S_IFMT) == S_IFREG;
  }

  isDir(): bool {
    return (this.mode & S_IFMT) == S_IFDIR;
  }

  isSymlink(): bool {
    return (this.mode & S_IFMT) == S_IFLNK;
  }

  isSetuid(): bool {
    return (this.mode & S_ISUID) != 0;
  }

  /** The paper's nodeid: "dev:ino", equal for two names of one file. */
  nodeId(): string {
    return this.dev.toString() + ":" + this.ino.toString();
  }
}

/** stat of a path as the process sees it (its cwd and root), or null. */
export function wrStat(path: string): WrStat | null {
  const p = input(path);
  if (setStatus(wr_stat(p, inputLen(), STAT)) < 0) return null;
  return WrStat.read(STAT);
}

/** stat of one of the process's open files, or null. */
export function wrFstat(fd: i32): WrStat | null {
  if (setStatus(wr_fstat(fd, STAT)) < 0) return null;
  return WrStat.read(STAT);
}

/** Appends a record to the wrapper's audit queue; 0 or a negative status. */
export function wrAudit(text: string): i32 {
  const p = input(text);
  return setStatus(wr_audit(p, inputLen()));
}

// NUL-terminated strings handed out by cstr(), kept reachable (so the GC
// cannot free them) until the wrAuditPrintf call that consumes them returns.
// Created on first use so wrappers that never audit allocate nothing.
let pendingCStrings: Array<ArrayBuffer> | null = null;

/**
 * A %s argument for wrAuditPrintf: a pointer to s as NUL-terminated UTF-8.
 * Valid until the next wrAuditPrintf returns.
 */
export function cstr(s: string): i64 {
  const buf = String.UTF8.encode(s, true);
  let pending = pendingCStrings;
  if (pending === null) {
    pending = new Array<ArrayBuffer>(0);
    pendingCStrings = pending;
  }
  pending.push(buf);
  return <i64>changetype<usize>(buf);
}

/**
 * Appends a formatted record: %d %i %u %x %o %c take the next value of args
 * as an integer, %s a cstr() pointer, %% is a percent sign.
 */
export function wrAuditPrintf(fmt: string, args: i64[]): i32 {
  const p = input(fmt);
  const status = wr_audit_printf(p, inputLen(), args.dataStart, args.length);
  const pending = pendingCStrings;
  if (pending !== null) pending.length = 0;
  return setStatus(status);
}

/** A socket's address family and type ("inet/stream", "unix/dgram", ...), or null. */
export function wrGetAddr(fd: i32): string | null {
  return fetchString(fillGetAddr, 0, fd);
}

/** The peer address of a connected socket ("inet:10.0.0.1:80", ...), or null. */
export function wrGetpeername(fd: i32): string | null {
  return fetchString(fillPeerName, 0, fd);
}

/** The local address of a socket, or null. */
export function wrGetsockname(fd: i32): string | null {
  return fetchString(fillSockName, 0, fd);
}
