/**
 * The paper's Table 1 library, host side: stat and socket-address queries
 * answered as the wrapped process would see them, through /proc.
 *
 * @module
 */
import { inet6Address, inetAddress, unixAddress } from "../net/address.ts";
import { STATUS } from "./abi.ts";

/** The wr_stat record's fields (docs/abi.md). */
export interface WrStat {
  dev: bigint;
  ino: bigint;
  mode: number;
  uid: number;
  gid: number;
  nlink: number;
  size: bigint;
  mtime: bigint;
}

/** Size of the wr_stat record in bytes. */
export const WR_STAT_SIZE = 48;

/** Encodes a wr_stat record into `out` (48 bytes). */
export function encodeWrStat(s: WrStat, out: DataView, offset: number): void {
  out.setBigUint64(offset, s.dev, true);
  out.setBigUint64(offset + 8, s.ino, true);
  out.setUint32(offset + 16, s.mode, true);
  out.setUint32(offset + 20, s.uid, true);
  out.setUint32(offset + 24, s.gid, true);
  out.setUint32(offset + 28, s.nlink, true);
  out.setBigUint64(offset + 32, s.size, true);
  out.setBigInt64(offset + 40, s.mtime, true);
}

function statOf(path: string): WrStat | number {
  try {
    const i = Deno.statSync(path);
    return {
      dev: BigInt(i.dev),
      ino: BigInt(i.ino ?? 0),
      mode: i.mode ?? 0,
      uid: i.uid ?? 0,
      gid: i.gid ?? 0,
      nlink: i.nlink ?? 0,
      size: BigInt(i.size),
      mtime: BigInt(Math.floor((i.mtime?.getTime() ?? 0) / 1000)),
    };
  } catch (e) {
    return e instanceof Deno.errors.NotFound ? STATUS.ENOENT : STATUS.EPERM;
  }
}

/** stat(2) of `path` resolved from the process's cwd and root. */
export function wrStat(pid: number, path: string): WrStat | number {
  if (path === "") return STATUS.ENOENT;
  return statOf(path.startsWith("/") ? `/proc/${pid}/root${path}` : `/proc/${pid}/cwd/${path}`);
}

/** fstat(2) of one of the process's fds. */
export function wrFstat(pid: number, fd: number): WrStat | number {
  if (fd < 0) return STATUS.EBADF;
  const r = statOf(`/proc/${pid}/fd/${fd}`);
  return r === STATUS.ENOENT ? STATUS.EBADF : r;
}

/** A socket's family/type and local and peer addresses. */
export interface SocketInfo {
  kind: string; // "inet/stream", "unix/dgram", …
  local: string;
  peer: string;
}

function socketInode(pid: number, fd: number): string | number {
  let link: string;
  try {
    link = Deno.readLinkSync(`/proc/${pid}/fd/${fd}`);
  } catch {
    return STATUS.EBADF;
  }
  return link.match(/^socket:\[(\d+)\]$/)?.[1] ?? STATUS.ENOTSOCK;
}

/** "0100007F:0050" from /proc/net/tcp → inet:127.0.0.1:80 (addresses are host-order 32-bit words). */
function procAddress(hexAddr: string, v6: boolean): string {
  const [addr, port] = hexAddr.split(":");
  const bytes = new Uint8Array(v6 ? 16 : 4);
  for (let w = 0; w < bytes.length / 4; w++) {
    const word = parseInt(addr.slice(w * 8, w * 8 + 8), 16);
    for (let b = 0; b < 4; b++) bytes[w * 4 + b] = (word >>> (8 * b)) & 0xff; // little-endian host
  }
  const p = parseInt(port, 16);
  return v6 ? inet6Address(bytes, p) : inetAddress(bytes, p);
}

const INET_TABLES: [string, string, boolean][] = [
  ["tcp", "inet/stream", false],
  ["tcp6", "inet6/stream", true],
  ["udp", "inet/dgram", false],
  ["udp6", "inet6/dgram", true],
  ["raw", "inet/raw", false],
  ["raw6", "inet6/raw", true],
];
const UNIX_TYPES: Record<string, string> = { "0001": "stream", "0002": "dgram", "0005": "seqpacket" };

/** What the kernel says about one of the process's sockets, from /proc/PID/net. */
export function socketInfo(pid: number, fd: number): SocketInfo | number {
  const inode = socketInode(pid, fd);
  if (typeof inode === "number") return inode;
  for (const [table, kind, v6] of INET_TABLES) {
    let text: string;
    try {
      text = Deno.readTextFileSync(`/proc/${pid}/net/${table}`);
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[9] === inode) return { kind, local: procAddress(f[1], v6), peer: procAddress(f[2], v6) };
    }
  }
  try {
    for (const line of Deno.readTextFileSync(`/proc/${pid}/net/unix`).split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f[6] === inode) {
        const path = f[7] ?? "";
        const local = path.startsWith("@")
          ? unixAddress(new Uint8Array([0, ...new TextEncoder().encode(path.slice(1))]))
          : unixAddress(new TextEncoder().encode(path));
        return { kind: `unix/${UNIX_TYPES[f[4]] ?? f[4]}`, local, peer: "unix:" };
      }
    }
  } catch { /* no unix table */ }
  return { kind: "other", local: "", peer: "" };
}
