/**
 * ngram: a smoothed n-gram language model of a program's system calls, an
 * anomaly detector that scores every call by how surprising it is. Where
 * seq (Forrest's stide) asks "was this k-sequence ever seen?", ngram asks
 * "how likely is this call after the calls before it?": the Witten–Bell
 * interpolated estimate (Witten and Bell 1991; Chen and Goodman 1998)
 * over contexts of 0..order−1 previous calls of the same process, and the
 * call's surprisal is −log2 of it, in bits. A call the program often makes
 * there costs a fraction of a bit; a call never seen after that context
 * costs more the more often and the more uniformly the context was seen
 * (many observations, few followers: a confident, violated expectation).
 * docs/detect.md has the measurements that chose it.
 *
 * An observer, like seq: it allows every call, unless a composer (Com_id)
 * answers its warning with 2 (kill): then it kills at that call and, should
 * another wrapper's deny have taken precedence there, at the next one. It emits the abstract event
 * "seq-warning" (the sequence detectors' warning that Com_id weighs), with
 * the frame's surprisal in bits as payload.
 *
 * Settings:
 * - mode: "record" or "detect" (default detect).
 * - order: n, the longest n-gram, 1..6 (default 6: up to 5 calls of context).
 * - frame: the last `frame` calls whose surprisals are summed, 1..1024 (default 20).
 * - threshold: alert when the frame's sum reaches it, in bits, 1..100000 (default 120).
 * - program, only_trained: as for seq.
 *
 * Scores, for offline evaluation and audit: at exit and before an execve
 * switches programs, a wr_audit record
 *   "ngram detect program=P calls=N millibits=S max_frame_millibits=F"
 * (S the sum of the calls' surprisals: S/N/1000 is the trace's mean
 * surprisal in bits per call, the number that ranks whole traces; F the
 * largest frame sum); in record mode "ngram record program=P calls=N new=A
 * model=E".
 *
 * The model in the wrapper's KV, per program P and order n: every n-gram
 * of length 1..n seen in training, with its count, as the image of the
 * instance's hash table, so that loading it is a copy (a process starts
 * with one kv_get per 32 KiB, no hashing):
 *   "lm/<n>/<P>/h"      header, 4 × u32 little-endian: capacity (slots, a
 *                       power of two), entries, and the empty context's
 *                       total count and distinct calls
 *   "lm/<n>/<P>/<i>"    bytes [32768 i, 32768 (i+1)) of the table: slots of
 *                       24 bytes: the n-gram's key (packed as seq packs a
 *                       sequence, 10 bits per call, the number plus 1, the
 *                       latest call lowest; 0 = empty slot) u64, its count
 *                       u32, and as a context the sum of its followers'
 *                       counts u32 and their number u32, then 4 spare bytes
 * A model is at most 2^19 slots (12 MiB in KV, under the 16 MiB per program
 * allowed) and 70% full; training stops adding n-grams beyond, with an
 * error logged. Record mode counts a process's n-grams in a table of its
 * own and merges them into the stored model (re-read first, so processes
 * recording at different times add up) at exit, at execve and every 65536
 * new n-grams.
 *
 * Calls seen live: the same as seq (file, process, exec, net and the common
 * calls), so a model learned live matches what detect mode sees.
 */
import {
  alert,
  allow,
  declared,
  declareEmit,
  declareGroup,
  declareLifecycle,
  declareSyscall,
  emit,
  Event,
  EXEC,
  EXIT,
  kill,
  log,
  LOG_ERROR,
  MAY_KILL,
  PRE,
  setting,
  settingInt,
  settingOr,
  SEVERITY_HIGH,
  wrAudit,
} from "../sdk/index";
import { input, inputLen } from "../sdk/buffer";
import { kv_get, kv_set } from "../sdk/imports";

export { idwrap_abi_version } from "../sdk/index";

/** The common x86_64 calls outside the groups: the same list as seq's (wrappers/seq/index.ts). */
const COMMON: StaticArray<i32> = [
  0, 1, 3, 5, 7, 8, 9, 10, 11, 12, 13, 14, 16, 17, 18, 19, 20, 22, 23, 32, 33, 35, 39, 45, 46, 47, 60, 61, 63, 72, 78,
  79, 81, 95, 97, 102, 104, 107, 108, 110, 112, 158, 186, 202, 217, 218, 228, 231, 232, 273, 292, 293, 302, 318, 334,
];

const EVENT_NAME = "seq-warning";
const HANDLE: i32 = 0; // the first (only) emit

const BITS: i32 = 10;
const SLOT_MAX: u64 = 1023;
/** The base distribution: uniform over every symbol a call can have. */
const UNIFORM: f64 = 1.0 / 1024.0;
const KV_VALUE: i32 = 32768; // the largest KV value
/** At most 2^19 slots of 24 bytes: 12 MiB in KV (the limit is 16 MiB per program). */
const MAX_SLOTS: i32 = 1 << 19;
const MAX_ENTRIES: i32 = (MAX_SLOTS / 10) * 7;
const FLUSH_EVERY: i32 = 65536;
const MAX_FRAME: i32 = 1024;

// --- settings ---
let recording = false;
let order: i32 = 6;
let frameLen: i32 = 20;
let threshold: f64 = 120;
let fixedProgram: string | null = null;
let program = "";
let onlyTrained = false;
let inert = false;

// --- per-process state ---
let hist: u64 = 0; // the latest calls, packed, the latest lowest
let histLen: i32 = 0; // how many calls hist holds (up to order)
const MASKS = new StaticArray<u64>(7); // MASKS[L]: the low L symbols
let calls: i64 = 0;
let bitsTotal: f64 = 0;
let frameSum: f64 = 0;
let maxFrame: f64 = 0;
let alarmed = false;
/** Com_id answered 2 (kill) to a warning of this process. */
let doomed = false;
const RING = new StaticArray<f64>(MAX_FRAME);
let ringAt: i32 = 0;
let added: i64 = 0;

// --- the model: open addressing, linear probing; a slot is 24 bytes:
//     key u64 (0 = empty), count u32, contextCount u32, followers u32, spare u32 ---
const SLOT: i32 = 24;
let table: usize = 0;
let tableCap: i32 = 0;
let tableCount: i32 = 0;
let tableBuf: ArrayBuffer | null = null;
/** The empty context: every call counted, and the number of distinct calls. */
let total: u32 = 0;
let distinct: u32 = 0;

// @ts-ignore: decorator
@inline
function slotOf(key: u64, cap: i32): i32 {
  return <i32>((key * 0x9E3779B97F4A7C15) >> 40) & (cap - 1);
}

function allocTable(cap: i32): void {
  const buf = new ArrayBuffer(cap * SLOT);
  tableBuf = buf;
  table = changetype<usize>(buf);
  tableCap = cap;
  tableCount = 0;
}

/** The slot's address for key: its own, or the empty one where it would go. */
// @ts-ignore: decorator
@inline
function probe(key: u64): usize {
  const m = tableCap - 1;
  let i = slotOf(key, tableCap);
  let at = table + <usize>i * SLOT;
  let v = load<u64>(at);
  while (v != key && v != 0) {
    i = (i + 1) & m;
    at = table + <usize>i * SLOT;
    v = load<u64>(at);
  }
  return at;
}

/** Adds n to key's count, inserting it; the slot's address. */
function addCount(key: u64, n: u32): usize {
  if ((tableCount + 1) * 10 > tableCap * 7) grow();
  const at = probe(key);
  if (load<u64>(at) == 0) {
    store<u64>(at, key);
    tableCount++;
  }
  store<u32>(at, load<u32>(at, 8) + n, 8);
  return at;
}

function grow(): void {
  if (tableCap >= MAX_SLOTS) return; // writeBack stops adding before
  const old = table;
  const oldCap = tableCap;
  const keep = tableBuf;
  allocTable(oldCap << 1);
  for (let i = 0; i < oldCap; i++) {
    const at = old + <usize>i * SLOT;
    const key = load<u64>(at);
    if (key == 0) continue;
    const to = probe(key);
    memory.copy(to, at, SLOT);
    tableCount++;
  }
  if (keep === null) return;
}

// --- KV: the table's image, so that loading is a copy ---

function modelPrefix(): string {
  return "lm/" + order.toString() + "/" + program + "/";
}

function kvRead(key: string, buf: usize, cap: i32): i32 {
  const p = input(key);
  return kv_get(p, inputLen(), buf, cap);
}

// The header: capacity (slots), entries, and the empty context's total and distinct calls, 4 × u32.
const HEADER_BUF: usize = memory.data(16, 8);

/** Replaces the table with the stored model (an empty table if there is none or it is damaged). */
function loadStored(): void {
  const prefix = modelPrefix();
  total = 0;
  distinct = 0;
  if (kvRead(prefix + "h", HEADER_BUF, 16) != 16) {
    allocTable(1024);
    return;
  }
  const cap = load<i32>(HEADER_BUF);
  const count = load<i32>(HEADER_BUF, 4);
  if (cap < 1024 || cap > MAX_SLOTS || (cap & (cap - 1)) != 0 || count < 0 || count > cap) {
    log(LOG_ERROR, "ngram: the stored model of " + program + " has a bad header (capacity " + cap.toString() + ")");
    allocTable(1024);
    return;
  }
  allocTable(cap);
  const bytes = cap * SLOT;
  for (let c = 0, off = 0; off < bytes; c++, off += KV_VALUE) {
    const want = min(KV_VALUE, bytes - off);
    if (kvRead(prefix + c.toString(), table + <usize>off, want) != want) {
      log(LOG_ERROR, "ngram: the stored model of " + program + " lacks chunk " + c.toString());
      allocTable(1024);
      return;
    }
  }
  tableCount = count;
  total = load<u32>(HEADER_BUF, 8);
  distinct = load<u32>(HEADER_BUF, 12);
}

/** Per context, the sum of its followers' counts and their number (Witten–Bell's c(h) and T(h)), from the counts. */
function deriveContexts(): void {
  total = 0;
  distinct = 0;
  for (let i = 0; i < tableCap; i++) {
    const at = table + <usize>i * SLOT;
    store<u64>(at, 0, 12); // contextCount and followers
  }
  for (let i = 0; i < tableCap; i++) {
    const at = table + <usize>i * SLOT;
    const key = load<u64>(at);
    if (key == 0) continue;
    const n = load<u32>(at, 8);
    const ctx = key >> BITS;
    if (ctx == 0) {
      total += n;
      distinct++;
      continue;
    }
    // Every prefix of a counted n-gram is counted too (it ends one call earlier).
    const c = probe(ctx);
    if (load<u64>(c) != ctx) continue;
    store<u32>(c, load<u32>(c, 12) + n, 12);
    store<u32>(c, load<u32>(c, 16) + 1, 16);
  }
}

// Record mode: the counts added since the last write-back are in the table (the model is not loaded).
function writeBack(): void {
  if (!recording || tableCount == 0) return;
  const fresh = table;
  const freshCap = tableCap;
  const keepFresh = tableBuf;
  // Merge with what is stored now (other processes may have added), then write the whole model.
  loadStored();
  for (let i = 0; i < freshCap; i++) {
    const at = fresh + <usize>i * SLOT;
    const key = load<u64>(at);
    if (key == 0) continue;
    if (tableCount >= MAX_ENTRIES && load<u64>(probe(key)) != key) {
      log(LOG_ERROR, "ngram: the model of " + program + " is full (" + MAX_ENTRIES.toString() + " n-grams)");
      break;
    }
    addCount(key, load<u32>(at, 8));
  }
  deriveContexts();
  const prefix = modelPrefix();
  const bytes = tableCap * SLOT;
  for (let c = 0, off = 0; off < bytes; c++, off += KV_VALUE) {
    const p = input(prefix + c.toString());
    const s = kv_set(p, inputLen(), table + <usize>off, min(KV_VALUE, bytes - off));
    if (s < 0) log(LOG_ERROR, "ngram: cannot store a model chunk: " + s.toString());
  }
  store<i32>(HEADER_BUF, tableCap);
  store<i32>(HEADER_BUF, tableCount, 4);
  store<u32>(HEADER_BUF, total, 8);
  store<u32>(HEADER_BUF, distinct, 12);
  const p = input(prefix + "h");
  const s = kv_set(p, inputLen(), HEADER_BUF, 16);
  if (s < 0) log(LOG_ERROR, "ngram: cannot store the model header: " + s.toString());
  modelSize = tableCount;
  allocTable(1024); // a fresh delta table
  if (keepFresh === null) return;
}
let modelSize: i32 = 0;

// --- per-program state ---

function resetProcess(): void {
  hist = 0;
  histLen = 0;
  calls = 0;
  bitsTotal = 0;
  frameSum = 0;
  maxFrame = 0;
  alarmed = false;
  for (let i = 0; i < frameLen; i++) RING[i] = 0;
  ringAt = 0;
  added = 0;
}

function startProgram(): void {
  if (fixedProgram !== null) program = fixedProgram!;
  else {
    const exe = Event.exe();
    program = exe === null ? "" : exe;
  }
  if (recording) allocTable(1024);
  else loadStored();
  inert = !recording && onlyTrained && tableCount == 0;
  modelSize = tableCount;
  resetProcess();
}

function endProgram(): void {
  if (inert) return;
  if (recording) {
    writeBack();
    wrAudit(
      "ngram record program=" + program + " calls=" + calls.toString() + " new=" + added.toString() + " model=" +
        modelSize.toString(),
    );
  } else {
    wrAudit(
      "ngram detect program=" + program + " calls=" + calls.toString() + " millibits=" +
        (<i64>Math.round(bitsTotal * 1000)).toString() + " max_frame_millibits=" +
        (<i64>Math.round(maxFrame * 1000)).toString(),
    );
  }
}

// --- scoring ---

/** The count of key in the model (0 if unseen). */
// @ts-ignore: decorator
@inline
function countOf(key: u64): u32 {
  const at = probe(key);
  return load<u64>(at) == key ? load<u32>(at, 8) : 0;
}

/** −log2 P(latest call | the calls before it), Witten–Bell interpolated from the empty context up. */
function surprisal(): f64 {
  const sym = hist & MASKS[1];
  // Order 0: the calls' frequencies, interpolated with the uniform base.
  let p = UNIFORM;
  let n = countOf(sym);
  if (total > 0) p = (<f64>n + <f64>distinct * p) / (<f64>total + <f64>distinct);
  for (let len = 1; len < histLen; len++) {
    const ctx = (hist >> BITS) & MASKS[len];
    const at = probe(ctx);
    if (load<u64>(at) != ctx) break;
    const c = load<u32>(at, 12);
    if (c == 0) break;
    const t = <f64>load<u32>(at, 16);
    // An n-gram never seen has no longer n-gram ending the same way: skip the lookups from there on.
    if (n != 0) n = countOf(hist & MASKS[len + 1]);
    p = (<f64>n + t * p) / (<f64>c + t);
  }
  return -Math.log2(p);
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
    log(LOG_ERROR, "ngram: unexpected emit handle " + h.toString());
    return 1;
  }
  return declared();
}

export function idwrap_init(): i32 {
  const mode = settingOr("mode", "detect");
  if (mode == "record") recording = true;
  else if (mode == "detect") recording = false;
  else {
    log(LOG_ERROR, "ngram: mode must be record or detect, got " + mode);
    return 1;
  }
  order = <i32>settingInt("order", 6);
  frameLen = <i32>settingInt("frame", 20);
  const th = settingInt("threshold", 120);
  if (order < 1 || order > 6) {
    log(LOG_ERROR, "ngram: order must be 1..6, got " + order.toString());
    return 1;
  }
  if (frameLen < 1 || frameLen > MAX_FRAME) {
    log(LOG_ERROR, "ngram: frame must be 1.." + MAX_FRAME.toString() + ", got " + frameLen.toString());
    return 1;
  }
  if (th < 1 || th > 100000) {
    log(LOG_ERROR, "ngram: threshold must be 1..100000 (bits), got " + th.toString());
    return 1;
  }
  threshold = <f64>th;
  for (let l = 0; l <= 6; l++) MASKS[l] = l == 6 ? ((<u64>1 << 60) - 1) : ((<u64>1 << <u64>(BITS * l)) - 1);
  const ot = settingOr("only_trained", "false").trim();
  if (ot == "true") onlyTrained = true;
  else if (ot != "false") {
    log(LOG_ERROR, "ngram: only_trained must be true or false, got " + ot);
    return 1;
  }
  fixedProgram = setting("program");
  startProgram();
  return 0;
}

export function idwrap_on_syscall(): i32 {
  if (inert) return allow();
  // The composer answered kill: if that call's kill gave way to another wrapper's deny, the next call carries it out.
  if (doomed) return kill();
  let nr = <u64>Event.syscall();
  if (nr >= SLOT_MAX) nr = SLOT_MAX - 1;
  hist = (hist << BITS) | (nr + 1);
  if (histLen < order) histLen++;
  hist &= MASKS[histLen];
  calls++;
  if (recording) {
    // Every n-gram ending here, n = 1..histLen.
    for (let len = 1; len <= histLen; len++) {
      const at = addCount(hist & MASKS[len], 1);
      if (load<u32>(at, 8) == 1) added++;
    }
    if (tableCount >= FLUSH_EVERY) writeBack();
    return allow();
  }
  const s = surprisal();
  bitsTotal += s;
  frameSum += s - RING[ringAt];
  RING[ringAt] = s;
  if (++ringAt == frameLen) ringAt = 0;
  if (frameSum > maxFrame) maxFrame = frameSum;
  if (frameSum < threshold) {
    alarmed = false;
    return allow();
  }
  if (alarmed) return allow();
  alarmed = true;
  const bits = (<i64>Math.round(frameSum)).toString();
  alert(
    SEVERITY_HIGH,
    "ngram: unlikely call sequence in " + program + ": " + bits + " bits of surprisal in the last " +
      frameLen.toString() + " calls (threshold " + (<i64>threshold).toString() + ")",
  );
  if (emit(HANDLE, bits) == 2) {
    doomed = true;
    return kill();
  }
  return allow();
}

export function idwrap_on_lifecycle(kind: i32): void {
  if (kind == EXIT) {
    endProgram();
  } else if (kind == EXEC) {
    if (calls > 0) endProgram();
    if (fixedProgram === null) startProgram();
    else resetProcess();
  }
}
