/**
 * baseline: intrusion behaviour any program may show, flagged out of the box
 * (issue 8; docs/rules.md lists every rule, its settings and its ATT&CK id).
 *
 * Every alert message starts with the rule id, then what happened, the
 * program (its executable) and the ATT&CK technique:
 *   "baseline.credential-read: /etc/shadow read by /usr/bin/head (T1003.008)"
 *
 * Settings (all optional; lists are JSON arrays of strings, or one string
 * with comma-separated entries; a program entry without "/" matches the
 * executable's base name, one with "/" its whole path; a trailing "*" makes
 * an entry a prefix):
 *   response.<rule>   alert | deny | kill | off, per rule (<rule> without the
 *                     "baseline." prefix); defaults in RULES below
 *   credential_allow, package_managers, tmp_exec_allow, services,
 *   service_shell_allow, shells, ptrace_allow, kernel_allow,
 *   raw_socket_allow, log_allow: program lists
 *   credential_paths, system_dirs, tmp_dirs, log_dirs, history_files: path lists
 *   cloud_credential_paths: path patterns ("~/" any home of home_dirs, "*"
 *                     within a component, "**" any number of components)
 *   cloud_credential_allow: programs, matched on the executable and on the
 *                     script an interpreter runs (a "#!" script's execve
 *                     path; python3 -S SCRIPT; python3 -m MODULE)
 *   home_dirs:        where "~" is: "/root", "/home/*", "**" (anywhere)
 *   inbound_only:     programs that must not connect out (inet/inet6)
 *   inbound_only_allow_loopback: true | false (default true)
 *   inbound_only_allow_destinations: "HOST", "HOST:PORT", "[V6]:PORT",
 *                     "*:PORT", "10.1.*"
 *
 * Paths are the ones the program passed, made canonical where they are
 * absolute ("//", "/./" and ".." folded, symbolic links not followed); a
 * relative path is checked only where its file can be identified by stat
 * (credential files) or after the fact (execution, from the new program's
 * executable path).
 */
import {
  alert,
  allow,
  declared,
  declareLifecycle,
  declareSyscall,
  DENY,
  deny,
  EPERM,
  Event,
  EXEC,
  EXIT,
  foldPath,
  kill,
  kvDelete,
  kvGetString,
  kvList,
  kvSet,
  log,
  LOG_ERROR,
  PRE,
  setting,
  SEVERITY_CRITICAL,
  SEVERITY_HIGH,
  SEVERITY_MEDIUM,
  SYS_accept,
  SYS_accept4,
  SYS_bpf,
  SYS_chmod,
  SYS_chown,
  SYS_connect,
  SYS_creat,
  SYS_execve,
  SYS_execveat,
  SYS_fchmod,
  SYS_fchmodat,
  SYS_fchmodat2,
  SYS_fchownat,
  SYS_finit_module,
  SYS_ftruncate,
  SYS_init_module,
  SYS_kexec_file_load,
  SYS_kexec_load,
  SYS_lchown,
  SYS_link,
  SYS_linkat,
  SYS_listen,
  SYS_mkdir,
  SYS_mkdirat,
  SYS_mount,
  SYS_open,
  SYS_openat,
  SYS_openat2,
  SYS_process_vm_writev,
  SYS_ptrace,
  SYS_rename,
  SYS_renameat,
  SYS_renameat2,
  SYS_rmdir,
  SYS_sendto,
  SYS_setns,
  SYS_socket,
  SYS_symlink,
  SYS_symlinkat,
  SYS_truncate,
  SYS_unlink,
  SYS_unlinkat,
  SYS_unshare,
  wrFstat,
  wrStat,
} from "../sdk/index";

export { idwrap_abi_version } from "../sdk/index";

// ---------------------------------------------------------------- syscalls


const DECLARED: StaticArray<i32> = [
  SYS_open, SYS_openat, SYS_openat2, SYS_creat, SYS_truncate, SYS_ftruncate, SYS_rename, SYS_renameat, SYS_renameat2, SYS_mkdir,
  SYS_mkdirat, SYS_rmdir, SYS_link, SYS_linkat, SYS_unlink, SYS_unlinkat, SYS_symlink, SYS_symlinkat, SYS_chmod,
  SYS_fchmod, SYS_fchmodat, SYS_chown, SYS_lchown, SYS_fchownat, SYS_execve, SYS_execveat, SYS_socket,
  SYS_listen, SYS_accept, SYS_accept4, SYS_ptrace, SYS_process_vm_writev, SYS_init_module, SYS_finit_module, SYS_bpf,
  SYS_mount, SYS_unshare, SYS_setns, SYS_kexec_load, SYS_kexec_file_load, SYS_connect, SYS_sendto,
];

// ------------------------------------------------------------------- rules

const R_CREDENTIAL_READ: i32 = 0;
const R_AUTHORIZED_KEYS: i32 = 1;
const R_PRELOAD: i32 = 2;
const R_SYSTEM_WRITE: i32 = 3;
const R_SETUID: i32 = 4;
const R_TMP_EXEC: i32 = 5;
const R_MEMFD_EXEC: i32 = 6;
const R_SERVICE_SHELL: i32 = 7;
const R_INJECTION: i32 = 8;
const R_MODULE: i32 = 9;
const R_BPF: i32 = 10;
const R_MOUNT: i32 = 11;
const R_NAMESPACE: i32 = 12;
const R_KEXEC: i32 = 13;
const R_RAW_SOCKET: i32 = 14;
const R_LOG_TAMPER: i32 = 15;
const R_HISTORY_TAMPER: i32 = 16;
const R_CLOUD_CREDENTIAL: i32 = 17;
const R_INBOUND_ONLY: i32 = 18;
const R_KERNEL_HELPER: i32 = 19;

const RULES: StaticArray<string> = [
  "credential-read", "authorized-keys-write", "preload-write", "system-write", "setuid-create", "tmp-exec",
  "memfd-exec", "service-shell", "process-injection", "module-load", "bpf-load", "mount", "namespace-change",
  "kexec-load", "raw-socket", "log-tamper", "history-tamper", "cloud-credential-read", "inbound-only-connect",
  "kernel-helper-write",
];
const SEVERITIES: StaticArray<i32> = [
  SEVERITY_HIGH, SEVERITY_HIGH, SEVERITY_CRITICAL, SEVERITY_MEDIUM, SEVERITY_HIGH, SEVERITY_MEDIUM,
  SEVERITY_HIGH, SEVERITY_HIGH, SEVERITY_HIGH, SEVERITY_CRITICAL, SEVERITY_HIGH, SEVERITY_MEDIUM,
  SEVERITY_MEDIUM, SEVERITY_CRITICAL, SEVERITY_MEDIUM, SEVERITY_HIGH, SEVERITY_HIGH, SEVERITY_HIGH, SEVERITY_HIGH,
  SEVERITY_CRITICAL,
];

const RESP_OFF: i32 = -1;
const RESP_ALERT: i32 = 0;
const RESP_DENY: i32 = 1;
const RESP_KILL: i32 = 2;

/** Default responses: deny where a false positive cannot harm. */
const DEFAULT_RESPONSES: StaticArray<i32> = [
  RESP_ALERT, RESP_ALERT, RESP_DENY, RESP_ALERT, RESP_ALERT, RESP_ALERT, RESP_ALERT, RESP_ALERT, RESP_ALERT,
  RESP_DENY, RESP_ALERT, RESP_ALERT, RESP_ALERT, RESP_ALERT, RESP_ALERT, RESP_ALERT, RESP_ALERT, RESP_ALERT,
  RESP_ALERT, RESP_DENY,
];

const responses = new StaticArray<i32>(20);

// ------------------------------------------------------------------- lists

const D_CREDENTIAL_ALLOW = '["sshd","sshd-session","sudo","su","login","passwd","chpasswd","chage","unix_chkpwd",' +
  '"useradd","userdel","usermod","groupadd","groupdel","groupmod","gpasswd","newusers","pwck","grpck","vipw",' +
  '"vigr","ssh","ssh-add","ssh-agent","ssh-keygen","scp","sftp","systemd","cron","polkitd"]';
const D_CREDENTIAL_PATHS = '["/etc/shadow","/etc/gshadow","/etc/shadow-","/etc/gshadow-"]';
const D_PACKAGE_MANAGERS = '["dpkg","dpkg-deb","dpkg-divert","dpkg-trigger","dpkg-statoverride","apt","apt-get",' +
  '"aptitude","unattended-upgrade","rpm","rpmdb","yum","dnf","dnf-3","microdnf","zypper","apk","pacman",' +
  '"update-alternatives","ldconfig","ldconfig.real"]';
const D_SYSTEM_DIRS = '["/etc","/boot","/usr/bin","/usr/sbin","/bin","/sbin","/lib*"]';
const D_TMP_DIRS = '["/tmp","/dev/shm","/var/tmp"]';
const D_SERVICES = '["nginx","apache2","httpd","lighttpd","php-fpm*","mysqld","mariadbd","postgres",' +
  '"redis-server","mongod","named","vsftpd","proftpd","memcached"]';
const D_SERVICE_SHELL_ALLOW = '["sshd","sshd-session","login","systemd","cron","sudo","su","tmux*","screen"]';
const D_SHELLS = '["sh","bash","dash","zsh","ksh","ksh93","mksh","csh","tcsh","fish","ash","busybox",' +
  '"python*","perl*","ruby*","php*","node","nodejs","lua*","tclsh*"]';
const D_PTRACE_ALLOW = '["gdb","strace","ltrace","lldb*","perf"]';
const D_KERNEL_ALLOW = '["modprobe","insmod","rmmod","kmod","systemd","systemd-udevd","udevadm","mount",' +
  '"umount","fusermount","fusermount3"]';
const D_RAW_SOCKET_ALLOW = '["ping","ping4","ping6","arping","traceroute*","dhclient","dhcpcd","NetworkManager",' +
  '"systemd-networkd"]';
const D_LOG_DIRS = '["/var/log"]';
const D_LOG_ALLOW = '["logrotate","rsyslogd","syslog-ng","systemd-journald","journalctl","savelog","apt","apt-get",' +
  '"aptitude","unattended-upgrade"]';
const D_CLOUD_CREDENTIAL_PATHS = '["~/.aws/credentials","~/.aws/sso/cache/**","~/.aws/cli/cache/**",' +
  '"~/.config/gcloud/credentials.db","~/.config/gcloud/access_tokens.db",' +
  '"~/.config/gcloud/application_default_credentials.json","~/.config/gcloud/legacy_credentials/**",' +
  '"~/.azure/accessTokens.json","~/.azure/msal_token_cache.json","~/.azure/msal_token_cache.bin",' +
  '"~/.azure/service_principal_entries.json","~/.azure/service_principal_entries.bin","~/.kube/config",' +
  '"/var/run/secrets/kubernetes.io/serviceaccount/token","/run/secrets/kubernetes.io/serviceaccount/token",' +
  '"/etc/kubernetes/admin.conf","/etc/kubernetes/super-admin.conf","/etc/kubernetes/pki/**/*.key"]';
const D_CLOUD_CREDENTIAL_ALLOW = '["aws","aws_completer","aws-iam-authenticator","eksctl","gcloud","gsutil","bq",' +
  '"gcloud.py","gsutil.py","bq.py","docker-credential-gcloud","gke-gcloud-auth-plugin","az","azure.cli",' +
  '"kubectl","kubelet","kubeadm","kube-apiserver","kube-controller-manager","kube-scheduler","kube-proxy",' +
  '"kubelogin","helm","k9s","k3s","minikube","kind","terraform","terraform-provider-*"]';
const D_HOME_DIRS = '["/root","/home/*"]';
const D_INBOUND_ONLY = '["nginx","apache2","httpd","lighttpd","vsftpd","proftpd","memcached"]';
const D_HISTORY_FILES = '[".bash_history",".zsh_history",".sh_history",".history",".ash_history",' +
  '".python_history",".mysql_history",".psql_history"]';

let credentialAllow: string[] = [];
let credentialPaths: string[] = [];
let packageManagers: string[] = [];
let systemDirs: string[] = [];
let tmpDirs: string[] = [];
let tmpExecAllow: string[] = [];
let services: string[] = [];
let serviceShellAllow: string[] = [];
let shells: string[] = [];
let ptraceAllow: string[] = [];
let kernelAllow: string[] = [];
let rawSocketAllow: string[] = [];
let logDirs: string[] = [];
let logAllow: string[] = [];
let historyFiles: string[] = [];
let cloudPaths: string[] = [];
let cloudAllow: string[] = [];
let homeDirs: string[] = [];
let inboundOnly: string[] = [];
let inboundAllowLoopback = true;
let inboundAllowDestinations: string[] = [];

// ------------------------------------------------------ per-process state

/** This process called listen or accept: it serves the network. */
let serving = false;
/** The last execve of this process was already alerted in pre. */
let execAlerted = false;
/** Logs and histories this process opened for writing (dev:ino, path), for ftruncate. */
const openedIds = new Array<string>(0);
const openedPaths = new Array<string>(0);
const MAX_OPENED: i32 = 64;

const SERVING_PREFIX = "serving/";

/** The path of this process's last execve, until the exec lifecycle confirms it. */
let pendingExec = "";
/** The script argument of this process's last execve (scriptArgument), until the exec lifecycle. */
let pendingScriptArg = "";
/** The script the current program runs (the execve path, when the kernel ran an interpreter for it), or "". */
let scriptPath = "";
/** The script or module an interpreter was started on (python3 -S /x/gcloud.py, python3 -Im azure.cli), or "". */
let scriptArg = "";
/** Destinations already alerted by inbound-only-connect in this process (alert response only). */
const alertedDestinations = new Array<string>(0);
const MAX_DESTINATIONS: i32 = 32;

// ----------------------------------------------------------------- helpers

/**
 * Parses a list setting: a JSON array of strings (escapes \" \\ \/ \n \t
 * understood), or plain text split at commas.
 */
export function parseList(text: string): string[] {
  const out = new Array<string>(0);
  const s = text.trim();
  if (s.length == 0) return out;
  if (s.charCodeAt(0) != 0x5b) { // not "[": comma-separated text
    const parts = s.split(",");
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i].trim();
      if (p.length > 0) out.push(p);
    }
    return out;
  }
  let i = 1;
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c == 0x22) { // "
      let cur = "";
      i++;
      while (i < s.length && s.charCodeAt(i) != 0x22) {
        let ch = s.charCodeAt(i);
        if (ch == 0x5c && i + 1 < s.length) { // backslash
          i++;
          ch = s.charCodeAt(i);
          if (ch == 0x6e) ch = 0x0a;
          else if (ch == 0x74) ch = 0x09;
        }
        cur += String.fromCharCode(ch);
        i++;
      }
      out.push(cur);
    }
    i++;
  }
  return out;
}

function listSetting(key: string, def: string): string[] {
  const v = setting(key);
  return parseList(v === null ? def : v);
}

function baseName(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? path : path.substring(i + 1);
}

function dirName(path: string): string {
  const i = path.lastIndexOf("/");
  return i <= 0 ? (i == 0 ? "/" : ".") : path.substring(0, i);
}

/** One name pattern against a value: exact, or a prefix with a trailing "*". */
function nameMatches(pattern: string, value: string): bool {
  if (pattern.endsWith("*")) return value.startsWith(pattern.substring(0, pattern.length - 1));
  return pattern == value;
}

/** A program list against an executable path (entries with "/" match the whole path, others the base name). */
function programIn(list: string[], exe: string): bool {
  const base = baseName(exe);
  for (let i = 0; i < list.length; i++) {
    const p = list[i];
    if (nameMatches(p, p.includes("/") ? exe : base)) return true;
  }
  return false;
}

/** A canonical absolute path ("//", "/./", ".." folded), or the path itself if relative. */
export function canonical(path: string): string {
  if (path.length == 0 || path.charCodeAt(0) != 0x2f) return path;
  return foldPath(path);
}

/** Whether path is a directory of the list or below one ("/lib*" is any top component starting "lib"). */
function underAny(list: string[], path: string): string | null {
  for (let i = 0; i < list.length; i++) {
    const d = list[i];
    if (d.endsWith("*")) {
      if (path.startsWith(d.substring(0, d.length - 1))) return d;
      continue;
    }
    if (path == d || path.startsWith(d == "/" ? d : d + "/")) return d;
  }
  return null;
}

/** Whether any path of the list has this base name. */
function nameIn(list: string[], base: string): bool {
  for (let i = 0; i < list.length; i++) if (baseName(list[i]) == base) return true;
  return false;
}

function inList(list: string[], value: string): bool {
  for (let i = 0; i < list.length; i++) if (nameMatches(list[i], value)) return true;
  return false;
}

function exePath(): string {
  const e = Event.exe();
  return e === null ? "?" : e;
}

/** Raises the rule's alert and returns its verdict (allow for an "alert" rule). */
function fire(rule: i32, what: string, technique: string): i32 {
  const resp = responses[rule];
  if (resp == RESP_OFF) return allow();
  alert(SEVERITIES[rule], "baseline." + RULES[rule] + ": " + what + " by " + exePath() + " (" + technique + ")");
  if (resp == RESP_DENY) return deny(EPERM);
  if (resp == RESP_KILL) return kill();
  return allow();
}

/** Fire only in a hook that can still act on the call (lifecycle: alert only). */
function fireAlertOnly(rule: i32, what: string, technique: string): void {
  if (responses[rule] == RESP_OFF) return;
  alert(SEVERITIES[rule], "baseline." + RULES[rule] + ": " + what + " by " + exePath() + " (" + technique + ")");
}

/** Combines verdicts: the strongest wins (kill > deny > allow). */
function strongest(a: i32, b: i32): i32 {
  const aa = a & 0xff;
  const bb = b & 0xff;
  if (aa == 2 || bb == 2) return kill();
  if (aa == 1) return a;
  if (bb == 1) return b;
  return allow();
}

function strPath(p: string | null): string {
  return p === null ? "" : p;
}

// ------------------------------------------------------------- path rules

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
function onOpen(nr: i32): i32 {
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

const AT_FDCWD: i32 = -100;
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
function onFtruncate(): i32 {
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
function onPathChange(nr: i32): i32 {
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

// ------------------------------------------------ cloud and kube credentials

// Patterns (cloud_credential_paths): absolute, or "~/…" for any home of
// home_dirs; "*" within a component matches any run of characters, "**" as a
// whole component any number of components (zero included). Patterns are
// split into components once, at init; "~/" patterns once per home.
const cloudComps = new Array<string[]>(0);
/** The same patterns' components without the home: what a relative path is matched against. */
const cloudTails = new Array<string[]>(0);

/** Whether one component matches a pattern component with "*" wildcards. */
export function wildMatch(p: string, s: string): bool {
  let pi = 0;
  let si = 0;
  let star = -1;
  let mark = 0;
  while (si < s.length) {
    if (pi < p.length && p.charCodeAt(pi) == 0x2a) {
      star = pi++;
      mark = si;
    } else if (pi < p.length && p.charCodeAt(pi) == s.charCodeAt(si)) {
      pi++;
      si++;
    } else if (star >= 0) {
      pi = star + 1;
      si = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.length && p.charCodeAt(pi) == 0x2a) pi++;
  return pi == p.length;
}

/** Whether the components s[si..] match the pattern components p[pi..] ("**" spans components). */
function compsMatch(p: string[], pi: i32, s: string[], si: i32): bool {
  while (pi < p.length) {
    const c = p[pi];
    if (c == "**") {
      for (let k = si; k <= s.length; k++) if (compsMatch(p, pi + 1, s, k)) return true;
      return false;
    }
    if (si >= s.length || !wildMatch(c, s[si])) return false;
    pi++;
    si++;
  }
  return si == s.length;
}

/** Components of a path: "/a/b" gives ["", "a", "b"]; empty and "." components dropped after the first. */
function splitPath(path: string): string[] {
  const parts = path.split("/");
  const out = new Array<string>(0);
  for (let i = 0; i < parts.length; i++) {
    const c = parts[i];
    if (i > 0 && (c.length == 0 || c == ".")) continue;
    if (i == 0 && c == ".") continue;
    out.push(c);
  }
  return out;
}

function compileCloudPatterns(): void {
  for (let i = 0; i < cloudPaths.length; i++) {
    let p = cloudPaths[i].trim();
    if (p.endsWith("/")) p += "**"; // a directory: everything below it
    if (p.startsWith("~/")) {
      const tail = p.substring(2);
      cloudTails.push(splitPath(tail));
      for (let h = 0; h < homeDirs.length; h++) {
        let home = homeDirs[h];
        while (home.length > 1 && home.endsWith("/")) home = home.substring(0, home.length - 1);
        cloudComps.push(splitPath(home == "/" ? "/" + tail : home + "/" + tail));
      }
    } else if (p.startsWith("/")) {
      const comps = splitPath(p);
      cloudComps.push(comps);
      cloudTails.push(comps.slice(1));
    }
  }
}

/** Whether an absolute canonical path matches a pattern. */
function cloudAbsolute(path: string): bool {
  const s = splitPath(path);
  for (let i = 0; i < cloudComps.length; i++) if (compsMatch(cloudComps[i], 0, s, 0)) return true;
  return false;
}

/** Components of t from k on without a wildcard. */
function literals(t: string[], k: i32): i32 {
  let n = 0;
  for (let i = k; i < t.length; i++) if (!t[i].includes("*")) n++;
  return n;
}

/**
 * Whether the components r[m..] match t[k..] for some m (r's components
 * before m are a home) and k where t[k..] has two components without a
 * wildcard at least: ".aws/credentials", "sso/cache/x.json", not
 * "cache/x.json" (a directory called cache is no AWS token cache).
 */
function tailMatch(t: string[], r: string[]): bool {
  for (let m = 0; m + 2 <= r.length; m++) {
    for (let k = 0; k < t.length; k++) {
      if (t[k] != "**" && literals(t, k) >= 2 && compsMatch(t, k, r, m)) return true;
    }
  }
  return false;
}

/**
 * A relative path against the patterns' tails ("" when it matches as
 * written, the directory-qualified name when its directory was verified,
 * null for no match): its components (those after
 * the last "..") must end with the end of a pattern, from one of its
 * components on that holds two without a wildcard at least (the file and
 * its directory: ".aws/credentials", not a bare "credentials"). A
 * bare name relative to the cwd gets its directory's name first when the
 * directory is the one a pattern names: "credentials" in a cwd that is
 * "../.aws" as the process sees it (dev:ino) is ".aws/credentials".
 */
function cloudRelative(raw: string, dirfd: i32): string | null {
  const all = splitPath(raw);
  let from = 0;
  for (let i = 0; i < all.length; i++) if (all[i] == "..") from = i + 1;
  const s = all.slice(from);
  if (s.length == 0) return null;
  const last = s[s.length - 1];
  for (let i = 0; i < cloudTails.length; i++) {
    const t = cloudTails[i];
    if (t.length < 2 || !wildMatch(t[t.length - 1], last)) continue;
    let r = s;
    if (s.length == 1) {
      // A bare name: the pattern's file and directory must both be named (".kube/config", not "pki/**/*.key").
      if (dirfd != AT_FDCWD || all.length != 1) continue; // in the cwd ("config", "./config"), not "../config"
      const j = t.length - 2;
      if (t[j].includes("*") || t[j + 1].includes("*")) continue;
      const here = wrStat(".");
      const named = wrStat("../" + t[j]);
      if (here === null || named === null || here.nodeId() != named.nodeId()) continue;
      r = [t[j], last];
    }
    if (tailMatch(t, r)) return r === s ? "" : r.join("/");
  }
  return null;
}

/** Whether this process's program (or the script it runs) may read cloud credentials. */
function cloudAllowed(exe: string): bool {
  if (programIn(cloudAllow, exe)) return true;
  if (scriptPath.length > 0 && programIn(cloudAllow, scriptPath)) return true;
  return scriptArg.length > 0 && programIn(cloudAllow, scriptArg);
}

/** Interpreter flags that take no argument (python, perl, ruby): they may come before the script. */
const PLAIN_FLAGS = "bBdEhiIOqsSuvw";

/**
 * The script an interpreter's command line names: the first argument, after
 * flags that take no argument only ("-S", "-Es"), or the module of "-m M"
 * ("-Im M"). Anything else before it (an option with a value, "-c CODE")
 * and there is none: what runs then is not what the argument says.
 */
function scriptArgument(): string {
  const n = Event.argc();
  for (let i = 1; i < n && i < 8; i++) {
    const a = Event.argvAt(i);
    if (a === null || a.length == 0) return "";
    if (a.charCodeAt(0) != 0x2d) return canonical(a); // not "-": the script
    for (let j = 1; j < a.length; j++) {
      const c = a.charAt(j);
      if (c == "m" && j == a.length - 1) {
        const m = i + 1 < n ? Event.argvAt(i + 1) : null;
        return m === null ? "" : m;
      }
      if (!PLAIN_FLAGS.includes(c)) return ""; // an option with a value (-c, -W, -X) or unknown
    }
  }
  return "";
}

// --------------------------------------------------- inbound-only programs

/** "inet:1.2.3.4:80" → ["1.2.3.4", "80"]; "inet6:[::1]:80" → ["::1", "80"]; others null. */
function splitInet(addr: string): string[] | null {
  if (addr.startsWith("inet:")) {
    const rest = addr.substring(5);
    const c = rest.lastIndexOf(":");
    if (c < 0) return null;
    return [rest.substring(0, c), rest.substring(c + 1)];
  }
  if (addr.startsWith("inet6:[")) {
    const rest = addr.substring(7);
    const c = rest.lastIndexOf("]:");
    if (c < 0) return null;
    return [rest.substring(0, c), rest.substring(c + 2)];
  }
  return null;
}

/** 127.0.0.0/8, ::1, the unspecified addresses (a connect to them reaches this host) and their v4-mapped forms. */
export function isLoopback(host: string): bool {
  if (host.startsWith("127.") || host == "0.0.0.0" || host == "::1" || host == "::" || host == "::ffff:0:0") {
    return true;
  }
  // v4-mapped 127.x.y.z, as the host prints it: "::ffff:7fXX:YYYY".
  return host.startsWith("::ffff:7f") && host.length > 13 && host.charCodeAt(13) == 0x3a;
}

/** One inbound_only_allow_destinations entry: "HOST", "HOST:PORT", "[V6]:PORT", "*:PORT"; "10.1.*" a prefix. */
export function destinationMatches(entry: string, host: string, port: string): bool {
  let eh = entry.trim();
  let ep = "";
  if (eh.startsWith("[")) {
    const close = eh.indexOf("]");
    if (close < 0) return false;
    if (close + 1 < eh.length) {
      if (eh.charCodeAt(close + 1) != 0x3a) return false;
      ep = eh.substring(close + 2);
    }
    eh = eh.substring(1, close);
  } else {
    const first = eh.indexOf(":");
    if (first >= 0 && first == eh.lastIndexOf(":")) { // one colon: HOST:PORT (IPv4, or "*")
      ep = eh.substring(first + 1);
      eh = eh.substring(0, first);
    }
  }
  if (ep.length > 0 && ep != "*" && ep != port) return false;
  return eh == "*" || nameMatches(eh, host);
}

function hostPort(host: string, port: string): string {
  return host.includes(":") ? "[" + host + "]:" + port : host + ":" + port;
}

/** connect, or sendto with an address, to an inet address by a program of inbound_only. */
function onOutbound(nr: i32): i32 {
  if (inboundOnly.length == 0 || responses[R_INBOUND_ONLY] == RESP_OFF) return allow();
  const exe = exePath();
  if (!programIn(inboundOnly, exe)) return allow();
  const addr = Event.addr();
  if (addr === null) return allow(); // sendto on a connected socket
  const hp = splitInet(addr);
  if (hp === null) return allow(); // unix, netlink, AF_UNSPEC
  const host = hp[0];
  const port = hp[1];
  if (inboundAllowLoopback && isLoopback(host)) return allow();
  for (let i = 0; i < inboundAllowDestinations.length; i++) {
    if (destinationMatches(inboundAllowDestinations[i], host, port)) return allow();
  }
  const dest = hostPort(host, port);
  if (responses[R_INBOUND_ONLY] == RESP_ALERT) {
    // One alert per destination and process: a UDP sender would raise one per datagram.
    for (let i = 0; i < alertedDestinations.length; i++) if (alertedDestinations[i] == dest) return allow();
    if (alertedDestinations.length >= MAX_DESTINATIONS) alertedDestinations.shift();
    alertedDestinations.push(dest);
  }
  const call = nr == SYS_connect ? "connect to " : "sendto ";
  return fire(R_INBOUND_ONLY, "outbound " + call + dest + " from an inbound-only program", "T1071");
}

// ------------------------------------------------------------ exec rules

function onExec(nr: i32): i32 {
  execAlerted = false;
  // The exec rules judge how the program was named (a relative path, a memfd by AT_EMPTY_PATH, a script's "#!"
  // name): the string as passed. The file that runs is judged from /proc/PID/exe at the exec lifecycle.
  const raw = Event.rawPath();
  const path = canonical(strPath(raw));
  pendingExec = path;
  pendingScriptArg = scriptArgument();
  const exe = exePath();
  let v = allow();
  // 4. memfd and temporary places
  const emptyPath = nr == SYS_execveat && (Event.arg(4) & 0x1000) != 0 && strPath(raw).length == 0;
  if (emptyPath) {
    v = strongest(v, fire(R_MEMFD_EXEC, "fd " + Event.arg(0).toString() + " executed (execveat AT_EMPTY_PATH)", "T1620"));
    execAlerted = true;
  } else if (path.startsWith("/memfd:") || isProcFd(path)) {
    v = strongest(v, fire(R_MEMFD_EXEC, path + " executed", "T1620"));
    execAlerted = true;
  } else if (
    path.startsWith("/") && underAny(tmpDirs, path) !== null && !programIn(tmpExecAllow, path) && wrStat(path) !== null
  ) {
    // Only a file that exists can run: a PATH search trying a missing /tmp/... entry is no execution.
    v = strongest(v, fire(R_TMP_EXEC, path + " executed", "T1059"));
    execAlerted = true;
  }
  // 5. a shell or interpreter started by a network service
  if (programIn(shells, path) && !programIn(serviceShellAllow, exe)) {
    let why = "";
    if (serving) why = "a program serving the network";
    else if (programIn(services, exe)) why = "a service";
    else if (servingElsewhere(exe)) why = "a program serving the network";
    if (why.length > 0) {
      v = strongest(v, fire(R_SERVICE_SHELL, path + " started from " + why, "T1059.004"));
    }
  }
  return v;
}

function isProcFd(path: string): bool {
  if (path.startsWith("/proc/self/fd/") || path.startsWith("/dev/fd/")) return true;
  if (!path.startsWith("/proc/")) return false;
  const rest = path.substring(6);
  const slash = rest.indexOf("/");
  return slash > 0 && rest.substring(slash).startsWith("/fd/");
}

/**
 * A live process (another than this one) that runs the same program and
 * serves the network: this process is most likely its forked child.
 */
function servingElsewhere(exe: string): bool {
  const keys = kvList(SERVING_PREFIX);
  const self = Event.pid().toString();
  for (let i = 0; i < keys.length; i++) {
    const pid = keys[i].substring(SERVING_PREFIX.length);
    if (pid == self) continue;
    const v = kvGetString(keys[i]);
    if (v === null || v != exe) continue;
    if (wrStat("/proc/" + pid) !== null) return true;
  }
  return false;
}

// --------------------------------------------------------- other calls

const PTRACE_POKETEXT: i64 = 4;
const PTRACE_POKEDATA: i64 = 5;
const PTRACE_POKEUSER: i64 = 6;
const PTRACE_SETREGS: i64 = 13;
const PTRACE_ATTACH: i64 = 16;
const PTRACE_SEIZE: i64 = 0x4206;

const AF_PACKET: i64 = 17;
const SOCK_RAW: i64 = 3;

function onOther(nr: i32): i32 {
  const exe = exePath();
  if (nr == SYS_listen || nr == SYS_accept || nr == SYS_accept4) {
    if (!serving) {
      serving = true;
      kvSet(SERVING_PREFIX + Event.pid().toString(), exe);
    }
    return allow();
  }
  if (nr == SYS_socket) {
    const domain = Event.arg(0);
    const type = Event.arg(1) & 0xf;
    if ((domain == AF_PACKET || type == SOCK_RAW) && !programIn(rawSocketAllow, exe)) {
      const what = domain == AF_PACKET ? "packet socket opened" : "raw socket opened (domain " + domain.toString() + ")";
      return fire(R_RAW_SOCKET, what, "T1040");
    }
    return allow();
  }
  if (nr == SYS_ptrace) {
    const req = Event.arg(0);
    const pid = <i32>Event.arg(1);
    const aimed = req == PTRACE_ATTACH || req == PTRACE_SEIZE || req == PTRACE_POKETEXT || req == PTRACE_POKEDATA ||
      req == PTRACE_POKEUSER || req == PTRACE_SETREGS;
    if (aimed && pid != Event.pid() && !programIn(ptraceAllow, exe)) {
      return fire(R_INJECTION, "ptrace request " + req.toString() + " on pid " + pid.toString(), "T1055");
    }
    return allow();
  }
  if (nr == SYS_process_vm_writev) {
    const pid = <i32>Event.arg(0);
    if (pid != Event.pid() && !programIn(ptraceAllow, exe)) {
      return fire(R_INJECTION, "process_vm_writev into pid " + pid.toString(), "T1055");
    }
    return allow();
  }
  if (programIn(kernelAllow, exe)) return allow();
  if (nr == SYS_init_module || nr == SYS_finit_module) {
    return fire(R_MODULE, (nr == SYS_init_module ? "init_module" : "finit_module") + " called", "T1547.006");
  }
  if (nr == SYS_bpf) {
    return fire(R_BPF, "bpf command " + Event.arg(0).toString() + " called", "T1014");
  }
  if (nr == SYS_mount) {
    // The host decodes mount's three strings as paths: path is the source, path2 the last (the type).
    const src = Event.path();
    const fstype = Event.path2();
    return fire(R_MOUNT, "mount of " + strPath(src) + " (type " + strPath(fstype) + ")", "T1611");
  }
  if (nr == SYS_unshare || nr == SYS_setns) {
    const what = nr == SYS_unshare ? "unshare(0x" : "setns(nstype 0x";
    const a = nr == SYS_unshare ? Event.arg(0) : Event.arg(1);
    return fire(R_NAMESPACE, what + a.toString(16) + ") called", "T1611");
  }
  if (nr == SYS_kexec_load || nr == SYS_kexec_file_load) {
    return fire(R_KEXEC, (nr == SYS_kexec_load ? "kexec_load" : "kexec_file_load") + " called", "T1014");
  }
  return allow();
}

// ------------------------------------------------------------------ hooks

export function idwrap_declare(): i32 {
  for (let i = 0; i < DECLARED.length; i++) declareSyscall(DECLARED[i], PRE | DENY);
  declareLifecycle(EXEC | EXIT);
  return declared();
}

export function idwrap_init(): i32 {
  for (let i = 0; i < RULES.length; i++) {
    const v = setting("response." + RULES[i]);
    let r = DEFAULT_RESPONSES[i];
    if (v !== null) {
      const t = v.trim();
      if (t == "alert") r = RESP_ALERT;
      else if (t == "deny") r = RESP_DENY;
      else if (t == "kill") r = RESP_KILL;
      else if (t == "off") r = RESP_OFF;
      else {
        log(LOG_ERROR, "baseline: response." + RULES[i] + " must be alert, deny, kill or off, got " + t);
        return 1;
      }
    }
    responses[i] = r;
  }
  credentialAllow = listSetting("credential_allow", D_CREDENTIAL_ALLOW);
  credentialPaths = listSetting("credential_paths", D_CREDENTIAL_PATHS);
  packageManagers = listSetting("package_managers", D_PACKAGE_MANAGERS);
  systemDirs = listSetting("system_dirs", D_SYSTEM_DIRS);
  tmpDirs = listSetting("tmp_dirs", D_TMP_DIRS);
  tmpExecAllow = listSetting("tmp_exec_allow", "[]");
  services = listSetting("services", D_SERVICES);
  serviceShellAllow = listSetting("service_shell_allow", D_SERVICE_SHELL_ALLOW);
  shells = listSetting("shells", D_SHELLS);
  ptraceAllow = listSetting("ptrace_allow", D_PTRACE_ALLOW);
  kernelAllow = listSetting("kernel_allow", D_KERNEL_ALLOW);
  rawSocketAllow = listSetting("raw_socket_allow", D_RAW_SOCKET_ALLOW);
  logDirs = listSetting("log_dirs", D_LOG_DIRS);
  logAllow = listSetting("log_allow", D_LOG_ALLOW);
  historyFiles = listSetting("history_files", D_HISTORY_FILES);
  cloudPaths = listSetting("cloud_credential_paths", D_CLOUD_CREDENTIAL_PATHS);
  cloudAllow = listSetting("cloud_credential_allow", D_CLOUD_CREDENTIAL_ALLOW);
  homeDirs = listSetting("home_dirs", D_HOME_DIRS);
  compileCloudPatterns();
  inboundOnly = listSetting("inbound_only", D_INBOUND_ONLY);
  inboundAllowDestinations = listSetting("inbound_only_allow_destinations", "[]");
  const lb = setting("inbound_only_allow_loopback");
  if (lb !== null) {
    const t = lb.trim();
    if (t == "true") inboundAllowLoopback = true;
    else if (t == "false") inboundAllowLoopback = false;
    else {
      log(LOG_ERROR, "baseline: inbound_only_allow_loopback must be true or false, got " + t);
      return 1;
    }
  }
  cacheIds(systemDirs, systemIds, systemNames);
  cacheIds(logDirs, logIds, logNames);
  const etc = wrStat("/etc");
  if (etc !== null) etcId = etc.nodeId();
  return 0;
}

export function idwrap_on_syscall(): i32 {
  const nr = Event.syscall();
  if (nr == SYS_open || nr == SYS_openat || nr == SYS_openat2 || nr == SYS_creat) return onOpen(nr);
  if (nr == SYS_execve || nr == SYS_execveat) return onExec(nr);
  if (
    nr == SYS_socket || nr == SYS_listen || nr == SYS_accept || nr == SYS_accept4 || nr == SYS_ptrace ||
    nr == SYS_process_vm_writev || nr == SYS_init_module || nr == SYS_finit_module || nr == SYS_bpf ||
    nr == SYS_mount || nr == SYS_unshare || nr == SYS_setns || nr == SYS_kexec_load || nr == SYS_kexec_file_load
  ) {
    return onOther(nr);
  }
  if (nr == SYS_ftruncate) return onFtruncate();
  if (nr == SYS_connect || nr == SYS_sendto) return onOutbound(nr);
  if (nr == SYS_fchmod) {
    const mode = Event.arg(1);
    if ((mode & 0o6000) != 0) {
      return fire(R_SETUID, "fd " + Event.arg(0).toString() + " set to mode 0" + (mode & 0o7777).toString(8), "T1548.001");
    }
    return allow();
  }
  return onPathChange(nr);
}

export function idwrap_on_lifecycle(kind: i32): void {
  if (kind == EXIT) {
    if (serving) kvDelete(SERVING_PREFIX + Event.pid().toString());
    return;
  }
  // EXEC: the script the new program runs is the execve path when the
  // kernel ran another executable for it (an interpreter, by its "#!" line).
  // Else, when the new program is an interpreter started by its own name (a
  // symbolic link counts as its own name), the script its arguments name.
  const newExe = exePath();
  scriptPath = "";
  scriptArg = "";
  if (pendingExec.length > 0) {
    let same = pendingExec == newExe;
    if (!same) {
      const a = wrStat(pendingExec);
      const b = wrStat(newExe);
      same = a !== null && b !== null && a.nodeId() == b.nodeId();
    }
    if (!same) scriptPath = pendingExec;
    else if (programIn(shells, newExe)) scriptArg = pendingScriptArg;
  }
  pendingExec = "";
  pendingScriptArg = "";
  alertedDestinations.length = 0;
  // A relative or indirect execution from a temporary place or memory, seen
  // from the new program's resolved executable path.
  if (execAlerted) {
    execAlerted = false;
    return;
  }
  const exe = exePath();
  if (exe.startsWith("/memfd:")) {
    fireAlertOnly(R_MEMFD_EXEC, exe + " executed", "T1620");
  } else if (underAny(tmpDirs, exe) !== null && !programIn(tmpExecAllow, exe)) {
    fireAlertOnly(R_TMP_EXEC, exe + " executed", "T1059");
  }
}
