/**
 * The daemon's Prometheus metrics (`idwrap daemon --metrics 127.0.0.1:9464`): text exposition format 0.0.4 on
 * `GET /metrics`. Verdicts, alerts and faults are counted as their records reach the main thread; notified calls and
 * hook time by the supervisor thread in a shared buffer (host/runtime/watchdog.ts); ring drops, audit waits and
 * unjournaled records from a tree's summary when it ends.
 *
 * @module
 */
import type { AuditRecord } from "../audit/record.ts";
import type { OutputStats } from "../outputs/output.ts";
import type { SupervisorSummary } from "../wss/summary.ts";
import type { HookTime } from "../runtime/watchdog.ts";

/** What the daemon tells at each scrape that is not a counter kept here. */
export interface MetricsGauges {
  sessions: number;
  /** Wrapped processes now, by source. */
  processes: Record<string, number>;
  /** Records appended to the audit log and not yet in Deno KV. */
  auditBacklog: number;
  outputs: OutputStats[];
  /** Calls the source handed to the supervisor so far, by source. */
  notified: Record<string, number>;
  /** Time in each wrapper's outermost hooks, by source. */
  hooks: Record<string, HookTime[]>;
}

type Labels = Record<string, string>;

/** The label value that counts what a family past its series cap no longer names. */
export const OTHER = "other";

/** Series a family whose labels a wrapped tree chooses keeps at most (rule names: a policy has far fewer). */
export const MAX_SERIES = 1000;

/** A counter family: one value per label set. */
class Family {
  readonly values = new Map<string, { labels: Labels; value: number }>();
  /** Additions folded into `other` because the family had `maxSeries` series already. */
  overflow = 0;

  /**
   * @param bounded the label whose values a wrapped tree can choose (an alert's rule name comes from a wrapper's
   *   message), and how many series the family keeps: past that, new values count as `other` (rt9 M1: a hostile
   *   wrapper would otherwise grow the daemon's memory and every scrape without bound).
   */
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: "counter" | "gauge",
    readonly bounded?: { label: string; maxSeries: number },
  ) {}

  add(labels: Labels, n = 1): void {
    let key = JSON.stringify(labels);
    let v = this.values.get(key);
    if (!v && this.bounded && this.values.size >= this.bounded.maxSeries) {
      this.overflow += n;
      labels = { ...labels, [this.bounded.label]: OTHER };
      key = JSON.stringify(labels);
      v = this.values.get(key);
    }
    if (v) v.value += n;
    else this.values.set(key, { labels, value: n });
  }
}

function escape(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');
}

function render(f: { name: string; help: string; type: string }, rows: { labels: Labels; value: number }[]): string {
  let out = `# HELP ${f.name} ${f.help}\n# TYPE ${f.name} ${f.type}\n`;
  for (const { labels, value } of rows) {
    const l = Object.entries(labels).map(([k, v]) => `${k}="${escape(v)}"`).join(",");
    out += `${f.name}${l ? `{${l}}` : ""} ${value}\n`;
  }
  return out;
}

/** The daemon's counters. */
export class DaemonMetrics {
  readonly #families = {
    sessions: new Family("idwrap_sessions_total", "Wrapped trees handed to the daemon.", "counter"),
    denied: new Family("idwrap_calls_denied_total", "Calls refused (deny verdicts).", "counter"),
    killed: new Family("idwrap_calls_killed_total", "Kill verdicts.", "counter"),
    alerts: new Family("idwrap_alerts_total", "Alert records, by rule.", "counter", {
      label: "rule",
      maxSeries: MAX_SERIES,
    }),
    faults: new Family(
      "idwrap_wrapper_faults_total",
      "Wrapper faults (traps, budget, bad verdicts), by wrapper.",
      "counter",
      { label: "wrapper", maxSeries: MAX_SERIES },
    ),
    lost: new Family(
      "idwrap_ring_lost_total",
      "kmod: observe records the module dropped (ring full), counted when their tree ends.",
      "counter",
    ),
    auditWaits: new Family(
      "idwrap_audit_waits_total",
      "Times calls waited for the audit store to catch up (back-pressure), counted when their tree ends.",
      "counter",
    ),
    unjournaled: new Family(
      "idwrap_unjournaled_total",
      "Records the journal could not take (other than calls'), counted when their tree ends.",
      "counter",
    ),
  };

  /** Counts a batch of records as the daemon stores them. */
  records(records: readonly AuditRecord[]): void {
    for (const r of records) {
      const source = r["idwrap.source"];
      switch (r["idwrap.queue"]) {
        case "verdicts":
          if (r["idwrap.verdict"] === "kill") this.#families.killed.add({ source });
          else this.#families.denied.add({ source });
          break;
        case "alerts":
          this.#families.alerts.add({ rule: r["rule.name"] ?? "", source });
          break;
        case "faults":
          this.#families.faults.add({ wrapper: r["idwrap.wrapper"] ?? "", source });
          break;
      }
    }
  }

  /** A tree was handed over. */
  sessionStarted(source: string): void {
    this.#families.sessions.add({ source });
  }

  /** A tree ended: what only its summary says. */
  sessionEnded(source: string, s: SupervisorSummary): void {
    if (s.lost) this.#families.lost.add({ source }, s.lost);
    if (s.auditWaits) this.#families.auditWaits.add({ source }, s.auditWaits.count);
    if (s.unjournaled) this.#families.unjournaled.add({ source }, s.unjournaled);
  }

  /** The exposition text. */
  render(g: MetricsGauges): string {
    let out = "";
    const families = Object.values(this.#families);
    for (const f of families) out += render(f, [...f.values.values()]);
    out += render(
      {
        name: "idwrap_metric_series_overflow_total",
        help:
          `Counts added as ${OTHER} because the metric had ${MAX_SERIES} series already (label values a tree chose).`,
        type: "counter",
      },
      families.filter((f) => f.bounded).map((f) => ({ labels: { metric: f.name }, value: f.overflow })),
    );
    out += render(
      { name: "idwrap_calls_notified_total", help: "Calls the source handed to the supervisor.", type: "counter" },
      Object.entries(g.notified).map(([source, value]) => ({ labels: { source }, value })),
    );
    out += render({ name: "idwrap_sessions", help: "Wrapped trees being served.", type: "gauge" }, [
      { labels: {}, value: g.sessions },
    ]);
    out += render(
      { name: "idwrap_processes", help: "Wrapped processes, by source.", type: "gauge" },
      Object.entries(g.processes).map(([source, value]) => ({ labels: { source }, value })),
    );
    out += render({ name: "idwrap_audit_backlog", help: "Audit records not yet in the store.", type: "gauge" }, [
      { labels: {}, value: g.auditBacklog },
    ]);
    const hooks = Object.entries(g.hooks).flatMap(([source, list]) => list.map((h) => ({ source, ...h })));
    out += "# HELP idwrap_hook_seconds Time in wrappers' outermost hooks (nested hooks count in the outer one's).\n";
    out += "# TYPE idwrap_hook_seconds summary\n";
    for (const h of hooks) {
      const l = `wrapper="${escape(h.wrapper)}",source="${escape(h.source)}"`;
      out += `idwrap_hook_seconds_sum{${l}} ${h.seconds}\nidwrap_hook_seconds_count{${l}} ${h.calls}\n`;
    }
    const per = (name: string, help: string, type: string, pick: (o: OutputStats) => number) =>
      render(
        { name, help, type },
        g.outputs.map((o) => ({ labels: { output: o.name, type: o.type }, value: pick(o) })),
      );
    out += per("idwrap_output_delivered_total", "Records an output delivered.", "counter", (o) => o.delivered);
    out += per(
      "idwrap_output_dropped_total",
      "Records an output missed that the store no longer had (expired), or its receiver refused for good.",
      "counter",
      (o) => o.dropped,
    );
    out += per(
      "idwrap_output_recovered_total",
      "Records an output missed live (its buffer was full) and read back from the store.",
      "counter",
      (o) => o.recovered,
    );
    out += per("idwrap_output_failures_total", "Failed delivery attempts (retried).", "counter", (o) => o.failures);
    out += per("idwrap_output_queue", "Records waiting for an output.", "gauge", (o) => o.queued);
    return out;
  }
}

/** Serves `GET /metrics` on `addr` (`host:port`); resolves once listening. */
export async function serveMetrics(
  addr: { hostname: string; port: number },
  text: () => Promise<string>,
): Promise<Deno.HttpServer> {
  let listening!: () => void;
  const ready = new Promise<void>((r) => listening = r);
  const server = Deno.serve({ ...addr, onListen: () => listening() }, async (req) => {
    if (new URL(req.url).pathname !== "/metrics") return new Response("not found: try /metrics\n", { status: 404 });
    if (req.method !== "GET") return new Response("GET only\n", { status: 405 });
    return new Response(await text(), { headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" } });
  });
  await ready;
  return server;
}

/** `host:port` (`127.0.0.1:9464`, `[::1]:9464`) as Deno.serve's address; throws a message naming the flag. */
export function parseMetricsAddress(text: string): { hostname: string; port: number } {
  const m = /^(\[[^\]]+\]|[^:]+):(\d+)$/.exec(text);
  const port = Number(m?.[2]);
  if (!m || !(port > 0 && port < 65536)) throw new Error(`--metrics: expected HOST:PORT, got "${text}"`);
  return { hostname: m[1].replace(/^\[(.*)\]$/, "$1"), port };
}
