/**
 * `idwrap trace -c`: a table of calls and errors per system call, from the
 * run's JSON events, as strace -c prints it (without its time columns: the
 * sources do not time every call).
 *
 * @module
 */
import type { HostEvent } from "../events.ts";

/** The counts of one call. */
export interface CallCount {
  syscall: string;
  calls: number;
  errors: number;
}

/**
 * Counts calls (a call reported before and with its result counts once) and errors (a failed result, a denial, or an
 * execve its thread went on from without the process's exec).
 */
export function countCalls(events: Iterable<HostEvent>): CallCount[] {
  const counts = new Map<string, CallCount>();
  const open = new Map<number, number>(); // tid → nr of a pre event whose post may follow
  const execs = new Map<number, { pid: number; count: CallCount }>(); // tid → an execve without a result yet
  for (const e of events) {
    if (e.kind === "exec") {
      for (const [tid, x] of execs) if (x.pid === e.pid) execs.delete(tid);
      continue;
    }
    if (e.kind !== "syscall") continue;
    const exec = execs.get(e.tid);
    execs.delete(e.tid);
    if (exec && !(e.phase === "post" && e.syscall === exec.count.syscall)) exec.count.errors++;
    const c = counts.get(e.syscall) ?? { syscall: e.syscall, calls: 0, errors: 0 };
    counts.set(e.syscall, c);
    if (e.phase === "post") {
      if (open.get(e.tid) !== e.nr) c.calls++;
      open.delete(e.tid);
      if (e.errno) c.errors++;
      continue;
    }
    c.calls++;
    if (e.verdict?.startsWith("deny")) c.errors++;
    else {
      open.set(e.tid, e.nr);
      if (e.syscall === "execve" || e.syscall === "execveat") execs.set(e.tid, { pid: e.pid, count: c });
    }
  }
  return [...counts.values()].sort((a, b) => b.calls - a.calls || a.syscall.localeCompare(b.syscall));
}

/** The table for JSON lines. */
export function countsTable(jsonLines: string): string {
  const events = jsonLines.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l) as HostEvent);
  const rows = countCalls(events);
  const total = rows.reduce((t, r) => ({ calls: t.calls + r.calls, errors: t.errors + r.errors }), {
    calls: 0,
    errors: 0,
  });
  const line = (calls: string, errors: string, name: string) => `${calls.padStart(9)} ${errors.padStart(9)} ${name}`;
  const rule = `${"-".repeat(9)} ${"-".repeat(9)} ${"-".repeat(16)}`;
  return [
    line("calls", "errors", "syscall"),
    rule,
    ...rows.map((r) => line(String(r.calls), r.errors ? String(r.errors) : "", r.syscall)),
    rule,
    line(String(total.calls), total.errors ? String(total.errors) : "", "total"),
  ].join("\n");
}
