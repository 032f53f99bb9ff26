/**
 * The table benchmark's progress lines, on standard error with the time of day.
 *
 * @module
 */
/** Prints one progress line. */
export function log(msg: string): void {
  const t = new Date().toISOString().slice(11, 19);
  console.error(`[${t}] ${msg}`);
}
