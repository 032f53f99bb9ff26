/**
 * The supervisor's side of idwrap-holder (kmod/seccomp/holder.c): a small
 * process that keeps a copy of every listener this supervisor serves, and
 * gives each tree its on_supervisor_loss answer (kill, or EPERM for every
 * notified call) once this process is gone — SIGKILLed included, since the
 * holder sees the end of file of a socket only we hold. Without it the kernel
 * fails every notified call with ENOSYS (issue 17). docs/daemon.md,
 * "Losing the supervisor".
 *
 * @module
 */
import { errno, libc } from "../../unsafe/libc.ts";
import { sendWithFd, seqpacketPair } from "../../unsafe/fd_passing.ts";
import { holderPath } from "../launcher.ts";

/** What a tree gets when its supervisor is gone for good. */
export type SupervisorLoss = "kill" | "deny";

/** The choices, for messages and the command line. */
export const SUPERVISOR_LOSS_CHOICES: readonly SupervisorLoss[] = ["kill", "deny"];

/** Parses an on_supervisor_loss value, naming what was expected. */
export function parseSupervisorLoss(value: string, where = "on_supervisor_loss"): SupervisorLoss {
  if ((SUPERVISOR_LOSS_CHOICES as readonly string[]).includes(value)) return value as SupervisorLoss;
  throw new Error(`${where}: expected one of ${SUPERVISOR_LOSS_CHOICES.join(", ")}, got ${JSON.stringify(value)}`);
}

const F_SETFD = 2;

/** What a supervisor thread needs of its holder: the socket to report to, the pid to guard. */
export interface HolderLink {
  holderFd: number;
  holderPid: number;
}

/**
 * Starts idwrap-holder, then the supervisor thread beside it (`start`, given the holder's socket and pid); if the
 * thread does not start, the holder is closed. The holder comes first: its pid is in the filter's guard, and from the
 * handshake on, however this process ends, the tree gets on_supervisor_loss, not ENOSYS.
 *
 * @returns the holder and what `start` returned
 */
export async function withHolder<T>(start: (link: HolderLink) => Promise<T>): Promise<[ListenerHolder, T]> {
  const holder = await ListenerHolder.start();
  try {
    return [holder, await start({ holderFd: holder.socket, holderPid: holder.pid })];
  } catch (e) {
    holder.close();
    throw e;
  }
}

/** A running idwrap-holder, started by this supervisor. */
export class ListenerHolder {
  private constructor(readonly pid: number, private fd: number) {}

  /** Our end of the holder's socket, for the supervisor thread's "at SESSION ID" reports (transport.ts). */
  get socket(): number {
    return this.fd;
  }

  /**
   * Starts the holder: a socket pair, one end inherited by the holder alone (it is close-on-exec again, here, as
   * soon as the holder is started), the other kept here for as long as this process supervises.
   */
  static async start(): Promise<ListenerHolder> {
    const path = await holderPath();
    const [ours, theirs] = seqpacketPair();
    let child: Deno.ChildProcess;
    try {
      // Inherited by the holder only: nothing else is started while the supervisor starts.
      libc.symbols.fcntl(theirs, F_SETFD, 0n);
      child = new Deno.Command(path, {
        args: [String(theirs)],
        stdin: "null",
        stdout: "null",
        stderr: "inherit",
      }).spawn();
    } catch (e) {
      libc.symbols.close(ours);
      throw new Error(`Cannot start idwrap-holder: ${(e as Error).message}`);
    } finally {
      libc.symbols.close(theirs);
    }
    child.unref(); // it outlives us on purpose
    return new ListenerHolder(child.pid, ours);
  }

  /**
   * The holder this process had before it re-executed itself (`idwrap daemon --restart`, host/daemon/reexec.ts): the
   * same holder, still watching the same socket, whose end `fd` crossed the exec.
   */
  static inherited(pid: number, fd: number): ListenerHolder {
    return new ListenerHolder(pid, fd);
  }

  /**
   * Hands the holder a copy of a session's listener (SCM_RIGHTS), before the tree runs; returns once the holder
   * has it. `pid` is the tree's first process.
   *
   * @throws when the holder is gone or does not confirm
   */
  hold(session: number, pid: number, listener: number, mode: SupervisorLoss): void {
    const sent = sendWithFd(this.fd, new TextEncoder().encode(`hold ${session} ${pid} ${mode}`), listener);
    if (sent < 0n) throw new Error(`idwrap-holder (pid ${this.pid}) is gone: errno ${errno()}`);
    const reply = new Uint8Array(64);
    const n = Number(libc.symbols.read(this.fd, reply, BigInt(reply.length)));
    const said = n > 0 ? new TextDecoder().decode(reply.subarray(0, n)) : "";
    if (said !== `held ${session}`) {
      throw new Error(`idwrap-holder (pid ${this.pid}) did not take session ${session}'s listener (${said || "eof"})`);
    }
  }

  /** The supervisor can no longer serve this session (its thread died): the holder answers it from now on. */
  lost(session: number): void {
    const text = new TextEncoder().encode(`lost ${session}`);
    libc.symbols.write(this.fd, text, BigInt(text.length));
  }

  /** Supervision ends here: the holder gives every tree still running its on_supervisor_loss answer. */
  close(): void {
    if (this.fd < 0) return;
    libc.symbols.close(this.fd);
    this.fd = -1;
  }
}
