/**
 * tools/import_graph.ts sees every kind of import the architecture test
 * judges, on a throwaway tree, and finds cycles.
 *
 * @module
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { importCycles, type ImportEdge, importGraph } from "../../tools/import_graph.ts";

Deno.test("importGraph() sees static, type, re-export, dynamic and worker imports", async () => {
  const root = await scratchDir({ prefix: "idwrap-graph-test-" });
  try {
    const files: Record<string, string> = {
      "deno.json": "{}",
      "a.ts": [
        'import { b } from "./b.ts";',
        'import type { C } from "./sub/c.ts";',
        'export { d } from "./d.ts";',
        'const w = new Worker(new URL("./sub/worker.ts", import.meta.url), { type: "module" });',
        'export async function later() { return await import("./tools/e.ts"); }',
        'import "node:fs";',
        "export const x: C = b + 1; w.terminate();",
      ].join("\n"),
      "b.ts": "export const b = 1;",
      "d.ts": "export const d = 1;",
      "sub/c.ts": "export type C = number;",
      "sub/worker.ts": "self.close();",
      "tools/e.ts": "export const e = 1;",
    };
    await Deno.mkdir(`${root}/sub`);
    await Deno.mkdir(`${root}/tools`);
    for (const [path, text] of Object.entries(files)) await Deno.writeTextFile(`${root}/${path}`, text);
    assertEquals(await importGraph({ root, files: ["a.ts"] }), [
      { from: "a.ts", to: "b.ts", kind: "code" },
      { from: "a.ts", to: "d.ts", kind: "code" },
      { from: "a.ts", to: "sub/c.ts", kind: "type" },
      { from: "a.ts", to: "sub/worker.ts", kind: "worker" },
      { from: "a.ts", to: "tools/e.ts", kind: "dynamic" },
    ]);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

const edge = (from: string, to: string): ImportEdge => ({ from, to, kind: "code" });

Deno.test("importCycles() finds each circle once and nothing in a chain", () => {
  const cases: { name: string; edges: ImportEdge[]; cycles: string[][] }[] = [
    { name: "chain", edges: [edge("a", "b"), edge("b", "c")], cycles: [] },
    { name: "diamond", edges: [edge("a", "b"), edge("a", "c"), edge("b", "d"), edge("c", "d")], cycles: [] },
    { name: "pair", edges: [edge("a", "b"), edge("b", "a")], cycles: [["a", "b"]] },
    { name: "self", edges: [edge("a", "a")], cycles: [["a"]] },
    {
      name: "two circles",
      edges: [edge("x", "a"), edge("a", "b"), edge("b", "c"), edge("c", "a"), edge("x", "y"), edge("y", "x")],
      cycles: [["a", "b", "c"], ["x", "y"]],
    },
  ];
  for (const c of cases) assertEquals(importCycles(c.edges), c.cycles, c.name);
});
