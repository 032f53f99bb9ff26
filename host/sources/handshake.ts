/**
 * The host's half of idwrap-launch's handshake (kmod/seccomp/launch.c): read
 * "listener PID FD", copy the fd with pidfd_getfd(2), answer "go"; or, from a
 * launcher started with --no-filter (the kernel-module source), read "watch
 * PID" and answer "go" once the module watches the pid.
 *
 * @module
 */
import { errno, libc, SYS } from "../unsafe/libc.ts";
import { readTaskStatus } from "../wss/procfs.ts";

/** A launcher waiting for "go", whose listener we now hold. */
export interface Handshake {
  /** The launcher's pid: the wrapped command's, after its exec. */
  pid: number;
  /** Our copy of its listener fd; -1 from a --no-filter launcher. */
  listener: number;
  /** The launcher's real uid. */
  uid: number;
  /** Lets the command run. */
  go(): Promise<void>;
  /** Refuses; the launcher exits 125 with the reason. */
  refuse(reason: string): Promise<void>;
}

/**
 * Reads the handshake on an accepted connection and takes the listener fd.
 * `vet` sees the pid the launcher claims before any fd is copied: a reason
 * refuses the launcher (the daemon compares it with SO_PEERCRED).
 *
 * @throws when the launcher reports an error, is refused, or the fd cannot be taken
 */
export async function receiveHandshake(conn: Deno.Conn, vet?: (pid: number) => string | undefined): Promise<Handshake> {
  const buf = new Uint8Array(256);
  let text = "";
  while (!text.includes("\n")) {
    const n = await conn.read(buf);
    if (n === null) throw new Error("idwrap-launch closed the handshake early");
    text += new TextDecoder().decode(buf.subarray(0, n));
  }
  const watch = text.match(/^watch (\d+)\n/);
  const m = watch ?? text.match(/^listener (\d+) (\d+) ([01])/);
  if (!m) throw new Error(`idwrap-launch could not install the filter: ${text.trim()}`);
  const pid = Number(m[1]);
  const say = async (line: string) => {
    await conn.write(new TextEncoder().encode(line));
    conn.close();
  };
  const refused = vet?.(pid);
  if (refused !== undefined) {
    await say(`refused: ${refused}\n`).catch(() => {});
    throw new Error(`idwrap-launch refused: ${refused}`);
  }
  const status = readTaskStatus(pid);
  if (!status) throw new Error(`idwrap-launch (pid ${pid}) is gone`);
  const listener = watch ? -1 : takeFd(pid, Number(m[2]));
  return { pid, listener, uid: status.uid, go: () => say("go\n"), refuse: (reason) => say(`refused: ${reason}\n`) };
}

/** Copies fd `fd` of process `pid` into ours (pidfd_getfd(2), Linux 5.6). */
export function takeFd(pid: number, fd: number): number {
  const pidfd = Number(libc.symbols.syscall(SYS.pidfd_open, BigInt(pid), 0n, 0n, 0n, 0n, 0n));
  if (pidfd < 0) throw new Error(`pidfd_open(${pid}) failed: errno ${errno()}`);
  const ours = Number(libc.symbols.syscall(SYS.pidfd_getfd, BigInt(pidfd), BigInt(fd), 0n, 0n, 0n, 0n));
  const err = errno();
  libc.symbols.close(pidfd);
  if (ours < 0) throw new Error(`pidfd_getfd(${pid}, ${fd}) failed: errno ${err}`);
  return ours;
}
