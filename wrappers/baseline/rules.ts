/**
 * baseline's rules: their ids, names, severities and responses (policy
 * setting `response.<rule>`), and how a rule fires: an alert that names the
 * rule, what happened, the program and the ATT&CK technique, then the
 * rule's verdict.
 */
import {
  alert,
  allow,
  deny,
  EPERM,
  kill,
  log,
  LOG_ERROR,
  setting,
  SEVERITY_CRITICAL,
  SEVERITY_HIGH,
  SEVERITY_MEDIUM,
} from "../sdk/index";
import { exePath } from "./lists";

export const R_CREDENTIAL_READ: i32 = 0;
export const R_AUTHORIZED_KEYS: i32 = 1;
export const R_PRELOAD: i32 = 2;
export const R_SYSTEM_WRITE: i32 = 3;
export const R_SETUID: i32 = 4;
export const R_TMP_EXEC: i32 = 5;
export const R_MEMFD_EXEC: i32 = 6;
export const R_SERVICE_SHELL: i32 = 7;
export const R_INJECTION: i32 = 8;
export const R_MODULE: i32 = 9;
export const R_BPF: i32 = 10;
export const R_MOUNT: i32 = 11;
export const R_NAMESPACE: i32 = 12;
export const R_KEXEC: i32 = 13;
export const R_RAW_SOCKET: i32 = 14;
export const R_LOG_TAMPER: i32 = 15;
export const R_HISTORY_TAMPER: i32 = 16;
export const R_CLOUD_CREDENTIAL: i32 = 17;
export const R_INBOUND_ONLY: i32 = 18;
export const R_KERNEL_HELPER: i32 = 19;

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

export const RESP_OFF: i32 = -1;
export const RESP_ALERT: i32 = 0;
export const RESP_DENY: i32 = 1;
export const RESP_KILL: i32 = 2;

/** Default responses: deny where a false positive cannot harm. */
const DEFAULT_RESPONSES: StaticArray<i32> = [
  RESP_ALERT, RESP_ALERT, RESP_DENY, RESP_ALERT, RESP_ALERT, RESP_ALERT, RESP_ALERT, RESP_ALERT, RESP_ALERT,
  RESP_DENY, RESP_ALERT, RESP_ALERT, RESP_ALERT, RESP_ALERT, RESP_ALERT, RESP_ALERT, RESP_ALERT, RESP_ALERT,
  RESP_ALERT, RESP_DENY,
];

export const responses = new StaticArray<i32>(20);

/** Reads each rule's response setting (`response.<rule>`); false, after logging why, if one is invalid. */
export function loadResponses(): bool {
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
        return false;
      }
    }
    responses[i] = r;
  }
  return true;
}

/** Whether one of these rules (R_*) may stop a call: its response is deny or kill. */
export function mayStop(rules: StaticArray<i32>): bool {
  for (let i = 0; i < rules.length; i++) {
    const r = responses[rules[i]];
    if (r == RESP_DENY || r == RESP_KILL) return true;
  }
  return false;
}

/** Raises the rule's alert and returns its verdict (allow for an "alert" rule). */
export function fire(rule: i32, what: string, technique: string): i32 {
  const resp = responses[rule];
  if (resp == RESP_OFF) return allow();
  alert(SEVERITIES[rule], "baseline." + RULES[rule] + ": " + what + " by " + exePath() + " (" + technique + ")");
  if (resp == RESP_DENY) return deny(EPERM);
  if (resp == RESP_KILL) return kill();
  return allow();
}

/** Fire only in a hook that can still act on the call (lifecycle: alert only). */
export function fireAlertOnly(rule: i32, what: string, technique: string): void {
  if (responses[rule] == RESP_OFF) return;
  alert(SEVERITIES[rule], "baseline." + RULES[rule] + ": " + what + " by " + exePath() + " (" + technique + ")");
}

/** Combines verdicts: the strongest wins (kill > deny > allow). */
export function strongest(a: i32, b: i32): i32 {
  const aa = a & 0xff;
  const bb = b & 0xff;
  if (aa == 2 || bb == 2) return kill();
  if (aa == 1) return a;
  if (bb == 1) return b;
  return allow();
}
