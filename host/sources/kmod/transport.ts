/**
 * The kernel-module source as a thin transport (host/wss/source.ts): read
 * /dev/idwrap's record stream, hand each record to the WSS as a call or a
 * lifecycle report, decode its arguments from the module's copies, write the
 * verdict where the caller waits. One device, one opener: it serves every
 * wrapped tree of the host (the trees `idwrap run` starts, and with
 * `systemWide` every program whose activation criteria match at its execve).
 *
 * Records that only observe never block their process; a kill the WSS
 * decides on one is carried out with pidfd_send_signal (kill()).
 *
 * @module
 */
import type { DecodedArgs, SyscallAbi, SyscallEvent, Verdict } from "../../events.ts";
import type { SupervisorSummary } from "../../wss/summary.ts";
import { syscallName } from "../../syscalls/mod.ts";
import type { Interest } from "../../wss/interest.ts";
import type { Refusal } from "../../wss/refusal.ts";
import type {
  ArgNeeds,
  EventSource,
  PollResult,
  Settled,
  SourceCall,
  SourceCapabilities,
  SourceHandler,
  WatchChange,
} from "../../wss/source.ts";
import { boundedArgs, readCgroup, readTaskStatus } from "../../wss/procfs.ts";
import { decodeArgs } from "../../wss/decode.ts";
import { TargetMemory } from "../../unsafe/memory.ts";
import { TamperGuard } from "../../wss/tamper.ts";
import { notTheDevice, openDevice } from "./device.ts";
import { E } from "../../errno.ts";
import { EFD_CLOEXEC, EFD_NONBLOCK, POLLFD, POLLIN } from "../../unsafe/layouts.ts";
import { errno, killProcess, libc } from "../../unsafe/libc.ts";
import { KMOD_CAPABILITIES } from "../capabilities.ts";
import { compileInterest } from "./interest.ts";
import { recordReader } from "./record_reader.ts";
import { guardedCall, guardedOpen, moduleGuardRefusal, opensReadOnly, openTarget } from "./tamper.ts";

const NR_OPENAT2 = 437;
/**
 * A decided openat2 is refused: the kernel reads its `open_how` (flags, mode, resolve) from the caller's memory again
 * after the decision, where a thread may have changed it, and the module cannot run it on a copy as it runs the
 * other opens. ENOSYS, what a kernel before 5.6 says: programs fall back to openat, which runs on the copy.
 */
const OPENAT2_REFUSAL: Refusal = {
  reason: "openat2 is refused while the policy decides it: its open_how would be read again after the decision " +
    "(ENOSYS: the program falls back to openat, which runs on the decided copy)",
  technique: "T1562.001",
  errno: E.ENOSYS,
  quiet: true,
};
import {
  ACT,
  CFG,
  encodeConfig,
  encodeInterest,
  encodeVerdict,
  encodeWatch,
  EV,
  EVF,
  INTEREST,
  IOC,
  type KmodRecord,
  type KmodVerdict,
  parseRecord,
  splitArgv,
  VF,
} from "./uapi.ts";

const READ_BUFFER = 1 << 20;
const MAX_READS_PER_WAKE = 4;
const X32_SYSCALL_BIT = 0x40000000;

/** How the transport opens the device. */
export interface KmodSourceOptions {
  interest: Interest;
  /** A waiting call's limit; 0: the module's default (5 s). */
  timeoutMs?: number;
  /** Every process on the host is a candidate: EXEC records wait for a watch verdict (the WSS's activation). */
  systemWide?: boolean;
  /** @default /dev/idwrap */
  device?: string;
  /**
   * An open device to use instead of opening one (its session goes on: a daemon's restart); the source owns it. It
   * is configured again (the same scope, this policy's fail mode and interest), which keeps the module's watched
   * processes and the records it holds.
   */
  deviceFd?: number;
}

/** /dev/idwrap as an EventSource. */
export class KmodSource implements EventSource {
  readonly capabilities: SourceCapabilities;
  /** The device, held for the source's life; closing it gives every waiting call the fail mode. */
  readonly fd: number;
  readonly wakeFd: number;
  readonly failClosedFds: readonly number[];
  readonly closesSessions = false;
  readonly #buf = new Uint8Array(READ_BUFFER);
  readonly #pollfds = new Uint8Array(POLLFD.size * 2);
  readonly #pollView = new DataView(this.#pollfds.buffer);
  readonly #wakeBuf = new Uint8Array(8);
  readonly #memory = new TargetMemory();
  /** Refuses the tree's calls that reach this process (the seccomp source's guard). */
  readonly #guard = new TamperGuard();
  /** Lifecycle reports made outside poll() (attach), handed over at the next one. */
  readonly #queued: { pid: number; ppid: number; session: number }[] = [];
  /** The record being served (one at a time: the WSS answers before the next is handed over). */
  #rec: KmodRecord | undefined;
  /** The id of the last verdict written. */
  #lastWritten = -1n;
  /** The WSS polling (faults of verdict writes go to it). */
  #handler: SourceHandler | undefined;

  constructor(options: KmodSourceOptions) {
    const systemWide = options.systemWide ?? false;
    this.capabilities = { ...KMOD_CAPABILITIES, systemWide };
    if (options.deviceFd !== undefined) {
      const why = notTheDevice(options.deviceFd, options.device);
      if (why) {
        libc.symbols.close(options.deviceFd); // ours: a copy left open would hold the session with no one reading
        throw new Error(`the device handed over (fd ${options.deviceFd}): ${why}`);
      }
    }
    this.fd = options.deviceFd ?? openDevice(options.device);
    this.failClosedFds = [this.fd];
    try {
      const failClosed = options.interest.failClosed;
      this.#ioctl(
        IOC.CONFIG,
        encodeConfig({
          flags: systemWide ? CFG.ALL_PROCESSES | CFG.EXEC_SYNC : 0,
          timeoutMs: options.timeoutMs ?? 0,
          failAction: failClosed ? ACT.DENY : ACT.ALLOW,
          failErrno: failClosed ? E.EPERM : 0,
        }),
        "IDWRAP_IOC_CONFIG",
      );
      this.setInterest(options.interest);
      this.wakeFd = libc.symbols.eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
      if (this.wakeFd < 0) throw new Error(`Cannot create an eventfd: errno ${errno()}`);
    } catch (e) {
      libc.symbols.close(this.fd);
      throw e;
    }
    const v = this.#pollView;
    v.setInt32(POLLFD.fd, this.fd, true);
    v.setInt16(POLLFD.events, POLLIN, true);
    v.setInt32(POLLFD.size + POLLFD.fd, this.wakeFd, true);
    v.setInt16(POLLFD.size + POLLFD.events, POLLIN, true);
  }

  #ioctl(request: number, arg: Uint8Array, what: string): void {
    if (libc.symbols.ioctl(this.fd, request, arg) < 0) throw new Error(`${what} failed: errno ${errno()}`);
  }

  /**
   * Installs the interest as the module's mask (a policy reload too).
   *
   * @throws naming the calls the module cannot decide in this kernel (no traceable entry point), if any
   */
  setInterest(interest: Interest): void {
    const mask = compileInterest(interest);
    if (libc.symbols.ioctl(this.fd, IOC.INTEREST, encodeInterest(mask)) === 0) return;
    const e = errno();
    if (e !== E.EINVAL) throw new Error(`IDWRAP_IOC_INTEREST failed: errno ${e}`);
    // EINVAL: some call cannot wait for a verdict here. Find which, one at a time, and say so.
    const undecidable = [...mask].filter(([nr, bits]) =>
      bits & (INTEREST.PRE_DECIDE | INTEREST.POST_DECIDE) &&
      libc.symbols.ioctl(this.fd, IOC.INTEREST, encodeInterest(new Map([[nr, bits]]))) < 0
    ).map(([nr]) => syscallName(nr));
    throw new Error(
      `the kernel module cannot make ${undecidable.join(", ") || "some call"} wait for a verdict in this kernel ` +
        "(no traceable entry point): use --source seccomp, or drop the rules or wrappers that may deny it",
    );
  }

  /** Watches the launcher's pid (and its future children) as a wrapped tree, before it execs the command. */
  attach(session: number, pid: number): Partial<SupervisorSummary> {
    this.#ioctl(IOC.WATCH, encodeWatch(pid), `IDWRAP_IOC_WATCH(${pid})`);
    this.#queued.push({ pid, ppid: readTaskStatus(pid)?.ppid ?? 0, session });
    return {};
  }

  detach(): void {}

  poll(timeoutMs: number, handler: SourceHandler): PollResult {
    this.#handler = handler;
    let served = 0;
    for (const q of this.#queued.splice(0)) {
      handler.lifecycle({ kind: "fork", pid: q.pid, ppid: q.ppid, session: q.session });
      served++;
    }
    const v = this.#pollView;
    v.setInt16(POLLFD.revents, 0, true);
    v.setInt16(POLLFD.size + POLLFD.revents, 0, true);
    const n = libc.symbols.poll(this.#pollfds, 2n, served ? 0 : timeoutMs);
    if (n < 0) {
      if (errno() === E.EINTR) return { served, woken: false };
      throw new Error(`poll failed: errno ${errno()}`);
    }
    let woken = false;
    if (v.getInt16(POLLFD.size + POLLFD.revents, true) & POLLIN) {
      libc.symbols.read(this.wakeFd, this.#wakeBuf, 8n);
      woken = true;
    }
    if (v.getInt16(POLLFD.revents, true)) served += this.#drain(handler);
    return { served, woken };
  }

  /**
   * Reads until the stream is empty, or a few buffers' worth (so a busy host still gets to the thread's messages
   * and the store); returns how many records were served.
   */
  #drain(handler: SourceHandler): number {
    let served = 0;
    for (let reads = 0; reads < MAX_READS_PER_WAKE; reads++) {
      const got = Number(libc.symbols.read(this.fd, this.#buf, BigInt(this.#buf.length)));
      if (got < 0) {
        const e = errno();
        if (e === E.EAGAIN || e === E.EINTR) return served;
        throw new Error(`read(/dev/idwrap) failed: errno ${e}`);
      }
      if (got === 0) return served;
      for (let at = 0; at < got;) {
        const rec = parseRecord(this.#buf.subarray(0, got), at);
        at += rec.size;
        this.#rec = rec;
        try {
          this.#serve(rec, handler);
        } catch (e) {
          handler.fault(rec.pid, `internal error while serving a record (failed closed): ${(e as Error).stack ?? e}`);
        }
        // Every waiting record gets exactly one verdict.
        if (rec.flags & EVF.VERDICT && this.#lastWritten !== rec.id) {
          this.#write({ id: rec.id, action: ACT.DENY, err: E.EPERM });
        }
        this.#rec = undefined;
        served++;
      }
    }
    return served;
  }

  #serve(rec: KmodRecord, handler: SourceHandler): void {
    switch (rec.type) {
      case EV.SYSCALL:
        return handler.call(this.#call(rec));
      case EV.FORK:
        if (rec.flags & EVF.THREAD) return; // a thread of a process we may track: nothing new
        return handler.lifecycle({ kind: "fork", pid: rec.pid, ppid: rec.ppid, watched: !!(rec.flags & EVF.WATCHED) });
      case EV.EXEC: {
        const waits = (rec.flags & EVF.VERDICT) !== 0;
        let exe = rec.path ?? "";
        try {
          exe = Deno.readLinkSync(`/proc/${rec.pid}/exe`); // the executable as the kernel sees it now
        } catch { /* gone already: the path as executed */ }
        const argv = splitArgv(rec.data);
        return handler.lifecycle({
          kind: "exec",
          pid: rec.pid,
          ppid: rec.ppid,
          program: {
            exe,
            argv0: argv[0] ?? "",
            uid: rec.uid,
            gid: rec.gid,
            args: boundedArgs(argv),
            argc: argv.length,
            cgroup: readCgroup(rec.pid),
          },
          call: waits ? this.#call(rec) : undefined,
          watched: !!(rec.flags & EVF.WATCHED),
          candidate: !(rec.flags & EVF.WATCHED) && waits,
        });
      }
      case EV.EXIT:
        return handler.lifecycle({ kind: "exit", pid: rec.pid, status: Number(rec.ret) });
      case EV.LOST:
        return handler.lifecycle({ kind: "lost", count: Number(rec.lost) });
      default:
        handler.fault(rec.pid, `unknown record type ${rec.type} (flags 0x${rec.flags.toString(16)})`);
    }
  }

  #call(rec: KmodRecord): SourceCall {
    const abi: SyscallAbi = rec.flags & EVF.COMPAT ? "i386" : rec.flags & EVF.X32 ? "x32" : "x86_64";
    return {
      id: rec.id,
      pid: rec.pid,
      tid: rec.tid,
      ppid: rec.ppid,
      abi,
      nr: abi === "x32" ? rec.nr & ~X32_SYSCALL_BIT : rec.nr,
      args: rec.args,
      phase: rec.flags & EVF.POST ? "post" : "pre",
      waits: (rec.flags & EVF.VERDICT) !== 0,
      time: Number(rec.timeNs / 1_000_000n),
      ret: rec.ret,
      emulated: (rec.flags & EVF.EMULATED) !== 0,
      refusedErrno: rec.flags & EVF.DENIED ? Number(-rec.ret) : undefined,
      tamper: moduleGuardRefusal(rec),
      faulted: (rec.flags & EVF.FAULT) !== 0,
      // The module ran the call on its copy (path) though the caller's memory then said path2 (a sockaddr: refused).
      raced: rec.flags & EVF.RACED ? { said: rec.path2 ?? "", ranOn: rec.path ?? "" } : undefined,
    };
  }

  /**
   * From the module's copies (cheap: no read of the caller); `registers` forgoes the one fallback to the caller's
   * memory (a waiting record without its copy).
   */
  readArgs(call: SourceCall, name: string, needs: ArgNeeds): DecodedArgs {
    const rec = this.#record(call);
    const reader = recordReader(rec, needs === "memory" ? this.#memory : NO_MEMORY);
    const decoded = decodeArgs(name, rec.args, reader);
    if (rec.flags & EVF.FAULT) decoded.fault ??= "a pointer argument";
    return decoded;
  }

  /**
   * Whether a waiting call reaches the supervisor (TamperGuard): the calls of KMOD_GUARDED_SYSCALLS by their
   * registers, and an open by the path it acts on. The module never intercepts our own thread group.
   */
  refusal(call: SourceCall, _name: string, decoded?: DecodedArgs): Refusal | undefined {
    if (decoded) return undefined; // all by registers and copies, asked before anything is read
    const rec = this.#record(call);
    if (rec.nr === NR_OPENAT2) return OPENAT2_REFUSAL;
    if (guardedCall(rec.nr)) {
      return this.#guard.check(rec.nr, rec.args, rec.pid, rec.tid, (a, n) => this.#memory.readBytes(rec.tid, a, n));
    }
    if (!guardedOpen(rec.nr) || rec.path === undefined) return undefined;
    const target = openTarget(rec);
    // A relative name whose start we cannot know: the rules see it as it is; it reaches our /proc only from /proc.
    if (target === undefined) return undefined;
    return this.#guard.checkPath(target, () => opensReadOnly(rec, this.#memory));
  }

  /** The module runs what it was allowed to itself (EVF_EMULATED: on its own copies); nothing to refuse here. */
  settle(_call: SourceCall, _event: SyscallEvent, verdict: Verdict): Settled {
    return { verdict };
  }

  /** The module copied what it passes on, and holds the record until answered. */
  stillValid(): boolean {
    return true;
  }

  answer(call: SourceCall, verdict: Verdict, watch?: WatchChange): void {
    const flags = watch === "watch" ? VF.WATCH : watch === "unwatch" ? VF.UNWATCH : 0;
    switch (verdict.action) {
      case "allow":
        return this.#write({ id: call.id, action: ACT.ALLOW, flags });
      case "deny":
        return this.#write({ id: call.id, action: ACT.DENY, err: verdict.errno });
      case "kill":
        return this.#write({ id: call.id, action: ACT.KILL, flags });
      case "rewrite": {
        // A path alone: the module runs the open on the new path; the registers stay as they are.
        const arg = verdict.arg >= 0 ? verdict.arg : 0;
        const value = verdict.arg >= 0 ? verdict.value : call.args[0];
        return this.#write({ id: call.id, action: ACT.REWRITE, arg, value, path: verdict.path });
      }
    }
  }

  kill(pid: number): void {
    killProcess(pid);
  }

  forget(): void {}

  /** Closes the device: every waiting call gets the fail mode, interception stops. */
  close(): void {
    libc.symbols.close(this.fd);
    libc.symbols.close(this.wakeFd);
  }

  #record(call: SourceCall): KmodRecord {
    const rec = this.#rec;
    if (!rec || rec.id !== call.id) throw new Error(`Record ${call.id} is not the one being served`);
    return rec;
  }

  #write(v: KmodVerdict): void {
    this.#lastWritten = v.id;
    const bytes = encodeVerdict(v);
    const n = Number(libc.symbols.write(this.fd, bytes, BigInt(bytes.length)));
    if (n < 0) {
      const e = errno();
      // ENOENT/ESRCH: the caller is gone (killed, timed out) — not an error.
      if (e !== E.ENOENT && e !== E.ESRCH) {
        this.#handler?.fault(0, `writing the verdict for record ${v.id} failed: errno ${e}`);
      }
    }
  }
}

/** A memory that reads nothing ("not read", not "unreadable"): a record's copies only. */
const NO_MEMORY = {
  readString: () => null,
  readBytes: () => null,
  readStringArray: () => null,
} as unknown as TargetMemory;
