/**
 * seq: the paper's Seq_id, sequence-based intrusion detection after Forrest,
 * Hofmeyr, Somayaji and Longstaff, "A Sense of Self for Unix Processes"
 * (1996). An observer: it allows every call, unless a composer (Com_id)
 * answers its "seq-warning" with 2 (kill), which it then carries out, as the
 * paper's Com_id experiment needs (section 4.1). So it declares MAY_KILL, not
 * DENY: it never refuses a call, and on the kernel-module source its calls
 * are only observed (they never wait for the host); the kill lands at most a
 * call late there.
 *
 * What is compared: the k-length sequences of system call numbers (k =
 * setting "window", 1..6, default 6) of one process, not Forrest's
 * lookahead pairs. A k-sequence database is at least as precise as the
 * pairs built from the same traces (every pair mismatch is a sequence
 * mismatch, not conversely), and it is cheaper here: with k <= 6 and
 * numbers below 1023 a whole sequence packs exactly into one u64 (10 bits
 * per call, the number plus 1 so that a call numbered 0, read, is not
 * confused with "no call yet"), updated per call by a shift and an OR, and
 * looked up with one probe (usually) of an open-addressing hash set: no
 * hashing of k values and no false matches. The first k-1 calls of a
 * process give the shorter sequences that start it (leading zero slots),
 * so the process's start is learned and checked too.
 *
 * Settings:
 * - mode: "record" or "detect" (default detect).
 * - window: k, 1..6 (default 6).
 * - frame: the locality frame, the last `frame` calls, 1..64 (default 20).
 * - threshold: alert when the locality-frame count reaches it (default 3).
 * - program: the database's name (default: the process's executable path,
 *   and after an execve the new one's).
 * - kernel_filter: "false" keeps the database from the source (every call
 *   reaches the hook, as on sources that cannot filter); default "true".
 * - only_trained: "true" makes detect mode inert for a program that has no
 *   database (no sequence stored): its calls are not compared, nothing is
 *   alerted or audited; default "false" (an untrained program mismatches on
 *   every call and is alerted at once).
 *
 * The measure (Hofmeyr, Forrest and Somayaji 1998, "locality frame
 * count"): a call is a mismatch when the sequence it completes is not in
 * the database; the LFC is the number of mismatches among the last `frame`
 * calls. When the LFC rises to `threshold` (from below), the wrapper raises
 * an alert (severity 3, high) naming the LFC and emits the abstract event
 * "seq-warning" with the LFC as payload (decimal text), for a composer
 * (Com_id) to weigh. While the LFC stays at or above the threshold no new
 * alert is raised; it is raised again after the LFC fell below it.
 *
 * Totals for offline scoring: at exit (lifecycle EXIT) and before an
 * execve switches programs, a wr_audit record
 *   "seq detect program=P calls=N mismatches=M max_lfc=L"
 * (record mode: "seq record program=P calls=N new=A db=S"). host/seq/
 * replay.ts reads these records.
 *
 * Database layout in the wrapper's KV (shared by all processes, persisted
 * in Deno KV), per program P and window k:
 *   "db/<k>/<P>/n"      the number of sequences, i64 little-endian
 *   "db/<k>/<P>/<i>"    chunk i = 0, 1, …: up to 4096 sequences as u64
 *                       little-endian (32768 bytes, the KV value limit)
 * The instance loads the database once, at idwrap_init (and after an
 * execve when the program is not fixed). In record mode it adds new
 * sequences to its in-memory set and writes back (re-reading the stored
 * set first, so that processes recording concurrently merge rather than
 * overwrite) at exit, at execve, and every FLUSH_EVERY new sequences.
 *
 * Filters handed to the kernel (ABI 1.4): in detect mode the database is
 * published with filter_windows; on the bpf source the kernel then drops
 * the calls whose window is known (matches) and reports how many with the
 * next call, whose event_window also gives the kernel's window, which seq
 * follows. Totals, mismatches and LFC alerts are those seq computes when it
 * sees every call (docs/seq.md, "Filtered in the kernel").
 *
 * Calls seen live: the groups file, process, exec and net plus the common
 * calls of COMMON below (memory, descriptors, signals, identity, time,
 * exit). Every declared call is a seccomp notification, so this set is a
 * trade-off between a faithful trace and overhead; what is not declared
 * does not exist for the sequences (the database is learned from the same
 * set, so record and detect agree).
 */
import {
  alert,
  allow,
  declared,
  declareEmit,
  declareGroup,
  MAY_KILL,
  kill,
  declareLifecycle,
  declareSyscall,
  emit,
  Event,
  EXEC,
  EXIT,
  log,
  LOG_ERROR,
  PRE,
  setting,
  settingInt,
  settingOr,
  SEVERITY_HIGH,
  wrAudit,
} from "../sdk/index";
import { input, inputLen } from "../sdk/buffer";
import { event_window, filter_windows, kv_get, kv_set } from "../sdk/imports";

export { idwrap_abi_version } from "../sdk/index";

/** Common x86_64 calls outside the groups (numbers from asm/unistd_64.h). */
const COMMON: StaticArray<i32> = [
  0, // read
  1, // write
  3, // close
  5, // fstat
  7, // poll
  8, // lseek
  9, // mmap
  10, // mprotect
  11, // munmap
  12, // brk
  13, // rt_sigaction
  14, // rt_sigprocmask
  16, // ioctl
  17, // pread64
  18, // pwrite64
  19, // readv
  20, // writev
  22, // pipe
  23, // select
  32, // dup
  33, // dup2
  35, // nanosleep
  39, // getpid
  45, // recvfrom
  46, // sendmsg
  47, // recvmsg
  60, // exit
  61, // wait4
  63, // uname
  72, // fcntl
  78, // getdents
  79, // getcwd
  81, // fchdir
  95, // umask
  97, // getrlimit
  102, // getuid
  104, // getgid
  107, // geteuid
  108, // getegid
  110, // getppid
  112, // setsid
  158, // arch_prctl
  186, // gettid
  202, // futex
  217, // getdents64
  218, // set_tid_address
  228, // clock_gettime
  231, // exit_group
  232, // epoll_wait
  273, // set_robust_list
  292, // dup3
  293, // pipe2
  302, // prlimit64
  318, // getrandom
  334, // rseq
];

const EVENT_NAME = "seq-warning";
// Declarations run on a scratch instance: the handle is the first (only) emit, 0.
const HANDLE: i32 = 0;

const BITS: i32 = 10;
const SLOT_MAX: u64 = 1023;
const CHUNK: i32 = 4096; // sequences per KV value: 4096 * 8 = 32768 bytes
const FLUSH_EVERY: i32 = 4096;
const EMPTY: u64 = 0;

// --- settings ---
let recording = false;
let k: i32 = 6;
let frameLen: i32 = 20;
let threshold: i32 = 3;
let fixedProgram: string | null = null;
let program = "";
let onlyTrained = false;
/** Hand the database to the source as a kernel filter (setting kernel_filter, default true). */
let kernelFilter = true;
/** False once the source said it cannot filter (filter_windows returned -ENOSYS). */
let sourceFilters = true;
/** Detect mode with only_trained, and the program has no database: every hook returns at once. */
let inert = false;

// --- per-process state ---
let seq: u64 = 0; // the last k calls, packed
let seqMask: u64 = 0;
let frameBits: u64 = 0; // 1 = mismatch, bit 0 the latest call
let frameMask: u64 = 0;
let alarmed = false;
let calls: i64 = 0;
let mismatches: i64 = 0;
let maxLfc: i32 = 0;
let added: i64 = 0; // record: new sequences since load
let unflushed: i32 = 0;

// --- the hash set: open addressing, linear probing, power-of-two capacity ---
let table: usize = 0;
let tableCap: i32 = 0; // slots
let tableCount: i32 = 0;
// Keeps the table's buffer reachable for the GC.
let tableBuf: ArrayBuffer | null = null;
// New sequences since the last write-back (record mode), to merge with the stored set.
let fresh: Array<u64> = new Array<u64>(0);

// @ts-ignore: decorator
@inline
function slotOf(key: u64, cap: i32): i32 {
  return <i32>((key * 0x9E3779B97F4A7C15) >> 40) & (cap - 1);
}

function allocTable(cap: i32): void {
  const buf = new ArrayBuffer(cap << 3); // zero-filled: every slot EMPTY
  tableBuf = buf;
  table = changetype<usize>(buf);
  tableCap = cap;
  tableCount = 0;
}

/** Adds key; true if it was new. */
function insert(key: u64): bool {
  if ((tableCount + 1) * 2 > tableCap) grow();
  const m = tableCap - 1;
  let i = slotOf(key, tableCap);
  let v = load<u64>(table + (<usize>i << 3));
  while (v != key && v != EMPTY) {
    i = (i + 1) & m;
    v = load<u64>(table + (<usize>i << 3));
  }
  if (v == key) return false;
  store<u64>(table + (<usize>i << 3), key);
  tableCount++;
  return true;
}

// @ts-ignore: decorator
@inline
function contains(key: u64): bool {
  const m = tableCap - 1;
  let i = slotOf(key, tableCap);
  let v = load<u64>(table + (<usize>i << 3));
  while (v != key && v != EMPTY) {
    i = (i + 1) & m;
    v = load<u64>(table + (<usize>i << 3));
  }
  return v == key;
}

function grow(): void {
  const oldTable = table;
  const oldCap = tableCap;
  const keep = tableBuf; // the old buffer must live until copied
  allocTable(oldCap << 1);
  for (let i = 0; i < oldCap; i++) {
    const v = load<u64>(oldTable + (<usize>i << 3));
    if (v != EMPTY) insert(v);
  }
  if (keep === null) return;
}

// --- KV ---

function dbPrefix(): string {
  return "db/" + k.toString() + "/" + program + "/";
}

/** Reads one KV value into buf (cap bytes); its length or a negative status. */
function kvRead(key: string, buf: usize, cap: i32): i32 {
  const p = input(key);
  return kv_get(p, inputLen(), buf, cap);
}

const CHUNK_BUF: usize = memory.data(CHUNK << 3, 16);
/** event_window's answer: the kernel's window after this call, then the calls it dropped before it. */
const WINDOW_BUF: usize = memory.data(16, 8);
const NUM_BUF: usize = memory.data(8, 8);

/** Adds the stored database of the current program to the set. */
function loadStored(): void {
  const prefix = dbPrefix();
  const n = kvRead(prefix + "n", NUM_BUF, 8);
  if (n != 8) return;
  const total = load<i64>(NUM_BUF);
  const chunks = <i32>((total + CHUNK - 1) / CHUNK);
  for (let c = 0; c < chunks; c++) {
    const len = kvRead(prefix + c.toString(), CHUNK_BUF, CHUNK << 3);
    if (len < 0 || len > (CHUNK << 3)) continue;
    const count = len >> 3;
    for (let i = 0; i < count; i++) insert(load<u64>(CHUNK_BUF + (<usize>i << 3)));
  }
}

/** Record mode: merges with what is stored now and writes the whole set back. */
function writeBack(): void {
  if (!recording || fresh.length == 0) return;
  // Start from the stored set (other processes may have added), then ours.
  allocTable(1024);
  loadStored();
  for (let i = 0; i < fresh.length; i++) insert(fresh[i]);
  fresh = new Array<u64>(0);
  unflushed = 0;
  const prefix = dbPrefix();
  let c = 0;
  let inChunk = 0;
  for (let i = 0; i < tableCap; i++) {
    const v = load<u64>(table + (<usize>i << 3));
    if (v == EMPTY) continue;
    store<u64>(CHUNK_BUF + (<usize>inChunk << 3), v);
    inChunk++;
    if (inChunk == CHUNK) {
      putChunk(prefix, c++, inChunk);
      inChunk = 0;
    }
  }
  if (inChunk > 0) putChunk(prefix, c, inChunk);
  store<i64>(NUM_BUF, <i64>tableCount);
  const p = input(prefix + "n");
  const s = kv_set(p, inputLen(), NUM_BUF, 8);
  if (s < 0) log(LOG_ERROR, "seq: cannot store the database size: " + s.toString());
}

function putChunk(prefix: string, c: i32, count: i32): void {
  const p = input(prefix + c.toString());
  const s = kv_set(p, inputLen(), CHUNK_BUF, count << 3);
  if (s < 0) log(LOG_ERROR, "seq: cannot store a database chunk: " + s.toString());
}

// --- lifecycle of the per-program state ---

function startProgram(): void {
  if (fixedProgram !== null) program = fixedProgram!;
  else {
    const exe = Event.exe();
    program = exe === null ? "" : exe;
  }
  allocTable(1024);
  loadStored();
  inert = !recording && onlyTrained && tableCount == 0;
  publish();
  fresh = new Array<u64>(0);
  seq = 0;
  frameBits = 0;
  alarmed = false;
  calls = 0;
  mismatches = 0;
  maxLfc = 0;
  added = 0;
  unflushed = 0;
}

/**
 * Detect mode: hands the database to the event source (ABI 1.4, filter_windows). A call whose window is in it would
 * be a match, which needs no hook: the bpf source then drops it in the kernel and reports how many it dropped with
 * the next call (idwrap_on_syscall adds them as matches). Record mode publishes nothing (every new window must reach
 * it); a source that cannot filter ignores the set. Published again after each execve (a new program, or the same
 * database for the new image: the kernel forgets the filter at an exec).
 */
function publish(): void {
  // An empty database is published too: the process may have been given another's filter at its exec.
  if (recording || inert || !kernelFilter || !sourceFilters) return;
  const buf = new ArrayBuffer(tableCount << 3);
  const p = changetype<usize>(buf);
  let n = 0;
  for (let i = 0; i < tableCap; i++) {
    const v = load<u64>(table + (<usize>i << 3));
    if (v == EMPTY) continue;
    store<u64>(p + (<usize>n << 3), v);
    n++;
  }
  const s = filter_windows(k, p, n);
  if (s == -38) sourceFilters = false; // ENOSYS: this source drops nothing in the kernel; do not copy again
  else if (s < 0) log(LOG_ERROR, "seq: the source refused the database as a filter: " + s.toString());
}

/** Calls the kernel dropped before this one: each was in the database, a match (the LFC frame moves on). */
function addSkipped(skipped: u64): void {
  calls += <i64>skipped;
  if (recording) return;
  frameBits = skipped >= 64 ? 0 : (frameBits << skipped) & frameMask;
  if (alarmed && <i32>popcnt(frameBits) < threshold) alarmed = false;
}

function endProgram(): void {
  if (inert) return;
  if (recording) {
    writeBack();
    wrAudit(
      "seq record program=" + program + " calls=" + calls.toString() + " new=" + added.toString() + " db=" +
        tableCount.toString(),
    );
  } else {
    wrAudit(
      "seq detect program=" + program + " calls=" + calls.toString() + " mismatches=" + mismatches.toString() +
        " max_lfc=" + maxLfc.toString(),
    );
  }
}

// --- hooks ---

export function idwrap_declare(): i32 {
  declareGroup("file", PRE | MAY_KILL);
  declareGroup("process", PRE | MAY_KILL);
  declareGroup("exec", PRE | MAY_KILL);
  declareGroup("net", PRE | MAY_KILL);
  for (let i = 0; i < COMMON.length; i++) declareSyscall(COMMON[i], PRE | MAY_KILL);
  declareLifecycle(EXEC | EXIT);
  const h = declareEmit(EVENT_NAME);
  if (h >= 0 && h != HANDLE) {
    log(LOG_ERROR, "seq: unexpected emit handle " + h.toString());
    return 1;
  }
  return declared();
}

export function idwrap_init(): i32 {
  const mode = settingOr("mode", "detect");
  if (mode == "record") recording = true;
  else if (mode == "detect") recording = false;
  else {
    log(LOG_ERROR, "seq: mode must be record or detect, got " + mode);
    return 1;
  }
  k = <i32>settingInt("window", 6);
  frameLen = <i32>settingInt("frame", 20);
  threshold = <i32>settingInt("threshold", 3);
  if (k < 1 || k > 6) {
    log(LOG_ERROR, "seq: window must be 1..6, got " + k.toString());
    return 1;
  }
  if (frameLen < 1 || frameLen > 64) {
    log(LOG_ERROR, "seq: frame must be 1..64, got " + frameLen.toString());
    return 1;
  }
  if (threshold < 1 || threshold > frameLen) {
    log(LOG_ERROR, "seq: threshold must be 1..frame, got " + threshold.toString());
    return 1;
  }
  seqMask = k == 6 ? ((<u64>1 << 60) - 1) : ((<u64>1 << <u64>(BITS * k)) - 1);
  frameMask = frameLen == 64 ? 0xFFFFFFFFFFFFFFFF : ((<u64>1 << <u64>frameLen) - 1);
  const ot = settingOr("only_trained", "false").trim();
  if (ot == "true") onlyTrained = true;
  else if (ot != "false") {
    log(LOG_ERROR, "seq: only_trained must be true or false, got " + ot);
    return 1;
  }
  const kf = settingOr("kernel_filter", "true").trim();
  if (kf == "true") kernelFilter = true;
  else if (kf == "false") kernelFilter = false;
  else {
    log(LOG_ERROR, "seq: kernel_filter must be true or false, got " + kf);
    return 1;
  }
  fixedProgram = setting("program");
  startProgram();
  return 0;
}

export function idwrap_on_syscall(): i32 {
  if (inert) return allow();
  let nr = <u64>Event.syscall();
  if (nr >= SLOT_MAX) nr = SLOT_MAX - 1;
  if (event_window(WINDOW_BUF) == 1) {
    // The source keeps the window in the kernel (bpf): follow it, and count the calls it dropped as matches.
    const skipped = load<u64>(WINDOW_BUF + 8);
    if (skipped > 0) addSkipped(skipped);
    seq = load<u64>(WINDOW_BUF) & seqMask;
  } else {
    seq = ((seq << BITS) | (nr + 1)) & seqMask;
  }
  calls++;
  if (recording) {
    if (insert(seq)) {
      fresh.push(seq);
      added++;
      if (++unflushed >= FLUSH_EVERY) writeBack();
    }
    return allow();
  }
  const miss: u64 = contains(seq) ? 0 : 1;
  frameBits = ((frameBits << 1) | miss) & frameMask;
  if (miss == 0) {
    if (alarmed && <i32>popcnt(frameBits) < threshold) alarmed = false;
    return allow();
  }
  mismatches++;
  const lfc = <i32>popcnt(frameBits);
  if (lfc > maxLfc) maxLfc = lfc;
  if (lfc >= threshold && !alarmed) {
    alarmed = true;
    const mag = lfc.toString();
    alert(
      SEVERITY_HIGH,
      "seq: anomalous call sequences in " + program + ": " + mag + " of the last " + frameLen.toString() +
        " calls (locality frame count " + mag + ", threshold " + threshold.toString() + ")",
    );
    // The composer decides: 2 means both detectors agree, kill (docs/wrappers.md, com).
    if (emit(HANDLE, mag) == 2) return kill();
  }
  return allow();
}

export function idwrap_on_lifecycle(kind: i32): void {
  if (kind == EXIT) {
    endProgram();
  } else if (kind == EXEC) {
    // A new program: close the old one's account and, unless the database
    // is fixed by the policy, switch to the new program's database.
    if (calls > 0) endProgram();
    if (fixedProgram === null) startProgram();
    else {
      seq = 0;
      frameBits = 0;
      alarmed = false;
      calls = 0;
      mismatches = 0;
      maxLfc = 0;
      publish();
    }
  }
}
