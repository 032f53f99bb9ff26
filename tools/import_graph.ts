/**
 * The static import graph of a set of the repository's TypeScript files, as
 * Deno itself resolves it: `deno info --json` over one generated root that
 * imports every file. Deno's parser (not a regex) finds `import`, `export …
 * from`, `import type` and literal dynamic `import()`s, and resolves them
 * the way `deno run` will. One thing Deno's graph does not follow is a
 * worker's entry (`new Worker(new URL("./worker.ts", import.meta.url))`),
 * which is a real code dependency: those are added from the literal
 * `new URL("….ts", import.meta.url)` in the file's text.
 *
 * Used by tests/architecture/imports_test.ts.
 *
 * @module
 */
import { dirname, join, relative, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

/** How one file depends on another. */
export type EdgeKind = "code" | "type" | "dynamic" | "worker";

/** One import, between two files of the repository (paths relative to its root). */
export interface ImportEdge {
  from: string;
  to: string;
  kind: EdgeKind;
}

/** The files and root of a graph. */
export interface ImportGraphOptions {
  /** The repository root, an absolute path. */
  root: string;
  /** Files to take as roots, relative to `root`. */
  files: readonly string[];
}

/** The `.ts` files under a folder of root, recursively, relative to root and sorted. */
export function tsFilesUnder(root: string, folder: string): string[] {
  const out: string[] = [];
  const walk = (dir: string) => {
    for (const entry of Deno.readDirSync(join(root, dir))) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) walk(path);
      else if (entry.isFile && entry.name.endsWith(".ts")) out.push(path);
    }
  };
  walk(folder);
  return out.sort();
}

// The part of `deno info --json` read here (its "version": 1 format).
interface DenoInfoDependency {
  specifier: string;
  code?: { specifier: string };
  type?: { specifier: string };
  isDynamic?: boolean;
}
interface DenoInfo {
  version: number;
  modules: { specifier: string; dependencies?: DenoInfoDependency[] }[];
}

const WORKER_URL = /new\s+URL\(\s*["'`]([^"'`$]+\.ts)["'`]\s*,\s*import\.meta\.url\s*\)/g;

/**
 * Every import between repository files reachable from `files`: one edge
 * per (from, to, kind), sorted. Imports of npm:, node: and remote modules
 * are left out; imports of tools/, tests/ or bench/ are kept.
 *
 * @throws Error with Deno's output when `deno info` fails
 */
export async function importGraph(options: ImportGraphOptions): Promise<ImportEdge[]> {
  const root = resolve(options.root);
  const tmp = await Deno.makeTempDir({ prefix: "idwrap-imports-" });
  try {
    const rootFile = join(tmp, "all.ts");
    const lines = options.files.map((f) => `import ${JSON.stringify(pathToFileURL(join(root, f)).href)};`);
    await Deno.writeTextFile(rootFile, lines.join("\n") + "\n");
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json", "--config", join(root, "deno.json"), rootFile],
      cwd: root,
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!out.success) {
      throw new Error(`Cannot read the import graph (deno info): ${new TextDecoder().decode(out.stderr)}`);
    }
    const info = JSON.parse(new TextDecoder().decode(out.stdout)) as DenoInfo;
    if (info.version !== 1) throw new Error(`Cannot read deno info's format version ${info.version}: expected 1`);
    const inRepo = (specifier: string): string | undefined => {
      if (!specifier.startsWith("file:")) return undefined;
      const path = relative(root, fileURLToPath(specifier));
      return path.startsWith("..") || path.startsWith("node_modules/") ? undefined : path;
    };
    const edges = new Map<string, ImportEdge>();
    const add = (edge: ImportEdge) => edges.set(`${edge.from} ${edge.to} ${edge.kind}`, edge);
    for (const mod of info.modules) {
      const from = inRepo(mod.specifier);
      if (from === undefined) continue;
      for (const dep of mod.dependencies ?? []) {
        const code = dep.code && inRepo(dep.code.specifier);
        const type = dep.type && inRepo(dep.type.specifier);
        if (code) add({ from, to: code, kind: dep.isDynamic ? "dynamic" : "code" });
        // A `type` without `code` is an `import type`; with it, a .d.ts beside JS.
        if (type && !code) add({ from, to: type, kind: "type" });
      }
      if (from.endsWith(".ts")) {
        const text = await Deno.readTextFile(join(root, from));
        for (const m of text.matchAll(WORKER_URL)) {
          add({ from, to: relative(root, resolve(root, dirname(from), m[1])), kind: "worker" });
        }
      }
    }
    return [...edges.values()].sort((a, b) =>
      a.from.localeCompare(b.from) || a.to.localeCompare(b.to) || a.kind.localeCompare(b.kind)
    );
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
}

/**
 * The import cycles of a graph: each strongly connected component of more
 * than one file (or a file importing itself), its files sorted.
 */
export function importCycles(edges: readonly ImportEdge[]): string[][] {
  const next = new Map<string, string[]>();
  for (const e of edges) next.set(e.from, [...(next.get(e.from) ?? []), e.to]);
  // Tarjan's algorithm, iterative so that a deep chain cannot overflow the stack.
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  let counter = 0;
  for (const start of next.keys()) {
    if (index.has(start)) continue;
    const work: { node: string; i: number }[] = [{ node: start, i: 0 }];
    index.set(start, counter);
    low.set(start, counter++);
    stack.push(start);
    onStack.add(start);
    while (work.length > 0) {
      const frame = work[work.length - 1];
      const succ = next.get(frame.node) ?? [];
      if (frame.i < succ.length) {
        const w = succ[frame.i++];
        if (!index.has(w)) {
          index.set(w, counter);
          low.set(w, counter++);
          stack.push(w);
          onStack.add(w);
          work.push({ node: w, i: 0 });
        } else if (onStack.has(w)) {
          low.set(frame.node, Math.min(low.get(frame.node)!, index.get(w)!));
        }
        continue;
      }
      work.pop();
      if (work.length > 0) {
        const parent = work[work.length - 1].node;
        low.set(parent, Math.min(low.get(parent)!, low.get(frame.node)!));
      }
      if (low.get(frame.node) === index.get(frame.node)) {
        const component: string[] = [];
        let w: string;
        do {
          w = stack.pop()!;
          onStack.delete(w);
          component.push(w);
        } while (w !== frame.node);
        const selfLoop = succ.includes(frame.node);
        if (component.length > 1 || selfLoop) cycles.push(component.sort());
      }
    }
  }
  return cycles.sort((a, b) => a[0].localeCompare(b[0]));
}

if (import.meta.main) {
  const root = fileURLToPath(new URL("../", import.meta.url));
  const files = [...tsFilesUnder(root, "host"), "main.ts"];
  for (const e of await importGraph({ root, files })) console.log(`${e.from} -> ${e.to} (${e.kind})`);
}
