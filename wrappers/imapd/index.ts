/**
 * imapd: the paper's Imapd_id (Ko et al., USENIX Security 2000, section 3.1,
 * Figure 3), a specification of imapd's valid operations:
 *
 *  (a) open for reading (post, successful): wr_fstat the new fd; a file that
 *      is neither world-readable, nor owned by the invoker (the real uid,
 *      Event.uid(), the paper's _uid), nor created by this run is a violation;
 *  (b) chmod / fchmodat (pre): wr_stat the path; fchmod (pre): wr_fstat the
 *      fd; a file not created by this run is a violation;
 *  (c) execve / execveat (pre): always a violation, and the call fails with
 *      EACCES (the paper's WR_D_BADPERM).
 *
 * A violation raises a critical alert (severity 4) and emits the abstract
 * event "imapd-warning" (payload: the message) so an abstract wrapper such
 * as Com_id (wrappers/com) can judge it with other detectors' warnings. If
 * the subscribers answer 2 the wrapper kills the process (its calls are all
 * declared with DENY, and a post verdict may kill); otherwise it does what
 * Figure 3 says (nothing more for (a) and (b), EACCES for (c)).
 *
 * "Created by this run" (the paper's created(nodeid)): the instance keeps
 * the nodeids (dev:ino) of the files this process created, in its memory:
 *  - an open with O_CREAT|O_EXCL, or O_TMPFILE, or creat() whose path did
 *    not exist before: a successful O_EXCL/O_TMPFILE open always made a new
 *    file;
 *  - an open with O_CREAT but no O_EXCL: the pre hook wr_stats the path
 *    (as the process sees it, from its cwd) and remembers whether it was
 *    missing; if it was and the open succeeds, the file is new. A path
 *    relative to a dirfd other than AT_FDCWD cannot be stat'ed that way, so
 *    such an open counts as creating only with O_EXCL.
 * The post hook records wr_fstat(fd) of the new file. Instances are per
 * process: a child starts with an empty set (it is another run).
 *
 * Settings: none.
 */
import {
  alert,
  allow,
  declared,
  declareEmit,
  declareSyscall,
  deny,
  DENY,
  EACCES,
  emit,
  errnoName,
  Event,
  kill,
  log,
  LOG_ERROR,
  LOG_WARNING,
  POST,
  PRE,
  SEVERITY_CRITICAL,
  SYS_chmod,
  SYS_creat,
  SYS_execve,
  SYS_execveat,
  SYS_fchmod,
  SYS_fchmodat,
  SYS_open,
  SYS_openat,
  SYS_openat2,
  wrFstat,
  WrStat,
  wrStat,
} from "../sdk/index";

export { idwrap_abi_version } from "../sdk/index";

const EVENT_NAME = "imapd-warning";
// The only emit this module declares: handle 0 in every instance
// (idwrap_declare checks the host agrees).
const HANDLE: i32 = 0;
const ANSWER_KILL: i32 = 2;
const AT_FDCWD: i64 = -100;

const ERR_HANDLE = "imapd: the host numbered the emit handle differently than expected (0)";
const WARN_EMIT = "imapd: emit failed: ";

/** nodeids ("dev:ino") of the files this process created. */
const created = new Set<string>();

// Between an O_CREAT open's pre and post (hooks of one instance never run
// concurrently, and a thread's post follows its pre): did the path exist?
// Keyed by thread id, since threads of the process share the instance.
const missingBefore = new Map<i32, bool>();

export function idwrap_declare(): i32 {
  declareSyscall(SYS_open, PRE | POST | DENY);
  declareSyscall(SYS_openat, PRE | POST | DENY);
  declareSyscall(SYS_openat2, PRE | POST | DENY);
  declareSyscall(SYS_creat, PRE | POST | DENY);
  declareSyscall(SYS_chmod, PRE | DENY);
  declareSyscall(SYS_fchmodat, PRE | DENY);
  declareSyscall(SYS_fchmod, PRE | DENY);
  declareSyscall(SYS_execve, PRE | DENY);
  declareSyscall(SYS_execveat, PRE | DENY);
  const handle = declareEmit(EVENT_NAME);
  if (handle >= 0 && handle != HANDLE) {
    log(LOG_ERROR, ERR_HANDLE);
    return 1;
  }
  return declared();
}

/** The tokens of the decoded open flags ("O_RDONLY|O_CREAT" → has("O_CREAT")). */
class Flags {
  tokens: string[];
  constructor(text: string | null) {
    this.tokens = text === null ? new Array<string>(0) : text.split("|");
  }
  has(name: string): bool {
    return this.tokens.includes(name);
  }
}

function isOpenFamily(nr: i32): bool {
  return nr == SYS_open || nr == SYS_openat || nr == SYS_openat2 || nr == SYS_creat;
}

/** Whether the open's path is resolved from the cwd (open, creat, or dirfd AT_FDCWD, or absolute). */
function pathFromCwd(nr: i32, path: string): bool {
  if (path.startsWith("/")) return true;
  if (nr == SYS_open || nr == SYS_creat) return true;
  return Event.arg(0) == AT_FDCWD;
}

/**
 * Raises a violation: the alert, then the abstract event. Returns true
 * when the subscribers asked for the process to be killed.
 */
function violation(message: string): bool {
  alert(SEVERITY_CRITICAL, message);
  const answer = emit(HANDLE, message);
  if (answer < 0) {
    log(LOG_WARNING, WARN_EMIT + errnoName(answer));
    return false;
  }
  return answer == ANSWER_KILL;
}

function describe(s: WrStat): string {
  return "mode 0" + (s.mode & 0o7777).toString(8) + ", owner uid " + s.uid.toString() + ", nodeid " + s.nodeId();
}

function onOpenPre(nr: i32): i32 {
  const tid = Event.tid();
  if (missingBefore.has(tid)) missingBefore.delete(tid);
  const flags = new Flags(Event.flagsText());
  if (nr != SYS_creat && !flags.has("O_CREAT")) return allow();
  if (flags.has("O_EXCL")) return allow(); // success means a new file
  const path = Event.path();
  if (path === null || !pathFromCwd(nr, path)) return allow();
  missingBefore.set(tid, wrStat(path) === null);
  return allow();
}

function onOpenPost(nr: i32): i32 {
  const tid = Event.tid();
  let wasMissing = false;
  if (missingBefore.has(tid)) {
    wasMissing = missingBefore.get(tid);
    missingBefore.delete(tid);
  }
  const fd = Event.result();
  if (fd < 0) return allow(); // $errno != 0: the open failed
  const s = wrFstat(<i32>fd);
  if (s === null) return allow(); // closed by another thread meanwhile
  const flags = new Flags(Event.flagsText());
  const creating = nr == SYS_creat || flags.has("O_CREAT");
  if (flags.has("O_TMPFILE") || (creating && (flags.has("O_EXCL") || wasMissing))) {
    created.add(s.nodeId());
    return allow();
  }
  // Figure 3, lines 1-7: a successful open for reading.
  if (nr == SYS_creat || flags.has("O_PATH")) return allow();
  if (!flags.has("O_RDONLY") && !flags.has("O_RDWR")) return allow();
  const invoker = <u32>Event.uid();
  if (s.worldReadable() || s.uid == invoker || created.has(s.nodeId())) return allow();
  const path = Event.path();
  const message = "imapd: open-read of " + (path === null ? "fd " + fd.toString() : path) + " (" + describe(s) +
    "): not world-readable, not owned by the invoker (uid " + invoker.toString() + "), not created by this run";
  return violation(message) ? kill() : allow();
}

function onChmod(nr: i32): i32 {
  let s: WrStat | null;
  let what: string;
  if (nr == SYS_fchmod) {
    const fd = <i32>Event.arg(0);
    s = wrFstat(fd);
    what = "fd " + fd.toString();
  } else {
    const path = Event.path();
    if (path === null) return allow();
    // fchmodat relative to a dirfd: wr_stat resolves from the cwd, which is
    // right only for AT_FDCWD or an absolute path.
    if (nr == SYS_fchmodat && !path.startsWith("/") && Event.arg(0) != AT_FDCWD) {
      s = null;
    } else {
      s = wrStat(path);
    }
    what = path;
  }
  const name = Event.syscallName();
  const call = name === null ? "chmod" : name;
  if (s === null) {
    // A file the wrapper cannot stat was not created by this run either
    // (a file it created it could stat), so this is a violation; the call
    // itself will most likely fail.
    return violation("imapd: " + call + " of " + what + ", which this run did not create (cannot stat it)")
      ? kill()
      : allow();
  }
  if (created.has(s.nodeId())) return allow();
  return violation("imapd: " + call + " of " + what + " (" + describe(s) + "), which this run did not create")
    ? kill()
    : allow();
}

function onExec(): i32 {
  const path = Event.path();
  const name = Event.syscallName();
  const message = "imapd: " + (name === null ? "execve" : name) + " of " + (path === null ? "?" : path) +
    ": imapd never executes programs";
  if (violation(message)) return kill();
  return deny(EACCES); // WR_D_BADPERM
}

export function idwrap_on_syscall(): i32 {
  const nr = Event.syscall();
  if (isOpenFamily(nr)) return Event.isPre() ? onOpenPre(nr) : onOpenPost(nr);
  if (nr == SYS_chmod || nr == SYS_fchmodat || nr == SYS_fchmod) return onChmod(nr);
  if (nr == SYS_execve || nr == SYS_execveat) return onExec();
  return allow();
}
