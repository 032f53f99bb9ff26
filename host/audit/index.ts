/**
 * The audit log's secondary indexes (./log.ts): which index keys a record
 * has, and which index ranges can answer a filter (./filter.ts).
 *
 * Keys: `["audit", "idx", <field>, <value>, <sequence: bigint>]` → `true`, written in the same atomic commit as the
 * record and with its `expireIn`. Fields: `time` (`@timestamp` in ms, a number), `rule` (`idwrap.wrapper` and
 * `rule.name`), `program` (`process.executable` and `process.name`), `outcome` (`event.outcome`), `host`
 * (`host.name`), `queue` (`idwrap.queue`). A value is cut to INDEX_VALUE_MAX bytes (a Deno KV key is at most 2 KiB):
 * a lookup cuts its value the same way and the full filter checks every record it gets.
 *
 * @module
 */
import type { AuditFilter } from "./filter.ts";
import type { AuditRecord } from "./record.ts";

/** The key prefix of the index entries. */
export const INDEX_PREFIX = ["audit", "idx"] as const;

/** The indexed fields. */
export type IndexField = "time" | "rule" | "program" | "outcome" | "host" | "queue";

/** Longest indexed string value, in UTF-8 bytes. */
export const INDEX_VALUE_MAX = 256;

/** The highest code point: a string range's end for "every string starting with P". */
const MAX_CHAR = "\u{10FFFF}";

const encoder = new TextEncoder();

/** `text` cut to at most INDEX_VALUE_MAX UTF-8 bytes, on a code point boundary. */
export function indexValue(text: string): string {
  if (text.length * 3 <= INDEX_VALUE_MAX || encoder.encode(text).length <= INDEX_VALUE_MAX) return text;
  let out = "", bytes = 0;
  for (const ch of text) {
    const n = encoder.encode(ch).length;
    if (bytes + n > INDEX_VALUE_MAX) break;
    out += ch;
    bytes += n;
  }
  return out;
}

/** The index keys of one stored record (its `event.sequence` set). */
export function indexKeys(record: AuditRecord): Deno.KvKey[] {
  const seq = BigInt(record["event.sequence"]!);
  const keys: Deno.KvKey[] = [];
  const add = (field: IndexField, value: unknown) => {
    if (typeof value === "string") keys.push([...INDEX_PREFIX, field, indexValue(value), seq]);
  };
  const t = Date.parse(record["@timestamp"]);
  if (Number.isFinite(t)) keys.push([...INDEX_PREFIX, "time", t, seq]);
  const r = record as unknown as Record<string, unknown>;
  for (const field of ["rule", "program"] as const) {
    const [a, b] = field === "rule"
      ? [r["idwrap.wrapper"], r["rule.name"]]
      : [r["process.executable"], r["process.name"]];
    add(field, a);
    if (typeof b === "string" && (typeof a !== "string" || indexValue(a) !== indexValue(b))) add(field, b);
  }
  add("outcome", r["event.outcome"]);
  add("host", r["host.name"]);
  add("queue", r["idwrap.queue"]);
  return keys;
}

/** One index range that holds (at least) every record a filter can match. */
export interface IndexRange {
  field: IndexField;
  selector: Deno.KvListSelector;
}

/**
 * The index ranges a filter names, each a superset of its matches; empty when no index covers any of its fields
 * (then only a scan answers it).
 */
export function indexRanges(filter: AuditFilter): IndexRange[] {
  const ranges: IndexRange[] = [];
  const exact = (field: IndexField, value: string | undefined) => {
    if (value !== undefined) ranges.push({ field, selector: { prefix: [...INDEX_PREFIX, field, indexValue(value)] } });
  };
  exact("rule", filter.wrapper);
  exact("outcome", filter.outcome);
  exact("host", filter.host);
  exact("queue", filter.queue);
  if (filter.program !== undefined) {
    const prefix = globPrefix(filter.program);
    if (prefix !== "") {
      const p = indexValue(prefix);
      ranges.push({
        field: "program",
        selector: { start: [...INDEX_PREFIX, "program", p], end: [...INDEX_PREFIX, "program", p + MAX_CHAR] },
      });
    }
  }
  if (filter.since !== undefined || filter.until !== undefined) {
    const since = filter.since?.getTime() ?? -Number.MAX_VALUE;
    const until = filter.until?.getTime();
    ranges.push({
      field: "time",
      selector: {
        start: [...INDEX_PREFIX, "time", since],
        // Timestamps are whole milliseconds: `until + 0.5` ends after every key of `until` itself (both inclusive).
        // An inverted range (since after until) is empty, not an error.
        end: [...INDEX_PREFIX, "time", until === undefined ? Number.MAX_VALUE : Math.max(since, until + 0.5)],
      },
    });
  }
  return ranges;
}

/**
 * What every string a picomatch glob matches starts with, conservatively: the literal characters before the first
 * special one, cut back to before its last `/` (`a/**` matches `a`, `a/` may too); "" when none is certain.
 */
export function globPrefix(glob: string): string {
  if (/^[.!]/.test(glob)) return ""; // `./x` and negations: picomatch rewrites them
  const m = /^[^*?[\]{}()!+@\\|]*/.exec(glob)![0];
  if (m.length === glob.length && !m.includes("/")) return m; // no special character: the name itself
  const slash = m.lastIndexOf("/");
  return slash < 0 ? m : m.slice(0, slash);
}
