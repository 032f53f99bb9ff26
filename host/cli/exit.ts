/**
 * How the CLI ends: the exit codes every command shares (the README lists them) and the error for bad usage.
 * `idwrap run` otherwise exits with the wrapped command's status (128 + signal if it was killed).
 *
 * @module
 */

/** A command that could not do its job (a kmod build or load that failed). */
export const EXIT_FAILED = 1;
/** Bad usage or input: a bad argument, policy or wrapper (sysexits' EX_USAGE is 64; we keep 2 like most CLIs). */
export const EXIT_USAGE = 2;
/** A command needs the daemon and none answers (sysexits' EX_UNAVAILABLE). */
export const EXIT_NO_DAEMON = 69;
/**
 * `idwrap run` under the daemon: the daemon stopped serving the tree before it ended, so the tree got the daemon's
 * on_supervisor_loss answer (sysexits' EX_TEMPFAIL: a service manager restarts the service).
 */
export const EXIT_SUPERVISION_LOST = 75;
/** The daemon refuses this user (sysexits' EX_NOPERM). */
export const EXIT_NOPERM = 77;
/** idwrap itself failed (not the wrapped command). */
export const EXIT_INTERNAL = 125;

/** A bad command-line argument: reported on its own line, exit 2. */
export class UsageError extends Error {}

/** Runs `parse` on a command-line value; what it throws becomes a UsageError (exit 2), the message kept. */
export function parseArgument<T>(parse: () => T, prefix = ""): T {
  try {
    return parse();
  } catch (e) {
    throw new UsageError(prefix + (e as Error).message);
  }
}
