/**
 * The bpf source as a thin transport under the WSS (host/wss/source.ts): the
 * ring's records handed over as calls that never wait and as lifecycle
 * reports, arguments decoded from the programs' copies. Observation only
 * (BPF_CAPABILITIES): an interest that asks to decide a call before it runs is
 * refused with the calls named, and a kill is late, through a pidfd (kill()).
 *
 * @module
 */
import type { CallWindow, DecodedArgs, ProgramIdentity, SyscallEvent, Verdict, WindowFilter } from "../../events.ts";
import { ALWAYS_DENIED_SYSCALLS, resolveSyscalls, syscallName, syscallNumber } from "../../syscalls/mod.ts";
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
import { execArgvProblem, execProgram, readIdentity, recordReader } from "./events.ts";
import { interestFor } from "./interest.ts";
import {
  type BpfRecord,
  copyRecordWith,
  FLAG,
  HEAD,
  type InterestEntry,
  KIND,
  ktimeMs,
  WINDOW_BITS,
} from "./layout.ts";
import { monotonicNs } from "./libbpf.ts";
import { BpfTracer, type BpfTracerOptions } from "./tracer.ts";
import { EXEC_NRS, execKillEntries, type KernelExecRule, type KernelFile } from "./exec_rules.ts";
import { MMAP } from "../../policy/rule_decider.ts";

const text = new TextDecoder();

/**
 * Records taken from the ring per call: decoded records are large JS objects, so taking a full 32 MiB ring at once
 * grew the host by ~1 GB under a flood of observed calls (red team rt8 F7); what is not taken waits in the ring, and
 * what does not fit there is counted and reported by the programs.
 */
const RING_BATCH = 2048;

/** A file's identity as the kernel records it at exec: inode and the superblock's s_dev (kernel dev_t encoding). */
export interface ExecFile {
  ino: bigint;
  kdev: bigint;
}

/** An exec'd file as seq's kernel filter keys it (kmod/bpf/idwrap_bpf.h, struct idw_seqf_file). */
interface SeqfFile extends ExecFile {
  /** The inode's generation. */
  gen: number;
  /** The id of the mount it was exec'd through. */
  mnt: number;
}

/** FNV-1a (32-bit) of bytes: the programs' hash of the exec'd file's last path component (seqf_name_hash). */
function fnv1a(bytes: Uint8Array): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < bytes.length; i++) h = Math.imul(h ^ bytes[i], 0x01000193);
  return h >>> 0;
}

function seqfKey(f: SeqfFile): string {
  return `${f.ino}:${f.kdev}:${f.gen}:${f.mnt}`;
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
  const filter = interest.filter;
  for (const [nr, c] of interest.calls) {
    // An exec decided by a kernel exec rule: the programs kill it at sched_process_exec (only such rules reach here:
    // supervise.ts refuses every other rule and wrapper that decides).
    const decidedInKernel = kernelDecidesExec && EXEC_NRS.has(nr);
    // An exec rule's executable mappings (the loader's way, rule_decider.ts stopsProgram): the programs check every
    // mmap against exec_kill at sys_enter whatever the interest; others are not reported unless something else wants
    // every mmap (then it has no `when`).
    if (kernelDecidesExec && nr === MMAP && c.when) continue;
    if (c.pre === "decide" && !refusedByHost.has(nr) && !decidedInKernel) undecidable.push(syscallName(nr));
    const entry = interestFor(syscallName(nr), { enter: c.pre !== undefined, exit: c.post !== undefined });
    if (filter?.window.has(nr) && entry.enter) {
      entry.window = true;
      // Dropped only with nothing else to report: no exit record wanted, no copy taken for another consumer.
      if (filter.filterable.has(nr) && !entry.exit) entry.filterable = true;
    }
    out.set(nr, entry);
  }
  if (undecidable.length) {
    throw new Error(
      `Cannot serve ${undecidable.join(", ")} on the bpf source: a rule or wrapper may deny or rewrite them before ` +
        "they run, and this source only observes (use seccomp or the kernel module; the hybrid: docs/bpf.md)",
    );
  }
  return out;
}

/** FNV-1a over a window set's bytes: identical sets published by processes of one program share a kernel entry. */
function hashWindows(windows: BigUint64Array): number {
  const words = new Uint32Array(windows.buffer, windows.byteOffset, windows.length * 2);
  let h = 0x811c9dc5;
  for (let i = 0; i < words.length; i++) h = Math.imul(h ^ words[i], 0x01000193);
  return h >>> 0;
}

function equalWindows(a: BigUint64Array, b: BigUint64Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
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
  /**
   * execve enters, by tid, held until the thread's next record: when the exec succeeds that is its exec record, whose
   * argv is the one the kernel read (the new image's, resident), and the call is served with it, so a rule judges the
   * argv that ran: not one a racing thread rewrote after the enter's copy, nor one the programs could not read at the
   * call (a page not resident). Anything else (the exec failed) serves the call as copied at its enter.
   */
  readonly #heldExecs = new Map<number, BpfRecord>();
  #holdsExecs = true;
  #id = 0n;
  /** Records dropped, as the programs reported them in-band. */
  #lost = 0;
  /** Drops reported from the per-CPU totals before a record carried them (reportUncarried): not reported again. */
  #ahead = 0;
  /** The last poll took a full batch (RING_BATCH): the next one does not wait. */
  #full = false;
  /** Polls that read the ring to empty (EventSource.caughtUp): the sweep waits for one after a process is gone. */
  caughtUp = 0;
  #execRules: readonly KernelExecRule[];
  /** exec_kill's entries as last written ("ino:kdev:rule" each), and when the files were last stat'ed. */
  #execKeys = "";
  #execStatAt = 0;
  /** The wrapper whose window filters this source applies (the interest's), if any. */
  #filterWrapper: string | undefined;
  /** Published filters by content (k and a hash of the windows), each with its id in the kernel's known set. */
  readonly #filters = new Map<string, { id: number; k: number; windows: BigUint64Array }[]>();
  #nextFilter = 1;
  /** pid → execs the source has reported since it was first watched: the kernel's generation of its window. */
  readonly #execs = new Map<number, number>();
  /** pid → calls the kernel dropped (their window known) not yet handed over with a call. */
  readonly #skipped = new Map<number, number>();
  /** pid → the file its program was exec'd from, as its exec record gave it (a fork: its parent's). */
  readonly #running = new Map<number, SeqfFile>();
  /** Programs whose processes the kernel arms at exec: path → "ino:kdev:gen:mnt", and back. */
  readonly #programs = new Map<string, string>();
  readonly #programFiles = new Map<string, string>();
  /** Calls the kernel dropped, in all (reported by IDW_SKIPPED records). */
  #skippedTotal = 0;

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
    this.#filterWrapper = options.interest.filter?.wrapper;
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
    const transport = new BpfTransport(
      { ...options, interest: { calls: new Map(), failClosed: false } },
      new Map(entries),
    );
    // The hybrid serves each ring call before its seccomp ones and re-reads what the ring could not copy: none held.
    transport.#holdsExecs = false;
    return transport;
  }

  setInterest(interest: Interest): void {
    this.#tracer.setInterest(compileInterest(interest, this.#execRules.length > 0));
    this.#filterWrapper = interest.filter?.wrapper;
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

  /**
   * Applies a published window filter to its process: the kernel then drops the process's filterable calls whose
   * window is known. Identical sets (processes of one program) share one entry in the kernel's set. Only the
   * interest's filtering wrapper is heard; a set that does not fit is not applied (every call keeps being reported).
   */
  publishFilter(filter: WindowFilter): void {
    if (filter.wrapper !== this.#filterWrapper) return;
    // An empty set, or one that does not fit: nothing is known, every call is reported.
    const id = filter.windows.length ? this.#filterId(filter) : undefined;
    if (id === undefined) return this.#tracer.disarm(filter.pid);
    const mask = (1n << BigInt(WINDOW_BITS * filter.k)) - 1n;
    this.#tracer.arm(filter.pid, id, this.#execs.get(filter.pid) ?? 0, mask);
    this.#armProgram(filter.exe, filter.pid, id, mask);
  }

  /**
   * Lets the kernel arm the processes that exec `exe` (and their forks) with the filter itself, at their exec: no
   * round trip to the host before their known calls are dropped. The kernel knows the file, the wrapper the path, so
   * the key is the file exactly as the publishing process ran it (its exec record: inode, device, the inode's
   * generation, the mount) and only while `exe` names it with one link: a hard link made later is never armed by the
   * kernel (it checks nlink at exec), nor an inode number reused for another file (another generation), nor the file
   * through a bind mount (another mount), nor the file renamed or moved to another directory (its name and directory
   * are in the key) — each runs under another path's database (red team rt9 F6). A process that still reaches it by
   * another name (a directory higher on the path renamed, a chroot) is disarmed when its exec record is read
   * (#checkExecArm).
   */
  #armProgram(exe: string, pid: number, id: number, mask: bigint): void {
    const file = this.#running.get(pid);
    if (!exe.startsWith("/") || this.#programs.has(exe) || file === undefined) return;
    let info: Deno.FileInfo;
    try {
      info = Deno.statSync(exe);
    } catch {
      return;
    }
    if (info.nlink !== 1 || !info.isFile || !sameFile(info, file)) return;
    let parent: bigint;
    try {
      parent = BigInt(Deno.statSync(exe.slice(0, exe.lastIndexOf("/")) || "/").ino ?? 0);
    } catch {
      return;
    }
    const key = seqfKey(file);
    const nameHash = fnv1a(new TextEncoder().encode(exe.slice(exe.lastIndexOf("/") + 1)));
    if (this.#tracer.armProgram({ ...file, parent, nameHash }, id, mask)) {
      this.#programs.set(exe, key);
      this.#programFiles.set(key, exe);
    }
  }

  /** A process the kernel armed at its exec by its file, whose program has another name here: disarmed. */
  #checkExecArm(pid: number, file: SeqfFile, exe: string): void {
    const named = this.#programFiles.get(seqfKey(file));
    if (named !== undefined && named !== exe) this.#tracer.disarm(pid);
  }

  /** Calls the kernel dropped because their window was known, since the load. */
  get skipped(): number {
    return this.#skippedTotal;
  }

  /** The kernel's id of a filter's set, adding it to the known set the first time it is seen. */
  #filterId(filter: WindowFilter): number | undefined {
    const key = `${filter.k}:${filter.windows.length}:${hashWindows(filter.windows)}`;
    const same = this.#filters.get(key) ?? [];
    const found = same.find((f) => f.k === filter.k && equalWindows(f.windows, filter.windows));
    if (found) return found.id;
    const id = this.#nextFilter++;
    const added = this.#tracer.addKnown(id, filter.windows);
    if (added < filter.windows.length) {
      this.#tracer.removeKnown(id, filter.windows.subarray(0, added));
      return undefined;
    }
    same.push({ id, k: filter.k, windows: filter.windows });
    this.#filters.set(key, same);
    return id;
  }

  /** Replaces the interest map with one compiled elsewhere. */
  setRing(entries: ReadonlyMap<number, InterestEntry>): void {
    this.#tracer.setInterest(entries);
  }

  attach(session: number, pid: number): Record<string, never> {
    this.#tracer.watch(pid, session);
    this.#execs.set(pid, 0);
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
    // A full batch last time: more is waiting, and records submitted without a wake-up would not end the wait.
    const records = this.#tracer.poll(served || this.#full ? 0 : timeoutMs, RING_BATCH);
    this.#full = records.length >= RING_BATCH;
    // Fewer than asked: libbpf stopped at the producer (or at a record still being written, which no exited process
    // can own), so every record of a process already gone from /proc is handed over below.
    if (!this.#full) this.caughtUp++;
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
    // Every record made before now (the hybrid needs them before a notified call), a bounded batch at a time: a tree
    // that refills the ring as fast as it is read must not keep the caller here, nor grow the host (rt8 F7, F8).
    const until = Number(monotonicNs()) / 1e6; // ms on the records' clock (bpf_ktime_get_ns)
    let budget = Math.ceil(this.#tracer.ringBytes / (HEAD.size + 8));
    while (budget > 0) {
      const batch = this.#tracer.drain(Math.min(RING_BATCH, budget));
      let past = false;
      for (const rec of batch) {
        served += this.#hand(rec, handler);
        past ||= ktimeMs(rec) > until;
      }
      budget -= batch.length;
      if (batch.length < RING_BATCH) this.caughtUp++;
      if (past || batch.length < RING_BATCH) break;
    }
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
    return this.#lost + this.#ahead;
  }

  /** Records the programs dropped since the load (the per-CPU totals), reported or not. */
  droppedInKernel(): number {
    return this.#tracer.lostTotal();
  }

  /** Drops the per-CPU totals count beyond those records carried or reported ahead: reported now. */
  reportUncarried(handler: SourceHandler): void {
    const unreported = this.#tracer.lostTotal() - this.#lost - this.#ahead;
    if (unreported <= 0) return;
    this.#ahead += unreported;
    handler.lifecycle({ kind: "lost", count: unreported });
  }

  /** Reports drops no record carried (the per-CPU totals against the in-band counts), then detaches everything. */
  close(handler?: SourceHandler): void {
    if (handler) this.reportUncarried(handler);
    this.#tracer.close();
    libc.symbols.close(this.wakeFd);
  }

  /** An exec whose kill rule (the last matched: the decider stops at it) the programs decide at sched_process_exec. */
  killedInKernel(event: SyscallEvent): boolean {
    const rule = event.alerts?.at(-1);
    return EXEC_NRS.has(event.nr) && rule !== undefined && this.#kernelRuleIds().has(rule);
  }

  #kernelRuleIds(): Set<string> {
    if (this.#ruleIdsOf !== this.#execRules) {
      this.#ruleIdsOf = this.#execRules;
      this.#ruleIds = new Set(this.#execRules.map((r) => r.id));
    }
    return this.#ruleIds;
  }
  #ruleIdsOf?: readonly KernelExecRule[];
  #ruleIds = new Set<string>();

  /** What the WSS reports of an executable mapping the programs killed (the loader's way to run the program). */
  #killedAtMmap(index: number): { rule: string; reason: string } {
    const rule = this.#execRules[index];
    return {
      rule: rule?.id ?? `(exec rule ${index}, since reloaded)`,
      reason: "kill: killed in the kernel at the executable mapping of the program's file (by identity), before " +
        "any of it ran",
    };
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

  /** A windowed enter record's window, with the calls the kernel dropped before it (taken). */
  #window(rec: BpfRecord): CallWindow {
    const skipped = this.#skipped.get(rec.tgid) ?? 0;
    if (skipped) this.#skipped.delete(rec.tgid);
    return { recent: BigInt.asUintN(64, rec.ret).toString(), skipped };
  }

  /**
   * Serves a held execve enter before `rec` if `rec` is its thread's next record: with the argv of its exec record
   * (the exec succeeded: that argv is what the kernel read), else as it was held (its enter's copy; a fault reported).
   */
  #releaseExec(rec: BpfRecord, handler: SourceHandler): number {
    const tid = rec.kind === KIND.EXEC ? Number(rec.ret) : rec.kind === KIND.GONE ? undefined : rec.tid;
    const releases = tid === undefined
      ? [...this.#heldExecs.entries()].filter(([, h]) => h.tgid === rec.tgid).map(([t]) => t)
      : this.#heldExecs.has(tid)
      ? [tid]
      : [];
    let served = 0;
    for (const t of releases) {
      const held = this.#heldExecs.get(t)!;
      this.#heldExecs.delete(t);
      served += this.#serveCall(rec.kind === KIND.EXEC ? withExecCopies(held, rec) : held, handler);
    }
    return served;
  }

  /** Hands a call's record to the WSS (one report). */
  #serveCall(rec: BpfRecord, handler: SourceHandler, time = Math.floor(ktimeMs(rec) + this.#offsetMs)): number {
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
      ...(rec.flags & FLAG.WINDOW ? { window: this.#window(rec) } : {}),
      // An executable mapping of a file an exec rule names: killed at its sys_enter (the rule's index in ret).
      ...(pre && rec.flags & FLAG.EXEC_KILLED ? { killedInKernel: this.#killedAtMmap(Number(rec.ret)) } : {}),
    };
    const argvProblem = pre && !(rec.flags & FLAG.COMPAT) && EXEC_NRS.has(rec.nr) ? execArgvProblem(rec) : undefined;
    if (argvProblem) handler.fault(rec.tgid, argvProblem);
    handler.call(call);
    this.#rec = undefined;
    return 1;
  }

  /** Hands one record to the WSS; returns how many reports it made. */
  #hand(rec: BpfRecord, handler: SourceHandler): number {
    let served = 0;
    if (rec.lost) {
      this.#lost += rec.lost;
      const carried = Math.min(rec.lost, this.#ahead);
      this.#ahead -= carried;
      if (rec.lost > carried) {
        handler.lifecycle({ kind: "lost", count: rec.lost - carried });
        served++;
      }
    }
    if (this.#heldExecs.size) served += this.#releaseExec(rec, handler);
    const time = Math.floor(ktimeMs(rec) + this.#offsetMs);
    switch (rec.kind) {
      case KIND.ENTER:
      case KIND.EXIT: {
        if (
          this.#holdsExecs && rec.kind === KIND.ENTER && rec.flags & FLAG.COPIES && !(rec.flags & FLAG.COMPAT) &&
          EXEC_NRS.has(rec.nr)
        ) {
          this.#heldExecs.set(rec.tid, copyRecordWith(rec, rec.flags, rec.data));
          return served;
        }
        return served + this.#serveCall(rec, handler, time);
      }
      case KIND.SKIPPED:
        this.#skipped.set(rec.tgid, (this.#skipped.get(rec.tgid) ?? 0) + Number(rec.ret));
        this.#skippedTotal += Number(rec.ret);
        return served;
      case KIND.FORK: {
        this.#execs.set(Number(rec.ret), 0);
        const running = this.#running.get(rec.tgid);
        if (running) this.#running.set(Number(rec.ret), running);
        if (rec.flags & FLAG.UNFOLLOWED) {
          handler.fault(Number(rec.ret), `process ${rec.ret} (a child of ${rec.tgid}) is not watched: the set is full`);
        }
        handler.lifecycle({ kind: "fork", pid: Number(rec.ret), ppid: rec.tgid, watched: true });
        return served + 1;
      }
      case KIND.EXEC: {
        this.#execs.set(rec.tgid, (this.#execs.get(rec.tgid) ?? 0) + 1);
        this.#skipped.delete(rec.tgid); // the kernel starts the new program's window afresh
        const file = { ino: rec.args[0], kdev: rec.args[1], gen: Number(rec.args[3]), mnt: Number(rec.args[4]) };
        this.#running.set(rec.tgid, file);
        const exe = resolvedExe(rec.tgid, rec.path ? text.decode(rec.path) : "", file);
        if (this.#programFiles.size) this.#checkExecArm(rec.tgid, file, exe);
        const program: ProgramIdentity = execProgram(rec, exe);
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
        this.#execs.delete(rec.tgid);
        this.#running.delete(rec.tgid);
        this.#skipped.delete(rec.tgid);
        handler.lifecycle({ kind: "exit", pid: rec.tgid, status: Number(rec.ret) });
        return served + 1;
      default:
        handler.fault(rec.tgid, `unknown bpf record kind ${rec.kind} (flags 0x${rec.flags.toString(16)})`);
        return served + 1;
    }
  }
}

const EXECVE = syscallNumber("execve")!;

/**
 * A held execve enter with what its exec record copied where that was read: the argv (the new image's, which the kernel
 * copied from the caller) and, for execve, the name where the enter could not read it (bprm->filename, the caller's
 * string as the kernel read it; execveat's is built from the fd and is not the caller's).
 */
function withExecCopies(enter: BpfRecord, exec: BpfRecord): BpfRecord {
  let flags = enter.flags;
  let data = enter.data;
  let path = enter.path;
  if (!(exec.flags & FLAG.DATA_FAULT)) {
    flags = (flags & ~(FLAG.DATA_FAULT | FLAG.DATA_TRUNC)) | (exec.flags & FLAG.DATA_TRUNC);
    data = exec.data;
  }
  if (enter.flags & FLAG.PATH_FAULT && enter.nr === EXECVE && !(exec.flags & FLAG.PATH_FAULT)) {
    flags &= ~FLAG.PATH_FAULT;
    path = exec.path;
  }
  return copyRecordWith(enter, flags, data, path);
}
