/**
 * Rules about other calls: process injection (ptrace), kernel modules, BPF,
 * mount, namespaces, kexec, raw sockets; and whether this process serves
 * the network (listen/accept), which service-shell asks.
 */
import {
  allow,
  Event,
  kvSet,
  SYS_accept,
  SYS_accept4,
  SYS_bpf,
  SYS_finit_module,
  SYS_init_module,
  SYS_kexec_file_load,
  SYS_kexec_load,
  SYS_listen,
  SYS_mount,
  SYS_process_vm_writev,
  SYS_ptrace,
  SYS_setns,
  SYS_socket,
  SYS_unshare,
} from "../sdk/index";
import { exePath, programIn, strPath } from "./lists";
import { fire, R_BPF, R_INJECTION, R_KEXEC, R_MODULE, R_MOUNT, R_NAMESPACE, R_RAW_SOCKET } from "./rules";
import { kernelAllow, ptraceAllow, rawSocketAllow } from "./settings";

/** This process called listen or accept: it serves the network. */
export let serving = false;
export const SERVING_PREFIX = "serving/";

const PTRACE_POKETEXT: i64 = 4;
const PTRACE_POKEDATA: i64 = 5;
const PTRACE_POKEUSER: i64 = 6;
const PTRACE_SETREGS: i64 = 13;
const PTRACE_ATTACH: i64 = 16;
const PTRACE_SEIZE: i64 = 0x4206;

const AF_PACKET: i64 = 17;
const SOCK_RAW: i64 = 3;

export function onOther(nr: i32): i32 {
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
