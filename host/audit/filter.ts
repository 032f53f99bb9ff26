/**
 * What `AuditLog.query` selects (./log.ts), and the predicate that selects it.
 *
 * @module
 */
import picomatch from "picomatch";
import type { AuditRecord } from "./record.ts";

/** What `AuditLog.query` selects; every given field must match. */
export interface AuditFilter {
  /** `@timestamp` at or after. */
  since?: Date;
  /** `@timestamp` at or before. */
  until?: Date;
  /** `idwrap.queue`. */
  queue?: string;
  /** A glob (picomatch) on `process.executable` or `process.name`. */
  program?: string;
  /** `idwrap.wrapper` or `rule.name`. */
  wrapper?: string;
  /** `event.outcome` (`success`, `failure`, `unknown`). */
  outcome?: string;
  /** `host.name`. */
  host?: string;
  /** At most this many records, the first in sequence order. */
  limit?: number;
}

/** The predicate of a filter's record fields (`limit` aside, which the query counts). */
export function auditFilter(filter: AuditFilter): (r: AuditRecord) => boolean {
  const since = filter.since?.getTime() ?? -Infinity;
  const until = filter.until?.getTime() ?? Infinity;
  const program = filter.program !== undefined ? picomatch(filter.program, { dot: true }) : undefined;
  return (r) => {
    if (filter.queue !== undefined && r["idwrap.queue"] !== filter.queue) return false;
    if (filter.wrapper !== undefined && r["idwrap.wrapper"] !== filter.wrapper && r["rule.name"] !== filter.wrapper) {
      return false;
    }
    if (filter.outcome !== undefined && r["event.outcome"] !== filter.outcome) return false;
    if (filter.host !== undefined && r["host.name"] !== filter.host) return false;
    if (since !== -Infinity || until !== Infinity) {
      const t = Date.parse(r["@timestamp"]);
      if (!(t >= since && t <= until)) return false;
    }
    if (program) {
      const exe = r["process.executable"], name = r["process.name"];
      if (!(exe !== undefined && program(exe)) && !(name !== undefined && program(name))) return false;
    }
    return true;
  };
}
