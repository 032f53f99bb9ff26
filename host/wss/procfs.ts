/**
 * What the WSS (and a source) learns about a task from /proc: its thread group,
 * parent, credentials, umask and program. Read once per task and cached by
 * the process table; re-read after execve and credential changes.
 *
 * @module
 */
import type { ProgramIdentity } from "../events.ts";

/** Fields of /proc/PID/status the supervisor uses. */
export interface TaskStatus {
  tgid: number;
  ppid: number;
  uid: number;
  gid: number;
  /** Effective ids (the credentials a file opened for the task carries). */
  euid: number;
  egid: number;
  fsuid: number;
  fsgid: number;
  groups: number[];
  umask: number;
  /** Effective capabilities (CapEff). */
  capEff: bigint;
}

const WANTED = new Set(["Tgid", "PPid", "Uid", "Gid", "Groups", "Umask", "CapEff"]);

/** Parses /proc/TID/status; undefined if the task is gone. */
export function readTaskStatus(tid: number): TaskStatus | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(`/proc/${tid}/status`);
  } catch {
    return undefined;
  }
  // Line by line: a per-field `^Groups:\s*(.*)$` let `\s*` run past an empty line's newline into the next field,
  // and a process without supplementary groups got [NaN, tgid] — NaN became group 0 in the emulated open.
  const fields = new Map<string, string>();
  for (const line of text.split("\n")) {
    const colon = line.indexOf(":");
    const name = line.slice(0, colon);
    if (WANTED.has(name)) fields.set(name, line.slice(colon + 1).trim());
  }
  const field = (name: string) => fields.get(name) ?? "";
  const uids = field("Uid").split(/\s+/).map(Number);
  const gids = field("Gid").split(/\s+/).map(Number);
  return {
    tgid: Number(field("Tgid")),
    ppid: Number(field("PPid")),
    uid: uids[0],
    gid: gids[0],
    euid: uids[1],
    egid: gids[1],
    fsuid: uids[3],
    fsgid: gids[3],
    groups: field("Groups").split(/\s+/).filter(Boolean).map(Number),
    umask: parseInt(field("Umask") || "022", 8),
    capEff: BigInt("0x" + (field("CapEff") || "0")),
  };
}

/** The program a process runs, from /proc/PID/exe and cmdline. */
export function readProgram(pid: number, status: TaskStatus): ProgramIdentity {
  let exe = "";
  let argv0 = "";
  try {
    exe = Deno.readLinkSync(`/proc/${pid}/exe`);
  } catch { /* exited, or a kernel thread */ }
  try {
    argv0 = Deno.readTextFileSync(`/proc/${pid}/cmdline`).split("\0")[0];
  } catch { /* exited */ }
  return { exe, argv0, uid: status.uid, gid: status.gid };
}

/** The controlling terminal's device path from /proc/PID/stat, if any. */
export function controllingTty(pid: number): string | undefined {
  let stat: string;
  try {
    stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  } catch {
    return undefined;
  }
  // Field 7 (tty_nr) follows "pid (comm) state ppid pgrp session".
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ttyNr = Number(fields[4]);
  if (!ttyNr) return undefined;
  const major = (ttyNr >> 8) & 0xfff;
  const minor = (ttyNr & 0xff) | ((ttyNr >> 12) & 0xfff00);
  if (major >= 136 && major <= 143) return `/dev/pts/${(major - 136) * 256 + minor}`;
  if (major === 4) return `/dev/tty${minor}`;
  if (major === 5 && minor === 1) return "/dev/console";
  return undefined;
}
