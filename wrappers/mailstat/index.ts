/**
 * mailstat: the paper's Mailstat (Ko et al., USENIX Security 2000, section
 * 3.2), a STAT-like signature wrapper for the 4.2BSD binmail attack
 * (section 4): an attacker creates a mailbox with the set-uid bit on for
 * the superuser, then has the mailer deliver mail to root, which appends
 * and gives the mailbox to root without clearing the bit.
 *
 * It wraps every process. Its table of state machines, one per file (the
 * nodeid, dev:ino), is in the wrapper's key-value store, so that machines
 * advance on calls of different processes (the attacker's, the mailer's),
 * in different idwrap runs that share a store. Key "fsm:<dev>:<ino>",
 * value "state|pid|program|uid|pid|program" (fields of state 1 and 2).
 *
 *  state 1: a process creates a file in the spool directory (`spool`) with
 *    S_ISUID set (open/openat/openat2/creat with O_CREAT and mode & 04000,
 *    checked after the call with wr_fstat), or chmods one there to a mode
 *    with S_ISUID (chmod, fchmodat by path; fchmod of an fd this process
 *    opened in the spool). A new machine (a new row).
 *  state 2: ANOTHER process writes to that file (write, pwrite64, writev,
 *    pwritev, pwritev2; the fd's wr_fstat gives the nodeid) while it is
 *    still set-uid.
 *  final: a process chowns it to uid 0 (chown, lchown, fchownat by path,
 *    fchown by fd) while it is still set-uid: a critical alert (severity 4)
 *    naming the three processes (pids, programs, uids). With the setting
 *    `response: deny` the chown fails with EPERM (default: alert only).
 *    The row stays, in state 3, as a record.
 * A chmod of a tracked file to a mode without S_ISUID, or its unlink
 * (unlink, unlinkat), drops the row (the attack is off; the nodeid may be
 * reused).
 *
 * "In the spool directory": the path's directory (its dirname, "." for a
 * bare name), wr_stat'ed as the process sees it, is the spool directory
 * (same nodeid), so relative paths, symlinks and other names of the spool
 * count; a bare name relative to a dirfd counts when wr_fstat(dirfd) is the
 * spool. Other dirfd-relative paths with a '/' are not followed.
 *
 * Settings: `spool` (required), `response` (alert or deny).
 */
import {
  alert,
  allow,
  declared,
  declareSyscall,
  DENY,
  deny,
  Event,
  kvDelete,
  kvGetString,
  kvSet,
  log,
  LOG_WARNING,
  POST,
  PRE,
  setting,
  SEVERITY_CRITICAL,
  SYS_chmod,
  SYS_chown,
  SYS_creat,
  SYS_fchmod,
  SYS_fchmodat,
  SYS_fchown,
  SYS_fchownat,
  SYS_lchown,
  SYS_open,
  SYS_openat,
  SYS_openat2,
  SYS_pwrite64,
  SYS_pwritev,
  SYS_pwritev2,
  SYS_unlink,
  SYS_unlinkat,
  SYS_write,
  SYS_writev,
  wrFstat,
  WrStat,
  wrStat,
} from "../sdk/index";

export { idwrap_abi_version } from "../sdk/index";

const AT_FDCWD: i64 = -100;
const S_ISUID: u32 = 0o4000;
const NO_CHANGE: u32 = 0xffffffff;
const PREFIX = "fsm:";

let spool = "";
let denyChown = false;

/** nodeids of the files this process opened in the spool (for fchmod). */
const opened = new Set<string>();

export function idwrap_declare(): i32 {
  declareSyscall(SYS_open, POST);
  declareSyscall(SYS_openat, POST);
  declareSyscall(SYS_openat2, POST);
  declareSyscall(SYS_creat, POST);
  declareSyscall(SYS_chmod, PRE);
  declareSyscall(SYS_fchmodat, PRE);
  declareSyscall(SYS_fchmod, PRE);
  declareSyscall(SYS_write, PRE);
  declareSyscall(SYS_pwrite64, PRE);
  declareSyscall(SYS_writev, PRE);
  declareSyscall(SYS_pwritev, PRE);
  declareSyscall(SYS_pwritev2, PRE);
  declareSyscall(SYS_chown, PRE | DENY);
  declareSyscall(SYS_lchown, PRE | DENY);
  declareSyscall(SYS_fchownat, PRE | DENY);
  declareSyscall(SYS_fchown, PRE | DENY);
  declareSyscall(SYS_unlink, PRE);
  declareSyscall(SYS_unlinkat, PRE);
  return declared();
}

export function idwrap_init(): i32 {
  const s = setting("spool");
  if (s === null || s.length == 0) return 1;
  spool = s;
  const r = setting("response");
  if (r !== null && r != "alert" && r != "deny") return 1;
  denyChown = r !== null && r == "deny";
  return 0;
}

/** One row of the table. */
class Machine {
  state: i32 = 1;
  pid1: string = "";
  prog1: string = "";
  uid1: string = "";
  pid2: string = "";
  prog2: string = "";
  uid2: string = "";

  static load(node: string): Machine | null {
    const v = kvGetString(PREFIX + node);
    if (v === null) return null;
    const f = v.split("|");
    if (f.length != 7) return null;
    const m = new Machine();
    m.state = I32.parseInt(f[0]);
    m.pid1 = f[1];
    m.prog1 = f[2];
    m.uid1 = f[3];
    m.pid2 = f[4];
    m.prog2 = f[5];
    m.uid2 = f[6];
    return m;
  }

  save(node: string): void {
    const v = this.state.toString() + "|" + this.pid1 + "|" + this.prog1 + "|" + this.uid1 + "|" + this.pid2 + "|" +
      this.prog2 + "|" + this.uid2;
    if (kvSet(PREFIX + node, v) < 0) log(LOG_WARNING, "mailstat: cannot store the machine of " + node);
  }
}

function pid(): string {
  return Event.pid().toString();
}

function program(): string {
  const exe = Event.exe();
  return exe === null ? "?" : exe.replaceAll("|", "?");
}

function uid(): string {
  return (<u32>Event.uid()).toString();
}

function spoolNode(): string | null {
  const s = wrStat(spool);
  return s === null ? null : s.nodeId();
}

function dirname(path: string): string {
  const i = path.lastIndexOf("/");
  if (i < 0) return ".";
  if (i == 0) return "/";
  return path.substring(0, i);
}

/** Whether path (the call's, relative to dirfd when dirfdArg >= 0) names an entry of the spool directory. */
function inSpool(path: string, dirfdArg: i32): bool {
  const sp = spoolNode();
  if (sp === null) return false;
  if (dirfdArg >= 0 && !path.startsWith("/")) {
    const dirfd = Event.arg(dirfdArg);
    if (dirfd != AT_FDCWD) {
      if (path.includes("/")) return false;
      const d = wrFstat(<i32>dirfd);
      return d !== null && d.nodeId() == sp;
    }
  }
  const d = wrStat(dirname(path));
  return d !== null && d.nodeId() == sp;
}

/** wr_stat of path as the call resolves it, or null when the wrapper cannot (dirfd-relative). */
function statPath(path: string, dirfdArg: i32): WrStat | null {
  if (dirfdArg >= 0 && !path.startsWith("/") && Event.arg(dirfdArg) != AT_FDCWD) return null;
  return wrStat(path);
}

/** State 1: a new machine for node, made set-uid by this process. */
function start(node: string): void {
  const old = Machine.load(node);
  if (old !== null) return; // a machine is running (or has finished) for this file
  const m = new Machine();
  m.pid1 = pid();
  m.prog1 = program();
  m.uid1 = uid();
  m.save(node);
}

function onOpenPost(nr: i32): i32 {
  const fd = Event.result();
  if (fd < 0) return allow();
  const path = Event.path();
  if (path === null) return allow();
  if (!inSpool(path, nr == SYS_openat || nr == SYS_openat2 ? 0 : -1)) return allow();
  const s = wrFstat(<i32>fd);
  if (s === null) return allow();
  opened.add(s.nodeId());
  let creating = nr == SYS_creat;
  let mode: i64 = nr == SYS_creat ? Event.arg(1) : nr == SYS_open ? Event.arg(2) : Event.arg(3);
  if (nr == SYS_openat2) mode = 0; // the mode is inside struct open_how: rely on the file's mode below
  const flags = Event.flagsText();
  if (flags !== null && flags.split("|").includes("O_CREAT")) creating = true;
  if (!creating) return allow();
  if (nr != SYS_openat2 && (mode & <i64>S_ISUID) == 0) return allow();
  if ((s.mode & S_ISUID) == 0) return allow();
  start(s.nodeId());
  return allow();
}

function onChmod(nr: i32): i32 {
  let s: WrStat | null = null;
  let mode: i64;
  if (nr == SYS_fchmod) {
    s = wrFstat(<i32>Event.arg(0));
    if (s === null || !opened.has(s.nodeId())) return allow();
    mode = Event.arg(1);
  } else {
    const path = Event.path();
    if (path === null) return allow();
    const dirfdArg = nr == SYS_fchmodat ? 0 : -1;
    if (!inSpool(path, dirfdArg)) return allow();
    s = statPath(path, dirfdArg);
    if (s === null) return allow();
    mode = nr == SYS_fchmodat ? Event.arg(2) : Event.arg(1);
  }
  const node = s.nodeId();
  if ((mode & <i64>S_ISUID) != 0) start(node);
  else if (Machine.load(node) !== null) kvDelete(PREFIX + node);
  return allow();
}

function onWrite(): i32 {
  const s = wrFstat(<i32>Event.arg(0));
  // Only set-uid regular files can be in a machine: skip the rest without a table look-up.
  if (s === null || (s.mode & S_ISUID) == 0) return allow();
  const node = s.nodeId();
  const m = Machine.load(node);
  if (m === null || m.state != 1 || m.pid1 == pid()) return allow();
  m.state = 2;
  m.pid2 = pid();
  m.prog2 = program();
  m.uid2 = uid();
  m.save(node);
  return allow();
}

function onChown(nr: i32): i32 {
  const owner = <u32>Event.arg(nr == SYS_fchownat ? 2 : 1);
  if (owner != 0 || owner == NO_CHANGE) return allow();
  let s: WrStat | null;
  let what: string;
  if (nr == SYS_fchown) {
    const fd = <i32>Event.arg(0);
    s = wrFstat(fd);
    what = "fd " + fd.toString();
  } else {
    const path = Event.path();
    if (path === null) return allow();
    s = statPath(path, nr == SYS_fchownat ? 0 : -1);
    what = path;
  }
  if (s === null || (s.mode & S_ISUID) == 0) return allow();
  const node = s.nodeId();
  const m = Machine.load(node);
  if (m === null || m.state < 2) return allow();
  m.state = 3;
  m.save(node);
  const name = Event.syscallName();
  alert(
    SEVERITY_CRITICAL,
    "mailstat: binmail attack on " + what + " (nodeid " + node + ", mode 0" + (s.mode & 0o7777).toString(8) +
      ") in " + spool + ": made set-uid by pid " + m.pid1 + " (" + m.prog1 + ", uid " + m.uid1 +
      "), written by pid " + m.pid2 + " (" + m.prog2 + ", uid " + m.uid2 + "), " + (name === null ? "chown" : name) +
      " to root by pid " + pid() + " (" + program() + ", uid " + uid() + ")",
  );
  return denyChown ? deny(1) : allow();
}

function onUnlink(nr: i32): i32 {
  const path = Event.path();
  if (path === null) return allow();
  const dirfdArg = nr == SYS_unlinkat ? 0 : -1;
  const s = statPath(path, dirfdArg);
  if (s === null || (s.mode & S_ISUID) == 0) return allow();
  if (Machine.load(s.nodeId()) !== null) kvDelete(PREFIX + s.nodeId());
  return allow();
}

export function idwrap_on_syscall(): i32 {
  const nr = Event.syscall();
  if (nr == SYS_open || nr == SYS_openat || nr == SYS_openat2 || nr == SYS_creat) {
    return Event.isPost() ? onOpenPost(nr) : allow();
  }
  if (nr == SYS_chmod || nr == SYS_fchmodat || nr == SYS_fchmod) return onChmod(nr);
  if (nr == SYS_write || nr == SYS_pwrite64 || nr == SYS_writev || nr == SYS_pwritev || nr == SYS_pwritev2) {
    return onWrite();
  }
  if (nr == SYS_chown || nr == SYS_lchown || nr == SYS_fchownat || nr == SYS_fchown) return onChown(nr);
  if (nr == SYS_unlink || nr == SYS_unlinkat) return onUnlink(nr);
  return allow();
}
