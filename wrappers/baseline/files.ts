/**
 * Rules about files: credential reads, authorized_keys and preload writes,
 * system writes, setuid modes, /proc/PID/mem, kernel helpers, log and
 * history tampering; relative paths judged by dev:ino.
 */
import {
  allow,
  Event,
  SYS_chmod,
  SYS_creat,
  SYS_fchmodat,
  SYS_fchmodat2,
  SYS_fchownat,
  SYS_link,
  SYS_linkat,
  SYS_mkdirat,
  SYS_open,
  SYS_openat,
  SYS_openat2,
  SYS_rename,
  SYS_renameat,
  SYS_renameat2,
  SYS_rmdir,
  SYS_symlink,
  SYS_symlinkat,
  SYS_truncate,
  SYS_unlink,
  SYS_unlinkat,
  wrFstat,
  wrStat,
} from "../sdk/index";
import { cloudAbsolute, cloudAllowed, cloudComps, cloudRelative } from "./cloud";
import {
  AT_FDCWD,
  baseName,
  canonical,
  dirName,
  exePath,
  inList,
  nameIn,
  programIn,
  strPath,
  underAny,
} from "./lists";
import {
  fire,
  R_AUTHORIZED_KEYS,
  R_CLOUD_CREDENTIAL,
  R_CREDENTIAL_READ,
  R_HISTORY_TAMPER,
  R_INJECTION,
  R_KERNEL_HELPER,
  R_LOG_TAMPER,
  R_PRELOAD,
  R_SETUID,
  R_SYSTEM_WRITE,
  RESP_OFF,
  responses,
  strongest,
} from "./rules";
import {
  credentialAllow,
  credentialPaths,
  historyFiles,
  logAllow,
  logDirs,
  packageManagers,
  ptraceAllow,
  systemDirs,
} from "./settings";

/** Logs and histories this process opened for writing (dev:ino, path), for ftruncate. */
const openedIds = new Array<string>(0);
const openedPaths = new Array<string>(0);
const MAX_OPENED: i32 = 64;

const O_CREAT: i64 = 0o100;
const O_TMPFILE: i64 = 0o20000000;

/** Whether an open writes (access mode, O_CREAT, O_TRUNC), from the flags text where registers do not say. */
function openWrites(nr: i32, flagsText: string): bool {
  if (nr == SYS_creat) return true;
  return flagsText.includes("O_WRONLY") || flagsText.includes("O_RDWR") || flagsText.includes("O_CREAT") ||
    flagsText.includes("O_TRUNC") || flagsText.includes("O_TMPFILE");
}

function isSshPrivateKey(path: string): bool {
  const base = baseName(path);
  if (base.endsWith(".pub")) return false;
  if (base.startsWith("id_") && baseName(dirName(path)) == ".ssh") return true;
  return path.startsWith("/etc/ssh/ssh_host_") && base.endsWith("_key");
}

function isAuthorizedKeys(path: string): bool {
  const base = baseName(path);
  return (base == "authorized_keys" || base == "authorized_keys2") && baseName(dirName(path)) == ".ssh";
}

/**
 * The credential file a relative path names: relative to the cwd, compared
 * by dev:ino with each listed file; relative to another directory fd (a
 * bare name only), its directory compared with the listed file's directory.
 */
function relativeCredential(raw: string, dirfd: i32): string | null {
  if (dirfd != AT_FDCWD) {
    if (raw.includes("/")) return null;
    const dir = wrFstat(dirfd);
    if (dir === null) return null;
    for (let i = 0; i < credentialPaths.length; i++) {
      const c = credentialPaths[i];
      if (baseName(c) != raw) continue;
      const d = wrStat(dirName(c));
      if (d !== null && d.nodeId() == dir.nodeId()) return c;
    }
    return null;
  }
  const st = wrStat(raw);
  if (st === null) return null;
  const id = st.nodeId();
  for (let i = 0; i < credentialPaths.length; i++) {
    const c = wrStat(credentialPaths[i]);
    if (c !== null && c.nodeId() == id) return credentialPaths[i];
  }
  return null;
}

/** /proc/N/mem with N another process: N, else -1. */
function procMemTarget(path: string): i32 {
  if (!path.startsWith("/proc/") || !path.endsWith("/mem")) return -1;
  const mid = path.substring(6, path.length - 4);
  if (mid.length == 0 || mid.includes("/")) return -1;
  let n: i32 = 0;
  for (let i = 0; i < mid.length; i++) {
    const c = mid.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return -1;
    n = n * 10 + (c - 0x30);
  }
  return n == Event.pid() ? -1 : n;
}

/** Rules about opens: credential reads, authorized_keys, system writes, setuid modes, /proc/PID/mem, logs. */
export function onOpen(nr: i32): i32 {
  const raw = Event.path();
  if (raw === null) return allow();
  const path = canonical(raw);
  const ft = Event.flagsText();
  const flags = ft === null ? "" : ft;
  const writes = openWrites(nr, flags);
  const exe = exePath();
  const dirfd = nr == SYS_openat || nr == SYS_openat2 ? <i32>Event.arg(0) : AT_FDCWD;
  let v = allow();

  // 1. credentials
  if (!programIn(credentialAllow, exe)) {
    let cred: string | null = null;
    if (path.startsWith("/")) {
      if (inList(credentialPaths, path)) cred = path;
    } else if (nameIn(credentialPaths, baseName(raw))) {
      cred = relativeCredential(raw, dirfd);
    }
    if (cred !== null) {
      v = strongest(v, fire(R_CREDENTIAL_READ, cred + (writes ? " opened for writing" : " read"), "T1003.008"));
    } else if (isSshPrivateKey(path)) {
      v = strongest(v, fire(R_CREDENTIAL_READ, path + " read", "T1552.004"));
    }
    if (writes && isAuthorizedKeys(path)) {
      v = strongest(v, fire(R_AUTHORIZED_KEYS, path + " written", "T1098.004"));
    }
  }

  // 1b. cloud and Kubernetes credentials
  if (cloudComps.length > 0 && responses[R_CLOUD_CREDENTIAL] != RESP_OFF && !cloudAllowed(exe)) {
    let shown: string | null = null;
    if (path.startsWith("/")) {
      if (cloudAbsolute(path)) shown = path;
    } else {
      const rel = cloudRelative(raw, dirfd);
      if (rel !== null) shown = rel.length == 0 ? path : path + " (" + rel + ")";
    }
    if (shown !== null) {
      // Service account tokens are application access tokens (T1528); the rest, credentials in files.
      const technique = shown.includes("serviceaccount") ? "T1528" : "T1552.001";
      v = strongest(v, fire(R_CLOUD_CREDENTIAL, shown + (writes ? " opened for writing" : " read"), technique));
    }
  }

  if (writes) {
    v = strongest(v, kernelHelperWrite(path));
    v = strongest(v, systemWrite(path, dirfd));
    const target = procMemTarget(path);
    if (target > 0 && !programIn(ptraceAllow, exe)) {
      v = strongest(v, fire(R_INJECTION, path + " opened for writing", "T1055"));
    }
    if (nr == SYS_creat || flags.includes("O_TRUNC")) v = strongest(v, tamper(path, "truncated", dirfd));
    else if (isTamperTarget(path)) remember(raw, path);
  }

  // 3. setuid/setgid by open mode
  let mode: i64 = 0;
  let creates = false;
  if (nr == SYS_creat) {
    mode = Event.arg(1);
    creates = true;
  } else if (nr == SYS_open) {
    const f = Event.arg(1);
    creates = (f & O_CREAT) != 0 || (f & O_TMPFILE) == O_TMPFILE;
    mode = Event.arg(2);
  } else if (nr == SYS_openat) {
    const f = Event.arg(2);
    creates = (f & O_CREAT) != 0 || (f & O_TMPFILE) == O_TMPFILE;
    mode = Event.arg(3);
  }
  if (creates && (mode & 0o6000) != 0) {
    v = strongest(v, fire(R_SETUID, raw + " created with mode 0" + (mode & 0o7777).toString(8), "T1548.001"));
  }
  return v;
}

/**
 * Files that make the kernel itself start a program, as root and outside any
 * wrapped tree: a core dump's pipe helper, the module loader, the hotplug and
 * poweroff helpers, a binfmt_misc interpreter, a cgroup v1 release agent. Matched by their end, so that a
 * second procfs, sysfs or binfmt_misc mount elsewhere is the same file.
 */
const KERNEL_HELPERS: StaticArray<string> = [
  "/sys/kernel/core_pattern", "/sys/kernel/modprobe", "/sys/kernel/hotplug", "/sys/kernel/poweroff_cmd",
  "/kernel/uevent_helper", "/binfmt_misc/register", "/release_agent",
];
// A cgroup v1 release_agent is the classic container escape (T1611).
const KERNEL_HELPER_TECHNIQUES: StaticArray<string> = [
  "T1546", "T1547.006", "T1546", "T1546", "T1546", "T1546", "T1611",
];

/** 2a. writes to the kernel's usermode-helper settings: a way out of supervision. */
function kernelHelperWrite(path: string): i32 {
  for (let i = 0; i < KERNEL_HELPERS.length; i++) {
    if (path.endsWith(KERNEL_HELPERS[i])) {
      return fire(R_KERNEL_HELPER, path + " written: the kernel runs its helper outside supervision",
        KERNEL_HELPER_TECHNIQUES[i]);
    }
  }
  return allow();
}

/** 2. writes below the system directories, and /etc/ld.so.preload. dirfd: what a relative path is relative to. */
function systemWrite(path: string, dirfd: i32): i32 {
  if (path.length == 0) return allow();
  let dir: string | null = null;
  let shown = path;
  if (path.startsWith("/")) {
    if (path == "/etc/ld.so.preload") return fire(R_PRELOAD, "/etc/ld.so.preload written", "T1574.006");
    dir = underAny(systemDirs, path);
  } else {
    const parent = directParent(path, dirfd);
    if (parent !== null && parent == etcId && baseName(path) == "ld.so.preload") {
      return fire(R_PRELOAD, "/etc/ld.so.preload written (as " + path + ")", "T1574.006");
    }
    dir = relativeUnder(path, dirfd, systemIds, systemNames);
    if (dir !== null) shown = path + " (below " + dir + ")";
  }
  if (dir === null || programIn(packageManagers, exePath())) return allow();
  const technique = dir == "/etc" || dir == "/boot" ? "T1543" : "T1036.005";
  return fire(R_SYSTEM_WRITE, shown + " written", technique);
}

// Relative paths: the directories of a list are known by dev:ino (stat once
// per process), and a relative path's directory is walked up with ".." (as
// the process sees it) until one of them or the root. A path relative to
// another directory fd than the cwd is checked against its direct parent only.

const MAX_DEPTH: i32 = 32;
let etcId = "";
const systemIds = new Array<string>(0);
const systemNames = new Array<string>(0);
const logIds = new Array<string>(0);
const logNames = new Array<string>(0);

/** Stats each directory of a list ("/lib*": /lib, /lib32, /lib64, /libx32). */
function cacheIds(list: string[], ids: string[], names: string[]): void {
  for (let i = 0; i < list.length; i++) {
    const d = list[i];
    if (d.endsWith("*")) {
      const prefix = d.substring(0, d.length - 1);
      const suffixes = ["", "32", "64", "x32"];
      for (let j = 0; j < suffixes.length; j++) addId(prefix + suffixes[j], d, ids, names);
    } else {
      addId(d, d, ids, names);
    }
  }
}

function addId(path: string, name: string, ids: string[], names: string[]): void {
  const st = wrStat(path);
  if (st === null || !st.isDir()) return;
  ids.push(st.nodeId());
  names.push(name);
}

/** dev:ino of the directory a relative path's last component is in, or null. */
function directParent(path: string, dirfd: i32): string | null {
  if (dirfd == AT_FDCWD || path.includes("/")) {
    if (dirfd != AT_FDCWD) return null;
    const st = wrStat(dirName(path));
    return st === null ? null : st.nodeId();
  }
  const st = wrFstat(dirfd);
  return st === null ? null : st.nodeId();
}

/** The listed directory a relative path is below, or null. */
function relativeUnder(path: string, dirfd: i32, ids: string[], names: string[]): string | null {
  if (ids.length == 0) return null;
  if (dirfd != AT_FDCWD) {
    const parent = directParent(path, dirfd);
    if (parent === null) return null;
    for (let i = 0; i < ids.length; i++) if (ids[i] == parent) return names[i];
    return null;
  }
  let cur = dirName(path);
  let prev = "";
  for (let depth = 0; depth < MAX_DEPTH; depth++) {
    const st = wrStat(cur);
    if (st === null) return null;
    const id = st.nodeId();
    if (id == prev) return null; // the root
    for (let i = 0; i < ids.length; i++) if (ids[i] == id) return names[i];
    prev = id;
    cur = cur + "/..";
  }
  return null;
}

function isTamperTarget(path: string): bool {
  if (path.startsWith("/") && underAny(logDirs, path) !== null) return true;
  return inList(historyFiles, baseName(path));
}

/** Remembers a log opened for writing, so a later ftruncate of its fd is recognised. */
function remember(raw: string, path: string): void {
  const st = wrStat(raw);
  if (st === null) return;
  const id = st.nodeId();
  for (let i = 0; i < openedIds.length; i++) if (openedIds[i] == id) return;
  if (openedIds.length >= MAX_OPENED) {
    openedIds.shift();
    openedPaths.shift();
  }
  openedIds.push(id);
  openedPaths.push(path);
}

/** ftruncate of a log or history this process opened for writing. */
export function onFtruncate(): i32 {
  if (openedIds.length == 0) return allow();
  const st = wrFstat(<i32>Event.arg(0));
  if (st === null) return allow();
  const id = st.nodeId();
  for (let i = 0; i < openedIds.length; i++) {
    if (openedIds[i] == id) return tamper(openedPaths[i], "truncated", AT_FDCWD);
  }
  return allow();
}

/** 9. truncating, unlinking or renaming logs and shell histories. */
function tamper(path: string, how: string, dirfd: i32): i32 {
  if (path.length == 0 || programIn(logAllow, exePath())) return allow();
  if (path.startsWith("/")) {
    if (underAny(logDirs, path) !== null) return fire(R_LOG_TAMPER, path + " " + how, "T1070.002");
  } else {
    const dir = relativeUnder(path, dirfd, logIds, logNames);
    if (dir !== null) return fire(R_LOG_TAMPER, path + " (below " + dir + ") " + how, "T1070.002");
  }
  if (inList(historyFiles, baseName(path))) {
    return fire(R_HISTORY_TAMPER, path + " " + how, "T1070.003");
  }
  return allow();
}

/** Calls that change a path: unlink, rename, link, mkdir, chmod, chown, truncate. */
export function onPathChange(nr: i32): i32 {
  const p1 = Event.path();
  const p2 = Event.path2();
  const a = canonical(strPath(p1));
  const b = canonical(strPath(p2));
  // The directory fds the two paths are relative to.
  let fa = AT_FDCWD;
  let fb = AT_FDCWD;
  if (nr == SYS_unlinkat || nr == SYS_mkdirat || nr == SYS_fchmodat || nr == SYS_fchmodat2 || nr == SYS_fchownat) {
    fa = <i32>Event.arg(0);
  } else if (nr == SYS_renameat || nr == SYS_renameat2) {
    fa = <i32>Event.arg(0);
    fb = <i32>Event.arg(2);
  } else if (nr == SYS_linkat) {
    fb = <i32>Event.arg(2);
  } else if (nr == SYS_symlinkat) {
    fb = <i32>Event.arg(1);
  }
  let v = allow();
  const exe = exePath();
  if (nr == SYS_unlink || nr == SYS_unlinkat || nr == SYS_rmdir) {
    v = strongest(v, systemWrite(a, fa));
    if (nr != SYS_rmdir) v = strongest(v, tamper(a, "deleted", fa));
  } else if (nr == SYS_truncate) {
    v = strongest(v, systemWrite(a, fa));
    v = strongest(v, tamper(a, "truncated", fa));
  } else if (nr == SYS_rename || nr == SYS_renameat || nr == SYS_renameat2) {
    v = strongest(v, systemWrite(a, fa));
    v = strongest(v, systemWrite(b, fb));
    v = strongest(v, tamper(a, "renamed", fa));
    if (isAuthorizedKeys(b) && !programIn(credentialAllow, exe)) {
      v = strongest(v, fire(R_AUTHORIZED_KEYS, b + " written", "T1098.004"));
    }
  } else if (nr == SYS_link || nr == SYS_linkat || nr == SYS_symlink || nr == SYS_symlinkat) {
    v = strongest(v, systemWrite(b, fb));
  } else if (nr == SYS_chmod || nr == SYS_fchmodat || nr == SYS_fchmodat2) {
    const mode = Event.arg(nr == SYS_chmod ? 1 : 2);
    v = strongest(v, systemWrite(a, fa));
    if ((mode & 0o6000) != 0) {
      v = strongest(v, fire(R_SETUID, strPath(p1) + " set to mode 0" + (mode & 0o7777).toString(8), "T1548.001"));
    }
  } else {
    // mkdir, mkdirat, chown, lchown, fchownat
    v = strongest(v, systemWrite(a, fa));
  }
  return v;
}

/** Stats, once per process, the directories relative paths are judged against (system_dirs, log_dirs, /etc). */
export function cacheDirIds(): void {
  cacheIds(systemDirs, systemIds, systemNames);
  cacheIds(logDirs, logIds, logNames);
  const etc = wrStat("/etc");
  if (etc !== null) etcId = etc.nodeId();
}
