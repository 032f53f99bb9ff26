/**
 * Which BPF program types load and attach on this kernel, tried for real
 * (`idwrap doctor`): each program of build/bpf/probes.o is loaded alone and
 * attached; bpf_send_signal must kill a real child. Kernels differ by config,
 * lockdown and whether they allow text patching (BPF trampolines: fentry,
 * lsm), so this never guesses from the config.
 *
 * @module
 */
import { closeFd, cstr, errno, libbpf, openDirectory, quietly } from "./libbpf.ts";
import { explainLoadErrno } from "./tracer.ts";

/** The probe object `deno task build` makes from kmod/bpf/probes.bpf.c. */
export const PROBE_OBJECT = new URL("../../../build/bpf/probes.o", import.meta.url).pathname;

/** What one probe found. */
export interface BpfProbe {
  /** The program type, as a section name: "tp_btf", "lsm", "cgroup/connect4", "bpf_send_signal"… */
  feature: string;
  ok: boolean;
  /** What was tried and what the kernel said. */
  detail: string;
  /** What idwrap uses it for. */
  use: string;
}

const PROBES = [
  { feature: "tp_btf", program: "probe_tp_btf", use: "the bpf source's syscall and sched programs" },
  { feature: "raw_tp", program: "probe_raw_tp", use: "a fallback for kernels whose tp_btf is refused" },
  { feature: "lsm (BPF LSM)", program: "probe_lsm", use: "in-kernel deny before a call acts (next step)" },
  { feature: "fentry", program: "probe_fentry", use: "cheaper per-function hooks (next step)" },
  {
    feature: "cgroup/connect4",
    program: "probe_connect4",
    use: "network deny rules decided in the kernel (net.bpf.c)",
  },
  { feature: "bpf_send_signal", program: "probe_send_signal", use: "late kills from the kernel (next step)" },
] as const;

/** The cgroup v2 mount, where cgroup programs attach. */
export function cgroup2Mount(): string | undefined {
  try {
    const line = Deno.readTextFileSync("/proc/mounts").split("\n").find((l) => l.split(" ")[2] === "cgroup2");
    return line?.split(" ")[1];
  } catch {
    return undefined;
  }
}

/** Loads program `name` of the probe object alone; returns the object (to close) or why not. */
function loadAlone(name: string, rodata?: Uint8Array): { obj: Deno.PointerValue; prog: Deno.PointerValue } | string {
  const lib = libbpf();
  const obj = lib.bpf_object__open_file(cstr(PROBE_OBJECT), null);
  if (!obj) return `cannot open ${PROBE_OBJECT}: ${explainLoadErrno(errno())}`;
  let target: Deno.PointerValue = null;
  for (let p = lib.bpf_object__next_program(obj, null); p; p = lib.bpf_object__next_program(obj, p)) {
    const own = Deno.UnsafePointerView.getCString(lib.bpf_program__name(p)!) === name;
    lib.bpf_program__set_autoload(p, own);
    if (own) target = p;
  }
  if (rodata) {
    for (let m = lib.bpf_object__next_map(obj, null); m; m = lib.bpf_object__next_map(obj, m)) {
      if (Deno.UnsafePointerView.getCString(lib.bpf_map__name(m)!).endsWith(".rodata")) {
        lib.bpf_map__set_initial_value(m, rodata, BigInt(rodata.length));
      }
    }
  }
  const r = quietly(() => lib.bpf_object__load(obj));
  if (r < 0) {
    lib.bpf_object__close(obj);
    return `load refused: ${explainLoadErrno(-r)}`;
  }
  return { obj, prog: target };
}

/** Attaches a loaded probe (to a fresh cgroup for cgroup programs), then detaches; why not, or undefined. */
function attachOnce(feature: string, prog: Deno.PointerValue): string | undefined {
  const lib = libbpf();
  if (feature.startsWith("cgroup/")) {
    const mount = cgroup2Mount();
    if (!mount) return "no cgroup v2 mount to attach to";
    const dir = `${mount}/idwrap-probe-${Deno.pid}`;
    Deno.mkdirSync(dir, { recursive: true });
    const fd = openDirectory(dir);
    try {
      if (fd < 0) return `cannot open ${dir}: ${explainLoadErrno(-fd)}`;
      const link = quietly(() => lib.bpf_program__attach_cgroup(prog, fd));
      if (!link) return `attach refused: ${explainLoadErrno(errno())}`;
      lib.bpf_link__destroy(link);
      return undefined;
    } finally {
      if (fd >= 0) closeFd(fd);
      Deno.removeSync(dir);
    }
  }
  const link = quietly(() => lib.bpf_program__attach(prog));
  if (!link) return `attach refused: ${explainLoadErrno(errno())}`;
  lib.bpf_link__destroy(link);
  return undefined;
}

/**
 * Loads one program of the probe object alone and attaches it (the bench compares program types with it).
 *
 * @returns a function that detaches and frees it
 * @throws when the kernel refuses it
 */
export function attachProbe(program: string): () => void {
  const loaded = loadAlone(program);
  if (typeof loaded === "string") throw new Error(`Cannot load ${program}: ${loaded}`);
  const lib = libbpf();
  const link = quietly(() => lib.bpf_program__attach(loaded.prog));
  if (!link) {
    const err = errno();
    lib.bpf_object__close(loaded.obj);
    throw new Error(`Cannot attach ${program}: ${explainLoadErrno(err)}`);
  }
  return () => {
    lib.bpf_link__destroy(link);
    lib.bpf_object__close(loaded.obj);
  };
}

/** bpf_send_signal for real: SIGKILL to a child shell at its next call. */
async function probeSendSignal(program: string): Promise<string | undefined> {
  const child = new Deno.Command("/bin/sh", {
    args: ["-c", "while :; do /bin/true; done"],
    stdout: "null",
    stderr: "null",
  }).spawn();
  const rodata = new Uint32Array([child.pid, 9]);
  const loaded = loadAlone(program, new Uint8Array(rodata.buffer));
  if (typeof loaded === "string") {
    child.kill("SIGKILL");
    await child.status;
    return loaded;
  }
  const lib = libbpf();
  const link = quietly(() => lib.bpf_program__attach(loaded.prog));
  const attachErr = link ? undefined : errno();
  const timer = setTimeout(() => child.kill("SIGTERM"), 2000);
  const status = await child.status;
  clearTimeout(timer);
  if (link) lib.bpf_link__destroy(link);
  lib.bpf_object__close(loaded.obj);
  if (attachErr !== undefined) return `attach refused: ${explainLoadErrno(attachErr)}`;
  return status.signal === "SIGKILL"
    ? undefined
    : `the child was not killed (it ended with ${status.signal ?? status.code})`;
}

/** Tries every program type; needs root (else each says EPERM). */
export async function probeBpf(): Promise<BpfProbe[]> {
  try {
    Deno.statSync(PROBE_OBJECT);
  } catch {
    return [{
      feature: "bpf programs",
      ok: false,
      detail: `${PROBE_OBJECT} is missing (deno task build; it needs clang, bpftool and libbpf-dev)`,
      use: "the bpf source",
    }];
  }
  const out: BpfProbe[] = [];
  for (const { feature, program, use } of PROBES) {
    let why: string | undefined;
    if (feature === "bpf_send_signal") why = await probeSendSignal(program);
    else {
      const loaded = loadAlone(program);
      if (typeof loaded === "string") why = loaded;
      else {
        why = attachOnce(feature, loaded.prog);
        libbpf().bpf_object__close(loaded.obj);
      }
    }
    const done = feature === "bpf_send_signal" ? "loaded, attached, killed a child" : "loaded and attached";
    out.push({ feature, ok: why === undefined, detail: why ?? done, use });
  }
  return out;
}
