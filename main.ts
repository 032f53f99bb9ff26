/**
 * idwrap: intrusion-detection wrappers for Linux processes. The CLI.
 *
 * @module
 */
import { Command } from "commander";
import { registerAudit } from "./host/cli/audit.ts";
import { registerDaemon } from "./host/cli/daemon.ts";
import { registerDoctor } from "./host/cli/doctor.ts";
import { registerKmod } from "./host/cli/kmod.ts";
import { registerPolicy } from "./host/cli/policy.ts";
import { registerSeq } from "./host/cli/seq.ts";
import { registerRun } from "./host/cli/run.ts";
import { registerTrace } from "./host/cli/trace.ts";
import { PolicyError } from "./host/policy/policy.ts";
import { WrapperLoadError } from "./host/runtime/module.ts";
import { controlSocket, defaultRunDir } from "./host/daemon/protocol.ts";
import { defaultStorePath } from "./host/store/kv.ts";

/** Exit code for bad usage or input (sysexits' EX_USAGE is 64; we keep 2 like most CLIs). */
export const EXIT_USAGE = 2;
/** Exit code when idwrap itself fails (not the wrapped command). */
export const EXIT_INTERNAL = 125;

const program = new Command("idwrap")
  .description("intrusion-detection wrappers for Linux processes")
  .version("0.1.0")
  .showHelpAfterError();
registerTrace(program);
registerRun(program);
registerDaemon(program);
registerPolicy(program);
registerSeq(program);
registerAudit(program, {
  storePath: defaultStorePath,
  daemonSocket: () => controlSocket(defaultRunDir(), Deno.uid() ?? 0),
});
registerDoctor(program);
registerKmod(program);

try {
  await program.parseAsync(Deno.args, { from: "user" });
} catch (e) {
  if (e instanceof PolicyError) {
    console.error(`idwrap: invalid policy: ${e.message}`);
    Deno.exit(EXIT_USAGE);
  }
  if (e instanceof WrapperLoadError) {
    console.error(`idwrap: ${e.message}`);
    Deno.exit(EXIT_USAGE);
  }
  console.error(`idwrap: ${(e as Error).message}`);
  Deno.exit(EXIT_INTERNAL);
}
