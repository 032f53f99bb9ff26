/**
 * Terminal control sequences in what a program chose (its file name, quoted by an alert's message) never reach the
 * operator's terminal through a text view (rt9 F5): `audit query` and the run's trace (`[alerts]` suffix of an exec
 * line) print ESC, CR, LF, C1 controls and bidirectional overrides escaped. The control: `--json` (escaped by JSON)
 * decodes to the raw name, so the attack reached the record.
 *
 * @module
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { idwrap } from "../helpers.ts";
import { scratchDir } from "../temp.ts";

/** A record line as the operator would believe it. */
const FAKE = "2026-12-05T10:00:00.000Z lifecycle 4242 true process 4242 exited with 0";
/** The script's name (rt9's PoC, plus a newline, a C1 CSI and a right-to-left override). */
const NAME = `x\r\x1b[2K${FAKE}\x1b[8m\n${FAKE}\x9b2J\u202eevil`;
/** What no text view may print: C0 controls but the line's own newline, DEL, C1, bidi controls, line separators. */
// deno-lint-ignore no-control-regex -- the control characters are what the test looks for
const RAW = /[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028-\u202e\u2066-\u2069]/;

Deno.test("audit query and the run's trace print a hostile file name's controls escaped; no forged line", async () => {
  const dir = await scratchDir({ prefix: "idwrap-escape-" }); // under /tmp: the default policy's tmp-exec
  const script = `${dir}/${NAME}`;
  const store = `${dir}/store.kv`, trace = `${dir}/trace.txt`;
  try {
    await Deno.writeTextFile(script, "#!/bin/sh\nexit 0\n", { mode: 0o755 });
    const ran = await idwrap(["run", "-o", trace, "--", "sh", "-c", '"$0"', script], {
      env: { IDWRAP_STORE: store },
    });
    assertEquals(ran.code, 0, ran.stderr);

    // The control: the alert's record quotes the raw name.
    const json = await idwrap(["audit", "query", "--store", store, "--json"]);
    const records = json.stdout.trim().split("\n").map((l) => JSON.parse(l));
    const alert = records.find((r) => String(r.message).includes("tmp-exec"));
    assert(alert?.message.includes(NAME), json.stdout);

    const text = await idwrap(["audit", "query", "--store", store]);
    assertEquals(text.code, 0, text.stderr);
    const lines = text.stdout.trim().split("\n");
    assertEquals(lines.length, records.length, "one line a record: none forged");
    assert(!RAW.test(text.stdout), JSON.stringify(text.stdout));
    assert(!lines.some((l) => l.startsWith(FAKE)), text.stdout);
    assert(lines.some((l) => l.includes("\\r\\x1b[2K") && l.includes("\\n") && l.includes("\\u202e")), text.stdout);

    const traceText = await Deno.readTextFile(trace);
    const execLine = traceText.split("\n").find((l) => / execve\(.*\[baseline/.test(l));
    assert(execLine, traceText);
    assert(!RAW.test(traceText.replaceAll("\n", "")), JSON.stringify(traceText));
    assert(!traceText.split("\n").some((l) => l.startsWith(FAKE)), traceText);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
