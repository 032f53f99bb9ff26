/**
 * `idwrap trace [strace-like options] -- CMD…` (or `-p PID`): print every
 * notified call of a command's tree, one per line, the way strace prints
 * them (host/trace/sink.ts), or one JSON event per line (`--json`, the
 * format `idwrap policy test` replays), or a table of counts (`-c`).
 *
 * @module
 */
import { log } from "../log.ts";
import type { Command } from "commander";
import type { Policy } from "../policy/policy.ts";
import { resolveSyscalls } from "../syscalls/mod.ts";
import { autoSourceFromEnv, BpfRefusal, parseSourceChoice, runUnder } from "../sources/run.ts";
import { attachRefusal, attachUnderBpf } from "./trace_attach.ts";
import { countsTable } from "../trace/counts.ts";
import type { TraceSinkOptions } from "../trace/sink.ts";
import { DEFAULT_STRING_LIMIT, parseTraceExpr } from "../trace/strace_text.ts";
import { parseArgument, UsageError } from "./exit.ts";

/** Options of `idwrap trace`. */
export interface TraceCliOptions {
  json?: boolean;
  output?: string;
  syscalls: string;
  emulate: boolean;
  source?: string;
  verbose?: boolean;
  stringLimit: string;
  follow?: boolean;
  counts?: boolean;
  times?: boolean;
  pid?: string;
  recordData?: boolean;
}

/** Adds the trace command to the CLI. */
export function registerTrace(program: Command): void {
  program.command("trace")
    .description("run a command (or observe a running one, -p) and print its process tree's calls, strace-like")
    .option("--json", "one JSON object per line (what `idwrap policy test` replays)")
    .option(
      "--record-data",
      "--json: also record the bytes writes write (base64), for policy tests of wrappers that read them; they may " +
        "hold secrets",
    )
    .option("-o, --output <file>", "write the trace to a file instead of standard error")
    .option(
      "-e, --syscalls <expr>",
      "trace=LIST (strace's form) or LIST: calls and %classes (%file, %process, %network, %signal, %desc, %memory)",
      "%file,%process,%net",
    )
    .option("-s, --string-limit <n>", "cut written data and argv strings after N bytes", String(DEFAULT_STRING_LIMIT))
    .option("-f, --follow", "follow children (always on: accepted for strace's users)")
    .option("-c, --counts", "print a table of calls and errors per system call at the end instead of each call")
    .option("-T, --times", "print the time each call took, where the source reports its result")
    .option("-p, --pid <pid>", "observe a running process (and its new children) until it exits: --source bpf only")
    .option("--no-emulate", "seccomp: let the kernel run open calls instead of the supervisor (no post results)")
    .option(
      "--source <source>",
      "the event source: auto (the kernel module if loaded, else seccomp), kmod, seccomp, hybrid (root) or bpf " +
        "(root)",
      "auto",
    )
    .option("-v, --verbose", "say which event source was chosen and why")
    .argument("[command...]", "the command to run, after --")
    .action(async (command: string[], opts: TraceCliOptions) => {
      const observe = parseArgument(() => parseTraceExpr(opts.syscalls), `-e ${opts.syscalls}: `);
      parseArgument(() => resolveSyscalls(observe), `-e ${opts.syscalls}: `); // unknown names fail before anything runs
      const stringLimit = Number(opts.stringLimit);
      if (!Number.isInteger(stringLimit) || stringLimit < 0) {
        throw new UsageError(`-s ${opts.stringLimit}: expected a whole number of bytes`);
      }
      const source = parseArgument(() => parseSourceChoice(opts.source));
      const autoPrefers = parseArgument(autoSourceFromEnv) ?? "seccomp";
      const pid = opts.pid === undefined ? undefined : Number(opts.pid);
      if (pid !== undefined && (!Number.isInteger(pid) || pid <= 0)) {
        throw new UsageError(`-p ${opts.pid}: expected a process id`);
      }
      if (pid !== undefined && command.length) throw new UsageError("-p: give a process id or a command, not both");
      if (pid === undefined && !command.length) throw new UsageError("missing required argument 'command'");
      if (pid !== undefined && source !== "bpf") throw new UsageError(attachRefusal(source));
      if (opts.counts && opts.json) throw new UsageError("-c and --json: choose one");

      const policy: Policy = { name: "trace", file: "(command line)", observe, rules: [], wrappers: [] };
      // -c counts the JSON events once the run is over (a table at the end, as strace -c).
      const countsFile = opts.counts
        ? await Deno.makeTempFile({ prefix: "idwrap-trace-", suffix: ".jsonl" })
        : undefined;
      const trace: TraceSinkOptions = countsFile ? { format: "json", output: countsFile } : {
        format: opts.json ? "json" : "text",
        output: opts.output,
        stringLimit,
        times: opts.times,
        recordData: opts.recordData,
      };
      try {
        if (pid !== undefined) {
          await attachUnderBpf(pid, { policies: [policy], trace }).catch(refused);
        } else {
          const result = await runUnder(source, command, {
            policies: [policy],
            trace,
            emulateOpens: opts.emulate,
            // auto: seccomp unless IDWRAP_AUTO_SOURCE names another (the suites run on each source): not the hybrid by
            // default, whose ring cannot fault in a path strace would print (docs/bpf.md).
            autoPrefers,
            onChoice: (chosen, why) => opts.verbose && log("info", `event source ${chosen}: ${why}`),
          }).catch(refused);
          Deno.exitCode = result.exitCode;
        }
        if (countsFile) {
          const table = countsTable(await Deno.readTextFile(countsFile)) + "\n";
          if (opts.output) await Deno.writeTextFile(opts.output, table);
          else await Deno.stderr.write(new TextEncoder().encode(table));
        }
      } finally {
        if (countsFile) await Deno.remove(countsFile).catch(() => {});
      }
    });
}

/** Refused before the command started (who runs idwrap): bad usage, exit 2. */
function refused(e: unknown): never {
  throw e instanceof BpfRefusal ? new UsageError(e.message) : e;
}
