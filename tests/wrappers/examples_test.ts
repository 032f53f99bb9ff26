/**
 * The AssemblyScript example wrappers (wrappers/), each loaded through a
 * policy and driven by real processes under the seccomp source.
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { calls, reports, traced, writePolicy } from "../helpers.ts";

/** What /bin/sh is: wrappers see the canonical path of what runs (docs/seccomp.md, "Paths"). */
const SH_REAL = Deno.realPathSync("/bin/sh");

const dir = await scratchDir({ prefix: "idwrap-examples-" });
await Deno.writeTextFile(`${dir}/a.txt`, "a\n");
await Deno.writeTextFile(`${dir}/b.txt`, "b\n");

Deno.test("noop: the wrapper sees getppid and lets everything run", async () => {
  const policy = await writePolicy("wrappers: [noop]\n");
  const r = await traced("run", ["-p", policy, "--verbose"], ["/bin/sh", "-c", 'test "$PPID" -gt 0 && echo ok']);
  assertEquals(r.stdout, "ok\n");
  const getppid = calls(r.events, "pre").filter((e) => e.syscall === "getppid");
  assert(getppid.length > 0, "getppid was not seen");
  // Held (seccomp, kmod): the wrapper's allow; observed through the bpf ring (bpf, the hybrid: noop never denies) no
  // verdict, the call already ran.
  for (const e of getppid) assertEquals(e.verdict, e.source === "bpf" || e.source === "hybrid" ? undefined : "allow");
  assertEquals(reports(r.events, "fault"), []);
});

Deno.test("deny_path: only the configured path is denied, with its errno and an alert", async () => {
  const policy = await writePolicy(`
wrappers:
  - name: deny_path
    settings: { path: "${dir}/b.txt", errno: 2 }
`);
  const r = await traced("run", ["-p", policy], ["/bin/cat", `${dir}/a.txt`, `${dir}/b.txt`]);
  assertEquals(r.stdout, "a\n");
  assert(r.stderr.includes("b.txt: No such file or directory"), r.stderr);
  assertEquals(reports(r.events, "alert").map((a) => [a.wrapper, a.severity, a.message]), [
    ["deny_path", 3, `deny_path: denied open of ${dir}/b.txt`],
  ]);
});

/** Reads counter's shared openat count from the Deno KV store. */
async function storedCount(store: string): Promise<bigint | undefined> {
  const kv = await Deno.openKv(store);
  try {
    const entry = await kv.get<Uint8Array>(["idwrap", "wrapper", "counter", new TextEncoder().encode("count/openat")]);
    return entry.value ? new DataView(entry.value.buffer, entry.value.byteOffset).getBigInt64(0, true) : undefined;
  } finally {
    kv.close();
  }
}

Deno.test("counter: the KV count is shared across processes and persists across runs in Deno KV", async () => {
  const store = `${await scratchDir()}/store.kv`;
  const policy = await writePolicy(`
wrappers:
  - name: counter
    settings: { alert_at: 3 }
`);
  const command = ["/bin/sh", "-c", `cat ${dir}/a.txt; cat ${dir}/b.txt`];
  const first = await traced("run", ["-p", policy, "--verbose"], command, { env: { IDWRAP_STORE: store } });
  assertEquals(first.stdout, "a\nb\n");
  const opensFirst = calls(first.events, "pre").filter((e) => e.syscall === "openat").length;
  const afterFirst = await storedCount(store);
  // Every openat of all three processes was counted, in one shared counter.
  assertEquals(afterFirst, BigInt(opensFirst));
  assertEquals(new Set(calls(first.events, "pre").filter((e) => e.syscall === "openat").map((e) => e.pid)).size, 3);
  // The alert fires once, when the shared count reaches 3, whichever process that is.
  assertEquals(reports(first.events, "alert").map((a) => a.message), ["counter: openat count reached 3"]);

  const second = await traced("run", ["-p", policy, "--verbose"], command, { env: { IDWRAP_STORE: store } });
  const opensSecond = calls(second.events, "pre").filter((e) => e.syscall === "openat").length;
  assertEquals(await storedCount(store), BigInt(opensFirst + opensSecond));
  assertEquals(reports(second.events, "alert"), [], "the count started above 3: no second alert");
});

for (const [answer, outcome] of [["0", "runs"], ["2", "is killed at its first exec"]] as const) {
  Deno.test(`emitter and subscriber: answer ${answer} returns to the emitter and the program ${outcome}`, async () => {
    const policy = await writePolicy(`
wrappers:
  - emitter
  - name: subscriber
    settings: { answer: ${answer} }
`);
    const r = await traced("run", ["-p", policy], ["/bin/sh", "-c", "/bin/true; echo done"]);
    const alerts = reports(r.events, "alert").map((a) => `${a.wrapper}: ${a.message}`);
    assertEquals(alerts[0], `subscriber: emitter reports exec of ${SH_REAL}`);
    if (answer === "0") {
      assertEquals(r.stdout, "done\n");
      assert(
        alerts.includes(`subscriber: emitter reports exec of ${Deno.realPathSync("/bin/true")}`),
        alerts.join("\n"),
      );
    } else {
      assertEquals(r.code, 137);
      assertEquals(r.stdout, "");
    }
  });
}
