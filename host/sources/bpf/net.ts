/**
 * Network deny rules decided in the kernel (docs/bpf.md, "Decisions in the
 * kernel"): loads build/bpf/net.o, writes the policy's kernel rules
 * (host/policy/net_kernel.ts) into its table, makes a cgroup v2 directory of
 * its own for the watched tree and attaches the connect4/6 and sendmsg4/6
 * programs to it. The launcher is moved into the cgroup before it execs the
 * command, so every process of the tree, and every socket one of them creates,
 * is judged from its first call. Denials come back through a small ring that
 * the host reads ({@linkcode KernelNet.take}).
 *
 * @module
 */
import type { KernelNetPlan } from "../../policy/net_kernel.ts";
import {
  closeFd,
  copySample,
  cstr,
  errno,
  libbpf,
  openDirectory,
  readCString,
  ringConsume,
  SAMPLE_CALLBACK,
} from "./libbpf.ts";
import { cgroup2Mount } from "./probe.ts";
import { decodeNetDenial, encodeNetTable, type NetDenial } from "./net_layout.ts";
import { BpfLoadError, explainLoadErrno } from "./tracer.ts";

/** The object `deno task build` makes from kmod/bpf/net.bpf.c. */
export const NET_OBJECT = new URL("../../../build/bpf/net.o", import.meta.url).pathname;

const PROGRAMS = ["net_connect4", "net_connect6", "net_sendmsg4", "net_sendmsg6", "net_sock_create"] as const;

let made = 0;

/**
 * Removes the `idwrap-net-<pid>-<n>` cgroups an idwrap left behind when it was SIGKILLed (rt8 M1): those whose pid no
 * longer runs. A directory still holding a process is not removed (rmdir fails: EBUSY) and is left alone; a reused
 * pid keeps its directory until that process ends (it is empty and has no programs: harmless).
 */
export function removeStaleCgroups(root: string): string[] {
  const removed: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(root)];
  } catch {
    return removed;
  }
  for (const e of entries) {
    const m = /^idwrap-net-(\d+)-\d+$/.exec(e.name);
    if (!e.isDirectory || !m || Number(m[1]) === Deno.pid) continue;
    try {
      Deno.statSync(`/proc/${m[1]}`);
      continue; // that idwrap still runs
    } catch { /* gone */ }
    try {
      Deno.removeSync(`${root}/${e.name}`);
      removed.push(e.name);
    } catch { /* busy (processes still in it) or raced: left */ }
  }
  return removed;
}

/** The kernel's network decisions for one watched tree. */
export class KernelNet {
  readonly #obj: Deno.PointerValue;
  readonly #links: Deno.PointerValue[] = [];
  #rb: Deno.PointerValue = null;
  #callback?: Deno.UnsafeCallback<typeof SAMPLE_CALLBACK>;
  #lostFd = -1;
  #cgroupFd = -1;
  #taken: NetDenial[] = [];
  #closed = false;
  #cgroup = "";
  /** A kill rule's match is killed by the program itself (bpf_send_signal), not only later by the host. */
  killsInKernel = false;

  private constructor(obj: Deno.PointerValue) {
    this.#obj = obj;
  }

  /** The tree's cgroup directory. */
  get cgroup(): string {
    return this.#cgroup;
  }

  #setUp(plan: KernelNetPlan, cgroupRoot: string): void {
    const obj = this.#obj;
    const lib = libbpf();
    const map = (name: string) => {
      const m = lib.bpf_object__find_map_by_name(obj, cstr(name));
      if (!m) throw new BpfLoadError(`The BPF object has no map "${name}"`);
      return m;
    };
    const loaded = lib.bpf_object__load(obj);
    if (loaded < 0) {
      throw new BpfLoadError(`Cannot load the network programs: ${explainLoadErrno(-loaded)}`, -loaded);
    }
    const table = encodeNetTable(plan);
    if (lib.bpf_map_update_elem(lib.bpf_map__fd(map("net_table")), new Uint8Array(4), table, 0n) < 0) {
      throw new BpfLoadError(`Cannot write the network rules: ${explainLoadErrno(errno())}`, errno());
    }
    this.#lostFd = lib.bpf_map__fd(map("net_lost"));
    this.#callback = new Deno.UnsafeCallback(SAMPLE_CALLBACK, (_ctx, data, size) => {
      const bytes = new Uint8Array(Number(size));
      copySample(data, bytes);
      this.#taken.push(decodeNetDenial(bytes));
      return 0;
    });
    this.#rb = lib.ring_buffer__new(lib.bpf_map__fd(map("net_events")), this.#callback.pointer, null, null);
    if (!this.#rb) throw new BpfLoadError(`Cannot open the network ring: ${explainLoadErrno(errno())}`, errno());
    removeStaleCgroups(cgroupRoot);
    const dir = `${cgroupRoot}/idwrap-net-${Deno.pid}-${++made}`;
    Deno.mkdirSync(dir);
    this.#cgroup = dir;
    // The programs judge the calling task (rt8 F2, F3): attached at the v2 root, they act on tasks whose cgroup at
    // level 1 is the tree's (a cgroup's id is its directory's inode number).
    const tree = new Uint8Array(16);
    new DataView(tree.buffer).setBigUint64(0, BigInt(Deno.statSync(dir).ino ?? 0), true);
    new DataView(tree.buffer).setUint32(8, 1, true);
    if (lib.bpf_map_update_elem(lib.bpf_map__fd(map("net_tree")), new Uint8Array(4), tree, 0n) < 0) {
      throw new BpfLoadError(`Cannot write the tree's cgroup: ${explainLoadErrno(errno())}`, errno());
    }
    const fd = openDirectory(cgroupRoot);
    if (fd < 0) throw new BpfLoadError(`Cannot open ${cgroupRoot}: ${explainLoadErrno(-fd)}`, -fd);
    this.#cgroupFd = fd;
    for (const name of PROGRAMS) {
      const prog = lib.bpf_object__find_program_by_name(obj, cstr(name));
      if (!prog) throw new BpfLoadError(`The BPF object has no program "${name}"`);
      const link = lib.bpf_program__attach_cgroup(prog, fd);
      if (!link) {
        const err = errno();
        throw new BpfLoadError(`Cannot attach ${name} to ${cgroupRoot}: ${explainLoadErrno(err)}`, err);
      }
      this.#links.push(link);
    }
  }

  /**
   * Loads the programs for `plan` and attaches them to a new cgroup below the cgroup v2 mount.
   *
   * @throws BpfLoadError naming what is missing or refused (the object, cgroup v2, the kernel's answer)
   */
  static open(plan: KernelNetPlan, options: { object?: string; cgroupRoot?: string } = {}): KernelNet {
    const path = options.object ?? NET_OBJECT;
    try {
      Deno.statSync(path);
    } catch {
      throw new BpfLoadError(`${path} is missing (deno task build makes it; it needs clang, bpftool and libbpf-dev)`);
    }
    const root = options.cgroupRoot ?? cgroup2Mount();
    if (!root) throw new BpfLoadError("no cgroup v2 hierarchy is mounted (cgroup2 in /proc/mounts)");
    // A kill rule: SIGKILL from the program where the kernel lets it call bpf_send_signal, else from the host.
    if (plan.rules.some((r) => r.rule.action === "kill")) {
      try {
        return KernelNet.#openWith(path, plan, root, true);
      } catch (e) {
        if (!(e instanceof BpfLoadError)) throw e;
      }
    }
    return KernelNet.#openWith(path, plan, root, false);
  }

  static #openWith(path: string, plan: KernelNetPlan, root: string, killInKernel: boolean): KernelNet {
    const lib = libbpf();
    const obj = lib.bpf_object__open_file(cstr(path), null);
    if (!obj) throw new BpfLoadError(`Cannot open ${path}: ${explainLoadErrno(errno())}`, errno());
    const net = new KernelNet(obj);
    try {
      net.#setKill(killInKernel);
      net.#setUp(plan, root);
      return net;
    } catch (e) {
      net.close();
      throw e;
    }
  }

  /** Sets kill_in_kernel (the object's .rodata, one byte) before load. */
  #setKill(on: boolean): void {
    const lib = libbpf();
    for (let m = lib.bpf_object__next_map(this.#obj, null); m; m = lib.bpf_object__next_map(this.#obj, m)) {
      if (!readCString(lib.bpf_map__name(m)).endsWith(".rodata")) continue;
      const r = lib.bpf_map__set_initial_value(m, new Uint8Array([on ? 1 : 0]), 1n);
      if (r < 0) throw new BpfLoadError(`Cannot set kill_in_kernel (.rodata): ${explainLoadErrno(-r)}`, -r);
      this.killsInKernel = on;
      return;
    }
    throw new BpfLoadError("The network object has no .rodata (kill_in_kernel)");
  }

  /** Moves process `pid` (the launcher, before it execs the command) into the tree's cgroup. */
  place(pid: number): void {
    Deno.writeTextFileSync(`${this.cgroup}/cgroup.procs`, `${pid}\n`);
  }

  /** The denials the kernel made since the last call, in ring order. */
  take(): NetDenial[] {
    if (this.#closed) return [];
    const n = ringConsume(this.#rb);
    if (n < 0) throw new BpfLoadError(`Cannot read the network ring: ${explainLoadErrno(-n)}`, -n);
    const out = this.#taken;
    this.#taken = [];
    return out;
  }

  /** Denials whose record did not fit in the ring (denied all the same). */
  lost(): number {
    const value = new BigUint64Array(1);
    if (libbpf().bpf_map_lookup_elem(this.#lostFd, new Uint8Array(4), new Uint8Array(value.buffer)) < 0) return 0;
    return Number(value[0]);
  }

  /** Detaches the programs and removes the cgroup (once the tree has left it). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    const lib = libbpf();
    for (const link of this.#links) lib.bpf_link__destroy(link);
    if (this.#rb) lib.ring_buffer__free(this.#rb);
    lib.bpf_object__close(this.#obj);
    this.#callback?.close();
    if (this.#cgroupFd >= 0) closeFd(this.#cgroupFd);
    if (this.#cgroup) {
      try {
        Deno.removeSync(this.#cgroup);
      } catch { /* a process of the tree outlived idwrap's wait: the directory stays until it is removed */ }
    }
  }
}
