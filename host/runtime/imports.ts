/**
 * The host side of the hook ABI: the `idwrap` import object one instance
 * gets (docs/abi.md, "What the host provides"). Every import checks its
 * pointers against the instance's memory and answers with a status.
 *
 * @module
 */
import { errnoNumber } from "../errno.ts";
import type { ProgramIdentity, SyscallEvent, Verdict } from "../events.ts";
import type { WrapperSpec } from "../policy/policy.ts";
import type { KvNamespace } from "../store/kv.ts";
import {
  ABI_MODULE,
  EVENT_WINDOW_SIZE,
  FIELD,
  KV_MAX_KEY,
  KV_MAX_VALUE,
  MAX_FILTER_WINDOWS,
  MAX_REWRITE_PATH,
  STATUS,
} from "./abi.ts";
import { type Declarations, declareSyscalls, groupMembers } from "./declarations.ts";
import { encodeWrStat, socketInfo, WR_STAT_SIZE, wrFstat, type WrStat, wrStat } from "./table1.ts";

/** What a hook is handling right now. */
export interface HookFrame {
  /** The system call (on_syscall), or the one that led to this emit or lifecycle hook. */
  event?: SyscallEvent;
  /** An outer layer already denied the call. */
  denied: boolean;
  /** Inside idwrap_on_abstract. */
  abstract?: { payload: Uint8Array; emitter: string };
  /** Alerts the wrapper raised during this hook (for the policy's on_alert). */
  alerts?: number;
  /** A fail: closed subscriber failed on an abstract event this hook emitted: the verdict its failure gives. */
  failed?: Verdict;
  /** What verdict_rewrite / verdict_rewrite_path set during this hook (ABI 1.2). */
  rewrite?: { arg?: number; value?: bigint; path?: string };
}

/** What the host gives one running instance. */
export interface InstanceHost {
  /** The process the instance wraps (read at each call: pooled instances get theirs late). */
  readonly pid: number;
  program(): ProgramIdentity;
  frame(): HookFrame | undefined;
  readonly kv: KvNamespace;
  report(kind: "alert" | "audit" | "log", severity: number | undefined, message: string): void;
  /** Runs subscribers; returns the largest answer, or a status. */
  emit(handle: number, payload: Uint8Array): number;
  /** The event source can rewrite arguments (verdict action 3). */
  readonly canRewrite?: boolean;
  /** ABI 1.4: the instance publishes the k-call windows it needs no hook for (filter_windows); a status. */
  publishFilter(k: number, windows: BigUint64Array): number;
}

/** Imports for the scratch instance that runs idwrap_declare, or for a process's instance. */
export type ImportContext =
  | { mode: "declare"; spec: WrapperSpec; declarations: Declarations }
  | { mode: "run"; spec: WrapperSpec; host: InstanceHost };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Builds the import object; `bind` must be called with the instance before
 * any export runs (imports need its memory).
 */
export function createImports(
  ctx: ImportContext,
): { imports: WebAssembly.Imports; bind(i: WebAssembly.Instance): void } {
  let memory: WebAssembly.Memory | undefined;
  /** The metered instance's fuel (absent unmetered): a copy costs as a bulk memory operation does. */
  let fuel: WebAssembly.Global | undefined;
  /** Charges `bytes` copied at the rate of memory.copy (docs/abi.md, Limits); the caller reloads its fuel after. */
  const charge = (bytes: number) => {
    if (fuel && bytes >= BYTES_PER_UNIT) fuel.value = (fuel.value as number) - Math.floor(bytes / BYTES_PER_UNIT);
  };
  const inBounds = (ptr: number, len: number) =>
    len >= 0 && ptr >= 0 && memory !== undefined && (ptr >>> 0) + (len >>> 0) <= memory.buffer.byteLength;
  const read = (ptr: number, len: number): Uint8Array | undefined => {
    if (!inBounds(ptr, len)) return undefined;
    charge(len);
    return new Uint8Array(memory!.buffer, ptr >>> 0, len >>> 0).slice();
  };
  const text = (ptr: number, len: number): string | undefined => {
    const b = read(ptr, len);
    return b && decoder.decode(b);
  };
  /** Copies what fits, returns the full length (docs/abi.md, "Who owns memory"). */
  const put = (buf: number, bufLen: number, data: Uint8Array): number => {
    if (!inBounds(buf, bufLen)) return STATUS.EINVAL;
    const copied = data.subarray(0, bufLen);
    charge(copied.length);
    new Uint8Array(memory!.buffer, buf >>> 0, bufLen >>> 0).set(copied);
    return data.length;
  };
  const putText = (buf: number, bufLen: number, s: string | undefined) =>
    s === undefined ? STATUS.ENOENT : put(buf, bufLen, encoder.encode(s));

  const declaring = ctx.mode === "declare" ? ctx.declarations : undefined;
  const host = ctx.mode === "run" ? ctx.host : undefined;
  const event = () => host?.frame()?.event;
  const notDeclaring = STATUS.EPERM;

  const fns: Record<string, (...a: never[]) => number | bigint | void> = {
    // --- declaration ---
    declare_syscall: (nr: number, flags: number) => declaring ? declareSyscalls(declaring, [nr], flags) : notDeclaring,
    declare_group: (p: number, l: number, flags: number) => {
      if (!declaring) return notDeclaring;
      const members = groupMembers(text(p, l) ?? "");
      return members ? declareSyscalls(declaring, [...members], flags) : STATUS.EINVAL;
    },
    declare_lifecycle: (kinds: number) => {
      if (!declaring) return notDeclaring;
      if (kinds & ~3) return STATUS.EINVAL;
      declaring.lifecycle |= kinds;
      return 0;
    },
    declare_subscribe: (p: number, l: number) => {
      const name = text(p, l);
      if (!declaring) return notDeclaring;
      if (!name) return STATUS.EINVAL;
      return declaring.subscriptions.push(name) - 1;
    },
    declare_emit: (p: number, l: number) => {
      const name = text(p, l);
      if (!declaring) return notDeclaring;
      if (!name) return STATUS.EINVAL;
      return declaring.emits.push(name) - 1;
    },

    // --- the current event ---
    event_syscall: () => event()?.nr ?? STATUS.EPERM,
    event_phase: () => {
      const e = event();
      return e ? (e.phase === "pre" ? 0 : 1) : STATUS.EPERM;
    },
    event_arg: (i: number) => {
      const e = event();
      return e && i >= 0 && i < 6 ? BigInt.asIntN(64, BigInt(e.args[i])) : 0n;
    },
    event_pid: () => host ? host.pid : STATUS.EPERM,
    event_tid: () => event()?.tid ?? host?.pid ?? STATUS.EPERM,
    event_uid: () => host ? host.program().uid : STATUS.EPERM,
    event_gid: () => host ? host.program().gid : STATUS.EPERM,
    event_result: () => {
      const e = event();
      if (!e || e.phase !== "post") return 0n;
      return BigInt(e.errno ? -(errnoOf(e.errno)) : (e.ret ?? 0));
    },
    event_denied: () => host?.frame()?.denied ? 1 : 0,
    event_string: (field: number, buf: number, bufLen: number) => {
      if (!host) return STATUS.EPERM;
      const e = event();
      const program = host.program();
      switch (field) {
        case FIELD.path:
          return putText(buf, bufLen, e?.decoded.path);
        case FIELD.path2:
          return putText(buf, bufLen, e?.decoded.path2);
        case FIELD.addr:
          return putText(buf, bufLen, e?.decoded.addr);
        case FIELD.flags:
          return putText(buf, bufLen, e?.decoded.flags);
        case FIELD.exe:
          return putText(buf, bufLen, program.exe);
        case FIELD.argv0:
          return putText(buf, bufLen, program.argv0);
        case FIELD.syscall:
          return putText(buf, bufLen, e?.syscall);
        case FIELD.rawPath:
          return putText(buf, bufLen, e?.decoded.rawPath ?? e?.decoded.path);
        case FIELD.rawPath2:
          return putText(buf, bufLen, e?.decoded.rawPath2 ?? e?.decoded.path2);
        case FIELD.ident:
          return putText(buf, bufLen, e?.decoded.ident);
        default:
          return STATUS.EINVAL;
      }
    },
    event_argc: () => event()?.decoded.argv?.length ?? 0,
    event_argv: (i: number, buf: number, bufLen: number) => putText(buf, bufLen, event()?.decoded.argv?.[i]),
    event_data: (buf: number, bufLen: number) => {
      const data = event()?.decoded.data;
      return data ? put(buf, bufLen, data) : STATUS.ENOENT;
    },

    // --- Table 1 ---
    wr_stat: (p: number, l: number, out: number) => {
      const path = text(p, l);
      if (!host) return STATUS.EPERM;
      if (path === undefined || !inBounds(out, WR_STAT_SIZE)) return STATUS.EINVAL;
      return writeStat(wrStat(host.pid, path), out);
    },
    wr_fstat: (fd: number, out: number) => {
      if (!host) return STATUS.EPERM;
      if (!inBounds(out, WR_STAT_SIZE)) return STATUS.EINVAL;
      return writeStat(wrFstat(host.pid, fd), out);
    },
    wr_audit: (p: number, l: number) => {
      const data = text(p, l);
      if (!host) return STATUS.EPERM;
      if (data === undefined) return STATUS.EINVAL;
      host.report("audit", undefined, data);
      return 0;
    },
    wr_audit_printf: (f: number, fl: number, args: number, nargs: number) => {
      const fmt = text(f, fl);
      if (!host) return STATUS.EPERM;
      if (fmt === undefined || !inBounds(args, nargs * 8)) return STATUS.EINVAL;
      const values = new DataView(memory!.buffer, args >>> 0, nargs * 8);
      const message = printf(fmt, (i) => i < nargs ? values.getBigInt64(i * 8, true) : undefined, cString);
      if (message === undefined) return STATUS.EINVAL;
      host.report("audit", undefined, message);
      return 0;
    },
    wr_get_addr: (fd: number, buf: number, bufLen: number) => socketField(fd, buf, bufLen, "kind"),
    wr_getpeername: (fd: number, buf: number, bufLen: number) => socketField(fd, buf, bufLen, "peer"),
    wr_getsockname: (fd: number, buf: number, bufLen: number) => socketField(fd, buf, bufLen, "local"),

    // --- key-value store ---
    kv_get: (k: number, kl: number, buf: number, bufLen: number) => {
      const key = kvKey(k, kl);
      if (typeof key === "number") return key;
      const value = host!.kv.get(key);
      return value ? put(buf, bufLen, value) : STATUS.ENOENT;
    },
    kv_set: (k: number, kl: number, v: number, vl: number) => {
      const key = kvKey(k, kl);
      if (typeof key === "number") return key;
      if (vl > KV_MAX_VALUE) return STATUS.E2BIG;
      const value = read(v, vl);
      if (!value) return STATUS.EINVAL;
      host!.kv.set(key, value);
      return 0;
    },
    kv_delete: (k: number, kl: number) => {
      const key = kvKey(k, kl);
      if (typeof key === "number") return key;
      return host!.kv.delete(key) ? 0 : STATUS.ENOENT;
    },
    kv_list: (p: number, pl: number, buf: number, bufLen: number) => {
      const prefix = read(p, pl);
      if (!host) return STATUS.EPERM;
      if (!prefix) return STATUS.EINVAL;
      const keys = host.kv.list(prefix);
      const out = new Uint8Array(keys.reduce((n, k) => n + k.length + 1, 0));
      let off = 0;
      for (const k of keys) {
        out.set(k, off);
        off += k.length + 1; // NUL after each key
      }
      return put(buf, bufLen, out);
    },

    // --- abstract events ---
    emit: (handle: number, p: number, l: number) => {
      const payload = read(p, l);
      if (!host) return STATUS.EPERM;
      if (!payload) return STATUS.EINVAL;
      return host.emit(handle, payload);
    },
    abstract_payload: (buf: number, bufLen: number) => {
      const a = host?.frame()?.abstract;
      return a ? put(buf, bufLen, a.payload) : STATUS.EPERM;
    },
    abstract_emitter: (buf: number, bufLen: number) => {
      const a = host?.frame()?.abstract;
      return a ? putText(buf, bufLen, a.emitter) : STATUS.EPERM;
    },

    // --- alerts, logs, settings, clock ---
    alert: (severity: number, p: number, l: number) => {
      const msg = text(p, l);
      if (host && msg !== undefined) host.report("alert", Math.min(4, Math.max(0, severity)), msg);
    },
    log: (level: number, p: number, l: number) => {
      const msg = text(p, l);
      if (host && msg !== undefined) host.report("log", Math.min(3, Math.max(0, level)), msg);
    },
    settings_get: (k: number, kl: number, buf: number, bufLen: number) => {
      const key = text(k, kl);
      if (key === undefined) return STATUS.EINVAL;
      return Object.hasOwn(ctx.spec.settings, key) ? putText(buf, bufLen, ctx.spec.settings[key]) : STATUS.ENOENT;
    },
    clock_ns: () => ctx.spec.clock ? monotonicNs() : BigInt(STATUS.EPERM),

    // --- rewrite (ABI 1.2) ---
    verdict_rewrite: (arg: number, value: bigint) => {
      const frame = rewriteFrame();
      if (typeof frame === "number") return frame;
      if (arg < 0 || arg > 5) return STATUS.EINVAL;
      frame.rewrite = { ...frame.rewrite, arg, value: BigInt.asUintN(64, BigInt(value)) };
      return 0;
    },
    // --- ABI 1.4: filters handed to the kernel ---
    filter_windows: (k: number, ptr: number, count: number) => {
      if (!host) return notDeclaring;
      if (k < 1 || k > 6 || count < 0) return STATUS.EINVAL;
      if (count > MAX_FILTER_WINDOWS) return STATUS.E2BIG;
      const bytes = read(ptr, count * 8);
      if (!bytes) return STATUS.EINVAL;
      const windows = new BigUint64Array(bytes.buffer, 0, count);
      const max = (1n << BigInt(10 * k)) - 1n;
      for (const w of windows) if (w === 0n || w > max) return STATUS.EINVAL;
      return host.publishFilter(k, windows);
    },
    event_window: (buf: number) => {
      if (!host) return notDeclaring;
      if (!inBounds(buf, EVENT_WINDOW_SIZE)) return STATUS.EINVAL;
      const w = event()?.window;
      const view = new DataView(memory!.buffer, buf >>> 0, EVENT_WINDOW_SIZE);
      view.setBigUint64(0, w ? BigInt(w.recent) : 0n, true);
      view.setBigUint64(8, BigInt(w?.skipped ?? 0), true);
      return w ? 1 : 0;
    },
    verdict_rewrite_path: (p: number, l: number) => {
      const frame = rewriteFrame();
      if (typeof frame === "number") return frame;
      if (l > MAX_REWRITE_PATH) return STATUS.E2BIG;
      const path = text(p, l);
      if (path === undefined || path.length === 0 || path.includes("\0")) return STATUS.EINVAL;
      if (frame.event!.decoded.path === undefined) return STATUS.EINVAL; // the call has no path to replace
      frame.rewrite = { ...frame.rewrite, path };
      return 0;
    },
  };

  /** The frame a rewrite may be set on (a pre hook of idwrap_on_syscall), or why not. */
  function rewriteFrame(): HookFrame | number {
    const frame = host?.frame();
    if (!frame?.event || frame.abstract || frame.event.phase !== "pre") return STATUS.EPERM;
    if (!host!.canRewrite) return STATUS.ENOSYS;
    return frame;
  }

  function kvKey(k: number, kl: number): Uint8Array | number {
    if (!host) return STATUS.EPERM;
    if (kl > KV_MAX_KEY) return STATUS.E2BIG;
    return read(k, kl) ?? STATUS.EINVAL;
  }
  function writeStat(s: WrStat | number, out: number): number {
    if (typeof s === "number") return s;
    encodeWrStat(s, new DataView(memory!.buffer), out >>> 0);
    return 0;
  }
  function socketField(fd: number, buf: number, bufLen: number, field: "kind" | "local" | "peer"): number {
    if (!host) return STATUS.EPERM;
    const info = socketInfo(host.pid, fd);
    return typeof info === "number" ? info : putText(buf, bufLen, info[field]);
  }
  function cString(ptr: bigint): string | undefined {
    if (!memory || ptr < 0n || ptr >= BigInt(memory.buffer.byteLength)) return undefined;
    const all = new Uint8Array(memory.buffer);
    const end = all.indexOf(0, Number(ptr));
    return end < 0 ? undefined : decoder.decode(all.subarray(Number(ptr), end));
  }

  return {
    imports: { [ABI_MODULE]: fns as unknown as WebAssembly.ModuleImports },
    bind(instance: WebAssembly.Instance) {
      memory = instance.exports.memory as WebAssembly.Memory;
      fuel = instance.exports.idwrap_fuel as WebAssembly.Global | undefined;
    },
  };
}

/** Bytes an import copies in or out of the module per budget unit: memory.copy's rate (wasm/metering.ts). */
const BYTES_PER_UNIT = 32;

function errnoOf(name: string): number {
  return errnoNumber(name) ?? (Number(name.replace(/^E/, "")) || 1);
}

function monotonicNs(): bigint {
  return BigInt(Math.round(performance.now() * 1e6));
}

/**
 * wr_audit_printf's formatting: %d %i %u %x %o %c %s %%.
 *
 * @returns the text, or undefined for a bad format or missing argument
 */
export function printf(
  fmt: string,
  arg: (i: number) => bigint | undefined,
  str: (ptr: bigint) => string | undefined,
): string | undefined {
  let i = 0;
  let bad = false;
  const out = fmt.replace(/%([%diuxocs])/g, (_, c: string) => {
    if (c === "%") return "%";
    const v = arg(i++);
    if (v === undefined) {
      bad = true;
      return "";
    }
    switch (c) {
      case "d":
      case "i":
        return v.toString();
      case "u":
        return BigInt.asUintN(64, v).toString();
      case "x":
        return BigInt.asUintN(64, v).toString(16);
      case "o":
        return BigInt.asUintN(64, v).toString(8);
      case "c":
        return String.fromCodePoint(Number(v & 0x1fffffn));
      default: {
        const s = str(v);
        if (s === undefined) bad = true;
        return s ?? "";
      }
    }
  });
  return bad ? undefined : out;
}
