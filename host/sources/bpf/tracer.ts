/**
 * The bpf source's kernel side, loaded: opens build/bpf/idwrap.o through
 * libbpf, sets its config (watch mode, wake-up threshold, ring size), loads and
 * attaches its programs (sys_exit only while the interest wants an exit), and
 * gives the host the watched set, the interest map, the ring (consumed
 * synchronously on the calling thread, its records read in place) and the lost
 * counters. Observation only: nothing waits for the host.
 *
 * @module
 */
import {
  decodeRecord,
  encodeConfig,
  encodeInterest,
  type InterestEntry,
  MAX_SYSCALLS,
  MODE,
  SEQF_ARM,
  SEQF_FILE,
  SEQF_KEY,
} from "./layout.ts";
import type { BpfRecord } from "./layout.ts";
import type { KernelFile } from "./exec_rules.ts";
import {
  copySample,
  cstr,
  errno,
  errnoName,
  libbpf,
  LibbpfError,
  readCString,
  ringConsume,
  ringPoll,
  SAMPLE_CALLBACK,
  strerror,
} from "./libbpf.ts";

/** What the sample callback returns to stop a ring call at the batch limit, and what libbpf then returns. */
const EAGAIN = 11, EINTR = 4;

/** The object `deno task build` makes from kmod/bpf/idwrap.bpf.c. */
export const BPF_OBJECT = new URL("../../../build/bpf/idwrap.o", import.meta.url).pathname;

/** The buffer the ring's records are copied into (a new one when full: records are read in place). */
const CHUNK_BYTES = 1 << 20;

/**
 * The programs of idwrap.bpf.c attached at load (seqf_*: the window filter's per-process state, docs/bpf.md);
 * on_sys_exit only while the interest wants an exit (setInterest).
 */
const PROGRAMS = [
  "on_sys_enter",
  "on_fork",
  "on_exec",
  "on_process_exit",
  "seqf_on_fork",
  "seqf_on_exec",
  "seqf_on_exit",
] as const;
const EXIT_PROGRAM = "on_sys_exit";

/** How the tracer loads. */
export interface BpfTracerOptions {
  /** @default BPF_OBJECT */
  object?: string;
  /**
   * Which tasks are watched: "pids" (a hash of tgids that fork fills and exit empties: {@linkcode BpfTracer.watch})
   * or "cgroup" (every task of the cgroup v2 directory `cgroup`: one compare per call).
   * @default "pids"
   */
  mode?: "pids" | "cgroup";
  /** cgroup mode: the cgroup v2 directory (e.g. /sys/fs/cgroup/unified/idwrap-1). */
  cgroup?: string;
  /**
   * Bytes waiting in the ring that wake the consumer at once; below that, records are submitted with
   * BPF_RB_NO_WAKEUP and the consumer's poll timeout picks them up. 0: a wake-up per record.
   * @default 1/8 of the ring
   */
  wakeBytes?: number;
  /** The ring's size in bytes, a power of two (at least a page). @default 32 MiB */
  ringBytes?: number;
}

/** Cannot load or attach the bpf source, with why. */
export class BpfLoadError extends LibbpfError {
  override name = "BpfLoadError";
}

/** What to do about an errno from a load or attach, in words. */
export function explainLoadErrno(err: number): string {
  const name = errnoName(err);
  if ((err === 1 || err === 13) && Deno.uid() === 0) {
    return `${name} although we are root: the kernel refuses this here (lockdown; for fentry, fmod_ret and lsm, ` +
      "BPF trampolines need kernel text patching; lsm also needs bpf in the boot's lsm= list)";
  }
  if (err === 1 || err === 13) {
    return `${name}: loading BPF programs needs root (or CAP_BPF with CAP_PERFMON), and a kernel that allows it ` +
      "(kernel.unprivileged_bpf_disabled, lockdown)";
  }
  return `${name} (${strerror(err)})`;
}

/** The loaded object, its links and its ring. */
export class BpfTracer {
  readonly #obj: Deno.PointerValue;
  readonly #links: Deno.PointerValue[] = [];
  /**
   * on_sys_exit's link while attached. Every task on the host runs each attached sys_* program (it returns at the
   * first compare for an unwatched one): with no exit wanted, unwatched processes pay for one program, not two.
   */
  #exitLink: Deno.PointerValue = null;
  readonly #rb: Deno.PointerValue;
  readonly #callback: Deno.UnsafeCallback<typeof SAMPLE_CALLBACK>;
  readonly #watchedFd: number;
  readonly #interestFd: number;
  readonly #lostFd: number;
  readonly #execKillFd: number;
  /** exec_kill's keys now (encoded), to remove the ones a new policy drops. */
  #execKeys: Uint8Array[] = [];
  readonly #armedFd: number;
  readonly #knownFd: number;
  readonly #programsFd: number;
  readonly #cpus: number;
  /**
   * The bytes of the records taken by the current ring call, back to back from #start, and where each ends. Records
   * handed out read these bytes in place, so they are never written again: the next call appends after them, and a
   * full buffer is replaced (the old one lives as long as its records do).
   */
  #bytes = new Uint8Array(CHUNK_BYTES);
  #start = 0;
  #used = 0;
  #ends: number[] = [];
  /** Records one ring call takes at most (the caller's batch): past it the rest waits in the ring, bounded. */
  #limit = Infinity;
  #closed = false;
  /** The ring's size in bytes. */
  readonly ringBytes: number;

  private constructor(obj: Deno.PointerValue, options: BpfTracerOptions) {
    const lib = libbpf();
    this.#obj = obj;
    const map = (name: string) => {
      const m = lib.bpf_object__find_map_by_name(obj, cstr(name));
      if (!m) throw new BpfLoadError(`The BPF object has no map "${name}"`);
      return m;
    };
    this.ringBytes = options.ringBytes ?? 32 << 20;
    if (this.ringBytes < 4096 || (this.ringBytes & (this.ringBytes - 1)) !== 0) {
      throw new RangeError(`ringBytes: expected a power of two of at least 4096, got ${this.ringBytes}`);
    }
    lib.bpf_map__set_max_entries(map("events"), this.ringBytes);
    let cgroupId = 0n;
    if (options.mode === "cgroup") {
      if (!options.cgroup) throw new RangeError("cgroup mode needs the cgroup's directory (options.cgroup)");
      // On cgroup v2 a cgroup's id (bpf_get_current_cgroup_id) is its directory's inode number.
      cgroupId = BigInt(Deno.statSync(options.cgroup).ino!);
    }
    const config = encodeConfig(
      options.mode === "cgroup" ? MODE.CGROUP : MODE.PIDS,
      cgroupId,
      options.wakeBytes ?? this.ringBytes / 8,
    );
    const rodata = this.#internalMap(".rodata");
    const r = lib.bpf_map__set_initial_value(rodata, config, BigInt(config.length));
    if (r < 0) throw new BpfLoadError(`Cannot set the BPF config (.rodata): ${explainLoadErrno(-r)}`, -r);
    const loaded = lib.bpf_object__load(obj);
    if (loaded < 0) throw new BpfLoadError(`Cannot load the BPF programs: ${explainLoadErrno(-loaded)}`, -loaded);
    this.#watchedFd = lib.bpf_map__fd(map("watched"));
    this.#interestFd = lib.bpf_map__fd(map("interest"));
    this.#lostFd = lib.bpf_map__fd(map("lost"));
    this.#execKillFd = lib.bpf_map__fd(map("exec_kill"));
    this.#armedFd = lib.bpf_map__fd(map("seqf_armed"));
    this.#knownFd = lib.bpf_map__fd(map("seqf_known"));
    this.#programsFd = lib.bpf_map__fd(map("seqf_programs"));
    this.#cpus = lib.libbpf_num_possible_cpus();
    // The callback only copies (one memcpy into a growing buffer, ~0.5 µs a record here): the ring is freed at the
    // rate it fills, and records are decoded after the ring call returns (decoding in the callback took ~8 µs).
    this.#callback = new Deno.UnsafeCallback(SAMPLE_CALLBACK, (_ctx, data, size) => {
      const n = Number(size);
      if (this.#used + n > this.#bytes.length) {
        // Records of this call so far move to a fresh buffer; the ones handed out keep the old one.
        const taken = this.#used - this.#start;
        const fresh = new Uint8Array(Math.max(CHUNK_BYTES, 2 * (taken + n)));
        fresh.set(this.#bytes.subarray(this.#start, this.#used));
        for (let i = 0; i < this.#ends.length; i++) this.#ends[i] -= this.#start;
        this.#bytes = fresh;
        this.#start = 0;
        this.#used = taken;
      }
      copySample(data, this.#bytes.subarray(this.#used, this.#used + n));
      this.#used += n;
      this.#ends.push(this.#used);
      // The record is copied, so stopping here loses nothing: libbpf returns our -EAGAIN, the rest stays in the ring.
      return this.#ends.length >= this.#limit ? -EAGAIN : 0;
    });
    this.#rb = lib.ring_buffer__new(lib.bpf_map__fd(map("events")), this.#callback.pointer, null, null);
    if (!this.#rb) throw new BpfLoadError(`Cannot open the ring buffer: ${explainLoadErrno(errno())}`, errno());
    for (const name of PROGRAMS) this.#links.push(this.#attach(name));
  }

  #attach(name: string): Deno.PointerValue {
    const lib = libbpf();
    const prog = lib.bpf_object__find_program_by_name(this.#obj, cstr(name));
    if (!prog) throw new BpfLoadError(`The BPF object has no program "${name}"`);
    const link = lib.bpf_program__attach(prog);
    if (!link) {
      const err = errno();
      throw new BpfLoadError(`Cannot attach ${name}: ${explainLoadErrno(err)}`, err);
    }
    return link;
  }

  /** Whether on_sys_exit is attached now (some call's exit is of interest). */
  get exitAttached(): boolean {
    return this.#exitLink !== null;
  }

  /** Opens, configures, loads and attaches the object. */
  static load(options: BpfTracerOptions = {}): BpfTracer {
    const path = options.object ?? BPF_OBJECT;
    try {
      Deno.statSync(path);
    } catch {
      throw new BpfLoadError(
        `Cannot load the bpf source: ${path} is missing (deno task build makes it; it needs clang, bpftool and ` +
          "libbpf-dev: sudo tools/debian-deps.sh --install)",
      );
    }
    const lib = libbpf();
    const obj = lib.bpf_object__open_file(cstr(path), null);
    if (!obj) throw new BpfLoadError(`Cannot open ${path}: ${explainLoadErrno(errno())}`, errno());
    try {
      return new BpfTracer(obj, options);
    } catch (e) {
      lib.bpf_object__close(obj);
      throw e;
    }
  }

  /** The object's .rodata (or .data…) map, whose name libbpf prefixes with part of the object's. */
  #internalMap(suffix: string): Deno.PointerValue {
    const lib = libbpf();
    for (let m = lib.bpf_object__next_map(this.#obj, null); m; m = lib.bpf_object__next_map(this.#obj, m)) {
      if (readCString(lib.bpf_map__name(m)).endsWith(suffix)) return m;
    }
    throw new BpfLoadError(`The BPF object has no ${suffix} map`);
  }

  /** Watches process `tgid` (and, from now on, the processes it makes) as session `session`. */
  watch(tgid: number, session = 1): void {
    const key = new Uint32Array([tgid]), value = new Uint32Array([session]);
    if (libbpf().bpf_map_update_elem(this.#watchedFd, u8(key), u8(value), 0n) < 0) {
      throw new LibbpfError(`Cannot watch process ${tgid}: ${explainLoadErrno(errno())}`, errno());
    }
  }

  /** Stops watching process `tgid` (its children stay watched). */
  unwatch(tgid: number): void {
    libbpf().bpf_map_delete_elem(this.#watchedFd, u8(new Uint32Array([tgid])));
  }

  /** Whether process `tgid` is in the watched set. */
  isWatched(tgid: number): boolean {
    const value = new Uint32Array(1);
    return libbpf().bpf_map_lookup_elem(this.#watchedFd, u8(new Uint32Array([tgid])), u8(value)) === 0;
  }

  /**
   * Replaces the interest map: the syscalls in `entries` as given, every other one off. on_sys_exit is attached when
   * some entry wants its exit and detached when none does (then an i386 call of a watched task is reported at entry
   * only). It is attached before the map names the exit, and detached after the map stops naming it.
   */
  setInterest(entries: ReadonlyMap<number, InterestEntry>): void {
    this.#check();
    let wantsExit = false;
    for (const e of entries.values()) wantsExit ||= e.exit;
    if (wantsExit && !this.#exitLink) this.#exitLink = this.#attach(EXIT_PROGRAM);
    const off = encodeInterest({ enter: false, exit: false });
    for (let nr = 0; nr < MAX_SYSCALLS; nr++) {
      const e = entries.get(nr);
      const value = e ? encodeInterest(e) : off;
      if (libbpf().bpf_map_update_elem(this.#interestFd, u8(new Uint32Array([nr])), value, 0n) < 0) {
        throw new LibbpfError(`Cannot set the interest of syscall ${nr}: ${explainLoadErrno(errno())}`, errno());
      }
    }
    if (!wantsExit && this.#exitLink) {
      libbpf().bpf_link__destroy(this.#exitLink);
      this.#exitLink = null;
    }
  }

  /**
   * Replaces the exec_kill map: an exec of one of these files (by identity) by a watched process is killed at
   * sched_process_exec, its record flagged with the rule's index.
   */
  setExecKills(entries: readonly { file: KernelFile; rule: number }[]): void {
    const lib = libbpf();
    for (const key of this.#execKeys) lib.bpf_map_delete_elem(this.#execKillFd, key);
    this.#execKeys = [];
    for (const { file, rule } of entries) {
      const key = u8(new BigUint64Array([file.ino, file.kdev]));
      if (lib.bpf_map_update_elem(this.#execKillFd, key, u8(new Uint32Array([rule])), 0n) < 0) {
        throw new LibbpfError(`Cannot fill the exec_kill map: ${explainLoadErrno(errno())}`, errno());
      }
      this.#execKeys.push(key);
    }
  }

  /**
   * Adds a published filter's windows to the kernel's known set under `filter`.
   *
   * @returns how many were added before the set was full (all of them, normally)
   */
  addKnown(filter: number, windows: BigUint64Array): number {
    const key = new Uint8Array(SEQF_KEY.size), one = new Uint8Array([1]);
    const v = new DataView(key.buffer);
    v.setUint32(SEQF_KEY.filter, filter, true);
    for (let i = 0; i < windows.length; i++) {
      v.setBigUint64(SEQF_KEY.window, windows[i], true);
      if (libbpf().bpf_map_update_elem(this.#knownFd, key, one, 0n) < 0) return i;
    }
    return windows.length;
  }

  /** Removes windows of `filter` from the known set (a filter that did not fit). */
  removeKnown(filter: number, windows: BigUint64Array): void {
    const key = new Uint8Array(SEQF_KEY.size);
    const v = new DataView(key.buffer);
    v.setUint32(SEQF_KEY.filter, filter, true);
    for (const w of windows) {
      v.setBigUint64(SEQF_KEY.window, w, true);
      libbpf().bpf_map_delete_elem(this.#knownFd, key);
    }
  }

  /**
   * Applies `filter` (windows of `mask`'s length) to process `tgid` while it runs the program of its exec generation
   * `gen` (execs since it was first watched); an exec in between makes the kernel ignore it.
   */
  arm(tgid: number, filter: number, gen: number, mask: bigint): void {
    if (libbpf().bpf_map_update_elem(this.#armedFd, u8(new Uint32Array([tgid])), armValue(filter, gen, mask), 0n) < 0) {
      throw new LibbpfError(`Cannot arm the window filter of process ${tgid}: ${explainLoadErrno(errno())}`, errno());
    }
  }

  /** No filter for process `tgid` (until it is armed again): every call of it is reported. */
  disarm(tgid: number): void {
    libbpf().bpf_map_delete_elem(this.#armedFd, u8(new Uint32Array([tgid])));
  }

  /**
   * Gives `filter` to every process that execs the file (`ino`, kernel `dev`, inode generation `gen`) through mount
   * `mnt`, by the name `nameHash` in directory `parent`, from now on, at its exec, and to the processes they fork (the kernel skips a file with several links).
   *
   * @returns false when the kernel's table of programs is full (the processes are then armed by the host only)
   */
  armProgram(
    file: { ino: bigint; kdev: bigint; gen: number; mnt: number; parent: bigint; nameHash: number },
    filter: number,
    mask: bigint,
  ): boolean {
    const key = new Uint8Array(SEQF_FILE.size);
    const v = new DataView(key.buffer);
    v.setBigUint64(SEQF_FILE.ino, file.ino, true);
    v.setBigUint64(SEQF_FILE.dev, file.kdev, true);
    v.setUint32(SEQF_FILE.gen, file.gen, true);
    v.setUint32(SEQF_FILE.mnt_id, file.mnt, true);
    v.setBigUint64(SEQF_FILE.parent, file.parent, true);
    v.setUint32(SEQF_FILE.name_hash, file.nameHash, true);
    return libbpf().bpf_map_update_elem(this.#programsFd, key, armValue(filter, 0, mask), 0n) === 0;
  }

  /**
   * Waits up to `timeoutMs` for a wake-up (the ring past its threshold), then takes every record waiting.
   * Blocks the calling thread; 0 takes what is there without waiting.
   */
  poll(timeoutMs: number, max = Infinity): BpfRecord[] {
    this.#check();
    this.#limit = max;
    const n = ringPoll(this.#rb, timeoutMs);
    if (n < 0 && n !== -EINTR && n !== -EAGAIN) throw new LibbpfError(`ring_buffer__poll: ${explainLoadErrno(-n)}`, -n);
    // ring_buffer__poll consumes only a ring epoll reported, and records submitted with BPF_RB_NO_WAKEUP make none
    // ready: the timeout is the consumer's timer, after which everything waiting is taken (up to `max`).
    if (n !== -EAGAIN) this.#consume();
    return this.#takeBatch();
  }

  /**
   * The records in the ring now, without waiting: all of them, or the first `max` (a caller that must see every
   * record before going on calls again while a batch comes back full; memory then stays bounded by the batch).
   */
  drain(max = Infinity): BpfRecord[] {
    this.#check();
    this.#limit = max;
    this.#consume();
    return this.#takeBatch();
  }

  #consume(): void {
    const n = ringConsume(this.#rb);
    if (n < 0 && n !== -EAGAIN) throw new LibbpfError(`ring_buffer__consume: ${explainLoadErrno(-n)}`, -n);
  }

  /** The epoll fd ring_buffer__poll waits on: another fd added to it (level-triggered, data 0) wakes poll() too. */
  get epollFd(): number {
    this.#check();
    return libbpf().ring_buffer__epoll_fd(this.#rb);
  }

  /** Records dropped because the ring was full, on all CPUs, since the load. */
  lostTotal(): number {
    const values = new BigUint64Array(this.#cpus);
    if (libbpf().bpf_map_lookup_elem(this.#lostFd, u8(new Uint32Array([1])), u8(values)) < 0) {
      throw new LibbpfError(`Cannot read the lost counters: ${explainLoadErrno(errno())}`, errno());
    }
    return Number(values.reduce((a, b) => a + b, 0n));
  }

  /** Detaches the programs and frees the object, its maps and the ring. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const lib = libbpf();
    for (const link of this.#links) lib.bpf_link__destroy(link);
    if (this.#exitLink) lib.bpf_link__destroy(this.#exitLink);
    if (this.#rb) lib.ring_buffer__free(this.#rb);
    lib.bpf_object__close(this.#obj);
    this.#callback.close();
  }

  /** The records the last ring call copied, read in place; the next call appends after them. */
  #takeBatch(): BpfRecord[] {
    const n = this.#ends.length;
    if (n === 0) return [];
    const out = new Array<BpfRecord>(n);
    let start = this.#start;
    for (let i = 0; i < n; i++) {
      out[i] = decodeRecord(this.#bytes.subarray(start, this.#ends[i]));
      start = this.#ends[i];
    }
    this.#start = this.#used;
    this.#ends.length = 0;
    return out;
  }

  #check(): void {
    if (this.#closed) throw new Error("The bpf tracer is closed");
  }
}

function armValue(filter: number, gen: number, mask: bigint): Uint8Array {
  const value = new Uint8Array(SEQF_ARM.size);
  const v = new DataView(value.buffer);
  v.setUint32(SEQF_ARM.filter, filter, true);
  v.setUint32(SEQF_ARM.gen, gen, true);
  v.setBigUint64(SEQF_ARM.mask, mask, true);
  return value;
}

function u8(a: Uint32Array | BigUint64Array): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}
