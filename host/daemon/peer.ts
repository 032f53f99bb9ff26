/**
 * Who is on the other end of a Unix socket the daemon accepted, as the
 * kernel says (SO_PEERCRED: the pid, uid and gid of the process that
 * connected), not as the peer says. Deno gives no fd for a `Deno.Conn`, so
 * the accepted socket is found by its path: the one socket of ours,
 * connected, bound to that path (/proc/net/unix lists the inode, and
 * /proc/self/fd maps it to our fd). Each session socket has its own path and
 * accepts one connection, so there is exactly one.
 *
 * @module
 */

import { libc } from "../unsafe/libc.ts";

// sys/socket.h (x86_64)
const SOL_SOCKET = 1, SO_PEERCRED = 17;
/** /proc/net/unix's St column for a connected socket (SS_CONNECTED). */
const SS_CONNECTED = "03";

/** The kernel's record of who connected. */
export interface PeerCredentials {
  pid: number;
  uid: number;
  gid: number;
}

/** The credentials of whoever connected to our accepted socket at `path`; throws if there is not exactly one. */
export function peerCredentials(path: string): PeerCredentials {
  const peers = peersCredentials(path);
  if (peers.length !== 1) throw new Error(`expected one connection on ${path}, found ${peers.length}`);
  return peers[0];
}

/** The credentials of every process connected to our accepted sockets at `path`. */
export function peersCredentials(path: string): PeerCredentials[] {
  const inodes = new Set<string>();
  for (const line of Deno.readTextFileSync("/proc/net/unix").split("\n").slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length >= 8 && f[5] === SS_CONNECTED && f.slice(7).join(" ") === path) inodes.add(f[6]);
  }
  const fds: number[] = [];
  for (const e of Deno.readDirSync("/proc/self/fd")) {
    let target: string;
    try {
      target = Deno.readLinkSync(`/proc/self/fd/${e.name}`);
    } catch {
      continue; // closed meanwhile
    }
    const m = /^socket:\[(\d+)\]$/.exec(target);
    if (m && inodes.has(m[1])) fds.push(Number(e.name));
  }
  return fds.map((fd) => {
    const cred = new Uint8Array(12); // struct ucred { pid_t pid; uid_t uid; gid_t gid; }
    const len = new Uint8Array(new Uint32Array([12]).buffer);
    if (libc.symbols.getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, len) !== 0) {
      throw new Error(`getsockopt(SO_PEERCRED) on ${path} failed`);
    }
    const v = new DataView(cred.buffer);
    return { pid: v.getInt32(0, true), uid: v.getUint32(4, true), gid: v.getUint32(8, true) };
  });
}
