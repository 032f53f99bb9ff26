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

import { errno, libc, SYS } from "../unsafe/libc.ts";

// sys/socket.h (x86_64); SO_PEERPIDFD since Linux 6.5
const SOL_SOCKET = 1, SO_PEERCRED = 17, SO_PEERPIDFD = 77;
/** getsockopt's answer for an option the kernel does not know. */
const ENOPROTOOPT = 92;
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
  return connectedFds(path).map((fd) => credentials(fd, path));
}

/** A connected peer, with a way to ask whether the process that connected still runs. */
export interface LivePeer extends PeerCredentials {
  /**
   * Whether the process that connected still runs. SO_PEERCRED's pid is the connector's at connect(2): once it has
   * exited, the socket may be held (passed over SCM_RIGHTS) by any process, and the pid may name another process.
   * While this answers true, the pid names the connector (a live process's pid is not reused).
   */
  alive(): boolean;
  /** Releases the pidfd. */
  close(): void;
}

/** Every peer connected to our accepted sockets at `path`, each with a pidfd of the process that connected. */
export function livePeers(path: string): LivePeer[] {
  const peers: LivePeer[] = [];
  try {
    for (const fd of connectedFds(path)) {
      const cred = credentials(fd, path);
      const out = new Uint8Array(4);
      const len = new Uint8Array(new Uint32Array([4]).buffer);
      let pidfd: number;
      if (libc.symbols.getsockopt(fd, SOL_SOCKET, SO_PEERPIDFD, out, len) === 0) {
        pidfd = new DataView(out.buffer).getInt32(0, true);
      } else if (errno() === ENOPROTOOPT) {
        // Before Linux 6.5 (Debian 12's 6.1): a pidfd of the pid SO_PEERCRED names, opened now. It names the connector
        // unless the connector has exited and its pid been reused meanwhile (the pid space cycled): weaker than
        // SO_PEERPIDFD, and said so in docs/daemon.md.
        pidfd = Number(libc.symbols.syscall(SYS.pidfd_open, BigInt(cred.pid), 0n, 0n, 0n, 0n, 0n));
      } else {
        throw new Error(`getsockopt(SO_PEERPIDFD) on ${path} failed (errno ${errno()})`);
      }
      peers.push({
        ...cred,
        alive() {
          if (pidfd < 0) return false; // pidfd_open failed: the pid names no process any more
          // Signal 0: none is sent, only checked; fails (ESRCH) once the process has exited. Any failure: not alive.
          return libc.symbols.syscall(SYS.pidfd_send_signal, BigInt(pidfd), 0n, 0n, 0n, 0n, 0n) === 0n;
        },
        close: () => void (pidfd >= 0 && libc.symbols.close(pidfd)),
      });
    }
  } catch (e) {
    for (const p of peers) p.close();
    throw e;
  }
  return peers;
}

/** Our fds of the connected sockets accepted at `path`. */
function connectedFds(path: string): number[] {
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
  return fds;
}

function credentials(fd: number, path: string): PeerCredentials {
  const cred = new Uint8Array(12); // struct ucred { pid_t pid; uid_t uid; gid_t gid; }
  const len = new Uint8Array(new Uint32Array([12]).buffer);
  if (libc.symbols.getsockopt(fd, SOL_SOCKET, SO_PEERCRED, cred, len) !== 0) {
    throw new Error(`getsockopt(SO_PEERCRED) on ${path} failed`);
  }
  const v = new DataView(cred.buffer);
  return { pid: v.getInt32(0, true), uid: v.getUint32(4, true), gid: v.getUint32(8, true) };
}
