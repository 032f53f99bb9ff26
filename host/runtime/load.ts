/**
 * Loads the wrappers a set of policies names, for a given event source:
 * resolve, build built-ins if needed, validate, check the source can serve
 * them. Any refusal names the policy file and the wrapper.
 *
 * @module
 */
import type { Policy } from "../policy/policy.ts";
import type { SourceCapabilities } from "../capabilities.ts";
import type { WasmEngine } from "./engine.ts";
import { checkCapabilities, loadWrapper, WrapperLoadError, type WrapperModule, wrapperPath } from "./module.ts";

const WRAPPERS_SRC = new URL("../../wrappers/", import.meta.url);

/** Builds the built-in wrappers when the .wasm is missing or older than its sources. */
async function ensureBuilt(name: string): Promise<void> {
  let sourceExists = false;
  try {
    sourceExists = Deno.statSync(new URL(`${name}/index.ts`, WRAPPERS_SRC)).isFile;
  } catch { /* not a source checkout, or not a built-in */ }
  if (!sourceExists) return;
  const { buildWrappers } = await import("../../tools/build_wrappers.ts");
  // Up to date is instant; a first build takes seconds: say so where someone is watching.
  const notice = Deno.stderr.isTerminal() ? setTimeout(() => console.error("idwrap: building the wrappers…"), 300) : 0;
  try {
    await buildWrappers();
  } finally {
    clearTimeout(notice);
  }
}

/**
 * Loads every policy's wrappers, in policy then list order.
 *
 * @throws WrapperLoadError naming the wrapper (and the policy file)
 */
export async function loadPolicyWrappers(
  policies: Policy[],
  engine: WasmEngine,
  caps: SourceCapabilities,
): Promise<WrapperModule[]> {
  const out: WrapperModule[] = [];
  const seen = new Map<string, string>();
  for (const policy of policies) {
    for (const spec of policy.wrappers) {
      const first = seen.get(spec.name);
      if (first) throw new WrapperLoadError(spec.name, `it is named by both ${first} and ${policy.file}`);
      seen.set(spec.name, policy.file);
      const path = wrapperPath(spec);
      if (path !== spec.module) await ensureBuilt(spec.module);
      let bytes: Uint8Array;
      try {
        bytes = await Deno.readFile(path);
      } catch (e) {
        throw new WrapperLoadError(spec.name, `cannot read ${path} (${policy.file}): ${(e as Error).message}`);
      }
      const mod = loadWrapper(spec, bytes, engine, path);
      checkCapabilities(mod, caps);
      out.push(mod);
    }
  }
  return out;
}
