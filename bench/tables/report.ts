/**
 * The tables (Markdown, in the paper's layout, with the paper's numbers
 * beside), the targets of issue 7 with the measured figure, and the chart
 * (hand-written SVG: penalty against bare per workload and configuration,
 * the paper's penalty as a marker).
 *
 * @module
 */
import type { Config } from "./configs.ts";
import { penalty, type Stat, stat } from "./stats.ts";
import type { RoundsResult, Sample } from "./rounds.ts";

/** Tables 2 and 3 of Ko et al. (USENIX Security 2000), as printed. */
export const PAPER = {
  build: {
    "no WSS": { time: 583.43, sd: 0.53, pen: 0 },
    "WSS only": { time: 604.38, sd: 0.46, pen: 3.47 },
    "Seq_id": { time: 624.62, sd: 1.23, pen: 6.59 },
  } as Record<string, { time: number; sd: number; pen: number }>,
  web: {
    "no WSS": { lat: 0.657, latSd: 0.025, latPen: 0, tput: 7.455, tputSd: 0.21, tputPen: 0 },
    "WSS only": { lat: 0.652, latSd: 0.0023, latPen: -0.081, tput: 7.456, tputSd: 0.08, tputPen: 0.01 },
    "Seq_id": { lat: 0.687, latSd: 0.017, latPen: 4.52, tput: 7.038, tputSd: 0.164, tputPen: 5.61 },
    "Http_id": { lat: 0.705, latSd: 0.0247, latPen: 7.38, tput: 6.928, tputSd: 0.157, tputPen: 7.08 },
    "Http_id & Seq_id": { lat: 0.744, latSd: 0.018, latPen: 13.26, tput: 6.607, tputSd: 0.127, tputPen: 11.39 },
  } as Record<string, { lat: number; latSd: number; latPen: number; tput: number; tputSd: number; tputPen: number }>,
  ftp: {
    "no WSS": { lat: 28.2418, latSd: 0.9019, latPen: 0, tput: 8.776, tputSd: 0.093, tputPen: 0 },
    "WSS only": { lat: 28.3332, latSd: 1.0773, latPen: 0.32, tput: 8.768, tputSd: 0.069, tputPen: 0.09 },
    "Seq_id": { lat: 28.30125, latSd: 1.0835, latPen: 0.21, tput: 8.743, tputSd: 0.076, tputPen: 0.38 },
    "Ftpd_id": { lat: 28.3592, latSd: 0.7954, latPen: 0.42, tput: 8.756, tputSd: 0.085, tputPen: 0.23 },
    "Ftpd_id & Seq_id": { lat: 27.9224, latSd: 1.2007, latPen: -1.13, tput: 8.573, tputSd: 0.012, tputPen: 2.31 },
  } as Record<string, { lat: number; latSd: number; latPen: number; tput: number; tputSd: number; tputPen: number }>,
};

/** One configuration's statistics and penalties, for the tables, the JSON and the chart. */
export interface Row {
  id: string;
  label: string;
  paperRow?: string;
  eventSource: string;
  unavailable?: string;
  stats: Record<string, Stat | undefined>;
  /** Metric → penalty against bare (percent, positive = worse), from medians of the same run. */
  penalties: Record<string, number | undefined>;
  notified?: number;
  emulated?: number;
  flagged?: number;
  flaggedSample?: string[];
  seqMismatches?: number;
  seqCalls?: number;
  retried?: number;
  notes?: Record<string, number | string>;
}

const HIGHER_BETTER = new Set(["reqPerS", "mbitPerS", "fetchPerS"]);

const SOURCE_NAMES: Record<string, string> = {
  seccomp: "seccomp user-notify",
  bpf: "eBPF ring (observes)",
  hybrid: "hybrid (seccomp decides, eBPF ring observes)",
  kmod: "kernel module",
};

export function eventSource(c: Config, kmod: boolean): string {
  switch (c.kind) {
    case "bare":
      return "—";
    case "idwrap":
      if (c.source) return SOURCE_NAMES[c.source] ?? c.source;
      return kmod ? "auto (/dev/idwrap present)" : "seccomp user-notify";
    case "strace":
      return "ptrace";
    case "audit":
      return "Linux audit (auditd)";
  }
}

export function rows(configs: Config[], r: RoundsResult, metrics: string[], kmod: boolean): Row[] {
  const byConfig = (id: string) => r.samples.filter((s) => s.config === id);
  const medianOf = (id: string, m: string) => stat(byConfig(id).map((s) => s.metrics[m]))?.median;
  return configs.filter((c) => !c.record || byConfig(c.id).length || r.unavailable[c.id]).map((c) => {
    const mine = byConfig(c.id);
    const stats: Record<string, Stat | undefined> = {};
    const penalties: Record<string, number | undefined> = {};
    for (const m of metrics) {
      stats[m] = stat(mine.map((s) => s.metrics[m]));
      const bare = medianOf("bare", m);
      penalties[m] = stats[m] && bare ? penalty(stats[m]!.median, bare, HIGHER_BETTER.has(m)) : undefined;
    }
    const reports = mine.map((s) => s.report).filter((x) => x !== undefined);
    const med = (xs: (number | undefined)[]) => {
      const d = xs.filter((x): x is number => x !== undefined).sort((a, b) => a - b);
      return d.length ? d[d.length >> 1] : undefined;
    };
    const notes: Record<string, number | string> = {};
    for (const s of mine as Sample[]) {
      for (const [k, v] of Object.entries(s.notes ?? {})) {
        if (typeof v === "number") notes[k] = ((notes[k] as number) ?? 0) + v / mine.length;
      }
    }
    return {
      id: c.id,
      label: c.label,
      paperRow: c.paperRow,
      eventSource: eventSource(c, kmod),
      unavailable: r.unavailable[c.id],
      stats,
      penalties,
      notified: med(reports.map((x) => x.notified)),
      emulated: med(reports.map((x) => x.emulated)),
      flagged: reports.length ? Math.max(...reports.map((x) => x.flagged)) : undefined,
      flaggedSample: reports.flatMap((x) => x.flaggedSample).slice(0, 3),
      seqMismatches: med(reports.map((x) => x.seqMismatches)),
      seqCalls: med(reports.map((x) => x.seqCalls)),
      retried: r.retried[c.id]?.length,
      notes,
    };
  });
}

const f = (x: number | undefined, d = 2) => x === undefined || !Number.isFinite(x) ? "—" : x.toFixed(d);
const pct = (x: number | undefined) => x === undefined ? "—" : `${x >= 0 ? "+" : ""}${x.toFixed(2)}%`;
const paperPct = (x: number | undefined) => x === undefined ? "—" : `${x.toFixed(2)}%`;

function md(rowsIn: string[][]): string {
  const line = (r: string[]) => `| ${r.join(" | ")} |`;
  return [line(rowsIn[0]), line(rowsIn[0].map((_, i) => i === 0 ? "---" : "---:")), ...rowsIn.slice(1).map(line)]
    .join("\n");
}

function unavailableLine(r: Row, cols: number): string[] {
  const why = r.unavailable!.replace(/\|/g, "\\|").replace(/\n/g, " ").slice(0, 160);
  return [r.label, `unavailable: ${why}`, ...Array(cols - 2).fill("")];
}

function extra(r: Row): string {
  const parts: string[] = [];
  if (r.notified !== undefined) parts.push(`${r.notified} notified`);
  if (r.emulated) parts.push(`${r.emulated} opens emulated`);
  if (r.seqMismatches !== undefined) parts.push(`${r.seqMismatches} seq mismatches`);
  if (r.flagged) parts.push(`${r.flagged} flagged`);
  if (r.retried) parts.push(`${r.retried} failed attempt(s) retried`);
  if (typeof r.notes?.auditLogBytes === "number") {
    parts.push(`${(r.notes.auditLogBytes / 1e6).toFixed(0)} MB audit log`);
  }
  return parts.join("; ") || "—";
}

export function buildTable(rs: Row[]): string {
  const head = [
    "configuration",
    "event source",
    "time (s)",
    "σ (s)",
    "spread",
    "penalty",
    "paper time (s)",
    "paper penalty",
    "notes",
  ];
  const out = [head];
  for (const r of rs) {
    if (r.unavailable) {
      out.push(unavailableLine(r, head.length));
      continue;
    }
    const s = r.stats.timeS!;
    const p = r.paperRow ? PAPER.build[r.paperRow] : undefined;
    out.push([
      r.label,
      r.eventSource,
      f(s.median),
      f(s.sd),
      `${s.spreadPct.toFixed(1)}%`,
      r.id === "bare" ? "0%" : pct(r.penalties.timeS),
      p ? f(p.time) : "—",
      p ? paperPct(p.pen) : "—",
      extra(r),
    ]);
  }
  return md(out);
}

/** Web (Table 2's right half) and FTP (Table 3): latency and throughput. */
export function serverTable(rs: Row[], which: "web" | "ftp"): string {
  const rate = which === "web" ? "reqPerS" : "fetchPerS";
  const head = [
    "configuration",
    "event source",
    "mean latency (ms)",
    "σ",
    "p99 (ms)",
    "latency penalty",
    "t-put (Mbit/s)",
    "σ",
    which === "web" ? "req/s" : "fetches/s",
    "t-put penalty",
    "paper latency penalty",
    "paper t-put penalty",
    "notes",
  ];
  const out = [head];
  for (const r of rs) {
    if (r.unavailable) {
      out.push(unavailableLine(r, head.length));
      continue;
    }
    const p = r.paperRow ? PAPER[which][r.paperRow] : undefined;
    out.push([
      r.label,
      r.eventSource,
      f(r.stats.latMeanMs?.median),
      f(r.stats.latMeanMs?.sd),
      f(r.stats.latP99Ms?.median),
      r.id === "bare" ? "0%" : pct(r.penalties.latMeanMs),
      f(r.stats.mbitPerS?.median, 1),
      f(r.stats.mbitPerS?.sd, 1),
      f(r.stats[rate]?.median, 0),
      r.id === "bare" ? "0%" : pct(r.penalties.mbitPerS),
      p ? paperPct(p.latPen) : "—",
      p ? paperPct(p.tputPen) : "—",
      extra(r),
    ]);
  }
  return md(out);
}

export interface Target {
  what: string;
  limit: number;
  measured?: number;
  met?: boolean;
  note?: string;
}

/** Issue 7's targets, each with the measured penalty (the worse of latency and throughput where both apply). */
export function targets(build?: Row[], web?: Row[], ftp?: Row[]): Target[] {
  const get = (rs: Row[] | undefined, id: string) => rs?.find((r) => r.id === id && !r.unavailable);
  const why = (rs: Row[] | undefined, id: string) =>
    rs ? rs.find((r) => r.id === id)?.unavailable ?? "not run" : "workload not run";
  const out: Target[] = [];
  const add = (what: string, limit: number, rs: Row[] | undefined, id: string, metrics: string[]) => {
    const r = get(rs, id);
    const vals = r ? metrics.map((m) => r.penalties[m]).filter((x): x is number => x !== undefined) : [];
    if (!r || !vals.length) return out.push({ what, limit, note: `no figure: ${why(rs, id)}` });
    const measured = Math.max(...vals);
    out.push({ what, limit, measured, met: measured <= limit });
  };
  add("WSS only, build", 1, build, "wss", ["timeS"]);
  add("WSS only, web (latency and t-put)", 1, web, "wss", ["latMeanMs", "mbitPerS"]);
  add("WSS only, FTP (latency and t-put)", 1, ftp, "wss", ["latMeanMs", "mbitPerS"]);
  add("httpd, web (latency and t-put)", 3, web, "httpd", ["latMeanMs", "mbitPerS"]);
  add("ftpd, FTP (latency and t-put)", 1, ftp, "ftpd", ["latMeanMs", "mbitPerS"]);
  add("seq, build", 6, build, "seq", ["timeS"]);
  add("seq, web (latency and t-put)", 5, web, "seq", ["latMeanMs", "mbitPerS"]);
  // Issue 8's target for the default policy.
  add("default policy, build", 3, build, "default", ["timeS"]);
  add("default policy, web (latency and t-put)", 3, web, "default", ["latMeanMs", "mbitPerS"]);
  // Issue 15's targets for the rows of other sources (--sources): the paper's Seq_id figures (6.59% build, 4.52% web)
  // with a margin, and the default policy where the source can run it.
  const sources = new Set([build, web, ftp].flatMap((rs) => rs ?? []).map((r) => r.id.split("@")[1]).filter(Boolean));
  for (const s of sources) {
    add(`[${s}] WSS only, build`, 1, build, `wss@${s}`, ["timeS"]);
    add(`[${s}] WSS only, web (latency)`, 1, web, `wss@${s}`, ["latMeanMs"]);
    add(`[${s}] seq, build`, 6.6, build, `seq@${s}`, ["timeS"]);
    add(`[${s}] seq, web (latency)`, 10, web, `seq@${s}`, ["latMeanMs"]);
    add(`[${s}] seq, FTP (latency)`, 5, ftp, `seq@${s}`, ["latMeanMs"]);
    if (s !== "bpf") {
      add(`[${s}] default policy, build`, 3, build, `default@${s}`, ["timeS"]);
      add(`[${s}] default policy, web (latency)`, 10, web, `default@${s}`, ["latMeanMs"]);
    }
  }
  return out;
}

export function targetTable(ts: Target[]): string {
  const out = [["target (penalty vs bare)", "limit", "measured", "verdict"]];
  for (const t of ts) {
    out.push([
      t.what,
      `≤ ${t.limit}%`,
      t.measured === undefined ? "—" : pct(t.measured),
      t.measured === undefined
        ? (t.note ?? "—").replace(/\|/g, "\\|").replace(/\n/g, " ").slice(0, 160)
        : t.met
        ? "met"
        : `missed by ${(t.measured - t.limit).toFixed(2)} points`,
    ]);
  }
  return md(out);
}

/** Peers: is idwrap (its heaviest row) ahead of strace -f and auditd on each workload? */
export function peerLines(all: Record<string, Row[] | undefined>): string[] {
  const lines: string[] = [];
  for (const [w, rs] of Object.entries(all)) {
    if (!rs) continue;
    const m = w === "build" ? "timeS" : "latMeanMs";
    const p = (id: string) => rs.find((r) => r.id === id && !r.unavailable)?.penalties[m];
    const ours = rs.filter((r) => r.eventSource.startsWith("seccomp") || r.eventSource.startsWith("auto"))
      .filter((r) => !r.unavailable && r.penalties[m] !== undefined && r.id !== "seqRecord");
    for (const peer of ["strace", "audit"]) {
      const pp = p(peer);
      if (pp === undefined) {
        lines.push(`- ${w}: ${peer === "audit" ? "auditd" : "strace -f"}: no figure`);
        continue;
      }
      const ahead = ours.filter((r) => r.penalties[m]! < pp).map((r) => r.label);
      const behind = ours.filter((r) => r.penalties[m]! >= pp).map((r) => r.label);
      lines.push(
        `- ${w} (${m === "timeS" ? "time" : "mean latency"}): ${peer === "audit" ? "auditd" : "strace -f"} ${
          pct(pp)
        }; ` +
          `idwrap ahead: ${ahead.join(", ") || "none"}; behind: ${behind.join(", ") || "none"}`,
      );
    }
  }
  return lines;
}

// ------------------------------------------------------------------------------------------ SVG chart

interface Bar {
  group: string;
  label: string;
  value?: number;
  paper?: number;
  note?: string;
}

function esc(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

/** Horizontal bars of the penalty (%), one group per workload metric; the paper's figure as a diamond. */
export function chart(all: { build?: Row[]; web?: Row[]; ftp?: Row[] }, subtitle: string): string {
  const bars: Bar[] = [];
  const add = (group: string, rs: Row[] | undefined, m: string, paper: (r: Row) => number | undefined) => {
    for (const r of rs ?? []) {
      if (r.id === "bare") continue;
      bars.push({
        group,
        label: r.label,
        value: r.unavailable ? undefined : r.penalties[m],
        paper: paper(r),
        note: r.unavailable ? "unavailable" : undefined,
      });
    }
  };
  add("Build: time", all.build, "timeS", (r) => r.paperRow ? PAPER.build[r.paperRow]?.pen : undefined);
  add("Web: mean latency", all.web, "latMeanMs", (r) => r.paperRow ? PAPER.web[r.paperRow]?.latPen : undefined);
  add("Web: throughput", all.web, "mbitPerS", (r) => r.paperRow ? PAPER.web[r.paperRow]?.tputPen : undefined);
  add("FTP: mean latency", all.ftp, "latMeanMs", (r) => r.paperRow ? PAPER.ftp[r.paperRow]?.latPen : undefined);
  add("FTP: throughput", all.ftp, "mbitPerS", (r) => r.paperRow ? PAPER.ftp[r.paperRow]?.tputPen : undefined);

  // A linear axis up to CLIP percent; longer bars are cut with their value printed.
  const CLIP = 100, MIN = -10;
  const W = 900, left = 250, right = 120, barH = 14, gap = 4, groupGap = 26, top = 92;
  const plotW = W - left - right;
  const x = (v: number) =>
    Math.round((left + (Math.max(MIN, Math.min(CLIP, v)) - MIN) / (CLIP - MIN) * plotW) * 10) / 10;
  const groups = [...new Set(bars.map((b) => b.group))];
  let y = top;
  const parts: string[] = [];
  for (const g of groups) {
    parts.push(`<text x="10" y="${y + 10}" font-weight="bold">${esc(g)}</text>`);
    y += 16;
    for (const b of bars.filter((b) => b.group === g)) {
      const colour = b.label.startsWith("strace") || b.label.startsWith("auditd") ? "#999" : "#3b6ea5";
      parts.push(`<text x="${left - 6}" y="${y + barH - 3}" text-anchor="end">${esc(b.label)}</text>`);
      if (b.value === undefined) {
        parts.push(`<text x="${x(0) + 4}" y="${y + barH - 3}" fill="#a00">${esc(b.note ?? "no figure")}</text>`);
      } else {
        const x0 = x(Math.min(0, b.value)), x1 = x(Math.max(0, b.value));
        parts.push(`<rect x="${x0}" y="${y}" width="${Math.max(1, x1 - x0)}" height="${barH}" fill="${colour}"/>`);
        const clipped = b.value > CLIP;
        parts.push(
          `<text x="${x1 + (b.value < 0 ? 10 : 4)}" y="${y + barH - 3}">${clipped ? "» " : ""}${
            b.value >= 0 ? "+" : ""
          }${b.value.toFixed(b.value >= 100 ? 0 : 1)}%</text>`,
        );
      }
      if (b.paper !== undefined) {
        const px = x(b.paper), py = y + barH / 2;
        parts.push(`<path d="M${px} ${py - 6} L${px + 5} ${py} L${px} ${py + 6} L${px - 5} ${py} Z" fill="#d9822b"/>`);
      }
      y += barH + gap;
    }
    y += groupGap - gap;
  }
  const H = y + 30;
  const axis: string[] = [];
  for (const t of [-10, 0, 10, 25, 50, 75, 100]) {
    axis.push(`<line x1="${x(t)}" y1="${top - 6}" x2="${x(t)}" y2="${H - 34}" stroke="#ddd"/>`);
    axis.push(`<text x="${x(t)}" y="${top - 10}" text-anchor="middle" fill="#555">${t}%</text>`);
  }
  axis.push(`<line x1="${x(0)}" y1="${top - 6}" x2="${x(0)}" y2="${H - 34}" stroke="#333"/>`);
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">
<rect width="${W}" height="${H}" fill="white"/>
<text x="10" y="20" font-size="15" font-weight="bold">idwrap vs the paper: penalty against bare (lower is better)</text>
<text x="10" y="38" fill="#555">${esc(subtitle)}</text>
<rect x="10" y="50" width="12" height="10" fill="#3b6ea5"/><text x="26" y="59">idwrap (this run)</text>
<rect x="140" y="50" width="12" height="10" fill="#999"/><text x="156" y="59">peers (strace -f, auditd)</text>
<path d="M320 49 L325 55 L320 61 L315 55 Z" fill="#d9822b"/><text x="330" y="59">the paper (FreeBSD, in-kernel, 2000)</text>
${axis.join("\n")}
${parts.join("\n")}
<text x="10" y="${
    H - 10
  }" fill="#555">Bars beyond +${CLIP}% are cut (» value printed). Penalty = median of the configuration vs median of bare, same run.</text>
</svg>
`;
}
