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

/** A record keeps at most this many arguments of a process… */
export const MAX_ARGS = 64;
/** …each cut to this many characters, and this many characters in all. */
export const MAX_ARG_CHARS = 1024;
export const MAX_ARGS_CHARS = 8192;

/** A bounded copy of an argument vector (audit records carry it for every event of the process). */
export function boundedArgs(argv: readonly string[]): string[] {
  const out: string[] = [];
  let total = 0;
  for (const arg of argv) {
    if (out.length >= MAX_ARGS || total >= MAX_ARGS_CHARS) break;
    const cut = arg.length > MAX_ARG_CHARS ? arg.slice(0, MAX_ARG_CHARS) + "…" : arg;
    out.push(cut);
    total += cut.length;
  }
  return out;
}

/** The argument vector in a /proc/PID/cmdline (NUL-terminated strings). */
export function splitCmdline(cmdline: string): string[] {
  if (cmdline === "") return [];
  const argv = cmdline.split("\0");
  if (argv[argv.length - 1] === "") argv.pop();
  return argv;
}

/**
 * The cgroup of a process from /proc/PID/cgroup: the v2 path (`0::/…`) unless it is `/` (a hybrid host), else the
 * first v1 path with a container id in it (64 hex digits), else the first v1 path that is not `/`, else `/`;
 * undefined when it cannot be read.
 */
export function readCgroup(pid: number): string | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(`/proc/${pid}/cgroup`);
  } catch {
    return undefined;
  }
  let v2: string | undefined;
  const v1: string[] = [];
  for (const line of text.split("\n")) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    if (m[1] === "0" && m[2] === "") v2 = m[3];
    else if (m[3] !== "/") v1.push(m[3]);
  }
  if (v2 !== undefined && v2 !== "/") return v2;
  return v1.find((p) => /[0-9a-f]{64}/.test(p)) ?? v1[0] ?? v2;
}

/** The program a process runs, from /proc/PID/exe, cmdline and cgroup. */
export function readProgram(pid: number, status: TaskStatus): ProgramIdentity {
  let exe = "";
  let argv: string[] = [];
  try {
    exe = Deno.readLinkSync(`/proc/${pid}/exe`);
  } catch { /* exited, or a kernel thread */ }
  try {
    argv = splitCmdline(Deno.readTextFileSync(`/proc/${pid}/cmdline`));
  } catch { /* exited */ }
  const program: ProgramIdentity = {
    exe,
    argv0: argv[0] ?? "",
    uid: status.uid,
    gid: status.gid,
    args: boundedArgs(argv),
    argc: argv.length,
  };
  const cgroup = readCgroup(pid);
  if (cgroup !== undefined) program.cgroup = cgroup;
  return program;
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
