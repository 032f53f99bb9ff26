/**
 * The unsafe edge of the bpf source: every libbpf (libbpf.so.1, Debian libbpf1)
 * and libc call it makes, in one place. Signatures from /usr/include/bpf/libbpf.h
 * and bpf.h (libbpf 1.x: a failing call returns NULL or a negative errno and sets
 * errno). Struct layouts live in layout.ts.
 *
 * The ring buffer is consumed with a synchronous {@linkcode Deno.UnsafeCallback}
 * called by `ring_buffer__poll`/`ring_buffer__consume` on the calling thread: a
 * thread-safe callback costs ~16 µs a record (issue 15), a synchronous one lets
 * one thread take 1–2 M records/s.
 *
 * @module
 */

/** libbpf cannot be used here (the library, or a call, failed). */
export class LibbpfError extends Error {
  override name = "LibbpfError";
  constructor(message: string, readonly errno = 0) {
    super(message);
  }
}

/** The libbpf symbols this source calls (exported for the test that keeps callback-running calls off V8's fast path). */
export const SYMBOLS = {
  bpf_object__open_file: { parameters: ["buffer", "pointer"], result: "pointer" },
  bpf_object__load: { parameters: ["pointer"], result: "i32" },
  bpf_object__close: { parameters: ["pointer"], result: "void" },
  bpf_object__find_map_by_name: { parameters: ["pointer", "buffer"], result: "pointer" },
  bpf_object__find_program_by_name: { parameters: ["pointer", "buffer"], result: "pointer" },
  bpf_object__next_map: { parameters: ["pointer", "pointer"], result: "pointer" },
  bpf_object__next_program: { parameters: ["pointer", "pointer"], result: "pointer" },
  bpf_map__name: { parameters: ["pointer"], result: "pointer" },
  bpf_map__fd: { parameters: ["pointer"], result: "i32" },
  bpf_map__set_max_entries: { parameters: ["pointer", "u32"], result: "i32" },
  bpf_map__set_initial_value: { parameters: ["pointer", "buffer", "usize"], result: "i32" },
  bpf_program__name: { parameters: ["pointer"], result: "pointer" },
  bpf_program__set_autoload: { parameters: ["pointer", "bool"], result: "i32" },
  bpf_program__attach: { parameters: ["pointer"], result: "pointer" },
  bpf_program__attach_cgroup: { parameters: ["pointer", "i32"], result: "pointer" },
  bpf_program__fd: { parameters: ["pointer"], result: "i32" },
  bpf_link__destroy: { parameters: ["pointer"], result: "i32" },
  bpf_map_update_elem: { parameters: ["i32", "buffer", "buffer", "u64"], result: "i32" },
  bpf_map_lookup_elem: { parameters: ["i32", "buffer", "buffer"], result: "i32" },
  bpf_map_delete_elem: { parameters: ["i32", "buffer"], result: "i32" },
  ring_buffer__new: { parameters: ["i32", "function", "pointer", "pointer"], result: "pointer" },
  // These two run the sample callback (JS) before they return, which a V8 fast API call must never do: under load the
  // callback's work deoptimised the caller and V8 aborted the host ("Lazy deopt after a fast API call with return
  // value is unsupported", SIGILL, in a hybrid seq build). Deno 2.9 makes every symbol without a struct a fast call
  // (its `callback: true` option is gone), so the result is declared as a one-i32 struct: the same register in the
  // x86-64 and AArch64 C ABIs, and the slow path. Call them through ringPoll() and ringConsume().
  ring_buffer__poll: { parameters: ["pointer", "i32"], result: { struct: ["i32"] } },
  ring_buffer__consume: { parameters: ["pointer"], result: { struct: ["i32"] } },
  ring_buffer__free: { parameters: ["pointer"], result: "void" },
  ring_buffer__epoll_fd: { parameters: ["pointer"], result: "i32" },
  libbpf_num_possible_cpus: { parameters: [], result: "i32" },
  libbpf_set_print: { parameters: ["pointer"], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

let lib: Deno.DynamicLibrary<typeof SYMBOLS>["symbols"] | undefined;

/** libbpf's functions; opens libbpf.so.1 on first use. */
export function libbpf(): Deno.DynamicLibrary<typeof SYMBOLS>["symbols"] {
  if (lib) return lib;
  try {
    lib = Deno.dlopen("libbpf.so.1", SYMBOLS).symbols;
  } catch (e) {
    throw new LibbpfError(
      `Cannot load libbpf.so.1 (Debian package libbpf1; sudo tools/debian-deps.sh --install): ${(e as Error).message}`,
    );
  }
  return lib;
}

/** ring_buffer__poll: waits up to `timeoutMs`, runs the sample callback per record; records taken or -errno. */
export function ringPoll(rb: Deno.PointerValue, timeoutMs: number): number {
  return structI32(libbpf().ring_buffer__poll(rb, timeoutMs));
}

/** ring_buffer__consume: runs the sample callback for every record waiting; records taken or -errno. */
export function ringConsume(rb: Deno.PointerValue): number {
  return structI32(libbpf().ring_buffer__consume(rb));
}

function structI32(bytes: Uint8Array): number {
  return new DataView(bytes.buffer, bytes.byteOffset, 4).getInt32(0, true);
}

const libc = Deno.dlopen("libc.so.6", {
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
  clock_gettime: { parameters: ["i32", "buffer"], result: "i32" },
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
}).symbols;

/** The calling thread's errno, right after a failed call. */
export function errno(): number {
  return new Deno.UnsafePointerView(libc.__errno_location()!).getInt32();
}

/** strerror(3) of an errno. */
export function strerror(err: number): string {
  const p = libc.strerror(err);
  return p ? Deno.UnsafePointerView.getCString(p) : `errno ${err}`;
}

/** The errno's symbolic name where it is one a BPF load or attach gives; else its number. */
export function errnoName(err: number): string {
  const names: Record<number, string> = {
    1: "EPERM",
    2: "ENOENT",
    7: "E2BIG",
    13: "EACCES",
    16: "EBUSY",
    22: "EINVAL",
    38: "ENOSYS",
    95: "EOPNOTSUPP",
    524: "ENOTSUPP",
  };
  return names[err] ?? `errno ${err}`;
}

/** A NUL-terminated C string. */
export function cstr(s: string): Uint8Array {
  return new TextEncoder().encode(s + "\0");
}

/** Reads a C string libbpf returned. */
export function readCString(p: Deno.PointerValue): string {
  return p ? Deno.UnsafePointerView.getCString(p) : "";
}

/** CLOCK_MONOTONIC now, in nanoseconds: the clock of bpf_ktime_get_ns(). */
export function monotonicNs(): bigint {
  return clockNs(1);
}

function clockNs(clock: number): bigint {
  const ts = new BigInt64Array(2);
  libc.clock_gettime(clock, new Uint8Array(ts.buffer));
  return ts[0] * 1_000_000_000n + ts[1];
}

/** open(2) of a directory (a cgroup, for cgroup/* attach); the fd or -errno. */
export function openDirectory(path: string): number {
  const O_RDONLY = 0, O_DIRECTORY = 0o200000, O_CLOEXEC = 0o2000000;
  const fd = libc.open(cstr(path), O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
  return fd < 0 ? -errno() : fd;
}

/** close(2). */
export function closeFd(fd: number): void {
  libc.close(fd);
}

/** Silences libbpf's messages on stderr while `fn` runs (probes fail on purpose). */
export function quietly<T>(fn: () => T): T {
  const previous = libbpf().libbpf_set_print(null);
  try {
    return fn();
  } finally {
    libbpf().libbpf_set_print(previous);
  }
}

/** The sample callback type of ring_buffer__new: (ctx, data, size) → 0 to go on. */
export const SAMPLE_CALLBACK = { parameters: ["pointer", "pointer", "usize"], result: "i32" } as const;

/** Copies a ring-buffer sample at `data` (valid only during the callback) into `into`, which is its size. */
export function copySample(data: Deno.PointerValue, into: Uint8Array): void {
  if (data) Deno.UnsafePointerView.copyInto(data, into);
}
