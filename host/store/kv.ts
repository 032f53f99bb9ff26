/**
 * The wrappers' key-value store: Deno KV (embedded SQLite by default) behind
 * a synchronous in-memory view. Hooks run synchronously inside a system call
 * answer, and Deno KV is asynchronous, so each wrapper's entries are loaded
 * before the first hook, reads come from memory, and writes reach Deno KV in
 * order in the background (`flush()` awaits them).
 *
 * @module
 */
import { join } from "node:path";

const PREFIX = ["idwrap", "wrapper"] as const;

/** Where the store lives unless told: `$IDWRAP_STORE`, else the user's state directory. */
export function defaultStorePath(): string {
  const explicit = Deno.env.get("IDWRAP_STORE");
  if (explicit) return explicit;
  const state = Deno.env.get("XDG_STATE_HOME") ?? join(Deno.env.get("HOME") ?? "/root", ".local", "state");
  return join(state, "idwrap", "idwrap.kv");
}

/**
 * Makes a store file owner-only before Deno KV opens it: its directory, when
 * this creates it, 0700; the file created empty 0600 (SQLite makes its -wal
 * and -shm files with the database's mode) and, if it existed, set to 0600
 * with its -wal and -shm. Remote and in-memory stores are left alone.
 */
export async function prepareStoreFile(path: string): Promise<void> {
  if (path === ":memory:" || /^https?:/.test(path)) return;
  await Deno.mkdir(join(path, ".."), { recursive: true, mode: 0o700 });
  try {
    await Deno.writeFile(path, new Uint8Array(), { createNew: true, mode: 0o600 });
  } catch (e) {
    if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
  }
  for (const f of [path, `${path}-wal`, `${path}-shm`]) {
    await Deno.chmod(f, 0o600).catch((e) => {
      // Not there, or another user's store this user may only read: not ours to tighten.
      if (!(e instanceof Deno.errors.NotFound || e instanceof Deno.errors.PermissionDenied)) throw e;
    });
  }
}

type Op = { key: Uint8Array; value: Uint8Array | null };

/** One wrapper's entries, read and written synchronously. */
export class KvNamespace {
  readonly #entries = new Map<string, { key: Uint8Array; value: Uint8Array }>();
  readonly #pending: Op[] = [];
  readonly #onWrite: () => void;

  constructor(entries: Iterable<[Uint8Array, Uint8Array]>, onWrite: () => void) {
    for (const [key, value] of entries) this.#entries.set(hex(key), { key, value });
    this.#onWrite = onWrite;
  }

  get(key: Uint8Array): Uint8Array | undefined {
    return this.#entries.get(hex(key))?.value;
  }

  set(key: Uint8Array, value: Uint8Array): void {
    const copy = { key: key.slice(), value: value.slice() };
    this.#entries.set(hex(key), copy);
    this.#pending.push(copy);
    this.#onWrite();
  }

  /** @returns whether the key existed */
  delete(key: Uint8Array): boolean {
    const existed = this.#entries.delete(hex(key));
    if (existed) {
      this.#pending.push({ key: key.slice(), value: null });
      this.#onWrite();
    }
    return existed;
  }

  /** Keys with the prefix, in byte order. */
  list(prefix: Uint8Array): Uint8Array[] {
    const p = hex(prefix);
    return [...this.#entries.keys()].filter((k) => k.startsWith(p)).sort().map((k) => this.#entries.get(k)!.key);
  }

  /** Takes the writes made since the last call, the last one per key. */
  drain(): Op[] {
    const last = new Map<string, Op>();
    for (const op of this.#pending.splice(0)) {
      const k = hex(op.key);
      last.delete(k); // re-insert so the map keeps the order of last writes
      last.set(k, op);
    }
    return [...last.values()];
  }
}

function hex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

/** The store: one Deno KV database, a namespace per wrapper. */
export class WrapperStore {
  readonly #kv: Deno.Kv;
  readonly #namespaces = new Map<string, KvNamespace>();
  #flushing: Promise<void> = Promise.resolve();
  #dirty = false;

  private constructor(kv: Deno.Kv) {
    this.#kv = kv;
  }

  /**
   * Opens (creating if needed) the store.
   *
   * @param path a file path, `:memory:`, or a remote KV URL
   */
  static async open(path = defaultStorePath()): Promise<WrapperStore> {
    await prepareStoreFile(path);
    return new WrapperStore(await Deno.openKv(path));
  }

  /** Loads a wrapper's entries; call before its first hook. */
  async load(wrapper: string): Promise<KvNamespace> {
    const known = this.#namespaces.get(wrapper);
    if (known) return known;
    const entries: [Uint8Array, Uint8Array][] = [];
    for await (const e of this.#kv.list<Uint8Array>({ prefix: [...PREFIX, wrapper] })) {
      entries.push([e.key[e.key.length - 1] as Uint8Array, e.value]);
    }
    const ns = new KvNamespace(entries, () => this.#dirty = true);
    this.#namespaces.set(wrapper, ns);
    return ns;
  }

  /** Whether writes wait for a flush. */
  get dirty(): boolean {
    return this.#dirty;
  }

  /** Writes what changed since the last flush, in order; resolves when it is durable. */
  flush(): Promise<void> {
    if (!this.#dirty) return this.#flushing;
    this.#dirty = false;
    const batches = [...this.#namespaces].map(([name, ns]) => [name, ns.drain()] as const);
    this.#flushing = this.#flushing.then(async () => {
      for (const [name, ops] of batches) {
        // Batches keep Deno KV's atomic operations under its per-commit limits (1000 mutations, 800 KiB in all).
        for (let i = 0; i < ops.length;) {
          const atomic = this.#kv.atomic();
          let bytes = 0;
          for (let n = 0; i < ops.length && n < 500; i++, n++) {
            const op = ops[i];
            const size = op.key.length + (op.value?.length ?? 0) + 64;
            if (n > 0 && bytes + size > 700_000) break;
            bytes += size;
            const key = [...PREFIX, name, op.key];
            if (op.value === null) atomic.delete(key);
            else atomic.set(key, op.value);
          }
          const r = await atomic.commit();
          if (!r.ok) throw new Error(`Cannot write wrapper "${name}"'s store`);
        }
      }
    });
    return this.#flushing;
  }

  /** Flushes and closes. */
  async close(): Promise<void> {
    await this.flush();
    this.#kv.close();
  }
}
