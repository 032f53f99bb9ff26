/**
 * How the CLI ends on bad usage: one error type and the exit codes every command shares.
 *
 * @module
 */

/** Exit code for bad usage or input (sysexits' EX_USAGE is 64; we keep 2 like most CLIs). */
export const EXIT_USAGE = 2;
/** Exit code when idwrap itself fails (not the wrapped command). */
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
