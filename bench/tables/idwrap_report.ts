/**
 * idwrap's text report (the `-o` file and the summary line on stderr), parsed.
 *
 * @module
 */
/** What idwrap's text report said. */
export interface IdwrapReport {
  notified?: number;
  denied?: number;
  emulated?: number;
  /** Lines with alerts, denials, kills or faults (not lifecycle, not audit records). */
  flagged: number;
  flaggedSample: string[];
  seqCalls?: number;
  seqMismatches?: number;
  seqMaxLfc?: number;
  seqNew?: number;
}

/** Parses idwrap's text report (the -o file, and its stderr for the summary line). */
export function parseReport(text: string): IdwrapReport {
  const r: IdwrapReport = { flagged: 0, flaggedSample: [] };
  let seqSeen = false, calls = 0, mism = 0, maxLfc = 0, added = 0;
  for (const line of text.split("\n")) {
    const summary = line.match(/; (\d+) calls notified, (\d+) denied, (\d+) killed, (\d+) opens emulated/);
    if (summary) {
      r.notified = Number(summary[1]);
      r.denied = Number(summary[2]);
      r.emulated = Number(summary[4]);
      continue;
    }
    const det = line.match(/\*\*\* audit seq: seq detect program=\S+ calls=(\d+) mismatches=(\d+)(?: max_lfc=(\d+))?/);
    if (det) {
      seqSeen = true;
      calls += Number(det[1]);
      mism += Number(det[2]);
      maxLfc = Math.max(maxLfc, Number(det[3] ?? 0));
      continue;
    }
    const rec = line.match(/\*\*\* audit seq: seq record program=\S+ calls=(\d+) new=(\d+)/);
    if (rec) {
      seqSeen = true;
      calls += Number(rec[1]);
      added += Number(rec[2]);
      continue;
    }
    if (line === "" || line.startsWith("idwrap:") || / \+\+\+ /.test(line) || / \*\*\* audit /.test(line)) continue;
    r.flagged++;
    if (r.flaggedSample.length < 5) r.flaggedSample.push(line.slice(0, 300));
  }
  if (seqSeen) Object.assign(r, { seqCalls: calls, seqMismatches: mism, seqMaxLfc: maxLfc, seqNew: added });
  return r;
}

export async function readReport(path: string, stderr = ""): Promise<IdwrapReport> {
  let text = "";
  try {
    text = await Deno.readTextFile(path);
  } catch { /* no report */ }
  return parseReport(text + "\n" + stderr);
}
