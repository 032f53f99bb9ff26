/**
 * `--log-format json` (and IDWRAP_LOG_FORMAT=json): idwrap's own messages, one JSON object a line with a level, on
 * real runs: `idwrap run` under a policy that makes it warn, and a real daemon that starts, warns, refuses a reload
 * and stops. The text form of the same runs is today's, line for line; no log line holds an ANSI escape (standard
 * error is a pipe here, not a terminal).
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { ensureUser, idwrap, idwrapAsUser, writePolicy } from "../helpers.ts";
import { startDaemon, waitFor } from "../daemon/daemon_helpers.ts";

/** Observing close makes `run` warn (docs/seccomp.md, "Signals and EINTR"). */
const CLOSE_POLICY = "version: 1\nname: watch-close\nobserve: [close, getpid]\n";
/** An argument holding an ANSI escape (red text). */
const RED = "\x1b[31mred";
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

interface LogLine {
  time: string;
  level: string;
  logger: string;
  message: string;
}

/** The JSON log lines of `stderr`; its other lines (the run's text summary) are left out. */
function jsonLines(stderr: string): LogLine[] {
  return stderr.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
}

/** A JSON log line as the text form writes it. */
function asText(l: LogLine): string {
  const warn = l.level === "warning" ? "warning: " : "";
  return `${l.logger}: ${warn}${l.message}`.replaceAll("\x1b", "\\x1b");
}

Deno.test("run --log-format json: the policy's warning is one JSON line at level warning; the text form is unchanged", async () => {
  const policy = await writePolicy(CLOSE_POLICY);
  const args = ["run", "--source", "seccomp", "-p", policy, "--", "/bin/true"];
  const text = await idwrap(args);
  assertEquals(text.code, 0, text.stderr);
  assert(!text.stderr.includes("\x1b"), "an ANSI escape in the text log");
  const textLines = text.stderr.trimEnd().split("\n");
  const warning = textLines.find((l) => l.startsWith("idwrap: warning: policy watch-close "));
  assert(warning, text.stderr);
  // The report: the tree's lifecycle lines (trace) and the summary, its last line.
  const report = textLines.filter((l) => l !== warning);
  assert(/^idwrap: \/bin\/true exited with 0; \d+ calls notified/.test(report.at(-1)!), text.stderr);

  for (
    const [how, extra, env] of [
      ["flag after run", ["--log-format", "json"], {}],
      ["flag before run", [], {}],
      ["IDWRAP_LOG_FORMAT", [], { IDWRAP_LOG_FORMAT: "json" }],
    ] as const
  ) {
    const full = how === "flag before run" ? ["--log-format", "json", ...args] : [args[0], ...extra, ...args.slice(1)];
    const json = await idwrap(full, { env });
    assertEquals(json.code, 0, `${how}: ${json.stderr}`);
    assert(!json.stderr.includes("\x1b"), `${how}: an ANSI escape in the JSON log`);
    const lines = jsonLines(json.stderr);
    const warnings = lines.filter((l) => l.level === "warning");
    assertEquals(warnings.length, 1, `${how}: ${json.stderr}`);
    const w = warnings[0];
    assertEquals([w.logger, Object.keys(w).sort()], ["idwrap", ["level", "logger", "message", "time"]], how);
    assert(ISO.test(w.time), w.time);
    assert(w.message.startsWith("policy watch-close "), w.message);
    // The same message, written as text, is the text run's line byte for byte.
    assertEquals(asText(w), warning, how);
    // The report (lifecycle lines, the summary) is not a log: it stays as in the text run (but pids and counts).
    const rest = json.stderr.trimEnd().split("\n").filter((l) => !l.startsWith("{"));
    const shape = (l: string) => l.replace(/\d+/g, "N");
    assertEquals(rest.map(shape), report.map(shape), json.stderr);
  }
});

Deno.test("--log-format and IDWRAP_LOG_FORMAT: a bad value exits 2 and names the option and the choices", async () => {
  for (
    const [args, env, names] of [
      [["run", "--log-format", "xml", "--", "/bin/true"], {}, "'--log-format <format>' argument 'xml'"],
      [["run", "--", "/bin/true"], { IDWRAP_LOG_FORMAT: "yaml" }, "value 'yaml' from env 'IDWRAP_LOG_FORMAT'"],
    ] as const
  ) {
    const r = await idwrap([...args], { env });
    assertEquals(r.code, 2, r.stderr);
    assert(r.stderr.includes(names) && r.stderr.includes("Allowed choices are text, json"), r.stderr);
  }
});

/** Starts a daemon on `policy`, makes `policy` invalid, asks for a reload (SIGHUP), stops it: what it logged. */
async function daemonLife(policy: string, args: string[]): Promise<{ log: string; paths: string[] }> {
  await Deno.writeTextFile(policy, CLOSE_POLICY);
  const d = await startDaemon([...args, "-p", policy]);
  try {
    // A wrapped user's command line is in the daemon's log: its escapes must not reach an administrator's terminal.
    const r = await idwrap(["run", "--run-dir", d.runDir, "--", "/bin/echo", RED], { env: d.env });
    assertEquals(r.code, 0, r.stderr);
    await Deno.writeTextFile(policy, CLOSE_POLICY + "bogus_key: 1\n");
    d.process.kill("SIGHUP");
    await waitFor("the daemon to refuse the reload", () => d.log().includes("reload refused") || undefined);
  } finally {
    await d.stop();
  }
  return { log: d.log(), paths: [d.runDir, d.store] };
}

Deno.test("daemon --log-format json: start, warning, serving, a refused reload and stop are JSON lines with levels", async () => {
  const policy = await writePolicy(CLOSE_POLICY);
  const text = await daemonLife(policy, []);
  const json = await daemonLife(policy, ["--log-format", "json"]);
  for (const l of [text.log, json.log]) assert(!l.includes("\x1b"), "an ANSI escape in a daemon log");
  // Each run has its own run dir, store and pids: named alike, the two logs compare line for line.
  const same = (log: string, paths: string[]) =>
    paths.reduce((s, p) => s.replaceAll(p, "<dir>"), log).replace(/\(pid \d+\)/g, "(pid N)").trimEnd().split("\n");
  const textLines = same(text.log, text.paths);
  assert(textLines.every((l) => l.startsWith("idwrap daemon: ")), text.log);
  const lines = json.log.trimEnd().split("\n").map((l) => {
    assert(l.startsWith("{"), `not a JSON line: ${l}`);
    return JSON.parse(l) as LogLine;
  });
  assert(lines.every((l) => l.logger === "idwrap daemon" && ISO.test(l.time)), json.log);
  const levelOf = (start: string) => lines.find((l) => l.message.startsWith(start))?.level;
  assertEquals(
    [levelOf("policy watch-close "), levelOf("serving users 0 on "), levelOf("reload refused, "), levelOf("stopped")],
    ["warning", "info", "error", "info"],
    json.log,
  );
  assert(json.log.includes("bogus_key"), json.log);
  // The command line is logged, its escape shown, not sent: `\x1b` in the text, `\u001b` in JSON.
  assert(text.log.includes(`runs /bin/echo \\x1b[31mred`), text.log);
  assertEquals(lines.filter((l) => l.message.includes(`runs /bin/echo ${RED} (pid `)).map((l) => l.level), ["info"]);
  // Written as text, the JSON run's lines are the text run's, byte for byte (but the temporary directories).
  assertEquals(same(lines.map(asText).join("\n"), json.paths), textLines);
});

Deno.test("an ordinary user the daemon serves cannot send terminal escapes through the root daemon's text log", async () => {
  const uid = await ensureUser("idwrap-logger");
  const home = await scratchDir({ prefix: "idwrap-logger-" });
  const policy = await writePolicy(CLOSE_POLICY);
  for (const format of ["text", "json"]) {
    const d = await startDaemon(["--log-format", format, "-p", policy, "--allow", "idwrap-logger"]);
    try {
      // The payload: an escape in argv, which the daemon logs with the session it starts.
      const r = await idwrapAsUser(uid, home, ["run", "--run-dir", d.runDir, "--", "/bin/echo", RED]);
      assertEquals(r.code, 0, r.stderr);
      assert(r.stderr.includes("(served by the daemon)"), r.stderr);
      // The control: the bytes are delivered (echo prints them) and reach the daemon's logger as they were.
      assertEquals(r.stdout, `${RED}\n`);
      await waitFor("the session's log line", () => d.log().includes(`uid ${uid} runs /bin/echo `) || undefined);
    } finally {
      await d.stop();
    }
    const line = d.log().split("\n").find((l) => l.includes(`uid ${uid} runs /bin/echo `))!;
    assert(!line.includes("\x1b"), `an escape in the root daemon's ${format} log: ${JSON.stringify(line)}`);
    if (format === "json") assert((JSON.parse(line) as LogLine).message.includes(`/bin/echo ${RED} (pid `), line);
    else assert(line.includes("/bin/echo \\x1b[31mred (pid "), line);
  }
});
