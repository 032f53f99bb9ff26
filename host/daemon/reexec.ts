/**
 * `idwrap daemon --restart` as an exec in place (issue 17): the running daemon
 * re-executes the new installation's `idwrap daemon` in its own process. Its
 * pid does not change, nor does its idwrap-holder: every wrapped tree's seccomp
 * filter, built once at its launch, names both in its tamper guard
 * (host/sources/seccomp/tamper.ts, guardFilter), so a tree the daemon served
 * before a restart still cannot stop or kill the daemon that serves it after.
 * What crosses the exec: the holder's socket and a copy of every live
 * session's listener (their close-on-exec flag cleared just before), and a
 * description of them in the environment (INHERIT_ENV); with --system-wide, the
 * kernel module's device too, whose session (watched processes, waiting calls)
 * goes on. docs/daemon.md,
 * "Restarts and upgrades".
 *
 * @module
 */
import { dirname } from "node:path";
import { addressOf, errno, libc } from "../unsafe/libc.ts";
import { notTheDevice } from "../sources/kmod/device.ts";
import { parseSupervisorLoss, type SupervisorLoss } from "../sources/seccomp/holder.ts";

/** The environment variable that hands the re-executed daemon what it inherits. */
export const INHERIT_ENV = "IDWRAP_DAEMON_INHERIT";

const F_DUPFD_CLOEXEC = 1030, F_GETFD = 1, F_SETFD = 2, FD_CLOEXEC = 1;
const SYS_EXECVE = 59n;

/** A session the re-executed daemon goes on serving. */
export interface InheritedSession {
  session: number;
  uid: number;
  /** The tree's first process. */
  pid: number;
  /** The daemon's copy of the tree's listener, open across the exec. */
  listener: number;
  mode: SupervisorLoss;
}

/** What one daemon process hands the next program it becomes. */
export interface Inheritance {
  holder: { pid: number; fd: number };
  next: number;
  sessions: InheritedSession[];
  /**
   * With --system-wide: the daemon's /dev/idwrap, open across the exec so that the module's session (its watched
   * processes, its waiting calls) goes on; the next program adopts it (docs/daemon.md, "The kernel module").
   */
  kmod?: { fd: number };
  /** The command this process ran before: run again if the new one cannot start (once: not handed on). */
  previous?: RestartCommand;
  /** Why the restart did not happen: this process went back to the command it ran before (status says so). */
  failed?: string;
}

/** The new installation's command: the runtime with its own arguments, then the CLI's arguments after `daemon`'s. */
export interface RestartCommand {
  runtime: string[];
  args: string[];
}

/** A copy of `fd` this process keeps, closed at exec until cleared (`keepAcrossExec`). */
export function keepCopy(fd: number): number {
  const copy = libc.symbols.fcntl(fd, F_DUPFD_CLOEXEC, 0n);
  if (copy < 0) throw new Error(`cannot copy fd ${fd}: errno ${errno()}`);
  return copy;
}

/** Clears the close-on-exec flag: `fd` stays open in the program this process becomes. */
function keepAcrossExec(fd: number): void {
  if (libc.symbols.fcntl(fd, F_SETFD, 0n) < 0) {
    throw new Error(`fd ${fd}: cannot keep it across exec: errno ${errno()}`);
  }
}

/** Sets the close-on-exec flag back on an inherited fd (no child this process starts should get it). */
function closeOnExec(fd: number): void {
  if (libc.symbols.fcntl(fd, F_SETFD, BigInt(FD_CLOEXEC)) < 0) {
    throw new Error(`inherited fd ${fd} is not open: errno ${errno()}`);
  }
}

/**
 * Runtime options `--restart` may pass to Deno (the `idwrap` scripts': the checkout's, the package's); `--config` takes
 * the next argument, a file.
 */
const RUNTIME_FLAGS = new Set([
  "--allow-all",
  "-A",
  "--unstable-kv",
  "--quiet",
  "-q",
  "--no-prompt",
  "--no-lock",
  "--cached-only",
  "--config",
  "-c",
]);

/**
 * The command to exec in place of `command`, or why it may not replace the daemon: its runtime must be an absolute
 * path to a root-owned executable that no one else can write, in directories no one but root can write, run as
 * `RUNTIME run [known flags] FILE…` where every file (the main module, `--config`'s) is held to the same rule. Each path
 * is replaced by its resolved form, so the exec runs the very file checked: a symbolic link in a directory another user
 * can write would otherwise be re-pointed between the check and the exec (red team rt10 F1), and a flag naming a file
 * in a form the check does not parse (`--preload=F`, `--config=F`) is refused (rt10 F2). The daemon's own options
 * (`args`: policies, store, run dir) are root's, as at any start.
 */
export function checkRestartCommand(command: RestartCommand): { command: RestartCommand } | { why: string } {
  const { runtime, args } = command;
  if (!Array.isArray(runtime) || !runtime.length || !Array.isArray(args)) {
    return { why: "restart: expected {runtime: [path, …], args: […]}" };
  }
  for (const a of [...runtime, ...args]) {
    if (typeof a !== "string" || a.includes("\0")) {
      return { why: `restart: argument ${JSON.stringify(a)} is not a string` };
    }
  }
  if (args.includes("--restart")) return { why: "restart: the new daemon's arguments may not ask for a restart" };
  if (!runtime[0].startsWith("/")) return { why: `restart: the runtime ${runtime[0]} is not an absolute path` };
  const pinned: string[] = [];
  for (const [i, a] of runtime.entries()) {
    if (i === 1 && a !== "run") {
      return { why: `restart: expected "${runtime[0]} run …", got ${JSON.stringify(runtime)}` };
    }
    if (i === 1 || (a.startsWith("-") && RUNTIME_FLAGS.has(a))) {
      pinned.push(a);
      continue;
    }
    if (!a.startsWith("/")) {
      return { why: `restart: runtime argument ${JSON.stringify(a)} is neither a known flag nor an absolute path` };
    }
    let real: string;
    try {
      real = Deno.realPathSync(a);
    } catch (e) {
      return { why: `restart: ${a}: ${(e as Error).message}` };
    }
    const why = trusted(real, i === 0);
    if (why) return { why: `restart: ${a}${real === a ? "" : ` (${real})`}: ${why}` };
    pinned.push(real);
  }
  if (pinned.length < 3) return { why: `restart: expected "${runtime[0]} run … MAIN", got ${JSON.stringify(runtime)}` };
  return { command: { runtime: pinned, args } };
}

/** Why the file at `real` (and each directory above it) could be changed by someone other than root. */
function trusted(real: string, executable: boolean): string | undefined {
  const s = Deno.statSync(real);
  if (!s.isFile) return "not a regular file";
  if (executable && !((s.mode ?? 0) & 0o111)) return "not executable";
  for (let p = real;; p = dirname(p)) {
    const st = Deno.statSync(p);
    if (st.uid !== 0) return `${p} is owned by uid ${st.uid}, not root`;
    if ((st.mode ?? 0) & 0o022) return `${p} is writable by others than root (mode ${(st.mode! & 0o7777).toString(8)})`;
    if (p === "/") return undefined;
  }
}

/** The command this process runs now, as a RestartCommand (the fallback if the new one cannot start). */
export function currentCommand(): RestartCommand {
  const argv = Deno.readTextFileSync("/proc/self/cmdline").split("\0").slice(0, -1);
  const cli = Deno.args.length;
  return { runtime: [Deno.execPath(), ...argv.slice(1, argv.length - cli)], args: [...Deno.args] };
}

/**
 * Becomes `command` (execve in this process: same pid), with `inheritance`'s fds kept open and described in the
 * environment. Returns only when the exec failed, with its reason.
 */
export function execInPlace(command: RestartCommand, inheritance: Inheritance): string {
  try {
    keepAcrossExec(inheritance.holder.fd);
    for (const s of inheritance.sessions) keepAcrossExec(s.listener);
    if (inheritance.kmod) keepAcrossExec(inheritance.kmod.fd);
  } catch (e) {
    return (e as Error).message;
  }
  const env = { ...Deno.env.toObject(), [INHERIT_ENV]: JSON.stringify(inheritance) };
  const strings = [...command.runtime, ...command.args];
  const argv = cStringArray(strings);
  const envp = cStringArray(Object.entries(env).map(([k, v]) => `${k}=${v}`));
  const path = cString(command.runtime[0]);
  libc.symbols.syscall(SYS_EXECVE, addressOf(path), addressOf(argv.array), addressOf(envp.array), 0n, 0n, 0n);
  const err = errno();
  // Still here: the exec failed. The fds go back to being ours alone.
  closeOnExec(inheritance.holder.fd);
  for (const s of inheritance.sessions) closeOnExec(s.listener);
  if (inheritance.kmod) closeOnExec(inheritance.kmod.fd);
  void argv.keep, envp.keep; // alive until the call returned
  return `execve ${command.runtime[0]} failed: errno ${err}`;
}

function cString(s: string): Uint8Array {
  return new TextEncoder().encode(s + "\0");
}

/** A NULL-terminated array of pointers to C strings; `keep` holds the strings' memory. */
function cStringArray(strings: string[]): { array: Uint8Array; keep: Uint8Array[] } {
  const keep = strings.map(cString);
  const pointers = new BigUint64Array(strings.length + 1);
  keep.forEach((b, i) => pointers[i] = addressOf(b));
  return { array: new Uint8Array(pointers.buffer), keep };
}

/**
 * What the previous program of this process handed over (once: the variable is removed), checked: the holder must be
 * this process's child and be idwrap-holder, every fd open. Its fds are made close-on-exec again.
 *
 * @throws naming the field that is wrong
 */
export function takeInheritance(): Inheritance | undefined {
  const text = Deno.env.get(INHERIT_ENV);
  if (text === undefined) return undefined;
  Deno.env.delete(INHERIT_ENV);
  const bad = (what: string) => new Error(`${INHERIT_ENV}: ${what}`);
  let v: Inheritance;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw bad(`not JSON: ${(e as Error).message}`);
  }
  const int = (x: unknown, field: string) => {
    if (!Number.isInteger(x) || (x as number) < 0) throw bad(`${field}: expected a non-negative integer, got ${x}`);
    return x as number;
  };
  int(v?.holder?.pid, "holder.pid");
  int(v.holder.fd, "holder.fd");
  int(v.next, "next");
  if (!Array.isArray(v.sessions)) throw bad("sessions: expected an array");
  if (v.failed !== undefined && typeof v.failed !== "string") throw bad("failed: expected a string");
  if (v.previous !== undefined) {
    const checked = checkRestartCommand(v.previous);
    if ("why" in checked) throw bad(`previous: ${checked.why}`);
  }
  for (const [i, s] of v.sessions.entries()) {
    for (const f of ["session", "uid", "pid", "listener"] as const) int(s[f], `sessions[${i}].${f}`);
    parseSupervisorLoss(s.mode, `${INHERIT_ENV}: sessions[${i}].mode`);
  }
  if (v.kmod !== undefined) int(v.kmod?.fd, "kmod.fd");
  const status = (() => {
    try {
      return Deno.readTextFileSync(`/proc/${v.holder.pid}/status`);
    } catch {
      return "";
    }
  })();
  if (!/^Name:\s*idwrap-holder$/m.test(status) || !new RegExp(`^PPid:\\s*${Deno.pid}$`, "m").test(status)) {
    throw bad(`holder.pid ${v.holder.pid} is not this process's idwrap-holder`);
  }
  const fds = [v.holder.fd, ...v.sessions.map((s) => s.listener), ...v.kmod ? [v.kmod.fd] : []];
  for (const fd of fds) {
    if (libc.symbols.fcntl(fd, F_GETFD, 0n) < 0) throw bad(`fd ${fd} is not open`);
    closeOnExec(fd);
  }
  if (v.kmod) {
    const why = notTheDevice(v.kmod.fd);
    if (why) throw bad(`kmod.fd ${v.kmod.fd}: ${why}`);
  }
  return v;
}
