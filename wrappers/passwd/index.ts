/**
 * passwd: the paper's specification for the password program (Ko et al.,
 * USENIX Security 2000, section 3.1): when a user runs it, it may change
 * only that user's own entry of the password file, and of that entry only
 * the password field.
 *
 * The ABI lets a wrapper see the bytes a write writes (event_data) but not
 * read a file, nor see the bytes a read returns. So the wrapper compares
 * every line written to the password file with a TRUSTED BASELINE of the
 * file's content, taken from:
 *  1. the wrapper's key-value store, key "baseline:" + file: the content
 *     the wrapper itself accepted the last time a wrapped process rewrote
 *     the whole file (it learns it when that fd is closed, or the process
 *     exits);
 *  2. the setting `baseline` (the file's content, as text), the seed.
 * When the process opens the file, the wrapper wr_fstats it and takes the
 * first candidate whose length in bytes equals the file's size; if none
 * does, the baseline is stale (someone else changed the file) or missing,
 * and every write to the file is denied with an alert (fail closed).
 *
 * Checks, on each write/pwrite64 to the file (found by nodeid: wr_fstat of
 * the fd against wr_stat of `file`, so any fd and any name of it count):
 *  - every complete line written must be either byte-identical to a
 *    baseline line of ANOTHER user (a uid other than the invoker's, the
 *    process's real uid), or equal to the invoker's baseline line in every
 *    field but the second (the password) with exactly 7 fields;
 *  - no user's line may be written twice through one fd;
 *  - the unfinished last line of a write must be a prefix of such a line;
 *  - the bytes must all be visible (event_data gives at most 65536);
 *    writev, pwritev, pwritev2, sendfile, splice and copy_file_range to
 *    the file, whose bytes the wrapper cannot see, are denied.
 * A violating write is denied (EPERM, or `errno`) before it runs, with a
 * critical alert (severity 4) naming the entry and what changed. An open
 * of the file with O_TRUNC (or creat) is denied as well: it would destroy
 * every entry before the wrapper saw the new content.
 *
 * Limits: the wrapper assumes writes start at line boundaries (it does not
 * follow lseek or pwrite offsets); a rewrite through a temporary file and
 * rename(2) (as shadow-utils does) writes another file and is not checked;
 * deleting another user's entry (not writing it, then truncating) is not
 * detected (ftruncate is not followed; a write of one line in place is
 * legitimate); a same-size change by another program leaves a stale
 * baseline unnoticed.
 *
 * Settings: `file` (the password file's path, required), `baseline` (its
 * trusted content), `errno` (default 1, EPERM).
 */
import {
  alert,
  allow,
  declared,
  declareLifecycle,
  declareSyscall,
  DENY,
  deny,
  Event,
  EXIT,
  kvGetString,
  kvSet,
  log,
  LOG_WARNING,
  POST,
  PRE,
  setting,
  settingInt,
  SEVERITY_CRITICAL,
  SEVERITY_HIGH,
  SYS_close,
  SYS_copy_file_range,
  SYS_creat,
  SYS_open,
  SYS_openat,
  SYS_openat2,
  SYS_pwrite64,
  SYS_pwritev,
  SYS_pwritev2,
  SYS_sendfile,
  SYS_splice,
  SYS_write,
  SYS_writev,
  wrFstat,
  WrStat,
  wrStat,
} from "../sdk/index";

export { idwrap_abi_version } from "../sdk/index";

// Calls that write to an fd without the bytes reaching the wrapper (event_data
// covers write and pwrite64 only): denied on the password file.
const BLIND_WRITES: i32[] = [SYS_writev, SYS_pwritev, SYS_pwritev2, SYS_sendfile, SYS_splice, SYS_copy_file_range];
const MAX_DATA: i64 = 65536;
const KV_PREFIX = "baseline:";

let file = "";
let seed: string | null = null;
let errno: i32 = 1;

/** One passwd line, split into fields. */
class Entry {
  line: string;
  fields: string[];
  constructor(line: string) {
    this.line = line;
    this.fields = line.split(":");
  }
  name(): string {
    return this.fields[0];
  }
  uid(): string {
    return this.fields.length > 2 ? this.fields[2] : "";
  }
}

/** What the wrapper knows about one fd of the password file. */
class Stream {
  ok: bool; // a current baseline was found
  why: string; // if not, why
  entries: Entry[];
  partial: string = ""; // the unfinished last line written
  written: string = ""; // everything written through this fd
  names: Set<string> = new Set<string>();
  bad: bool = false; // a write was denied
  constructor(ok: bool, why: string, entries: Entry[]) {
    this.ok = ok;
    this.why = why;
    this.entries = entries;
  }
}

const streams = new Map<i32, Stream>();

export function idwrap_declare(): i32 {
  declareSyscall(SYS_open, PRE | POST | DENY);
  declareSyscall(SYS_openat, PRE | POST | DENY);
  declareSyscall(SYS_openat2, PRE | POST | DENY);
  declareSyscall(SYS_creat, PRE | POST | DENY);
  declareSyscall(SYS_write, PRE | DENY);
  declareSyscall(SYS_pwrite64, PRE | DENY);
  for (let i = 0; i < BLIND_WRITES.length; i++) declareSyscall(BLIND_WRITES[i], PRE | DENY);
  declareSyscall(SYS_close, PRE);
  declareLifecycle(EXIT);
  return declared();
}

export function idwrap_init(): i32 {
  const f = setting("file");
  if (f === null || f.length == 0) return 1;
  file = f;
  seed = setting("baseline");
  errno = <i32>settingInt("errno", 1);
  return 0;
}

function splitLines(text: string): Entry[] {
  const out = new Array<Entry>(0);
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    if (i == lines.length - 1 && lines[i].length == 0) break; // after the final \n
    out.push(new Entry(lines[i]));
  }
  return out;
}

/** The password file's stat now, or null. */
function target(): WrStat | null {
  return wrStat(file);
}

/** A new stream for an fd of the file, with the baseline that matches its size. */
function openStream(size: u64): Stream {
  const stored = kvGetString(KV_PREFIX + file);
  if (stored !== null && <u64>String.UTF8.byteLength(stored) == size) {
    return new Stream(true, "", splitLines(stored));
  }
  const s = seed;
  if (s !== null && <u64>String.UTF8.byteLength(s) == size) {
    return new Stream(true, "", splitLines(s));
  }
  const why = stored === null && s === null
    ? "no baseline of " + file + " (setting `baseline` or learnt content)"
    : "the baseline of " + file + " is stale (its size is " + size.toString() + " bytes, the baseline's " +
      (stored !== null ? String.UTF8.byteLength(stored).toString() : String.UTF8.byteLength(s!).toString()) + ")";
  return new Stream(false, why, new Array<Entry>(0));
}

function isOpenFamily(nr: i32): bool {
  return nr == SYS_open || nr == SYS_openat || nr == SYS_openat2 || nr == SYS_creat;
}

function invoker(): string {
  return (<u32>Event.uid()).toString();
}

function violation(message: string): i32 {
  alert(SEVERITY_CRITICAL, message);
  return deny(errno);
}

function onOpenPre(nr: i32): i32 {
  const flags = Event.flagsText();
  const truncating = nr == SYS_creat || (flags !== null && flags.split("|").includes("O_TRUNC"));
  if (!truncating) return allow();
  const path = Event.path();
  if (path === null) return allow();
  // Relative to a dirfd other than the cwd, wr_stat cannot resolve it; the
  // post hook still tracks the fd (and a truncated file fails the size check).
  if (!path.startsWith("/") && nr != SYS_open && nr != SYS_creat && Event.arg(0) != -100) return allow();
  const s = wrStat(path);
  const t = target();
  if (s === null || t === null || s.nodeId() != t.nodeId()) return allow();
  return violation(
    "passwd: uid " + invoker() + " truncating open of the password file " + file +
      " (it would destroy every entry before the new content can be checked)",
  );
}

function onOpenPost(): i32 {
  const fd = Event.result();
  if (fd < 0) return allow();
  const ifd = <i32>fd;
  if (streams.has(ifd)) streams.delete(ifd); // the number was reused
  const s = wrFstat(ifd);
  const t = target();
  if (s === null || t === null || s.nodeId() != t.nodeId()) return allow();
  streams.set(ifd, openStream(s.size));
  return allow();
}

/** The invoker's baseline entries. */
function ownEntries(entries: Entry[], uid: string): Entry[] {
  const out = new Array<Entry>(0);
  for (let i = 0; i < entries.length; i++) if (entries[i].uid() == uid) out.push(entries[i]);
  return out;
}

/** The baseline entry named name, or null. */
function byName(entries: Entry[], name: string): Entry | null {
  for (let i = 0; i < entries.length; i++) if (entries[i].name() == name) return entries[i];
  return null;
}

/** Whether line is the invoker's entry own with only the password changed. */
function passwordChange(line: Entry, own: Entry): bool {
  if (line.fields.length != 7 || own.fields.length != 7) return false;
  for (let i = 0; i < 7; i++) if (i != 1 && line.fields[i] != own.fields[i]) return false;
  return true;
}

/** Whether partial could still become such a line (it is a prefix of one). */
function partialOk(partial: string, entries: Entry[], uid: string): bool {
  if (partial.length == 0) return true;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    if (e.uid() != uid) {
      if (e.line.startsWith(partial)) return true;
      continue;
    }
    const f = partial.split(":");
    if (f.length > 7 || e.fields.length != 7) continue;
    let ok = true;
    for (let j = 0; j < f.length && ok; j++) {
      if (j == 1) continue;
      ok = j == f.length - 1 ? e.fields[j].startsWith(f[j]) : f[j] == e.fields[j];
    }
    if (ok) return true;
  }
  return false;
}

function quote(s: string): string {
  return '"' + s.replaceAll("\n", "\\n") + '"';
}

/** Why the complete line is not allowed, or null if it is. */
function checkLine(line: string, st: Stream, names: Set<string>, uid: string): string | null {
  const e = new Entry(line);
  const name = e.name();
  if (names.has(name)) return "writes the entry of " + name + " a second time: " + quote(line);
  const orig = byName(st.entries, name);
  if (orig !== null && orig.line == line && orig.uid() != uid) {
    names.add(name);
    return null;
  }
  const own = ownEntries(st.entries, uid);
  for (let i = 0; i < own.length; i++) {
    if (own[i].name() == name && passwordChange(e, own[i])) {
      names.add(name);
      return null;
    }
  }
  if (orig === null) return "adds an entry " + quote(line) + " that the password file does not have";
  if (orig.uid() == uid) {
    return "changes fields other than the password of the invoker's own entry " + name + ": " + quote(orig.line) +
      " becomes " + quote(line);
  }
  return "changes the entry of " + name + " (uid " + orig.uid() + "), which is not the invoker's: " +
    quote(orig.line) + " becomes " + quote(line);
}

function onWrite(nr: i32): i32 {
  const fd = <i32>Event.arg(0);
  const s = wrFstat(fd);
  if (s === null) return allow();
  const t = target();
  if (t === null || s.nodeId() != t.nodeId()) return allow();
  // An fd the wrapper did not see opened (inherited, dup'ed): judge it from now.
  if (!streams.has(fd)) streams.set(fd, openStream(s.size));
  const st = streams.get(fd);
  const uid = invoker();
  const who = "passwd: " + (nr == SYS_write ? "write" : "pwrite64") + " to the password file " + file + " by uid " +
    uid + " ";
  if (!st.ok) {
    st.bad = true;
    alert(SEVERITY_HIGH, who + "cannot be checked: " + st.why);
    return deny(errno);
  }
  const count = Event.arg(2);
  const data = Event.data();
  if (data === null || <i64>data.byteLength < count || count > MAX_DATA) {
    st.bad = true;
    return violation(who + "writes " + count.toString() + " bytes, more than the wrapper can see");
  }
  const text = st.partial + String.UTF8.decode(data);
  const lines = text.split("\n");
  const names = new Set<string>();
  const seen = st.names.values();
  for (let i = 0; i < seen.length; i++) names.add(seen[i]);
  for (let i = 0; i < lines.length - 1; i++) {
    const why = checkLine(lines[i], st, names, uid);
    if (why !== null) {
      st.bad = true;
      return violation(who + why);
    }
  }
  const rest = lines[lines.length - 1];
  if (!partialOk(rest, st.entries, uid)) {
    st.bad = true;
    return violation(who + "writes a line that is no valid change of any entry: " + quote(rest));
  }
  st.partial = rest;
  st.names = names;
  st.written += String.UTF8.decode(data);
  return allow();
}

/** A write whose bytes the wrapper cannot see: denied when it targets the password file. */
function onBlindWrite(nr: i32): i32 {
  const fdArg = nr == SYS_splice || nr == SYS_copy_file_range ? 2 : 0;
  const s = wrFstat(<i32>Event.arg(fdArg));
  if (s === null) return allow();
  const t = target();
  if (t === null || s.nodeId() != t.nodeId()) return allow();
  const name = Event.syscallName();
  if (streams.has(<i32>Event.arg(fdArg))) streams.get(<i32>Event.arg(fdArg)).bad = true;
  return violation(
    "passwd: " + (name === null ? "write" : name) + " to the password file " + file + " by uid " + invoker() +
      " cannot be checked (the wrapper sees the bytes of write and pwrite64 only)",
  );
}

/** At close or exit: a complete, clean rewrite (every entry written once, whole lines) becomes the new baseline. */
function finish(fd: i32): void {
  if (!streams.has(fd)) return;
  const st = streams.get(fd);
  streams.delete(fd);
  if (!st.ok || st.bad || st.written.length == 0) return;
  const missing = new Array<string>(0);
  for (let i = 0; i < st.entries.length; i++) {
    if (!st.names.has(st.entries[i].name())) missing.push(st.entries[i].name());
  }
  if (missing.length == 0 && st.partial.length == 0) {
    if (kvSet(KV_PREFIX + file, st.written) < 0) log(LOG_WARNING, "passwd: cannot store the new baseline of " + file);
  }
}

export function idwrap_on_syscall(): i32 {
  const nr = Event.syscall();
  if (isOpenFamily(nr)) return Event.isPre() ? onOpenPre(nr) : onOpenPost();
  if (nr == SYS_write || nr == SYS_pwrite64) return onWrite(nr);
  if (BLIND_WRITES.includes(nr)) return onBlindWrite(nr);
  if (nr == SYS_close) finish(<i32>Event.arg(0));
  return allow();
}

export function idwrap_on_lifecycle(kind: i32): void {
  if (kind != EXIT) return;
  const fds = streams.keys();
  for (let i = 0; i < fds.length; i++) finish(fds[i]);
}
