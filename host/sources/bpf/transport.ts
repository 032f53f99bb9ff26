/**
 * The bpf source as a thin transport under the WSS (host/wss/source.ts): the
 * ring's records handed over as calls that never wait and as lifecycle
 * reports, arguments decoded from the programs' copies. Observation only
 * (BPF_CAPABILITIES): an interest that asks to decide a call before it runs is
 * refused with the calls named, and a kill is late, through a pidfd (kill()).
 *
 * @module
 */
import type { DecodedArgs, ProgramIdentity, SyscallEvent, Verdict } from "../../events.ts";
import { ALWAYS_DENIED_SYSCALLS, resolveSyscalls, syscallName } from "../../syscalls/mod.ts";
import { EFD_CLOEXEC, EFD_NONBLOCK, EPOLL_CTL_ADD, EPOLL_EVENT, EPOLLIN } from "../../unsafe/layouts.ts";
import { errno, killProcess, libc } from "../../unsafe/libc.ts";
import { decodeArgs } from "../../wss/decode.ts";
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
} from "../../wss/source.ts";
import { readTaskStatus } from "../../wss/procfs.ts";
import { BPF_CAPABILITIES } from "../capabilities.ts";
import { readIdentity, recordReader } from "./events.ts";
import { interestFor } from "./interest.ts";
import { type BpfRecord, FLAG, type InterestEntry, KIND, ktimeMs } from "./layout.ts";
import { monotonicNs } from "./libbpf.ts";
import { BpfTracer, type BpfTracerOptions } from "./tracer.ts";
import { EXEC_NRS, execKillEntries, type KernelExecRule, type KernelFile } from "./exec_rules.ts";

const text = new TextDecoder();

/** A file's identity as the kernel records it at exec: inode and the superblock's s_dev (kernel dev_t encoding). */
export interface ExecFile {
  ino: bigint;
  kdev: bigint;
}

/** Whether a stat (userspace st_dev encoding) is the exec'd file (kernel: major << 20 | minor). */
function sameFile(info: Deno.FileInfo, file: ExecFile): boolean {
  if (info.ino === null || info.dev === null || BigInt(info.ino) !== file.ino) return false;
  const dev = BigInt(info.dev);
  const major = ((dev >> 8n) & 0xfffn) | ((dev >> 32n) & ~0xfffn);
  const minor = (dev & 0xffn) | ((dev >> 12n) & ~0xffn);
  return major === file.kdev >> 20n && minor === (file.kdev & 0xfffffn);
}

/**
 * The file an exec record names, as the other sources name a program: /proc/PID/exe (/usr/bin/dash for "/bin/sh"), so
 * rules and wrappers that match programs see the same name on every source. Never a path taken on trust in idwrap's
 * own root: a chrooted caller's "/usr/sbin/usermod" is its jail's copy, not ours (a spoof, docs/bpf.md). The record
 * carries the file's identity (`file`): /proc/PID/exe is used when it is still that file (the caller has not exec'd
 * again), else the record's path resolved here when it is that file; else the path as given, marked " (unverified)" so
 * that no rule naming a program by path or name matches it (a process gone, or exec'd again, before the record is read).
 */
export function resolvedExe(pid: number, filename: string, file?: ExecFile): string {
  const verified = (path: string) => {
    try {
      return file === undefined || sameFile(Deno.statSync(path), file);
    } catch {
      return false;
    }
  };
  try {
    const exe = Deno.readLinkSync(`/proc/${pid}/exe`);
    if (verified(`/proc/${pid}/exe`)) return exe;
  } catch { /* gone */ }
  if (file !== undefined && filename.startsWith("/")) {
    try {
      const resolved = Deno.realPathSync(filename);
      if (verified(resolved)) return resolved;
    } catch { /* not here */ }
  }
  return `${filename} (unverified)`;
}

/** How the transport loads. */
export interface BpfTransportOptions extends BpfTracerOptions {
  interest: Interest;
  /** Exec rules the programs enforce at sched_process_exec (./exec_rules.ts); their calls may be decided. */
  execRules?: readonly KernelExecRule[];
}

/** How often the files of kernel exec rules are stat'ed again (a file replaced or created since is the new one). */
const EXEC_RESTAT_MS = 1000;

/**
 * The interest map of a WSS interest: every call it names, in the phases it names, with the copies its argument
 * kinds call for.
 *
 * @throws naming the calls a rule or wrapper may deny, kill or rewrite before they run: this source cannot hold a call
 */
export function compileInterest(interest: Interest, kernelDecidesExec = false): Map<number, InterestEntry> {
  // The host's own refusals (io_uring) come with every interest; here they are reported, not refused (docs/bpf.md).
  const refusedByHost = resolveSyscalls(ALWAYS_DENIED_SYSCALLS);
  const undecidable: string[] = [];
  const out = new Map<number, InterestEntry>();
  for (const [nr, c] of interest.calls) {
    // An exec decided by a kernel exec rule: the programs kill it at sched_process_exec (only such rules reach here:
    // supervise.ts refuses every other rule and wrapper that decides).
    const decidedInKernel = kernelDecidesExec && EXEC_NRS.has(nr);
    if (c.pre === "decide" && !refusedByHost.has(nr) && !decidedInKernel) undecidable.push(syscallName(nr));
    out.set(nr, interestFor(syscallName(nr), { enter: c.pre !== undefined, exit: c.post !== undefined }));
  }
  if (undecidable.length) {
    throw new Error(
      `Cannot serve ${undecidable.join(", ")} on the bpf source: a rule or wrapper may deny or rewrite them before ` +
        "they run, and this source only observes (use seccomp or the kernel module; the hybrid: docs/bpf.md)",
    );
  }
  return out;
}

/** The bpf programs as an EventSource. */
export class BpfTransport implements EventSource {
  readonly capabilities: SourceCapabilities = BPF_CAPABILITIES;
  readonly wakeFd: number;
  /** Nothing waits on this source, so nothing fails closed when the thread dies. */
  readonly failClosedFds: readonly number[] = [];
  readonly closesSessions = false;
  readonly #tracer: BpfTracer;
  readonly #queued: { pid: number; ppid: number; session: number; program: ProgramIdentity }[] = [];
  readonly #wakeBuf = new Uint8Array(8);
  /** Wall clock minus CLOCK_MONOTONIC (ms): a record's ktime (ms) + this is its wall time. */
  readonly #offsetMs = Date.now() - Number(monotonicNs()) / 1e6;
  /** The record being served (the WSS reads its arguments while the handler runs). */
  #rec: BpfRecord | undefined;
  #id = 0n;
  /** Records dropped, as the programs reported them in-band. */
  #lost = 0;
  #execRules: readonly KernelExecRule[];
  /** exec_kill's entries as last written ("ino:kdev:rule" each), and when the files were last stat'ed. */
  #execKeys = "";
  #execStatAt = 0;

  /**
   * @param entries the interest map as compiled already (the hybrid's observed part); default: compiled from
   *   `options.interest`, refusing calls to decide
   */
  constructor(
    options: BpfTransportOptions,
    entries = compileInterest(options.interest, (options.execRules?.length ?? 0) > 0),
  ) {
    this.#tracer = BpfTracer.load(options);
    this.#execRules = options.execRules ?? [];
    try {
      this.#tracer.setInterest(entries);
      this.#refreshExecKills(true);
      this.wakeFd = libc.symbols.eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
      if (this.wakeFd < 0) throw new Error(`Cannot create an eventfd: errno ${errno()}`);
      // The wake fd joins the ring's epoll set with data 0 (ring 0): ring_buffer__poll returns when it fires and
      // only looks at the ring again, which is harmless.
      const ev = new Uint8Array(EPOLL_EVENT.size);
      new DataView(ev.buffer).setUint32(EPOLL_EVENT.events, EPOLLIN, true);
      if (libc.symbols.epoll_ctl(this.#tracer.epollFd, EPOLL_CTL_ADD, this.wakeFd, ev) < 0) {
        throw new Error(`Cannot add the wake fd to the ring's epoll set: errno ${errno()}`);
      }
    } catch (e) {
      this.#tracer.close();
      throw e;
    }
  }

  /** The transport with an interest map compiled elsewhere (host/sources/hybrid/hybrid.ts: the observed calls). */
  static observing(entries: ReadonlyMap<number, InterestEntry>, options: BpfTracerOptions): BpfTransport {
    return new BpfTransport({ ...options, interest: { calls: new Map(), failClosed: false } }, new Map(entries));
  }

  setInterest(interest: Interest): void {
    this.#tracer.setInterest(compileInterest(interest, this.#execRules.length > 0));
  }

  /** Replaces the exec rules the programs enforce (a policy reload); their files are stat'ed now. */
  setExecRules(rules: readonly KernelExecRule[]): void {
    this.#execRules = rules;
    this.#refreshExecKills(true);
  }

  /**
   * Writes exec_kill from the rules' files as they are now (stat'ed again at most once a second unless `now`): a file
   * replaced since (a new inode) or created since is the one killed, as the rule decider's identity match does.
   */
  #refreshExecKills(now = false): void {
    const t = performance.now();
    if (!now && (this.#execRules.length === 0 || t - this.#execStatAt < EXEC_RESTAT_MS)) return;
    this.#execStatAt = t;
    const { entries } = execKillEntries(this.#execRules);
    const keys = entries.map((e) => `${e.file.ino}:${e.file.kdev}:${e.rule}`).sort().join(",");
    if (keys === this.#execKeys) return;
    this.#tracer.setExecKills(entries);
    this.#execKeys = keys;
  }

  /** Replaces the interest map with one compiled elsewhere. */
  setRing(entries: ReadonlyMap<number, InterestEntry>): void {
    this.#tracer.setInterest(entries);
  }

  attach(session: number, pid: number): Record<string, never> {
    this.#tracer.watch(pid, session);
    // Read now, while the launcher waits for "go": by the next poll it may have exec'd the command, or failed and gone.
    this.#queued.push({ pid, ppid: readTaskStatus(pid)?.ppid ?? 0, session, program: readIdentity(pid) });
    return {};
  }

  detach(): void {}

  poll(timeoutMs: number, handler: SourceHandler): PollResult {
    let served = 0;
    for (const q of this.#queued.splice(0)) {
      handler.lifecycle({ kind: "fork", pid: q.pid, ppid: q.ppid, session: q.session, program: q.program });
      served++;
    }
    this.#refreshExecKills();
    const records = this.#tracer.poll(served ? 0 : timeoutMs);
    const woken = libc.symbols.read(this.wakeFd, this.#wakeBuf, 8n) === 8n;
    for (const rec of records) served += this.#hand(rec, handler);
    return { served, woken };
  }

  /** Hands over what is in the ring now (and the queued attaches), without waiting; returns how many reports. */
  drain(handler: SourceHandler): number {
    let served = 0;
    for (const q of this.#queued.splice(0)) {
      handler.lifecycle({ kind: "fork", pid: q.pid, ppid: q.ppid, session: q.session, program: q.program });
      served++;
    }
    for (const rec of this.#tracer.drain()) served += this.#hand(rec, handler);
    return served;
  }

  readArgs(call: SourceCall, name: string, needs: ArgNeeds): DecodedArgs {
    const rec = this.#rec;
    if (!rec || call.id !== this.#id) throw new Error(`bpf: call ${call.id} is not the one being served`);
    if (needs === "registers") return {};
    return decodeArgs(name, rec.args, recordReader(rec));
  }

  /** Nothing waits here, so nothing reaches the supervisor through this source's calls. */
  refusal(): Refusal | undefined {
    return undefined;
  }

  /** Only waiting calls are settled, and none waits here. */
  settle(_call: SourceCall, _event: SyscallEvent, verdict: Verdict): Settled {
    return { verdict };
  }

  /** The arguments are the programs' copies, taken at the call: nothing is read from the caller later. */
  stillValid(): boolean {
    return true;
  }

  answer(call: SourceCall): void {
    throw new Error(`bpf: call ${call.id} (${syscallName(call.nr)}) does not wait: there is nothing to answer`);
  }

  kill(pid: number): void {
    killProcess(pid);
  }

  forget(): void {}

  /** Records dropped because the ring was full, as reported so far. */
  get lost(): number {
    return this.#lost;
  }

  /** Reports drops no record carried (the per-CPU totals against the in-band counts), then detaches everything. */
  close(handler?: SourceHandler): void {
    const unreported = this.#tracer.lostTotal() - this.#lost;
    if (unreported > 0 && handler) handler.lifecycle({ kind: "lost", count: unreported });
    this.#tracer.close();
    libc.symbols.close(this.wakeFd);
  }

  /** What the WSS reports of an exec the programs killed: the rule, and what was done. */
  #killedBy(index: number, file: KernelFile): { rule: string; reason: string } {
    const rule = this.#execRules[index];
    const what = rule?.action === "deny"
      ? "deny (the bpf source can only kill an exec: no call is left to fail)"
      : "kill";
    return {
      rule: rule?.id ?? `(exec rule ${index}, since reloaded)`,
      reason: `${what}: killed in the kernel at sched_process_exec, before the new image ran (file ${file.ino} on ` +
        `device ${file.kdev >> 20n}:${file.kdev & 0xfffffn}, by identity)`,
    };
  }

  /** Hands one record to the WSS; returns how many reports it made. */
  #hand(rec: BpfRecord, handler: SourceHandler): number {
    let served = 0;
    if (rec.lost) {
      this.#lost += rec.lost;
      handler.lifecycle({ kind: "lost", count: rec.lost });
      served++;
    }
    const time = Math.floor(ktimeMs(rec) + this.#offsetMs);
    switch (rec.kind) {
      case KIND.ENTER:
      case KIND.EXIT: {
        this.#rec = rec;
        this.#id++;
        const pre = rec.kind === KIND.ENTER;
        const call: SourceCall = {
          id: this.#id,
          pid: rec.tgid,
          tid: rec.tid,
          abi: rec.flags & FLAG.COMPAT ? "i386" : "x86_64",
          nr: rec.nr,
          args: rec.args,
          phase: pre ? "pre" : "post",
          waits: false,
          time,
          ...(pre ? {} : { ret: rec.ret }),
          faulted: (rec.flags & (FLAG.PATH_FAULT | FLAG.PATH2_FAULT | FLAG.DATA_FAULT)) !== 0,
        };
        handler.call(call);
        this.#rec = undefined;
        return served + 1;
      }
      case KIND.FORK:
        if (rec.flags & FLAG.UNFOLLOWED) {
          handler.fault(Number(rec.ret), `process ${rec.ret} (a child of ${rec.tgid}) is not watched: the set is full`);
        }
        handler.lifecycle({ kind: "fork", pid: Number(rec.ret), ppid: rec.tgid, watched: true });
        return served + 1;
      case KIND.EXEC: {
        const file = { ino: rec.args[0], kdev: rec.args[1] };
        const exe = resolvedExe(rec.tgid, rec.path ? text.decode(rec.path) : "", file);
        const argv0 = rec.data ? text.decode(rec.data).split("\0")[0] : exe;
        const program: ProgramIdentity = { exe, argv0, uid: rec.uid, gid: rec.gid };
        const killedInKernel = rec.flags & FLAG.EXEC_KILLED ? this.#killedBy(Number(rec.args[2]), file) : undefined;
        handler.lifecycle({
          kind: "exec",
          pid: rec.tgid,
          program,
          watched: true,
          ...(killedInKernel ? { killedInKernel } : {}),
        });
        return served + 1;
      }
      case KIND.GONE:
        handler.lifecycle({ kind: "exit", pid: rec.tgid, status: Number(rec.ret) });
        return served + 1;
      default:
        handler.fault(rec.tgid, `unknown bpf record kind ${rec.kind} (flags 0x${rec.flags.toString(16)})`);
        return served + 1;
    }
  }
}
