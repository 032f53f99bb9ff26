/**
 * Fleet policy: the daemon takes policies from a NATS JetStream KV bucket besides its policy files. Each key under
 * the configured prefix is one policy file (its value the YAML). The daemon watches the bucket: each new value is
 * written to a file of its own (under the run dir, root's, 0600), checked with the daemon's policy files and the other
 * fleet policies exactly as `idwrap policy check` checks a set, then loaded (the daemon's reload). A value refused
 * (either step) is reported — a `faults` record and a log line — and the key's last good policy stays in force; a
 * deleted key's policy is unloaded. Changes are applied one at a time, in the bucket's order.
 *
 * The client reconnects by itself: a bucket that cannot be reached leaves the last good policies in force, and the
 * watch picks up what changed meanwhile (each key's latest value) when the server is back.
 *
 * @module
 */
import { natsAuthOptions } from "../outputs/nats_auth.ts";
import { join } from "node:path";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { type KV, Kvm, type KvWatchEntry } from "@nats-io/kv";
import { type AuditRecord, ECS_VERSION } from "../audit/record.ts";
import type { FleetConfig } from "../outputs/config.ts";
import type { LogLevel } from "../log.ts";

/** What the fleet policies need from the daemon. */
export interface FleetPolicyHost {
  /** The daemon's own policy files (checked with the fleet's as one set). */
  localFiles(): string[];
  /** `idwrap policy check`'s check of a set of files (host/cli/policy.ts, handed down: the CLI is a floor above). */
  check(files: string[]): Promise<PolicyCheckResult[]>;
  /**
   * Loads the daemon's files with these fleet policies, parsed from the text the bucket gave (never read back from
   * their files: a root program the daemon wraps could rewrite those); throws, keeping what was in force, when it
   * cannot.
   */
  apply(policies: FleetPolicy[]): Promise<void>;
  /** A fleet policy refused: the record to keep (the `faults` queue). */
  record(record: AuditRecord): void;
  /** A line for the daemon's log, at its level. */
  log(line: string, level: LogLevel): void;
}

/** One file's verdict from `policy check`. */
export interface PolicyCheckResult {
  file: string;
  ok: boolean;
  error?: string;
}

/** A fleet policy: its text from the bucket, and the file it was written to (its name in errors, `policy check`). */
export interface FleetPolicy {
  file: string;
  text: string;
}

interface Held extends FleetPolicy {
  revision: number;
}

/** A key's file name: what follows the prefix, each character a file name should not hold as `_`. */
function fileName(key: string, prefix: string): string {
  return key.slice(prefix.length).replace(/[^A-Za-z0-9_-]/g, "_") + ".yaml";
}

/** The `faults` record of a refused fleet policy. */
export function refusalRecord(bucket: string, key: string, revision: number, error: string): AuditRecord {
  const message = `fleet policy ${bucket}/${key} revision ${revision} refused, the last good policy stays: ${error}`;
  return {
    "@timestamp": new Date().toISOString(),
    "ecs.version": ECS_VERSION,
    "event.kind": "alert",
    "event.category": ["configuration"],
    "event.type": ["change"],
    "event.action": "fleet-policy-refused",
    "event.outcome": "failure",
    "event.module": "idwrap",
    "event.dataset": "idwrap.faults",
    "event.severity": 3,
    message,
    "error.message": error,
    "error.type": "fleet-policy-refused",
    "process.pid": Deno.pid,
    "rule.ruleset": `${bucket}/${key}`,
    "idwrap.queue": "faults",
    "idwrap.source": "seccomp",
  };
}

/** The fleet policies of one daemon, kept in step with the bucket. */
export class FleetPolicies {
  readonly #config: FleetConfig;
  readonly #dir: string;
  readonly #host: FleetPolicyHost;
  /** key → the policy in force. */
  readonly #held = new Map<string, Held>();
  /** key → the newest revision seen (applied or refused): older ones the watch delivers again are passed over. */
  readonly #seen = new Map<string, number>();
  #nc: NatsConnection | undefined;
  #stopped = false;
  #changes: Promise<void> = Promise.resolve();
  #watching: Promise<void> = Promise.resolve();
  #firstSync: () => void = () => {};
  /** Settles once the bucket's policies at start are loaded (or refused), or the daemon gave up waiting. */
  readonly synced: Promise<void>;

  constructor(config: FleetConfig, dir: string, host: FleetPolicyHost) {
    this.#config = config;
    this.#dir = dir;
    this.#host = host;
    this.synced = new Promise((r) => this.#firstSync = r);
  }

  /** The fleet policies in force. */
  policies(): FleetPolicy[] {
    return [...this.#held.values()].map(({ file, text }) => ({ file, text }));
  }

  /** Connects (retrying until it can) and follows the bucket. */
  start(): void {
    Deno.mkdirSync(this.#dir, { recursive: true, mode: 0o700 });
    Deno.chmodSync(this.#dir, 0o700);
    this.#watching = this.#follow().catch((e) => {
      if (!this.#stopped) {
        this.#host.log(`fleet: stopped following ${this.#config.bucket}: ${(e as Error).message}`, "error");
      }
      this.#firstSync();
    });
  }

  async #follow(): Promise<void> {
    const { servers, timeoutMs: timeout, bucket, prefix } = this.#config;
    this.#nc = await connect({
      servers,
      timeout,
      name: "idwrap fleet policy",
      waitOnFirstConnect: true,
      reconnect: true,
      maxReconnectAttempts: -1,
      ...natsAuthOptions(this.#config.auth),
    });
    if (this.#stopped) return void await this.#nc.close();
    (async () => {
      for await (const s of this.#nc!.status()) {
        if (s.type === "disconnect") this.#host.log(`fleet: lost ${bucket}; the policies in force stay`, "warning");
        if (s.type === "reconnect") this.#host.log(`fleet: reconnected to ${bucket}`, "info");
      }
    })().catch(() => {});
    const kvm = new Kvm(this.#nc);
    const kv: KV = await kvm.create(bucket, { history: 5 }); // opens it when it exists
    const key = prefix === "" ? ">" : prefix.endsWith(".") ? `${prefix}>` : `${prefix}.>`;
    const watch = await kv.watch({ key });
    this.#host.log(`fleet: following ${bucket}, keys ${key}`, "info");
    // What the bucket holds now comes first; an empty bucket's watch says nothing, so the status says how much.
    if ((await kv.status()).values === 0) this.#firstSync();
    for await (const entry of watch) {
      if (this.#stopped) break;
      await this.#enqueue(entry);
      if (entry.delta === 0) this.#firstSync(); // the last of what the watch had pending
    }
  }

  #enqueue(entry: KvWatchEntry): Promise<void> {
    this.#changes = this.#changes.then(() => this.#change(entry)).catch((e) =>
      this.#host.log(`fleet: ${entry.key}: ${(e as Error).message}`, "error")
    );
    return this.#changes;
  }

  /** One key changed: check and load its new policy, or unload it; refused, the last good stays. */
  async #change(entry: KvWatchEntry): Promise<void> {
    const { key, revision } = entry;
    if ((this.#seen.get(key) ?? 0) >= revision) return;
    this.#seen.set(key, revision);
    const next = new Map(this.#held);
    let file: string | undefined;
    if (entry.operation === "PUT") {
      file = join(this.#dir, `r${revision}`, fileName(key, this.#config.prefix));
      next.set(key, { revision, file, text: new TextDecoder().decode(entry.value) });
    } else if (!next.delete(key)) return;
    const policies = [...next.values()];
    // The check reads files: each written afresh from the bucket's text (whatever changed them since).
    for (const p of policies) {
      Deno.mkdirSync(join(p.file, ".."), { recursive: true, mode: 0o700 });
      Deno.writeTextFileSync(p.file, p.text, { mode: 0o600 });
    }
    let error: string | undefined;
    if (file) {
      const checks = await this.#host.check([...this.#host.localFiles(), ...policies.map((p) => p.file)]);
      error = checks.find((c) => !c.ok)?.error;
    }
    if (error === undefined) {
      try {
        await this.#host.apply(policies.map(({ file, text }) => ({ file, text })));
      } catch (e) {
        error = (e as Error).message;
      }
    }
    const old = this.#held.get(key);
    if (error !== undefined) {
      if (file) Deno.removeSync(join(file, ".."), { recursive: true });
      this.#host.log(`fleet: ${key} revision ${revision} refused, the last good policy stays: ${error}`, "error");
      this.#host.record(refusalRecord(this.#config.bucket, key, revision, error));
      return;
    }
    if (old) Deno.removeSync(join(old.file, ".."), { recursive: true });
    const now = next.get(key);
    if (now) this.#held.set(key, now);
    else this.#held.delete(key);
    this.#host.log(`fleet: ${key} revision ${revision} ${file ? "in force" : "deleted: unloaded"}`, "info");
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    await this.#nc?.close().catch(() => {});
    await this.#watching;
    await this.#changes;
  }
}
