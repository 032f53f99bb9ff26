/**
 * AssemblyScript's default abort imports env.abort, which the ABI forbids
 * (a module importing anything outside "idwrap" is refused). Wrappers are
 * compiled with `--use abort=wrappers/sdk/abort/idwrapAbort` (asconfig.json),
 * which routes failed assertions, bounds checks and out-of-memory here: the
 * message goes to the host log at level 3 (error), then the instance traps,
 * which the host reports as a failure and answers with the fail mode.
 */
import { log } from "./imports";

const ABORT_PREFIX = "abort: ";
const NO_MESSAGE = "(no message)";
const LOG_ERROR: i32 = 3;

// Set while reporting, so an abort raised by the report itself (say, out of
// memory while building the message) traps at once instead of recursing.
let aborting = false;

/** The abort AssemblyScript calls; never returns. */
export function idwrapAbort(message: string | null, fileName: string | null, line: u32, column: u32): void {
  if (!aborting) {
    aborting = true;
    let text = ABORT_PREFIX + (message === null ? NO_MESSAGE : message);
    if (fileName !== null) text += " at " + fileName + ":" + line.toString() + ":" + column.toString();
    const buf = String.UTF8.encode(text);
    log(LOG_ERROR, changetype<usize>(buf), buf.byteLength);
  }
  unreachable();
}
