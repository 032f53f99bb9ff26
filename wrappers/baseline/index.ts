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
 *                     "baseline." prefix); defaults in rules.ts
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
 *
 * This file holds the hooks; each rule family has its file (files.ts,
 * exec.ts, system.ts, outbound.ts, cloud.ts), beside the rules and their
 * responses (rules.ts), the settings (settings.ts) and list matching
 * (lists.ts).
 */
import {
  allow,
  declared,
  declareLifecycle,
  declareSyscall,
  DENY,
  Event,
  EXEC,
  EXIT,
  kvDelete,
  PRE,
  SYS_accept,
  SYS_accept4,
  SYS_bpf,
  SYS_chmod,
  SYS_chown,
  SYS_connect,
  SYS_creat,
  SYS_execve,
  SYS_execveat,
  WRITES,
  SYS_fchmod,
  SYS_fchmodat,
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
} from "../sdk/index";
import { compileCloudPatterns } from "./cloud";
import { onExec, onExecLifecycle } from "./exec";
import { cacheDirIds, onFtruncate, onOpen, onPathChange } from "./files";
import { forgetDestinations, onOutbound } from "./outbound";
import {
  fire,
  loadResponses,
  mayStop,
  R_AUTHORIZED_KEYS,
  R_BPF,
  R_CLOUD_CREDENTIAL,
  R_CREDENTIAL_READ,
  R_HISTORY_TAMPER,
  R_INBOUND_ONLY,
  R_INJECTION,
  R_KERNEL_HELPER,
  R_KEXEC,
  R_LOG_TAMPER,
  R_MEMFD_EXEC,
  R_MODULE,
  R_MOUNT,
  R_NAMESPACE,
  R_PRELOAD,
  R_RAW_SOCKET,
  R_SERVICE_SHELL,
  R_SETUID,
  R_SYSTEM_WRITE,
  R_TMP_EXEC,
  RESP_DENY,
  responses,
} from "./rules";
import { loadSettings } from "./settings";
import { onOther, serving, SERVING_PREFIX } from "./system";

export { idwrap_abi_version } from "../sdk/index";

/**
 * The calls baseline examines, by the rules that can fire on them: a call is declared DENY only when one of its rules
 * is set to deny or kill (settings `response.<rule>`), otherwise observe-only (PRE), so that a source that can observe
 * without holding the call (the hybrid's bpf ring) need not make it wait. The file calls share every file rule (their
 * handlers check several); listen and accept fire none (they mark a process as serving). Of the rules on opens only the
 * credential reads fire on an open that does not write: where no other may stop one, the opens are declared
 * DENY | WRITES (ABI 1.5), so a source may hold only the opens that write (the hybrid: the rest through its ring).
 */
const OPEN_CALLS: StaticArray<i32> = [SYS_open, SYS_openat, SYS_openat2, SYS_creat];
const READ_RULES: StaticArray<i32> = [R_CREDENTIAL_READ, R_CLOUD_CREDENTIAL];
const FILE_CALLS: StaticArray<i32> = [
  SYS_truncate, SYS_ftruncate, SYS_rename, SYS_renameat, SYS_renameat2, SYS_mkdir,
  SYS_mkdirat, SYS_rmdir, SYS_link, SYS_linkat, SYS_unlink, SYS_unlinkat, SYS_symlink, SYS_symlinkat, SYS_chmod,
  SYS_fchmod, SYS_fchmodat, SYS_chown, SYS_lchown, SYS_fchownat,
];
const FILE_RULES: StaticArray<i32> = [
  R_CREDENTIAL_READ, R_AUTHORIZED_KEYS, R_PRELOAD, R_SYSTEM_WRITE, R_SETUID, R_INJECTION, R_LOG_TAMPER,
  R_HISTORY_TAMPER, R_CLOUD_CREDENTIAL, R_KERNEL_HELPER,
];
const EXEC_CALLS: StaticArray<i32> = [SYS_execve, SYS_execveat];
const EXEC_RULES: StaticArray<i32> = [R_TMP_EXEC, R_MEMFD_EXEC, R_SERVICE_SHELL];
const NO_RULES: StaticArray<i32> = [];

/** Declares `calls` PRE, with DENY if one of `rules` may stop them. */
function declareFor(calls: StaticArray<i32>, rules: StaticArray<i32>): void {
  const flags = mayStop(rules) ? PRE | DENY : PRE;
  for (let i = 0; i < calls.length; i++) declareSyscall(calls[i], flags);
}

export function idwrap_declare(): i32 {
  // A response the wrapper cannot read (an ABI 1.2 host passes settings unchecked): hold every call, as before 1.3.
  if (!loadResponses()) {
    for (let i = 0; i < responses.length; i++) responses[i] = RESP_DENY;
  }
  declareFor(FILE_CALLS, FILE_RULES);
  const openFlags = mayStop(READ_RULES) ? PRE | DENY : mayStop(FILE_RULES) ? PRE | DENY | WRITES : PRE;
  for (let i = 0; i < OPEN_CALLS.length; i++) declareSyscall(OPEN_CALLS[i], openFlags);
  declareFor(EXEC_CALLS, EXEC_RULES);
  declareFor([SYS_socket], [R_RAW_SOCKET]);
  declareFor([SYS_listen, SYS_accept, SYS_accept4], NO_RULES);
  declareFor([SYS_ptrace, SYS_process_vm_writev], [R_INJECTION]);
  declareFor([SYS_init_module, SYS_finit_module], [R_MODULE]);
  declareFor([SYS_bpf], [R_BPF]);
  declareFor([SYS_mount], [R_MOUNT]);
  declareFor([SYS_unshare, SYS_setns], [R_NAMESPACE]);
  declareFor([SYS_kexec_load, SYS_kexec_file_load], [R_KEXEC]);
  declareFor([SYS_connect, SYS_sendto], [R_INBOUND_ONLY]);
  declareLifecycle(EXEC | EXIT);
  return declared();
}

export function idwrap_init(): i32 {
  if (!loadResponses() || !loadSettings()) return 1;
  compileCloudPatterns();
  cacheDirIds();
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
  forgetDestinations();
  onExecLifecycle();
}
