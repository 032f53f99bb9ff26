/**
 * Where the built-in wrappers are: their AssemblyScript sources under
 * wrappers/<name>/ (in a source checkout) and their modules under
 * build/wrappers/<name>.wasm; and whether a module is older than its
 * sources. Read-only: compiling is the build's job (tools/build_wrappers.ts,
 * `deno task build`), never the runtime's.
 *
 * @module
 */
import { fileURLToPath } from "node:url";

/** The repository root (with a trailing slash), as seen from this file. */
const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** The folder of the wrappers' sources. */
export const WRAPPERS_SRC_DIR = `${ROOT}wrappers`;
/** The folder of the compiled wrappers. */
export const WRAPPERS_OUT_DIR = `${ROOT}build/wrappers`;
/** The asc configuration every wrapper is compiled with, relative to the root. */
export const ASCONFIG = "wrappers/asconfig.json";

/** The modification time of path, or undefined if it does not exist. */
export function mtimeOf(path: string): number | undefined {
  try {
    return Deno.statSync(path).mtime?.getTime();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

/** The newest modification time of a file under dir, recursively (0 if none). */
function newestUnder(dir: string): number {
  let newest = 0;
  for (const entry of Deno.readDirSync(dir)) {
    const path = `${dir}/${entry.name}`;
    if (entry.isDirectory) newest = Math.max(newest, newestUnder(path));
    else if (entry.isFile) newest = Math.max(newest, Deno.statSync(path).mtime?.getTime() ?? 0);
  }
  return newest;
}

/** Other wrapper folders a wrapper's sources import (`from "../lpr/spec"`), so their changes rebuild it too. */
function siblingsImported(name: string): string[] {
  const found = new Set<string>();
  for (const entry of Deno.readDirSync(`${WRAPPERS_SRC_DIR}/${name}`)) {
    if (!entry.isFile || !entry.name.endsWith(".ts")) continue;
    const text = Deno.readTextFileSync(`${WRAPPERS_SRC_DIR}/${name}/${entry.name}`);
    for (const m of text.matchAll(/from\s+"\.\.\/([\w-]+)\//g)) if (m[1] !== "sdk" && m[1] !== name) found.add(m[1]);
  }
  return [...found];
}

/** Whether wrappers/<name>/index.ts can be seen: a built-in wrapper in a source checkout. */
export function hasSources(name: string): boolean {
  try {
    return Deno.statSync(`${WRAPPERS_SRC_DIR}/${name}/index.ts`).isFile;
  } catch {
    return false; // not a source checkout (a compiled idwrap), or not one this user may read
  }
}

/**
 * Whether build/wrappers/<name>.wasm is missing or older than a file it is
 * built from: its folder, the folders it imports, wrappers/sdk/, the asc
 * configuration.
 */
export function isStale(name: string): boolean {
  const built = mtimeOf(`${WRAPPERS_OUT_DIR}/${name}.wasm`);
  if (built === undefined) return true;
  const shared = Math.max(newestUnder(`${WRAPPERS_SRC_DIR}/sdk`), mtimeOf(`${ROOT}${ASCONFIG}`) ?? 0);
  const sources = Math.max(...[name, ...siblingsImported(name)].map((d) => newestUnder(`${WRAPPERS_SRC_DIR}/${d}`)));
  return built < Math.max(shared, sources);
}
