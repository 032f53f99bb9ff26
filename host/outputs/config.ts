/**
 * The daemon's configuration file (`/etc/idwrap/idwrap.yaml`, or `idwrap daemon --config FILE`): where audit records
 * go besides the store. Every error names the file, the line, the field and what was expected.
 *
 * ```yaml
 * outputs:
 *   - type: file            # JSON lines, rotated by size
 *     path: /var/log/idwrap/alerts.jsonl
 *   - type: syslog          # RFC 5424
 *     socket: /dev/log      # or address: 127.0.0.1:514 (UDP; protocol: tcp for TCP, RFC 6587 framing)
 *   - type: webhook         # HTTP(S) POST of JSON arrays
 *     url: https://siem.example/ingest
 *     format: ocsf
 *   - type: nats            # a NATS JetStream stream (docs/fleet.md)
 *     url: nats://nats.example:4222
 * fleet:                    # policies from a JetStream KV bucket (docs/fleet.md)
 *   url: nats://nats.example:4222
 *   bucket: idwrap-policies
 * ```
 *
 * @module
 */
import { isMap, LineCounter, parseDocument } from "yaml";
import { AUDIT_QUEUES, type AuditQueue, isAuditQueue } from "../audit/record.ts";
import type { NatsAuth } from "./nats_auth.ts";

/** Where the daemon looks for its configuration unless told. */
export const DEFAULT_CONFIG = "/etc/idwrap/idwrap.yaml";

/** The record format an output writes. */
export type OutputFormat = "ecs" | "ocsf";

/** What every output has. */
interface OutputBase {
  /** A name for logs and metrics: unique; default `<type>-<index>`. */
  name: string;
  /** The queues it carries. @default ["alerts", "verdicts"] */
  queues: AuditQueue[];
  /** Only records at least this severe (0 info … 4 critical; ./format.ts, `severityOf`). @default 0 */
  minSeverity: number;
  format: OutputFormat;
  /** Records held for it at most (in memory, behind the journal); the oldest beyond are dropped and counted. */
  buffer: number;
}

export interface FileOutputConfig extends OutputBase {
  type: "file";
  path: string;
  /** Rotate before the file would pass this size. @default 100 MiB */
  maxBytes: number;
  /** Rotated files kept (`path.1` newest … `path.N`). @default 5 */
  keep: number;
}

export interface SyslogOutputConfig extends OutputBase {
  type: "syslog";
  /** A Unix datagram socket (`/dev/log`), or… */
  socket?: string;
  /** …a collector, `host:port`, over `protocol`. */
  address?: { host: string; port: number };
  /** How to reach `address`: datagrams, or a TCP stream of octet-counted frames (RFC 6587). @default "udp" */
  protocol: "udp" | "tcp";
  /** RFC 5424 facility name. @default "authpriv" */
  facility: string;
}

export interface WebhookOutputConfig extends OutputBase {
  type: "webhook";
  url: string;
  headers: Record<string, string>;
  /** Records per POST at most. @default 100 */
  batch: number;
  /** Each attempt's timeout. @default 10000 */
  timeoutMs: number;
  /** The longest wait between retries (doubling from 250 ms). @default 30000 */
  maxBackoffMs: number;
}

export interface NatsOutputConfig extends OutputBase {
  type: "nats";
  /** NATS server URLs (`nats://host:port`), tried in turn. */
  servers: string[];
  /** The JetStream stream; created (subjects `<subject_prefix>.>`) when missing. @default "IDWRAP" */
  stream: string;
  /** Records go to `<subjectPrefix>.<host>.<queue>`. @default "idwrap" */
  subjectPrefix: string;
  /** This host's subject token (letters, digits, `-`, `_`). @default the host name, other characters as `_` */
  host: string;
  /** Records per delivery at most (each published and acknowledged in order). @default 100 */
  batch: number;
  /** Each connection attempt's and each acknowledgement's timeout. @default 5000 */
  timeoutMs: number;
  /** The longest wait between retries (doubling from 250 ms). @default 30000 */
  maxBackoffMs: number;
  /** How to authenticate to the server (./nats_auth.ts); absent: anonymously. */
  auth?: NatsAuth;
}

export type OutputConfig = FileOutputConfig | SyslogOutputConfig | WebhookOutputConfig | NatsOutputConfig;

/** Policies the daemon takes from a JetStream KV bucket besides its policy files (./docs/fleet.md). */
export interface FleetConfig {
  servers: string[];
  bucket: string;
  /** Keys under this prefix are policies (each key one policy file). @default "policies." */
  prefix: string;
  /** Each connection attempt's timeout. @default 5000 */
  timeoutMs: number;
  /** How to authenticate to the server (./nats_auth.ts); absent: anonymously. */
  auth?: NatsAuth;
}

/** The daemon's configuration. */
export interface DaemonConfig {
  outputs: OutputConfig[];
  fleet?: FleetConfig;
}

/** A bad configuration: file, line, field and what was expected. */
export class ConfigError extends Error {
  constructor(readonly file: string, readonly line: number, readonly field: string, detail: string) {
    super(`${file}:${line}: ${field}: ${detail}`);
    this.name = "ConfigError";
  }
}

/** RFC 5424 facilities by name. */
export const FACILITIES: Record<string, number> = {
  kern: 0,
  user: 1,
  mail: 2,
  daemon: 3,
  auth: 4,
  syslog: 5,
  lpr: 6,
  news: 7,
  uucp: 8,
  cron: 9,
  authpriv: 10,
  ftp: 11,
  local0: 16,
  local1: 17,
  local2: 18,
  local3: 19,
  local4: 20,
  local5: 21,
  local6: 22,
  local7: 23,
};

/** Reads and validates a configuration file. */
export function loadConfig(file: string): DaemonConfig {
  let text: string;
  try {
    text = Deno.readTextFileSync(file);
  } catch (e) {
    throw new ConfigError(file, 1, "(file)", `cannot be read: ${(e as Error).message}`);
  }
  return parseConfig(text, file);
}

/** Parses and validates a configuration. */
export function parseConfig(text: string, file: string): DaemonConfig {
  const lines = new LineCounter();
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false });
  if (doc.errors.length) {
    const e = doc.errors[0];
    throw new ConfigError(file, lines.linePos(e.pos[0]).line, "(syntax)", e.message.split("\n")[0]);
  }
  const lineOf = (path: (string | number)[]): number => {
    for (let p = path;; p = p.slice(0, -1)) {
      const node = (p.length ? doc.getIn(p, true) : doc.contents) as { range?: [number] } | undefined;
      if (node?.range) return lines.linePos(node.range[0]).line;
      if (p.length === 0) return 1;
    }
  };
  const fail = (path: (string | number)[], detail: string): never => {
    const field = path.map((p) => typeof p === "number" ? `[${p}]` : `.${p}`).join("").replace(/^\./, "") ||
      "(document)";
    throw new ConfigError(file, lineOf(path), field, detail);
  };
  if (doc.contents === null) return { outputs: [] };
  if (!isMap(doc.contents)) fail([], "expected a mapping with outputs and/or fleet");
  const root = doc.toJS() as Record<string, unknown>;
  for (const key of Object.keys(root)) {
    if (key !== "outputs" && key !== "fleet") fail([key], "unknown field, expected outputs or fleet");
  }
  const fleet = root.fleet === undefined || root.fleet === null ? undefined : parseFleet(root.fleet, fail);
  if (root.outputs === undefined || root.outputs === null) return fleet ? { outputs: [], fleet } : { outputs: [] };
  if (!Array.isArray(root.outputs)) fail(["outputs"], "expected a list of outputs");
  const outputs = (root.outputs as unknown[]).map((o, i) => parseOutput(o, ["outputs", i], fail));
  const names = new Set<string>();
  outputs.forEach((o, i) => {
    if (names.has(o.name)) fail(["outputs", i, "name"], `"${o.name}" names another output too`);
    names.add(o.name);
  });
  return fleet ? { outputs, fleet } : { outputs };
}

type Fail = (path: (string | number)[], detail: string) => never;

const COMMON = ["type", "name", "queues", "min_severity", "format", "buffer"];
const FIELDS: Record<OutputConfig["type"], string[]> = {
  file: [...COMMON, "path", "max_bytes", "keep"],
  syslog: [...COMMON, "socket", "address", "protocol", "facility"],
  webhook: [...COMMON, "url", "headers", "batch", "timeout_ms", "max_backoff_ms"],
  nats: [
    ...COMMON,
    "url",
    "stream",
    "subject_prefix",
    "host",
    "batch",
    "timeout_ms",
    "max_backoff_ms",
    "token_file",
    "user",
    "password_file",
    "creds_file",
  ],
};

/** A NATS subject token or stream name: no dots, spaces, wildcards. */
const NATS_TOKEN = /^[A-Za-z0-9_-]+$/;

/** `url`: one `nats://host:port` URL or a list of them. */
function natsServers(value: unknown, at: (string | number)[], fail: Fail): string[] {
  const list = typeof value === "string" ? [value] : value;
  if (!Array.isArray(list) || list.length === 0) fail(at, "expected a nats://host:port URL or a list of them");
  (list as unknown[]).forEach((u, i) => {
    let ok = false;
    try {
      ok = typeof u === "string" && ["nats:", "tls:"].includes(new URL(u).protocol);
    } catch { /* not a URL */ }
    if (!ok) {
      fail(Array.isArray(value) ? [...at, i] : at, `expected a nats:// or tls:// URL, got ${JSON.stringify(u)}`);
    }
  });
  return list as string[];
}

/** This host's default subject token: its name, each character a subject may not hold as `_`. */
export function defaultNatsHost(): string {
  return Deno.hostname().replace(/[^A-Za-z0-9_-]/g, "_") || "host";
}

const FLEET_FIELDS = ["url", "bucket", "prefix", "timeout_ms", "token_file", "user", "password_file", "creds_file"];

/** The NATS authentication fields of a mapping (`at`: its path): at most one way, each file an absolute path. */
function natsAuth(o: Record<string, unknown>, at: (string | number)[], fail: Fail): NatsAuth | undefined {
  const file = (key: string): string | undefined => {
    const v = o[key];
    if (v === undefined) return undefined;
    if (typeof v !== "string" || !v.startsWith("/")) {
      fail([...at, key], `expected an absolute path, got ${JSON.stringify(v)}`);
    }
    return v as string;
  };
  const auth: NatsAuth = {};
  const tokenFile = file("token_file"), passwordFile = file("password_file"), credsFile = file("creds_file");
  if (o.user !== undefined && (typeof o.user !== "string" || !o.user)) {
    fail([...at, "user"], `expected a user name, got ${JSON.stringify(o.user)}`);
  }
  if ((o.user === undefined) !== (passwordFile === undefined)) {
    fail([...at, o.user === undefined ? "password_file" : "user"], "user and password_file go together");
  }
  const ways = [tokenFile, o.user, credsFile].filter((v) => v !== undefined).length;
  if (ways > 1) fail(at, "expected one of token_file, user with password_file, or creds_file");
  if (tokenFile) auth.tokenFile = tokenFile;
  if (o.user !== undefined) Object.assign(auth, { user: o.user as string, passwordFile });
  if (credsFile) auth.credsFile = credsFile;
  return ways ? auth : undefined;
}

function parseFleet(value: unknown, fail: Fail): FleetConfig {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    fail(["fleet"], "expected a mapping with url and bucket");
  }
  const o = value as Record<string, unknown>;
  for (const key of Object.keys(o)) {
    if (!FLEET_FIELDS.includes(key)) fail(["fleet", key], `unknown field, expected ${FLEET_FIELDS.join(", ")}`);
  }
  if (o.url === undefined) fail(["fleet"], "expected url (a nats:// URL)");
  const bucket = o.bucket;
  if (typeof bucket !== "string" || !NATS_TOKEN.test(bucket)) {
    fail(["fleet", "bucket"], `expected a bucket name (letters, digits, - and _), got ${JSON.stringify(bucket)}`);
  }
  const prefix = o.prefix ?? "policies.";
  if (typeof prefix !== "string" || !/^[A-Za-z0-9_.=/-]*$/.test(prefix)) {
    fail(["fleet", "prefix"], `expected a key prefix (letters, digits, ., -, _, /, =), got ${JSON.stringify(prefix)}`);
  }
  const timeoutMs = o.timeout_ms ?? 5000;
  if (typeof timeoutMs !== "number" || !Number.isInteger(timeoutMs) || timeoutMs < 100) {
    fail(["fleet", "timeout_ms"], `expected a whole number from 100, got ${JSON.stringify(timeoutMs)}`);
  }
  const auth = natsAuth(o, ["fleet"], fail);
  return {
    servers: natsServers(o.url, ["fleet", "url"], fail),
    bucket: bucket as string,
    prefix: prefix as string,
    timeoutMs: timeoutMs as number,
    ...(auth ? { auth } : {}),
  };
}

function parseOutput(value: unknown, at: (string | number)[], fail: Fail): OutputConfig {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    fail(at, "expected a mapping with type (file, syslog, webhook or nats)");
  }
  const o = value as Record<string, unknown>;
  const type = o.type;
  if (type !== "file" && type !== "syslog" && type !== "webhook" && type !== "nats") {
    fail([...at, "type"], `expected file, syslog, webhook or nats, got ${JSON.stringify(type)}`);
  }
  const t = type as OutputConfig["type"];
  for (const key of Object.keys(o)) {
    if (!FIELDS[t].includes(key)) {
      fail([...at, key], `unknown field for a ${t} output, expected ${FIELDS[t].join(", ")}`);
    }
  }
  const str = (key: string, def?: string): string => {
    const v = o[key] ?? def;
    if (typeof v !== "string" || v === "") fail([...at, key], "expected a non-empty string");
    return v as string;
  };
  const int = (key: string, def: number, min: number, max = Number.MAX_SAFE_INTEGER): number => {
    const v = o[key] ?? def;
    if (typeof v !== "number" || !Number.isInteger(v) || v < min || v > max) {
      fail([...at, key], `expected a whole number from ${min} to ${max}, got ${JSON.stringify(v)}`);
    }
    return v as number;
  };
  let queues: AuditQueue[] = ["alerts", "verdicts"];
  if (o.queues === "all") queues = [...AUDIT_QUEUES];
  else if (o.queues !== undefined) {
    const list = typeof o.queues === "string" ? [o.queues] : o.queues;
    if (!Array.isArray(list) || list.length === 0 || list.some((q) => typeof q !== "string" || !isAuditQueue(q))) {
      fail([...at, "queues"], `expected "all" or a list of ${AUDIT_QUEUES.join(", ")}`);
    }
    queues = list as AuditQueue[];
  }
  const format = str("format", "ecs");
  if (format !== "ecs" && format !== "ocsf") fail([...at, "format"], `expected ecs or ocsf, got "${format}"`);
  if (format === "ocsf" && queues.some((q) => q !== "alerts" && q !== "verdicts")) {
    fail([...at, "queues"], "an ocsf output carries alerts and verdicts only (OCSF Detection Findings)");
  }
  const base = {
    name: o.name === undefined ? `${t}-${at[at.length - 1]}` : str("name"),
    queues,
    minSeverity: int("min_severity", 0, 0, 4),
    format: format as OutputFormat,
    buffer: int("buffer", 10_000, 1, 10_000_000),
  };
  if (t === "file") {
    return {
      ...base,
      type: t,
      path: str("path"),
      maxBytes: int("max_bytes", 100 * 1024 * 1024, 4096),
      keep: int("keep", 5, 0, 1000),
    };
  }
  if (t === "syslog") {
    if ((o.socket === undefined) === (o.address === undefined)) {
      fail(at, "expected one of socket (a Unix datagram socket, e.g. /dev/log) or address (host:port, UDP or TCP)");
    }
    let address: SyslogOutputConfig["address"];
    if (o.address !== undefined) {
      const m = /^(.+):(\d+)$/.exec(str("address"));
      const port = Number(m?.[2]);
      if (!m || !(port > 0 && port < 65536)) fail([...at, "address"], `expected host:port, got "${o.address}"`);
      address = { host: m![1].replace(/^\[(.*)\]$/, "$1"), port };
    }
    const facility = str("facility", "authpriv");
    if (!(facility in FACILITIES)) {
      fail([...at, "facility"], `expected one of ${Object.keys(FACILITIES).join(", ")}, got "${facility}"`);
    }
    const protocol = str("protocol", "udp");
    if (protocol !== "udp" && protocol !== "tcp") fail([...at, "protocol"], `expected udp or tcp, got "${protocol}"`);
    if (protocol === "tcp" && !address) fail([...at, "protocol"], "tcp needs an address (host:port), not a socket");
    return {
      ...base,
      type: t,
      socket: o.socket === undefined ? undefined : str("socket"),
      address,
      protocol: protocol as "udp" | "tcp",
      facility,
    };
  }
  if (t === "nats") {
    const token = (key: string, def: string): string => {
      const v = str(key, def);
      if (!NATS_TOKEN.test(v)) fail([...at, key], `expected letters, digits, - and _ only, got "${v}"`);
      return v;
    };
    const auth = natsAuth(o, at, fail);
    const subjectPrefix = str("subject_prefix", "idwrap");
    if (!subjectPrefix.split(".").every((p) => NATS_TOKEN.test(p))) {
      fail(
        [...at, "subject_prefix"],
        `expected dot-separated tokens (letters, digits, - and _), got "${subjectPrefix}"`,
      );
    }
    return {
      ...base,
      type: "nats",
      servers: natsServers(o.url, [...at, "url"], fail),
      stream: token("stream", "IDWRAP"),
      subjectPrefix,
      host: token("host", defaultNatsHost()),
      batch: int("batch", 100, 1, 10_000),
      timeoutMs: int("timeout_ms", 5_000, 100),
      maxBackoffMs: int("max_backoff_ms", 30_000, 250),
      ...(auth ? { auth } : {}),
    };
  }
  const url = str("url");
  try {
    const u = new URL(url);
    if (u.protocol !== "http:" && u.protocol !== "https:") throw new Error();
  } catch {
    fail([...at, "url"], `expected an http:// or https:// URL, got "${url}"`);
  }
  const headers = o.headers ?? {};
  if (
    typeof headers !== "object" || headers === null || Array.isArray(headers) ||
    Object.values(headers).some((v) => typeof v !== "string")
  ) fail([...at, "headers"], "expected a mapping of header names to strings");
  return {
    ...base,
    type: "webhook",
    url,
    headers: headers as Record<string, string>,
    batch: int("batch", 100, 1, 10_000),
    timeoutMs: int("timeout_ms", 10_000, 100),
    maxBackoffMs: int("max_backoff_ms", 30_000, 250),
  };
}
