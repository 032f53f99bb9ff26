/**
 * Compiles the AssemblyScript wrappers: every folder under wrappers/ with an
 * index.ts (except the SDK and the C header's abi/) becomes
 * build/wrappers/<folder>.wasm, with asc and the release target of
 * wrappers/asconfig.json. A wrapper is rebuilt only when a file under its
 * folder, under wrappers/sdk/, or wrappers/asconfig.json is newer than its
 * output. Each new module is checked against docs/abi.md (imports only
 * from "idwrap", only names the ABI defines; the required exports) before
 * it replaces the old one, so a module the host would refuse fails here.
 * Each wrapper's settings schema, wrappers/<folder>/settings.json (required),
 * is checked and appended to its module as the `idwrap.settings` custom
 * section (ABI 1.3, docs/abi.md "Settings"): asc cannot write custom sections.
 *
 * @module
 */
import { ABI_IMPORTS, ABI_MODULE, SETTINGS_SECTION } from "../host/runtime/abi.ts";
import { appendCustomSection, parseSettingsSchema } from "../host/runtime/settings.ts";
import {
  ASCONFIG as asconfig,
  isStale,
  mtimeOf,
  WRAPPERS_OUT_DIR as outDir,
  WRAPPERS_SRC_DIR as wrappersDir,
} from "../host/runtime/builtin_wrappers.ts";

const root = new URL("../", import.meta.url).pathname;
const asc = `${root}node_modules/.bin/asc`;

/** Folders under wrappers/ that are not wrappers. */
const NOT_WRAPPERS = new Set(["sdk", "abi"]);

/** Every import of the hook ABI: the host's own list (host/runtime/abi.ts), so the two cannot drift. */
export const ABI_V1_IMPORTS: ReadonlySet<string> = new Set(Object.keys(ABI_IMPORTS));

/** Exports every module must have (docs/abi.md, "What the module exports"). */
const REQUIRED_EXPORTS: readonly (readonly [string, WebAssembly.ImportExportKind])[] = [
  ["memory", "memory"],
  ["idwrap_abi_version", "function"],
  ["idwrap_declare", "function"],
];

/** The wrapper folders: names of folders under wrappers/ that hold an index.ts, sorted. */
export function wrapperNames(): string[] {
  const names: string[] = [];
  for (const entry of Deno.readDirSync(wrappersDir)) {
    if (!entry.isDirectory || NOT_WRAPPERS.has(entry.name)) continue;
    if (mtimeOf(`${wrappersDir}/${entry.name}/index.ts`) !== undefined) names.push(entry.name);
  }
  return names.sort();
}

/**
 * Why a compiled wrapper would be refused by the ABI's import and export
 * rules, one line per problem; empty if it follows them.
 */
export function checkWrapperModule(bytes: Uint8Array<ArrayBuffer>): string[] {
  const mod = new WebAssembly.Module(bytes);
  const problems: string[] = [];
  for (const imp of WebAssembly.Module.imports(mod)) {
    if (imp.module !== ABI_MODULE) {
      problems.push(`imports ${imp.module}.${imp.name}: only module "${ABI_MODULE}" is allowed`);
    } else if (!ABI_V1_IMPORTS.has(imp.name)) {
      problems.push(`imports ${imp.module}.${imp.name}: not an ABI v1 import`);
    } else if (imp.kind !== "function") {
      problems.push(`imports ${imp.module}.${imp.name} as a ${imp.kind}: ABI imports are functions`);
    }
  }
  const exports = new Map(WebAssembly.Module.exports(mod).map((e) => [e.name, e.kind]));
  for (const [name, kind] of REQUIRED_EXPORTS) {
    const got = exports.get(name);
    if (got === undefined) problems.push(`does not export ${name}`);
    else if (got !== kind) problems.push(`exports ${name} as a ${got}, not a ${kind}`);
  }
  return problems;
}

/** Compiles one wrapper folder to build/wrappers/<name>.wasm, checked, replacing the old module only on success. */
async function compileWrapper(name: string): Promise<string> {
  const output = `${outDir}/${name}.wasm`;
  // Per process: parallel test runs may build at once; the rename below is atomic.
  const temp = `${outDir}/.${name}.${Deno.pid}.wasm.tmp`;
  // Paths relative to the root: the asconfig's `use abort=wrappers/sdk/...`
  // names the abort function by its path from the working directory.
  const args = [`wrappers/${name}/index.ts`, "--config", asconfig, "--target", "release", "--outFile", temp];
  const out = await new Deno.Command(asc, { args, cwd: root, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) {
    await Deno.remove(temp).catch(() => {});
    const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
    throw new Error(`Cannot compile wrapper ${name} (asc ${args.join(" ")}):\n${text}`);
  }
  const problems = checkWrapperModule(await Deno.readFile(temp));
  const schemaFile = `wrappers/${name}/settings.json`;
  let schema: string | undefined;
  try {
    schema = await Deno.readTextFile(`${root}${schemaFile}`);
    parseSettingsSchema(schema);
  } catch (e) {
    problems.push(
      schema === undefined
        ? `${schemaFile}: cannot read it (every wrapper declares its settings, docs/wrappers.md): ${
          (e as Error).message
        }`
        : `${schemaFile}: ${(e as Error).message}`,
    );
  }
  if (problems.length > 0) {
    await Deno.remove(temp);
    throw new Error(`Wrapper ${name} does not follow the hook ABI (docs/abi.md):\n  ${problems.join("\n  ")}`);
  }
  const bytes = await Deno.readFile(temp);
  await Deno.writeFile(temp, appendCustomSection(bytes, SETTINGS_SECTION, new TextEncoder().encode(schema!)));
  await Deno.rename(temp, output);
  return output;
}

/**
 * Compiles the wrappers that are out of date.
 *
 * @returns the paths of the modules (re)built by this call, empty if all
 *   were up to date
 * @throws Error with asc's output when a wrapper does not compile, or with
 *   the problems when a compiled wrapper does not follow the ABI
 */
export async function buildWrappers(): Promise<string[]> {
  await Deno.mkdir(outDir, { recursive: true });
  const stale = wrapperNames().filter(isStale);
  // asc is single-threaded and takes seconds per module: one per core.
  const built: string[] = [];
  const errors: unknown[] = [];
  const queue = [...stale];
  const worker = async () => {
    for (let name = queue.shift(); name !== undefined; name = queue.shift()) {
      try {
        built.push(await compileWrapper(name));
      } catch (e) {
        errors.push(e);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(navigator.hardwareConcurrency, stale.length) }, worker));
  if (errors.length === 1) throw errors[0];
  if (errors.length > 1) throw new Error(errors.map((e) => e instanceof Error ? e.message : String(e)).join("\n\n"));
  return built.sort();
}

if (import.meta.main) {
  let built: string[];
  try {
    built = await buildWrappers();
  } catch (e) {
    console.error(e instanceof Error ? e.message : e);
    Deno.exit(1);
  }
  if (built.length === 0) console.log("wrappers: up to date (build/wrappers/)");
  for (const path of built) console.log(`wrapper: ${path.slice(root.length)}`);
}
