/**
 * idwrap's own log lines (not the trace or events, not `--json` reports): `idwrap: …` and `idwrap daemon: …` on
 * standard error, or with `--log-format json` (or IDWRAP_LOG_FORMAT=json) one JSON object a line:
 * `{"time", "level", "logger", "message", …fields}` (docs/daemon.md, "Logs").
 *
 * @module
 */

/** How severe a log line is. */
export type LogLevel = "debug" | "info" | "warning" | "error";

/** How log lines are written. */
export type LogFormat = "text" | "json";

/** The formats `--log-format` accepts. */
export const LOG_FORMATS: readonly LogFormat[] = ["text", "json"];

/** Who speaks: the prefix of a text line, the `logger` field of a JSON one. */
export type Logger = "idwrap" | "idwrap daemon";

let format: LogFormat = "text";

/** Sets the format for the rest of the process (from `--log-format` or IDWRAP_LOG_FORMAT). */
export function setLogFormat(f: LogFormat): void {
  format = f;
}

/** The format in force. */
export function logFormat(): LogFormat {
  return format;
}

/** Extra fields of a JSON line; they never replace time, level, logger or message. */
export type LogFields = Record<string, unknown>;

/** No control characters (ANSI escapes among them) reach a text line: a message quoting a file or argument is shown escaped. */
export function printable(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/[\x00-\x08\x0b-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`);
}

/**
 * Formats one line, without its newline. The text form is today's: `idwrap: warning: X` for a warning of `idwrap`,
 * `idwrap daemon: X` for the daemon (whose warnings already say `warning:`), `idwrap: X` otherwise.
 */
export function formatLog(
  level: LogLevel,
  message: string,
  fields: LogFields = {},
  logger: Logger = "idwrap",
  f: LogFormat = format,
  now: Date = new Date(),
): string {
  if (f === "json") {
    return JSON.stringify({ ...fields, time: now.toISOString(), level, logger, message });
  }
  const tag = logger === "idwrap" && level === "warning" ? "warning: " : "";
  return printable(`${logger}: ${tag}${message}`);
}

/** Writes one log line on standard error. */
export function log(level: LogLevel, message: string, fields?: LogFields, logger: Logger = "idwrap"): void {
  console.error(formatLog(level, message, fields, logger));
}

/**
 * The level of a line the daemon's outputs log (they pass lines, not levels; the daemon itself and its fleet name
 * theirs, host/daemon/daemon.ts, and agree with this): a reload it
 * refused, a connection or session that failed, is an error; what it says with `warning:`, a refused request, an
 * output that cannot deliver or dropped records, a run that fell behind, is a warning; the rest (serving, reloaded,
 * sessions, stopped) is info.
 */
export function daemonLevel(line: string): LogLevel {
  if (ERROR_LINES.some((re) => re.test(line))) return "error";
  if (WARNING_LINES.some((re) => re.test(line))) return "warning";
  return "info";
}

/** Lines that say something failed or was refused and nothing stands in (looked at first). */
const ERROR_LINES = [
  /^reload refused\b/, // the daemon's policies are not what the administrator wrote
  /^uid \d+: /, // a control connection failed
  /^cannot /, // e.g. the audit journals cannot be indexed
  /^session \d+: (?!uid \d+ runs |its run does not keep up|\d+ events were)/, // a session's service failed
  /^output \S+: stopped by an error/,
  /^fleet: stopped following /,
  /^fleet: \S+ revision \d+ refused/,
];

/** Lines that say something is degraded, refused on purpose or kept for later. */
const WARNING_LINES = [
  /^warning: /,
  /^refused: /, // a control request from a wrapped process
  /^output \S+: (cannot deliver|dropped \d+|record \S+ refused|stopping with records undelivered|its buffer was full)/,
  /^fleet: (lost |\S+ not reached within )/,
  /^session \d+: (its run does not keep up|\d+ events were not sent)/,
];

/** A daemon line at the level its caller names; a JSON message drops `warning: `. */
export function daemonLogAt(level: LogLevel, line: string): void {
  const message = format === "json" && level === "warning" ? line.replace(/^warning: /, "") : line;
  log(level, message, undefined, "idwrap daemon");
}

/** A line the daemon's outputs write (they pass lines, not levels): at the level daemonLevel finds. */
export function daemonLog(line: string): void {
  daemonLogAt(daemonLevel(line), line);
}
