/**
 * Where an output's records go: a file of JSON lines rotated by size, a syslog receiver (RFC 5424, Unix datagram
 * socket, UDP or TCP), an HTTP(S) webhook, a NATS JetStream stream (./nats.ts). A transport delivers one batch or throws; the output (./output.ts) retries.
 *
 * @module
 */
import dgram from "node:dgram";
import { dirname } from "node:path";
import type { AuditRecord } from "../audit/record.ts";
import { UnixDatagramSender } from "../unsafe/datagram.ts";
import type { FileOutputConfig, OutputConfig, SyslogOutputConfig, WebhookOutputConfig } from "./config.ts";
import { formatRecord, syslogLine } from "./format.ts";
import { NatsTransport } from "./nats.ts";
import { PartialDelivery, Rejected, type Transport, Undeliverable } from "./delivery.ts";
import { cutToFit } from "../audit/fit.ts";

export { PartialDelivery, Rejected, type Transport, Undeliverable };

/**
 * `text` with every URL in it stripped of what may be a secret: its user and password, query and fragment
 * (`https://u:p@h/x?api_key=k` → `https://<redacted>@h/x?<redacted>`). Errors and log lines name a webhook this
 * way: they reach the daemon's log and `status`, and webhook tokens often ride in the query.
 */
export function redactUrls(text: string): string {
  return text.replace(/\b[a-z][a-z0-9+.-]*:\/\/[^\s"'<>()]+/gi, (found) => {
    let url: URL;
    try {
      url = new URL(found);
    } catch {
      return "<redacted URL>"; // not parsable: nothing of it is safe to show
    }
    const user = url.username || url.password ? "<redacted>@" : "";
    const query = url.search ? "?<redacted>" : "";
    const fragment = url.hash ? "#<redacted>" : "";
    return `${url.protocol}//${user}${url.host}${url.pathname}${query}${fragment}`;
  });
}

/** The transport of a configured output. */
export function openTransport(config: OutputConfig): Transport {
  switch (config.type) {
    case "file":
      return new FileTransport(config);
    case "syslog":
      return new SyslogTransport(config);
    case "webhook":
      return new WebhookTransport(config);
    case "nats":
      return new NatsTransport(config);
  }
}

const encoder = new TextEncoder();

/**
 * JSON lines appended to a file (0600: alerts name files and programs). Before a batch would take it past
 * `maxBytes`, `path` becomes `path.1` (`path.1` becomes `path.2`, … `path.keep` is removed) and a new file starts.
 * A batch is written whole before the next; a batch that fails is written again (a line may then appear twice, never
 * be lost).
 */
class FileTransport implements Transport {
  #file: Deno.FsFile | undefined;
  #size = 0;

  constructor(private readonly config: FileOutputConfig) {}

  async #open(): Promise<Deno.FsFile> {
    if (this.#file) return this.#file;
    // Its folder too (0750), as loggers do: /var/log/idwrap/ need not exist before the first alert.
    await Deno.mkdir(dirname(this.config.path), { recursive: true, mode: 0o750 });
    const file = await Deno.open(this.config.path, { append: true, create: true, mode: 0o600 });
    this.#size = (await file.stat()).size;
    this.#file = file;
    return file;
  }

  async #rotate(): Promise<void> {
    this.#file?.close();
    this.#file = undefined;
    const p = this.config.path;
    const keep = this.config.keep;
    if (keep === 0) await Deno.remove(p).catch(() => {});
    else {
      await Deno.remove(`${p}.${keep}`).catch(() => {});
      for (let i = keep - 1; i >= 1; i--) await Deno.rename(`${p}.${i}`, `${p}.${i + 1}`).catch(() => {});
      await Deno.rename(p, `${p}.1`).catch(() => {});
    }
  }

  async deliver(records: readonly AuditRecord[]): Promise<void> {
    let chunk: string[] = [];
    let chunkBytes = 0;
    const write = async () => {
      if (!chunk.length) return;
      const file = await this.#open();
      const bytes = encoder.encode(chunk.join(""));
      for (let off = 0; off < bytes.length;) off += await file.write(bytes.subarray(off));
      this.#size += bytes.length;
      chunk = [];
      chunkBytes = 0;
    };
    await this.#open();
    for (const r of records) {
      const line = JSON.stringify(formatRecord(r, this.config.format)) + "\n";
      const n = encoder.encode(line).length;
      if (this.#size + chunkBytes + n > this.config.maxBytes && this.#size + chunkBytes > 0) {
        await write();
        await this.#rotate();
        await this.#open();
      }
      chunk.push(line);
      chunkBytes += n;
    }
    await write();
  }

  close(): Promise<void> {
    this.#file?.close();
    this.#file = undefined;
    return Promise.resolve();
  }
}

/**
 * RFC 5424 messages to a Unix datagram socket or a UDP collector (one datagram each), or to a TCP collector as
 * octet-counted frames (RFC 6587, 3.4.1: "LEN SP MSG", which survives newlines in a message). TCP has no
 * application-level acknowledgement: a record counts as delivered once the kernel has taken its bytes. A connection
 * the collector closed is noticed by its end of file and replaced before the next record; records written in the
 * moment between the collector's close and that notice can be lost (docs/audit.md); a failed write fails the batch
 * from that record, and the next attempt connects again.
 */
/**
 * The largest syslog datagram sent (UDP or a Unix socket): UDP over IPv4 carries at most 65,507 bytes; a Unix
 * socket's limit is its send buffer (usually more). A record's message is sized in UTF-8 bytes here, not as the
 * store estimates it: a CJK character is one UTF-16 unit and three bytes on the wire.
 */
export const MAX_DATAGRAM = 65_507;

/** Whether a send failed because the message is too long for the socket (it would fail every time). */
function tooLong(e: unknown): boolean {
  return (e as { code?: string }).code === "EMSGSIZE" || (e as { errno?: number }).errno === 90 ||
    /EMSGSIZE/.test(String((e as Error)?.message));
}

class SyslogTransport implements Transport {
  #unix: UnixDatagramSender | undefined;
  #udp: dgram.Socket | undefined;
  #tcp: Deno.TcpConn | undefined;
  #tcpEnded = false;

  constructor(private readonly config: SyslogOutputConfig) {}

  async deliver(records: readonly AuditRecord[]): Promise<void> {
    for (let i = 0; i < records.length; i++) {
      try {
        await this.#send(records[i]);
      } catch (e) {
        this.#dropTcp();
        if (e instanceof Undeliverable) throw new Undeliverable(i, e.message);
        if (this.config.protocol !== "tcp" && tooLong(e)) {
          throw new Undeliverable(i, `record ${records[i]["event.sequence"]}: ${(e as Error).message}`);
        }
        throw new PartialDelivery(i, e);
      }
    }
  }

  /** One record as its message's bytes: a datagram's record cut to fit in one (marked `idwrap.truncated`). */
  #message(r: AuditRecord): Uint8Array {
    const line = (x: AuditRecord) => encoder.encode(syslogLine(x, this.config.format, this.config.facility));
    const whole = line(r);
    // TCP frames have no limit of their own (a collector may cut a long message; it cannot block the output).
    if (this.config.protocol === "tcp" || whole.length <= MAX_DATAGRAM) return whole;
    const { value, bytes } = cutToFit(r, (x) => line(x).length, MAX_DATAGRAM);
    if (bytes > MAX_DATAGRAM) {
      throw new Undeliverable(0, `record ${r["event.sequence"]}: ${bytes} bytes, more than a datagram holds`);
    }
    return line(value);
  }

  async #send(r: AuditRecord): Promise<void> {
    const bytes = this.#message(r);
    if (this.config.socket !== undefined) {
      this.#unix ??= new UnixDatagramSender(this.config.socket);
      this.#unix.send(bytes);
      return;
    }
    const { host, port } = this.config.address!;
    if (this.config.protocol === "tcp") {
      if (this.#tcpEnded) this.#dropTcp();
      if (!this.#tcp) this.#tcp = this.#watchEnd(await Deno.connect({ hostname: host, port }));
      const frame = new Uint8Array([...encoder.encode(`${bytes.length} `), ...bytes]);
      for (let off = 0; off < frame.length;) off += await this.#tcp.write(frame.subarray(off));
      return;
    }
    this.#udp ??= dgram.createSocket(host.includes(":") ? "udp6" : "udp4");
    await new Promise<void>((resolve, reject) => this.#udp!.send(bytes, port, host, (e) => e ? reject(e) : resolve()));
  }

  /**
   * A collector sends nothing: a read that ends means it closed the connection. A write after that would still be
   * taken by the kernel and lost, so the next record goes over a new connection.
   */
  #watchEnd(conn: Deno.TcpConn): Deno.TcpConn {
    this.#tcpEnded = false;
    (async () => {
      const b = new Uint8Array(512);
      try {
        while ((await conn.read(b)) !== null) { /* a collector's chatter: ignored */ }
      } catch {
        // Reset, or closed here.
      }
      if (this.#tcp === conn) this.#tcpEnded = true;
    })();
    return conn;
  }

  #dropTcp(): void {
    try {
      this.#tcp?.close();
    } catch {
      // Already closed by the peer.
    }
    this.#tcp = undefined;
  }

  close(): Promise<void> {
    this.#unix?.close();
    this.#unix = undefined;
    this.#dropTcp();
    const udp = this.#udp;
    this.#udp = undefined;
    return udp ? new Promise((r) => udp.close(() => r())) : Promise.resolve();
  }
}

/**
 * POSTs each batch as one JSON array (`Content-Type: application/json`); any status but 2xx is a failure, and a 4xx
 * other than 408 and 429 a rejection (./output.ts splits the batch to find the record refused).
 */
class WebhookTransport implements Transport {
  constructor(private readonly config: WebhookOutputConfig) {}

  async deliver(records: readonly AuditRecord[]): Promise<void> {
    let res: Response;
    try {
      res = await fetch(this.config.url, {
        method: "POST",
        headers: { "content-type": "application/json", ...this.config.headers },
        body: JSON.stringify(records.map((r) => formatRecord(r, this.config.format))),
        signal: AbortSignal.timeout(this.config.timeoutMs),
      });
    } catch (e) {
      // fetch's errors quote the whole URL, its token with it.
      throw new Error(redactUrls((e as Error).message ?? String(e)));
    }
    await res.body?.cancel();
    if (res.ok) return;
    const why = `${redactUrls(this.config.url)}: HTTP ${res.status}`;
    if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) throw new Rejected(why);
    throw new Error(why);
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}
