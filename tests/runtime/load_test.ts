/**
 * loadPolicyWrappers() refuses a built-in wrapper whose module is older than
 * its sources (it never compiles: that is the build's job), and loads it
 * once it is up to date.
 *
 * @module
 */
import { match, ok as assert, rejects } from "node:assert/strict";
import "../helpers.ts"; // builds the wrappers once
import { parsePolicy } from "../../host/policy/policy.ts";
import { v8Engine } from "../../host/runtime/engine.ts";
import { loadPolicyWrappers } from "../../host/runtime/load.ts";
import { WrapperLoadError } from "../../host/runtime/module.ts";
import { KMOD_CAPABILITIES } from "../../host/sources/capabilities.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const WASM = `${ROOT}build/wrappers/noop.wasm`;
const CAPS = KMOD_CAPABILITIES; // every call has post events: no hook is refused for the source
const POLICY = parsePolicy("name: t\nwrappers:\n  - name: n\n    module: noop\n", "/tmp/t.yaml");

Deno.test("loadPolicyWrappers() refuses a built-in module older than its sources, and loads it when up to date", async () => {
  const { mtime, atime } = Deno.statSync(WASM);
  // The control: as built, it loads.
  const loaded = await loadPolicyWrappers([POLICY], v8Engine, CAPS);
  assert(loaded.length === 1 && loaded[0].spec.module === "noop");
  try {
    Deno.utimeSync(WASM, new Date(1000), new Date(1000));
    await rejects(loadPolicyWrappers([POLICY], v8Engine, CAPS), (e: unknown) => {
      assert(e instanceof WrapperLoadError);
      match(
        e.message,
        /Cannot load wrapper "n": .*noop\.wasm is older than its sources \(wrappers\/noop\/, named by \/tmp\/t\.yaml\); build the wrappers with "deno task build"/,
      );
      return true;
    });
  } finally {
    Deno.utimeSync(WASM, atime!, mtime!);
  }
});
