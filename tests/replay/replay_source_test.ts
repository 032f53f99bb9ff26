/**
 * The replay source shows the WSS no pid a live process could have (wrappers that read /proc/PID in a replay must not
 * see this machine's processes), and no recorded dev:ino.
 */
import { scratchFile } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { readRecording } from "../../host/trace/recording.ts";
import { ReplaySource } from "../../host/replay/replay_source.ts";
import type { SourceCall, SourceLifecycle } from "../../host/wss/source.ts";
import { idwrap, ROOT } from "../helpers.ts";

Deno.test("replay source: pids above pid_max, no recorded dev:ino", async () => {
  const events = await readRecording(`${ROOT}policies/tests/recordings/default-shadow-read.jsonl`);
  assert(events.some((e) => e.event.kind === "syscall" && e.event.decoded.ident), "the recording has dev:ino");
  const source = new ReplaySource(events);
  const pids: number[] = [];
  let idents = 0;
  const handler = {
    call(c: SourceCall) {
      pids.push(c.pid, c.tid);
      if (source.readArgs(c, "", "memory").ident !== undefined) idents++;
      if (c.waits) source.answer(c, { action: "allow" });
    },
    lifecycle(l: SourceLifecycle) {
      if ("pid" in l) pids.push(l.pid);
    },
    fault() {},
  };
  while (!source.done) source.poll(0, handler);
  const pidMax = Number(Deno.readTextFileSync("/proc/sys/kernel/pid_max"));
  assert(pids.length > 10 && pids.every((p) => p > 4194304 && p > pidMax), String(pids.slice(0, 5)));
  assert(idents === 0);
});

Deno.test("trace --json --record-data records a write's bytes (base64), and a replay hands them to the WSS as the live source did", async () => {
  const out = await scratchFile({ suffix: ".jsonl" });
  try {
    // Without --record-data the bytes stay out (they may be secrets).
    const plain = await idwrap(["trace", "--json", "-o", out, "-e", "trace=write", "--", "/bin/echo", "hello"]);
    assertEquals(plain.code, 0, plain.stderr);
    assert(!(await Deno.readTextFile(out)).includes("dataBase64"));
    const r = await idwrap([
      "trace",
      "--json",
      "--record-data",
      "-o",
      out,
      "-e",
      "trace=write",
      "--",
      "/bin/echo",
      "hello",
    ]);
    assertEquals(r.code, 0, r.stderr);
    assert((await Deno.readTextFile(out)).includes(`"dataBase64":"aGVsbG8K"`));
    const events = await readRecording(out);
    const source = new ReplaySource(events);
    const written: string[] = [];
    const handler = {
      call(c: SourceCall) {
        const d = source.readArgs(c, "", "memory");
        // Once per call: a source that reports the result (bpf) records the write's post with its bytes too.
        if (d.data && c.phase === "pre") written.push(new TextDecoder().decode(d.data));
        if (c.waits) source.answer(c, { action: "allow" });
      },
      lifecycle() {},
      fault() {},
    };
    while (!source.done) source.poll(0, handler);
    assertEquals(written, ["hello\n"]);
  } finally {
    await Deno.remove(out);
  }
});
