/**
 * What the supervisor-loss tests (tests/daemon/supervisor_loss*_test.ts, tests/sources/hybrid/supervisor_loss_test.ts)
 * read of the processes around idwrap-holder, from /proc.
 *
 * @module
 */

/** A file's trimmed text, or undefined when it is missing or empty. */
export const readOrUndefined = (path: string) =>
  Deno.readTextFile(path).then((t) => t.trim() || undefined, () => undefined);

/** Whether a process has ended (exited or a zombie). */
export function ended(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2).startsWith("Z");
  } catch {
    return true;
  }
}

/** Children of `pid` (any thread's), only those named `comm` if given. */
export function childrenOf(pid: number, comm?: string): number[] {
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
      const name = stat.slice(stat.indexOf("(") + 1, stat.lastIndexOf(")"));
      const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
      if (ppid === pid && (comm === undefined || name === comm)) out.push(Number(e.name));
    } catch { /* gone */ }
  }
  return out;
}

/** The idwrap-holder a supervisor started: its child of that name. */
export function holderOf(pid: number): number | undefined {
  return childrenOf(pid, "idwrap-holder")[0];
}

/** Parses open_storm's result line ("ok N enosys N eperm N other N"). */
export function counts(line: string): Record<string, number> {
  const w = line.split(" ");
  const out: Record<string, number> = {};
  for (let i = 0; i + 1 < w.length; i += 2) out[w[i]] = Number(w[i + 1]);
  return out;
}
