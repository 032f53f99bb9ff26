/**
 * The attacker of tests/daemon/peercred_test.ts, run as an allowed user: it
 * asks the daemon for a session as `run` would, then connects to the session
 * socket itself and names another process and fd as "its" listener.
 * Prints the daemon's answer.
 *
 * Usage: deno run -A handshake_attacker.ts RUN_DIR PID FD
 */
import { controlSocket, readLines, type Response, sendLine } from "../../host/daemon/protocol.ts";

const [runDir, pid, fd] = Deno.args;
const control = await Deno.connect({ transport: "unix", path: controlSocket(runDir, Deno.uid()!) });
await sendLine(control, { op: "launch", command: ["/bin/true"] });
const launch = (await readLines<Response>(control).next()).value as Extract<Response, { session: number }>;
const session = await Deno.connect({ transport: "unix", path: launch.socket });
await session.write(new TextEncoder().encode(`listener ${pid} ${fd} 1\n`));
const buf = new Uint8Array(512);
const n = await session.read(buf);
console.log(n === null ? "(closed)" : new TextDecoder().decode(buf.subarray(0, n)).trim());
control.close();
