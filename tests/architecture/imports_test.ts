/**
 * The import graph of the host (host/**.ts and main.ts) keeps the design's
 * shape (/work/shared/DESIGN.md, "The picture"; docs/architecture.md):
 * no import cycles; imports run one way down the floors
 *   cli → daemon → sources → wss → runtime → policy, audit → core;
 * no event source imports another; nothing in production imports tools/,
 * tests/ or bench/. The graph is Deno's own (tools/import_graph.ts).
 *
 * Type-only imports count: a lower floor that names an upper floor's type
 * knows about it, and moves with it.
 *
 * @module
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { importCycles, type ImportEdge, importGraph, tsFilesUnder } from "../../tools/import_graph.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/**
 * The floors, top first; each names its units (a folder, or the files
 * directly in one, written `dir/*.ts`). A file belongs to the unit of its
 * longest matching folder. A file may import its own unit or any unit on a
 * LOWER floor, nothing else: not upward, and not a neighbour on its own floor.
 */
const FLOORS: readonly { floor: string; units: Readonly<Record<string, readonly string[]>> }[] = [
  { floor: "cli", units: { cli: ["main.ts", "host/cli"] } },
  { floor: "daemon", units: { daemon: ["host/daemon"] } },
  // Where the daemon sends audit records besides the store (file, syslog, webhook): reads the audit log.
  { floor: "outputs", units: { outputs: ["host/outputs"] } },
  // Choosing a source and running a command under it (`--source auto|kmod|seccomp|bpf`): above every transport.
  { floor: "source choice", units: { "sources/run": ["host/sources/run.ts"] } },
  // A source made of two: decided calls on seccomp, observed ones through bpf (docs/bpf.md, "The hybrid").
  { floor: "composed sources", units: { "sources/hybrid": ["host/sources/hybrid"] } },
  {
    // Each a transport; host/seq replays recorded traces into the runtime, and host/replay recorded activity into
    // the WSS (`policy test`): offline sources.
    floor: "sources",
    units: {
      "sources/seccomp": ["host/sources/seccomp"],
      "sources/kmod": ["host/sources/kmod"],
      "sources/bpf": ["host/sources/bpf"],
      seq: ["host/seq"],
      replay: ["host/replay"],
    },
  },
  // What every transport uses to start a tree and serve it from a thread (launch, launcher, handshake, thread, run).
  { floor: "sources' shared code", units: { "sources/shared": ["host/sources/*.ts"] } },
  { floor: "wss", units: { wss: ["host/wss"] } },
  { floor: "runtime", units: { runtime: ["host/runtime"] } },
  // Policy, and the two outputs of events: the audit trail and the trace printer.
  {
    floor: "policy, audit, trace",
    units: { policy: ["host/policy"], audit: ["host/audit"], trace: ["host/trace"] },
  },
  { floor: "store", units: { store: ["host/store"] } },
  // Events, verdicts (decider.ts), capabilities, errno, syscall tables, socket addresses, and all unsafe code.
  { floor: "core", units: { core: ["host/*.ts", "host/syscalls", "host/net", "host/unsafe"] } },
];

/** The event sources: none may import another. */
const SOURCE_UNITS = new Set(["sources/seccomp", "sources/kmod", "sources/bpf"]);

/**
 * Edges that break a rule and are accepted for now, each with why. Empty since the WSS of issue 14 landed (it held
 * 14 edges: kmod borrowing seccomp internals, the runtime owning activation, the interest model compiling the kmod
 * mask). This list may only shrink: the test fails when an edge on it no longer exists. Never add to it.
 */
const KNOWN_VIOLATIONS: readonly { from: string; to: string; why: string }[] = [];

type Place = { floor: number; floorName: string; unit: string };

/** The floor and unit of a production file, or undefined when no floor names it. */
function placeOf(file: string): Place | undefined {
  let best: (Place & { length: number }) | undefined;
  FLOORS.forEach(({ floor: floorName, units }, i) => {
    for (const [unit, prefixes] of Object.entries(units)) {
      for (const p of prefixes) {
        const match = p.endsWith("/*.ts")
          ? file.startsWith(p.slice(0, -4)) && !file.slice(p.length - 4).includes("/")
          : file === p || file.startsWith(`${p}/`);
        // Longest match wins; `dir/*.ts` is as long as `dir`.
        const length = p.endsWith("/*.ts") ? p.length - 5 : p.length;
        if (match && (best === undefined || length > best.length)) {
          best = { floor: FLOORS.length - i, floorName, unit, length };
        }
      }
    }
  });
  return best && { floor: best.floor, floorName: best.floorName, unit: best.unit };
}

const PRODUCTION = [...tsFilesUnder(ROOT, "host"), "main.ts"];
const isProduction = (file: string) => file === "main.ts" || file.startsWith("host/");
const EDGES = (await importGraph({ root: ROOT, files: PRODUCTION })).filter((e) => isProduction(e.from));

const show = (e: ImportEdge) => `${e.from} -> ${e.to} (${e.kind})`;
const isKnown = (e: ImportEdge) => KNOWN_VIOLATIONS.some((k) => k.from === e.from && k.to === e.to);

/** Why an edge breaks the floors, or undefined if it runs down (or stays in its unit). */
function floorProblem(e: ImportEdge): string | undefined {
  const from = placeOf(e.from)!;
  const to = placeOf(e.to);
  if (to === undefined || from.unit === to.unit || to.floor < from.floor) return undefined;
  if (to.floor > from.floor) return `${show(e)}: runs up from "${from.floorName}" to "${to.floorName}"`;
  return `${show(e)}: "${from.unit}" imports its neighbour "${to.unit}" on floor "${from.floorName}"`;
}

Deno.test("imports: every host file is on a floor", () => {
  assertEquals(PRODUCTION.filter((f) => placeOf(f) === undefined), []);
});

Deno.test("imports: the host has no import cycles", () => {
  const production = EDGES.filter((e) => isProduction(e.to));
  assertEquals(importCycles(production), [], "each list is a set of files that import each other in a circle");
});

Deno.test("imports: run one way down the floors (cli → daemon → sources → wss → runtime → policy, audit → core)", () => {
  const problems = EDGES.filter((e) => isProduction(e.to) && !isKnown(e)).map(floorProblem).filter((p) => p);
  assertEquals(problems, []);
});

Deno.test("imports: no event source imports another", () => {
  const problems = EDGES.filter((e) => {
    const from = placeOf(e.from)!.unit;
    const to = isProduction(e.to) ? placeOf(e.to)?.unit : undefined;
    return to !== undefined && from !== to && SOURCE_UNITS.has(from) && SOURCE_UNITS.has(to) && !isKnown(e);
  }).map(show);
  assertEquals(problems, []);
});

Deno.test("imports: nothing in production imports tools/, tests/ or bench/", () => {
  // Static, type, literal dynamic import() and worker entries alike. Data that ships beside the code
  // (policies/schema.json, which editors read too) may be imported.
  const shipped = (file: string) => /^policies\/[^/]+\.json$/.test(file);
  assertEquals(EDGES.filter((e) => !isProduction(e.to) && !shipped(e.to)).map(show), []);
});

Deno.test("imports: every dynamic import in production names a literal module (so the graph above sees it)", () => {
  const computed = PRODUCTION.flatMap((f) => {
    // Comments blanked (line numbers kept), strings kept.
    const text = Deno.readTextFileSync(`${ROOT}${f}`).replace(
      /("(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*'|`(?:[^`\\]|\\.)*`)|\/\/[^\n]*|\/\*[\s\S]*?\*\//g,
      (m, literal) => literal ?? m.replace(/[^\n]/g, " "),
    );
    return [...text.matchAll(/\bimport\s*\(\s*(?!["'`][^"'`$]*["'`]\s*\))/g)].map((m) =>
      `${f}:${text.slice(0, m.index).split("\n").length}`
    );
  });
  assertEquals(computed, []);
});

Deno.test("imports: KNOWN_VIOLATIONS only shrinks (each listed edge still exists and still breaks a rule)", () => {
  const stale = KNOWN_VIOLATIONS.filter((k) => {
    const edges = EDGES.filter((e) => e.from === k.from && e.to === k.to);
    return edges.length === 0 || edges.every((e) => floorProblem(e) === undefined);
  }).map((k) => `${k.from} -> ${k.to}: no longer an import that breaks a rule; remove it from KNOWN_VIOLATIONS`);
  assertEquals(stale, []);
});
