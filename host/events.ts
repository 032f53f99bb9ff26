/**
 * The event and verdict format every event source produces and enforces
 * (DESIGN.md, "Events"). Sources differ in how they fill it, not in shape.
 *
 * @module
 */

/** Which source produced an event. */
export type SourceName = "seccomp" | "kmod" | "bpf" | "hybrid";

/** The ABI a call came through; only x86_64 calls ever run. */
export type SyscallAbi = "x86_64" | "i386" | "x32";

/** Decoded arguments, present where the call has them. */
export interface DecodedArgs {
  dirfd?: number | "AT_FDCWD";
  /**
   * The first path argument. Where the source resolves paths (seccomp: docs/seccomp.md, "Paths"), the canonical
   * path of the object the kernel acts on, in the caller's root (symbolic links, `.`, `..`, `/proc/self/…` and
   * `/dev/fd/N` resolved); else, and when it cannot be resolved, the string as the program passed it.
   */
  path?: string;
  /** Second path (rename, link; symlink's link name), resolved as `path`. */
  path2?: string;
  /** The first path as the program passed it, where `path` was resolved. */
  rawPath?: string;
  /** The second path as the program passed it, where `path2` was resolved. */
  rawPath2?: string;
  /** "dev:ino" of the object `path` names, where it exists (a created name: absent). */
  ident?: string;
  /** "dev:ino" of the object `path2` names, where it exists. */
  ident2?: string;
  flags?: string;
  mode?: string;
  argv?: string[];
  addr?: string;
  cloneFlags?: string;
  signal?: number;
  /** Set when a pointer argument could not be read. */
  fault?: string;
  /** write/pwrite64: the bytes the call writes (at most 64 KiB; not in JSON output). */
  data?: Uint8Array;
}

/** The identity of a wrapped process's program, refreshed at every execve. */
export interface ProgramIdentity {
  exe: string;
  argv0: string;
  uid: number;
  gid: number;
  /** The argument vector at exec, bounded (host/wss/procfs.ts, `boundedArgs`), where the source read it. */
  args?: string[];
  /** How many arguments the exec really had (`args` may hold fewer). */
  argc?: number;
  /** The process's cgroup (v2 path, or the v1 hierarchy naming a container), where the source read it. */
  cgroup?: string;
}

/** One system call, before (`pre`) or after (`post`) the kernel runs it. */
export interface SyscallEvent {
  kind: "syscall";
  source: SourceName;
  phase: "pre" | "post";
  /** Wall-clock time, milliseconds since the Unix epoch. */
  time: number;
  pid: number;
  tid: number;
  abi: SyscallAbi;
  nr: number;
  syscall: string;
  /** The six raw argument registers, as unsigned decimal strings. */
  args: string[];
  decoded: DecodedArgs;
  program: ProgramIdentity;
  /** post only: the return value, or -1 with errno. */
  ret?: number;
  errno?: string;
  /** The supervisor runs (pre) or ran (post) the call itself: open via ADDFD. */
  emulated?: boolean;
  /** pre only: what was decided, as "allow", "deny EACCES" or "kill". */
  verdict?: string;
  /** Why the host itself decided (foreign ABI, io_uring), where it did. */
  reason?: string;
  /** Ids of the rules that matched. */
  alerts?: string[];
  /** post only: the ids of `when: success` rules this result fired (also in `alerts`; the pre event's are not). */
  onSuccess?: string[];
  /** MITRE ATT&CK technique ids of the rules that matched. */
  attack?: string[];
  /** Tags of the rules that matched. */
  tags?: string[];
  /** pre, where the source keeps a filter's window (bpf): the kernel's window and the calls it dropped before this. */
  window?: CallWindow;
}

/**
 * What a source that filters in the kernel says of a call (ABI 1.4, event_window): the process's window after it
 * (its last six filter-window calls, 10 bits each, the number + 1, the newest lowest) and how many calls the kernel
 * dropped since the previous reported call because their window was known.
 */
export interface CallWindow {
  /** The window as an unsigned decimal string (JSON-safe: events reach the audit sink). */
  recent: string;
  skipped: number;
}

/** A set of known k-call windows a wrapper instance published for its process (ABI 1.4, filter_windows). */
export interface WindowFilter {
  pid: number;
  /** The program the instance judges (its process's executable when it published). */
  exe: string;
  /** The wrapper's name (its policy entry). */
  wrapper: string;
  /** Calls per window, 1..6. */
  k: number;
  /** The windows, packed as in {@linkcode CallWindow}, masked to k calls. */
  windows: BigUint64Array;
}

/** Process lifecycle, reported for every process of the wrapped tree. */
export interface LifecycleEvent {
  kind: "spawn" | "exec" | "exit";
  source: SourceName;
  time: number;
  pid: number;
  /** spawn: the parent. */
  ppid?: number;
  /** spawn: the session (wrapped tree) the process belongs to. */
  session?: number;
  program: ProgramIdentity;
  /** exit: wait status decoded, where known. */
  exitCode?: number;
  signal?: string;
  /** exec: ids of `when: success` rules on the exec call that ran (also in `onSuccess`). */
  alerts?: string[];
  onSuccess?: string[];
  attack?: string[];
  tags?: string[];
}

/** What a wrapper said about a process, or what went wrong with a wrapper. */
export interface WrapperReport {
  /** alert: `alert()`; audit: `wr_audit*()`; fault: the wrapper failed (trap, budget, bad verdict); log: `log()`. */
  kind: "alert" | "audit" | "fault" | "log";
  source: SourceName;
  time: number;
  pid: number;
  wrapper: string;
  /** alert: 0 info … 4 critical; log: 0 debug … 3 error. */
  severity?: number;
  message: string;
  program: ProgramIdentity;
  /** The call being handled, where there was one. */
  syscall?: string;
}

/** Anything a source reports. */
export type HostEvent = SyscallEvent | LifecycleEvent | WrapperReport;

/** What happens to a call. */
export type Verdict =
  | { action: "allow" }
  | { action: "deny"; errno: number }
  | { action: "kill" }
  /**
   * kmod only: run the call with argument `arg` (0–5) set to `value` (`arg` -1: no integer argument changes), and,
   * where `path` is given, with that path instead of the caller's (the open family, which the module runs itself).
   */
  | { action: "rewrite"; arg: number; value: bigint; path?: string };

/** JSON.stringify replacer for events: the bytes of a write stay out of JSON (they are for wrappers). */
export function eventJsonReplacer(_key: string, value: unknown): unknown {
  return value instanceof Uint8Array ? undefined : value;
}

/** The verdict that lets a call run. */
export const ALLOW: Verdict = Object.freeze({ action: "allow" });
