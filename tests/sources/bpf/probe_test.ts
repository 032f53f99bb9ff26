/** `idwrap doctor`'s BPF probes on the real kernel: each program type is tried, and a refusal says why. */
import { deepStrictEqual as assertEquals, match as assertMatch, ok as assert } from "node:assert/strict";
import { probeBpf } from "../../../host/sources/bpf/probe.ts";
import "../../helpers.ts"; // builds build/bpf/probes.o

Deno.test("probeBpf() tries every program type and names the errno of each refusal", async () => {
  const probes = await probeBpf();
  assertEquals(probes.map((p) => p.feature), [
    "tp_btf",
    "raw_tp",
    "lsm (BPF LSM)",
    "fentry",
    "cgroup/connect4",
    "bpf_send_signal",
  ]);
  for (const p of probes) {
    if (p.ok) assertMatch(p.detail, /^loaded/);
    else assertMatch(p.detail, /^(load|attach) refused: E[A-Z0-9]+|not killed/, `${p.feature}: ${p.detail}`);
  }
  // The bpf source's own programs are tp_btf: where that probe passes, the source loads (its tests run here).
  assert(probes[0].ok, `tp_btf: ${probes[0].detail}`);
  // bpf_send_signal is judged by a real kill, not a load.
  const signal = probes.find((p) => p.feature === "bpf_send_signal")!;
  if (signal.ok) assertEquals(signal.detail, "loaded, attached, killed a child");
});
