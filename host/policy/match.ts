/**
 * Matches a rule's conditions (host/policy/conditions.ts) against a call:
 * each field is read from the decoded event (open flags from the registers,
 * where the call has them there), and a call without the field never
 * matches a condition on it.
 *
 * @module
 */
import picomatch from "picomatch";
import type { SyscallEvent } from "../events.ts";
import type { ProcessFacts } from "./criteria_match.ts";
import type { Condition, OpenFlagWord, Target } from "./conditions.ts";

const O_WRONLY = 1, O_RDWR = 2;
const FLAG_BITS: Record<string, number> = {
  O_CREAT: 0o100,
  O_EXCL: 0o200,
  O_TRUNC: 0o1000,
  O_APPEND: 0o2000,
  O_NONBLOCK: 0o4000,
  O_DSYNC: 0o10000,
  O_DIRECTORY: 0o200000,
  O_NOFOLLOW: 0o400000,
  O_CLOEXEC: 0o2000000,
  O_SYNC: 0o4010000,
  O_PATH: 0o10000000,
  O_TMPFILE: 0o20200000,
};
const O_CREAT = 0o100, O_TRUNC = 0o1000, O_PATH = 0o10000000, O_TMPFILE = 0o20200000;

/** The O_* flags of an open-family call: from its registers, or for openat2 from its decoded open_how. */
export function openFlags(event: SyscallEvent): number | undefined {
  const reg = (i: number) => Number(BigInt(event.args[i] ?? "0") & 0xffffffffn);
  switch (event.syscall) {
    case "open":
      return reg(1);
    case "openat":
    case "open_by_handle_at":
      return reg(2);
    case "creat":
      return O_WRONLY | O_CREAT | O_TRUNC;
    case "openat2":
      return event.decoded.flags === undefined ? undefined : parseOpenFlags(event.decoded.flags);
  }
  return undefined;
}

/** `O_WRONLY|O_CREAT|0x40000000` back to its number. */
export function parseOpenFlags(text: string): number {
  let n = 0;
  for (const part of text.split("|")) {
    if (part === "O_WRONLY") n |= O_WRONLY;
    else if (part === "O_RDWR") n |= O_RDWR;
    else if (part.startsWith("0x")) n |= parseInt(part, 16);
    else n |= FLAG_BITS[part] ?? 0;
  }
  return n;
}

/**
 * Whether open flags have a word. O_PATH opens ignore every other flag but O_DIRECTORY, O_NOFOLLOW and O_CLOEXEC
 * (the kernel's build_open_flags): such an open neither reads, writes nor creates. `write` is any change the open
 * can make: writing, truncating or creating a file.
 */
export function hasFlagWord(flags: number, word: OpenFlagWord): boolean {
  const acc = flags & 3;
  const path = (flags & O_PATH) !== 0;
  const has = (bits: number) => (flags & bits) === bits;
  switch (word) {
    case "read":
      return !path && (acc === 0 || acc === O_RDWR);
    case "write":
      return !path && (acc === O_WRONLY || acc === O_RDWR || has(O_TRUNC) || has(O_CREAT) || has(O_TMPFILE));
    case "create":
      return !path && (has(O_CREAT) || has(O_TMPFILE));
    case "truncate":
      return !path && has(O_TRUNC);
    case "append":
      return !path && has(FLAG_BITS.O_APPEND);
    case "exclusive":
      return !path && has(FLAG_BITS.O_EXCL);
    case "directory":
      return has(FLAG_BITS.O_DIRECTORY);
    case "nofollow":
      return has(FLAG_BITS.O_NOFOLLOW);
    case "path":
      return path;
    case "tmpfile":
      return !path && has(O_TMPFILE);
    case "cloexec":
      return has(FLAG_BITS.O_CLOEXEC);
    case "nonblock":
      return !path && has(FLAG_BITS.O_NONBLOCK);
    case "sync":
      return !path && has(FLAG_BITS.O_DSYNC);
  }
}

/** A decoded address split: `inet:1.2.3.4:80` → inet, 1.2.3.4, 80. */
export function splitAddress(addr: string): { family: string; address?: string; port?: number } {
  const m = /^(inet):([\d.]+):(\d+)$/.exec(addr) ?? /^(inet6):\[([0-9a-fA-F:.]+)\]:(\d+)$/.exec(addr);
  if (m) return { family: m[1], address: m[2], port: Number(m[3]) };
  const u = /^unix:(.*)$/.exec(addr);
  if (u) return { family: "unix", address: u[1] };
  return { family: addr.replace(/:.*$/, "") };
}

/**
 * The IPv4 address of a v4-mapped IPv6 address as idwrap prints it (`::ffff:7f00:1` → `127.0.0.1`), else undefined.
 * Only ::ffff:0:0/96 is IPv4 to the kernel's sockets (IPv4-compatible `::a.b.c.d` and NAT64 prefixes are not).
 */
export function v4Mapped(printed: string): string | undefined {
  const m = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(printed) ?? /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(printed);
  if (!m) return undefined;
  if (m[2] === undefined) return m[1];
  const hi = parseInt(m[1], 16), lo = parseInt(m[2], 16);
  return `${hi >> 8}.${hi & 0xff}.${lo >> 8}.${lo & 0xff}`;
}

const globCache = new Map<string, (s: string) => boolean>();
/** A glob on paths (`*` within a component), or with `text` on any text (argv, addresses: `*` crosses "/"). */
function glob(g: string, text = false): (s: string) => boolean {
  const key = `${text ? "t" : "p"}${g}`;
  let m = globCache.get(key);
  if (!m) globCache.set(key, m = picomatch(g, { dot: true, bash: text }));
  return m;
}
const anyGlob = (globs: readonly string[], s: string) => globs.some((g) => glob(g, true)(s));

/** A glob with "/" on the path, one without on its base name (as activation criteria). */
function programMatch(globs: readonly string[], exe: string): boolean {
  const base = exe.replace(/\/+$/, "").replace(/^.*\//, "");
  return globs.some((g) => g.includes("/") ? glob(g)(exe) : glob(g)(base));
}

function targetMatch(targets: readonly Target[], pid: number, caller: number): boolean {
  return targets.some((t) => {
    if (typeof t === "number") return pid === t;
    if (t === "self") return pid === caller;
    if (t === "all") return pid === -1;
    if (t === "group") return pid === 0 || pid < -1;
    return pid > 0 && pid !== caller; // other
  });
}

/** How a path condition is matched: the rule decider adds identity for literal paths. */
export type PathMatch = (globs: readonly string[], event: SyscallEvent) => boolean;

/** Whether every field of a condition holds for a call made by a process with these facts. */
export function conditionHolds(
  c: Condition,
  event: SyscallEvent,
  facts: ProcessFacts,
  pathMatch: PathMatch,
): boolean {
  const d = event.decoded;
  if (c.path && !pathMatch(c.path, event)) return false;
  if (c.flags) {
    const flags = openFlags(event);
    if (flags === undefined || !c.flags.some((w) => hasFlagWord(flags, w))) return false;
  }
  if (c.argv && !(d.argv ?? []).some((a) => anyGlob(c.argv!, a))) return false;
  if (c.argvAt) {
    for (const [i, globs] of Object.entries(c.argvAt)) {
      const a = d.argv?.[Number(i)];
      if (a === undefined || !anyGlob(globs, a)) return false;
    }
  }
  if (c.family || c.address || c.port) {
    if (d.addr === undefined) return false;
    const a = splitAddress(d.addr);
    // A v4-mapped IPv6 address (`::ffff:127.0.0.1`) reaches the IPv4 host: it is also matched as inet and its IPv4
    // address, so that a rule on `127.0.0.1` or `10.*` cannot be evaded through an AF_INET6 socket (rt8 F1).
    const v4 = a.family === "inet6" && a.address !== undefined ? v4Mapped(a.address) : undefined;
    if (c.family && !c.family.includes(a.family) && !(v4 && c.family.includes("inet"))) return false;
    if (
      c.address &&
      (a.address === undefined || !(anyGlob(c.address, a.address) || (v4 !== undefined && anyGlob(c.address, v4))))
    ) return false;
    if (c.port && (a.port === undefined || !c.port.some(([lo, hi]) => a.port! >= lo && a.port! <= hi))) return false;
  }
  if (c.signal && (d.signal === undefined || !c.signal.includes(d.signal))) return false;
  if (c.target) {
    if (!["kill", "tgkill", "tkill"].includes(event.syscall)) return false;
    const pid = Number(BigInt.asIntN(32, BigInt(event.args[0] ?? "0")));
    if (!targetMatch(c.target, pid, event.syscall === "tkill" ? event.tid : event.pid)) return false;
  }
  if (c.program && !programMatch(c.program, facts.exe)) return false;
  if (c.parent && !programMatch(c.parent, facts.parentExe)) return false;
  if (c.user && !c.user.includes(facts.uid)) return false;
  return true;
}
