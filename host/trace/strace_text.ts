/**
 * What `idwrap trace` prints for a call, the way strace prints it:
 * `name(fd, "path", FLAGS, "data"...) = ret` or `= -1 ENOENT (No such file or
 * directory)`, strings cut at `-s N` bytes; and strace's `-e trace=` classes
 * mapped onto the calls idwrap knows.
 *
 * @module
 */
import { getSystemErrorMap } from "node:util";
import { errnoNumber } from "../errno.ts";
import type { SyscallEvent } from "../events.ts";
import { SYSCALL_GROUPS, syscallNumber } from "../syscalls/mod.ts";

/** strace's default `-s`: strings are cut after 32 bytes. */
export const DEFAULT_STRING_LIMIT = 32;

/** Calls whose first argument is a file descriptor (strace prints it as a number). */
const FD_FIRST = new Set([
  "read",
  "write",
  "pread64",
  "pwrite64",
  "readv",
  "writev",
  "preadv",
  "pwritev",
  "preadv2",
  "pwritev2",
  "close",
  "fstat",
  "lseek",
  "ioctl",
  "fcntl",
  "dup",
  "dup2",
  "dup3",
  "fsync",
  "fdatasync",
  "ftruncate",
  "getdents64",
  "fchmod",
  "fchown",
  "fchdir",
  "flock",
  "connect",
  "bind",
  "listen",
  "accept",
  "accept4",
  "sendto",
  "recvfrom",
  "sendmsg",
  "recvmsg",
  "shutdown",
  "getsockopt",
  "setsockopt",
  "getsockname",
  "getpeername",
  "fstatfs",
  "fgetxattr",
  "fsetxattr",
  "sendfile",
  "splice",
  "tee",
  "fallocate",
  "fadvise64",
  "syncfs",
  "epoll_ctl",
  "epoll_wait",
  "pidfd_send_signal",
  "pidfd_getfd",
]);

/** Calls whose third argument is a byte count printed after the data (write-like). */
const COUNT_THIRD = new Set(["write", "pwrite64", "read", "pread64", "sendto", "recvfrom"]);

/**
 * strace's `-e trace=` classes. %file and %process are idwrap's own groups (what its sources know as files and
 * processes); the others follow strace's classes for the calls x86_64 has.
 */
export const STRACE_CLASSES: Readonly<Record<string, readonly string[]>> = {
  file: SYSCALL_GROUPS.file,
  process: SYSCALL_GROUPS.process,
  network: SYSCALL_GROUPS.net,
  net: SYSCALL_GROUPS.net,
  exec: SYSCALL_GROUPS.exec,
  signal: [
    "kill",
    "tkill",
    "tgkill",
    "rt_sigaction",
    "rt_sigprocmask",
    "rt_sigpending",
    "rt_sigtimedwait",
    "rt_sigqueueinfo",
    "rt_tgsigqueueinfo",
    "rt_sigsuspend",
    "sigaltstack",
    "signalfd",
    "signalfd4",
    "pause",
    "pidfd_send_signal",
  ],
  desc: [
    "read",
    "write",
    "close",
    "dup",
    "dup2",
    "dup3",
    "fcntl",
    "ioctl",
    "lseek",
    "pread64",
    "pwrite64",
    "readv",
    "writev",
    "fstat",
    "pipe",
    "pipe2",
    "poll",
    "ppoll",
    "select",
    "pselect6",
    "epoll_create1",
    "epoll_ctl",
    "epoll_wait",
    "eventfd2",
    "getdents64",
    "fsync",
    "fdatasync",
    "ftruncate",
    "memfd_create",
    "pidfd_open",
    "openat",
    "open",
    "creat",
    "openat2",
  ],
  memory: ["brk", "mmap", "munmap", "mprotect", "mremap", "madvise", "mlock", "munlock", "msync", "mincore"],
};

/**
 * The calls an `-e` value names: `trace=LIST` (strace) or a bare LIST (idwrap's older form); entries are call names or
 * `%class`es.
 *
 * @throws naming the first entry or qualifier it does not know
 */
export function parseTraceExpr(value: string): string[] {
  let list = value.trim();
  const eq = list.indexOf("=");
  if (eq >= 0) {
    const qualifier = list.slice(0, eq);
    if (qualifier !== "trace") {
      throw new Error(`"${qualifier}=" is not supported: idwrap trace takes -e trace=LIST (calls and %classes)`);
    }
    list = list.slice(eq + 1);
  }
  const out = new Set<string>();
  for (const entry of list.split(",").map((s) => s.trim()).filter(Boolean)) {
    if (entry.startsWith("%")) {
      const members = STRACE_CLASSES[entry.slice(1)];
      if (!members) {
        throw new Error(
          `Unknown syscall group "${entry}": expected one of ${
            Object.keys(STRACE_CLASSES).map((c) => "%" + c).join(", ")
          }`,
        );
      }
      for (const m of members) if (syscallNumber(m) !== undefined) out.add(m);
    } else {
      if (syscallNumber(entry) === undefined) throw new Error(`Unknown system call "${entry}" for x86_64`);
      out.add(entry);
    }
  }
  if (!out.size) throw new Error("expected at least one call or %class");
  return [...out];
}

let messages: Map<number, [string, string]> | undefined;

/** strerror's text for an errno name, capitalised as glibc's ("No such file or directory"). */
export function errnoMessage(name: string): string | undefined {
  const nr = errnoNumber(name);
  if (nr === undefined) return undefined;
  messages ??= getSystemErrorMap();
  const text = messages.get(-nr)?.[1];
  return text && text[0].toUpperCase() + text.slice(1);
}

/** ` = 3`, ` = -1 ENOENT (No such file or directory)`. */
export function resultText(ret: number, errno?: string): string {
  if (!errno) return ` = ${ret}`;
  const message = errnoMessage(errno);
  return ` = -1 ${errno}${message ? ` (${message})` : ""}`;
}

/** Bytes as a strace string: C escapes, cut after `limit` bytes with `...`. */
export function quoteBytes(bytes: Uint8Array, limit: number): string {
  let s = '"';
  const n = Math.min(bytes.length, limit);
  for (let i = 0; i < n; i++) s += escapeByte(bytes[i]);
  return s + '"' + (bytes.length > limit ? "..." : "");
}

/** A string as strace prints it (its UTF-8 bytes), cut after `limit` bytes; paths are never cut (limit Infinity). */
export function quoteString(text: string, limit = Infinity): string {
  return quoteBytes(new TextEncoder().encode(text), limit);
}

/**
 * Text printed outside quotes (a program's path and argv0, a wrapper's message) with its control characters escaped
 * as strace does (`\n`, `\t`, `\r`, `\xNN`; `\\` for a backslash), so that no value can end a line of the report
 * and forge the next one, or send the terminal an escape sequence (ESC, C1 controls such as CSI U+009B); so are the
 * line separators and the bidirectional controls (`\u202e`…), which would reorder what the operator reads. Other
 * characters (UTF-8 names) are kept.
 */
export function escapeText(text: string): string {
  // deno-lint-ignore no-control-regex -- the control characters are what this escapes
  return text.replace(/[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069\\]/g, (c) => {
    if (c === "\\") return "\\\\";
    if (c === "\n") return "\\n";
    if (c === "\t") return "\\t";
    if (c === "\r") return "\\r";
    const n = c.charCodeAt(0);
    return n > 0xff ? `\\u${n.toString(16).padStart(4, "0")}` : `\\x${n.toString(16).padStart(2, "0")}`;
  });
}

function escapeByte(b: number): string {
  switch (b) {
    case 0x0a:
      return "\\n";
    case 0x09:
      return "\\t";
    case 0x0d:
      return "\\r";
    case 0x22:
      return '\\"';
    case 0x5c:
      return "\\\\";
  }
  return b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : `\\${b.toString(8)}`;
}

/** `name(args)` as strace prints it. */
export function formatCall(e: SyscallEvent, limit = DEFAULT_STRING_LIMIT): string {
  const d = e.decoded;
  const parts: string[] = [];
  if (FD_FIRST.has(e.syscall) && e.args[0] !== undefined) parts.push(String(signed32(e.args[0])));
  if (d.dirfd !== undefined) parts.push(String(d.dirfd));
  if (d.path !== undefined) parts.push(quoteString(d.rawPath ?? d.path));
  if (d.path2 !== undefined) parts.push(quoteString(d.rawPath2 ?? d.path2));
  if (d.argv !== undefined) parts.push(`[${d.argv.map((a) => quoteString(a, limit)).join(", ")}]`);
  if (d.addr !== undefined) parts.push(d.addr);
  if (d.flags !== undefined) parts.push(d.flags);
  if (d.mode !== undefined) parts.push(d.mode);
  if (d.cloneFlags !== undefined) parts.push(d.cloneFlags);
  if (d.signal !== undefined) parts.push(String(d.signal));
  if (d.data !== undefined) parts.push(quoteBytes(d.data, limit));
  if (COUNT_THIRD.has(e.syscall) && d.data !== undefined && e.args[2] !== undefined) parts.push(e.args[2]);
  if (d.fault !== undefined) parts.push(`<fault ${d.fault}>`);
  return `${e.syscall}(${parts.join(", ")})`;
}

/** A register as a signed 32-bit int (an fd, -100 for AT_FDCWD). */
function signed32(reg: string): number {
  try {
    return Number(BigInt.asIntN(32, BigInt(reg)));
  } catch {
    return NaN;
  }
}
