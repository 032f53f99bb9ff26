/**
 * Sending datagrams to a Unix datagram socket (`/dev/log`, a syslog daemon's socket): Deno has no stable API for
 * it, so socket(2) and sendto(2) through libc's syscall(2). Non-blocking: a full receiver is an error to retry
 * (EAGAIN), never a wait on the caller's thread.
 *
 * @module
 */
import { addressOf, errno, libc } from "./libc.ts";

const SYS_SOCKET = 41n;
const SYS_SENDTO = 44n;
const AF_UNIX = 1n;
const SOCK_DGRAM = 2n;
const SOCK_NONBLOCK = 0o4000n;
const SOCK_CLOEXEC = 0o2000000n;
const MSG_DONTWAIT = 0x40n;
const MSG_NOSIGNAL = 0x4000n;
/** sizeof(struct sockaddr_un): sa_family_t then 108 bytes of path. */
const SOCKADDR_UN = 110;

/** A send that failed, with the errno. */
export class DatagramError extends Error {
  constructor(readonly errno: number, message: string) {
    super(message);
    this.name = "DatagramError";
  }
}

/** An unbound Unix datagram socket that sends to one path. */
export class UnixDatagramSender {
  readonly #fd: number;
  readonly #addr = new Uint8Array(SOCKADDR_UN);
  readonly #addrLen: number;

  constructor(readonly path: string) {
    const bytes = new TextEncoder().encode(path);
    if (bytes.length === 0 || bytes.length >= SOCKADDR_UN - 2) {
      throw new RangeError(`${path}: a Unix socket path is 1 to 107 bytes`);
    }
    new DataView(this.#addr.buffer).setUint16(0, Number(AF_UNIX), true);
    this.#addr.set(bytes, 2);
    this.#addrLen = 2 + bytes.length + 1;
    const fd = Number(
      libc.symbols.syscall(SYS_SOCKET, AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0n, 0n, 0n, 0n),
    );
    if (fd < 0) throw new DatagramError(errno(), `socket(AF_UNIX, SOCK_DGRAM): errno ${errno()}`);
    this.#fd = fd;
  }

  /** Sends one datagram; throws DatagramError (ECONNREFUSED: no one listens; EAGAIN: its queue is full). */
  send(data: Uint8Array): void {
    const r = Number(libc.symbols.syscall(
      SYS_SENDTO,
      BigInt(this.#fd),
      addressOf(data),
      BigInt(data.length),
      MSG_DONTWAIT | MSG_NOSIGNAL,
      addressOf(this.#addr),
      BigInt(this.#addrLen),
    ));
    if (r < 0) {
      const e = errno();
      throw new DatagramError(e, `sendto ${this.path}: errno ${e}`);
    }
  }

  close(): void {
    libc.symbols.close(this.#fd);
  }
}
