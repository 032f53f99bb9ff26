/**
 * A drop-in wrapper not written in AssemblyScript: WebAssembly text written
 * from docs/abi.md alone (tests/runtime/thirdparty/), loaded through a
 * policy and driven by real processes under the seccomp source.
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { calls, reports, traced, writePolicy } from "../helpers.ts";
import { watToWasm, writeWasm } from "./wat.ts";

const wat = await Deno.readTextFile(new URL("./thirdparty/deny_setting_path.wat", import.meta.url));
const wasm = await writeWasm("deny_setting_path", watToWasm(wat));
const dir = await scratchDir({ prefix: "idwrap-thirdparty-" });
await Deno.writeTextFile(`${dir}/ok.txt`, "ok\n");
await Deno.writeTextFile(`${dir}/forbidden.txt`, "forbidden\n");

Deno.test("a third-party WAT wrapper denies the open it was configured for, and only it", async () => {
  const policy = await writePolicy(`
wrappers:
  - name: thirdparty
    module: ${wasm}
    settings: { path: "${dir}/forbidden.txt" }
`);
  const r = await traced("run", ["-p", policy], ["/bin/cat", `${dir}/ok.txt`, `${dir}/forbidden.txt`]);
  assertEquals(r.stdout, "ok\n");
  assert(r.stderr.includes("forbidden.txt: Permission denied"), r.stderr);
  const denied = calls(r.events).filter((e) => e.verdict?.startsWith("deny"));
  assertEquals(denied.map((e) => [e.decoded.path, e.verdict]), [[`${dir}/forbidden.txt`, "deny EACCES"]]);
  const alerts = reports(r.events, "alert");
  assertEquals(alerts.map((a) => [a.wrapper, a.severity, a.message]), [[
    "thirdparty",
    3,
    "open of the forbidden path",
  ]]);
});

Deno.test("a third-party wrapper whose idwrap_init refuses fails closed, and says so", async () => {
  const policy = await writePolicy(`
wrappers:
  - name: thirdparty
    module: ${wasm}
    max_failures: 1000
`);
  const r = await traced("run", ["-p", policy], ["/bin/cat", `${dir}/ok.txt`]);
  assert(r.code !== 0);
  assertEquals(r.stdout, "");
  const faults = reports(r.events, "fault");
  assert(
    faults.length > 0 && faults[0].message.startsWith("idwrap_init: returned 1; call denied (fail closed)"),
    JSON.stringify(faults[0]),
  );
});
