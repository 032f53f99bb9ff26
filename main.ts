/**
 * idwrap: intrusion-detection wrappers for Linux processes. The CLI.
 *
 * @module
 */
import { Command, Option } from "commander";
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
import { EXIT_INTERNAL, EXIT_USAGE, UsageError } from "./host/cli/exit.ts";
import { VERSION } from "./host/version.ts";
import { log, LOG_FORMATS, type LogFormat, setLogFormat } from "./host/log.ts";

const program = new Command("idwrap")
  .description("intrusion-detection wrappers for Linux processes")
  .version(VERSION)
  .showHelpAfterError()
  // `idwrap run --help` lists --log-format too (a global option).
  .configureHelp({ showGlobalOptions: true })
  // Commander has printed its message (unknown command or option, missing argument): bad usage exits 2 for every
  // command, which inherit this; help and --version exit 0. Set before the commands are added, so they inherit it.
  .exitOverride((err) => Deno.exit(err.exitCode === 0 ? 0 : EXIT_USAGE))
  // idwrap's own messages (not traces, events or --json reports), for every command; before or after its name.
  .addOption(
    new Option("--log-format <format>", "idwrap's own log lines: text, or json (one object a line, with levels)")
      .choices(LOG_FORMATS)
      .default("text")
      .env("IDWRAP_LOG_FORMAT"),
  )
  .hook("preAction", (cmd) => setLogFormat(cmd.opts().logFormat as LogFormat));
registerTrace(program);
registerRun(program);
registerDaemon(program);
registerPolicy(program);
registerSeq(program);
registerAudit(program, {
  storePath: defaultStorePath,
  daemonSocket: (runDir = defaultRunDir()) => controlSocket(runDir, Deno.uid() ?? 0),
});
registerDoctor(program);
registerKmod(program);

try {
  await program.parseAsync(Deno.args, { from: "user" });
} catch (e) {
  if (e instanceof PolicyError) {
    log("error", `invalid policy: ${e.message}`);
    Deno.exit(EXIT_USAGE);
  }
  if (e instanceof WrapperLoadError || e instanceof UsageError) {
    log("error", e.message);
    Deno.exit(EXIT_USAGE);
  }
  log("error", (e as Error).message);
  Deno.exit(EXIT_INTERNAL);
}
