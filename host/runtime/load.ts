/**
 * Loads the wrappers a set of policies names, for a given event source:
 * resolve, check a built-in's module is up to date with its sources (the
 * runtime never compiles: that is `deno task build`), validate, check the
 * source can serve them. Any refusal names the policy file and the wrapper.
 *
 * @module
 */
import type { Policy, WrapperSpec } from "../policy/policy.ts";
import { hasSources, isStale, mtimeOf } from "./builtin_wrappers.ts";
import type { SourceCapabilities } from "../capabilities.ts";
import type { WasmEngine } from "./engine.ts";
import { checkCapabilities, loadWrapper, WrapperLoadError, type WrapperModule, wrapperPath } from "./module.ts";

/**
 * Refuses a built-in wrapper whose module is missing or older than its
 * sources, in a source checkout: loading a stale module would run old code.
 * Without sources (an installed idwrap) the module is taken as it is.
 */
function checkBuilt(spec: WrapperSpec, path: string, policyFile: string): void {
  if (!hasSources(spec.module) || !isStale(spec.module)) return;
  const state = mtimeOf(path) === undefined ? "does not exist" : "is older than its sources";
  throw new WrapperLoadError(
    spec.name,
    `${path} ${state} (wrappers/${spec.module}/, named by ${policyFile}); build the wrappers with "deno task build"`,
  );
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
      if (path !== spec.module) checkBuilt(spec, path, policy.file);
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
