/**
 * The text trace escapes control characters in what it prints unquoted (a program's path and argv0, a wrapper's
 * message) as strace does, so that a program cannot forge report lines with a newline in its argv0 (red team rt6
 * F10). The control: the same run's JSON events carry the raw newline, so the attack reached the trace.
 */
import { scratchFile } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { escapeText } from "../../host/trace/strace_text.ts";
import { idwrap, traced } from "../helpers.ts";

Deno.test("escapeText: C escapes for control characters and the backslash; other text kept", () => {
  assertEquals(escapeText("a\nb\tc\rd\\e\x1b[31m\x7f\x85é\u2028"), "a\\nb\\tc\\rd\\\\e\\x1b[31m\\x7f\\x85é\\u2028");
  assertEquals(escapeText("/usr/bin/passwd"), "/usr/bin/passwd");
  assertEquals(escapeText("a\u202eb\u2066c\u061cd"), "a\\u202eb\\u2066c\\u061cd");
});

const FORGED = "idwrap: /bin/sh exited with 0";
const ATTACK = ["/bin/bash", "-c", `exec -a "$(printf 'evil\\n${FORGED}')" /bin/true`];

Deno.test("trace text: a newline in argv0 is printed as \\n, not as a forged report line", async () => {
  // Control: the program's argv0 really holds the newline (the JSON trace keeps the value as it is).
  const json = await traced("trace", [], ATTACK);
  assert(json.events.some((e) => e.kind === "exec" && e.program.argv0 === `evil\n${FORGED}`), json.stderr);

  const out = await scratchFile({ prefix: "idwrap-trace-", suffix: ".txt" });
  try {
    const r = await idwrap(["trace", "-o", out, "--", ...ATTACK]);
    assertEquals(r.code, 0, r.stderr);
    const lines = (await Deno.readTextFile(out)).split("\n");
    assert(!lines.some((l) => l.startsWith(FORGED)), lines.join("\n"));
    assert(lines.some((l) => l.includes(`+++ exec /usr/bin/true (evil\\n${FORGED})`)), lines.join("\n"));
  } finally {
    await Deno.remove(out);
  }
});
