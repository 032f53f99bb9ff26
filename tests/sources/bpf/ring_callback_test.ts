/**
 * The ring consumer's FFI calls run a JS callback (the sample copy) before they return, so they must not be V8 fast
 * calls: a fast call whose caller is deoptimised meanwhile aborts the process ("Lazy deopt after a fast API call with
 * return value is unsupported"). It did, at random under load: 3 of 3 hybrid seq kernel builds of a bench run and 1 of
 * 2 by hand lost their supervisor to SIGILL (their trees then got ENOSYS); 0 of 3 since.
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { SYMBOLS } from "../../../host/sources/bpf/libbpf.ts";
import { ROOT, run } from "../../helpers.ts";

Deno.test("bpf ring: the calls that run the sample callback take the slow FFI path (a struct result)", () => {
  // Deno 2.9 makes a symbol a fast call unless a parameter or its result is a struct.
  for (const name of ["ring_buffer__poll", "ring_buffer__consume"] as const) {
    assertEquals(typeof SYMBOLS[name].result, "object", `${name} must not be a fast call`);
  }
});

Deno.test("bpf ring: a burst past the consumer's buffer after thousands of small drains is taken whole", async () => {
  const script = `${ROOT}tests/sources/bpf/fixtures/ring_deopt.ts`;
  const r = await run(Deno.execPath(), ["run", "--allow-all", "--quiet", `--config=${ROOT}deno.json`, script]);
  // 50,000 getppid calls, each an enter and an exit record.
  assertEquals({ code: r.code, seen: r.stdout.trim() }, { code: 0, seen: "100000" }, r.stderr.slice(-2000));
});
