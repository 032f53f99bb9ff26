/**
 * Bad usage exits 2 from every command, as the README says; help and --version exit 0; a failure of idwrap itself
 * stays 125, and the wrapped command's own status passes through.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { idwrap } from "../helpers.ts";

const USAGE: [string, string[], RegExp][] = [
  ["an unknown command", ["bogus"], /unknown command 'bogus'/],
  ["an unknown option", ["run", "--bogus", "--", "true"], /unknown option '--bogus'/],
  ["a missing command to run", ["run"], /missing required argument 'command'/],
  ["an unknown syscall for trace -e", ["trace", "-e", "bogus", "--", "true"], /-e bogus: Unknown system call "bogus"/],
  ["an unknown syscall group for trace -e", ["trace", "-e", "%nope", "--", "true"], /Unknown syscall group "%nope"/],
  ["a bad audit --limit", ["audit", "query", "--limit", "x"], /bad --limit "x"/],
  ["an unknown audit option", ["audit", "query", "--bogus"], /unknown option '--bogus'/],
  ["a bad source", ["run", "--source", "nope", "--", "true"], /nope/],
];

for (const [what, args, message] of USAGE) {
  Deno.test(`usage: ${what} exits 2 with a message`, async () => {
    const r = await idwrap(args);
    assertEquals(r.code, 2, `${args.join(" ")}: exit ${r.code}\n${r.stderr}`);
    assert(message.test(r.stderr), r.stderr);
  });
}

Deno.test("usage: help and --version exit 0", async () => {
  for (const args of [["--help"], ["run", "--help"], ["help", "trace"], ["--version"]]) {
    const r = await idwrap(args);
    assertEquals(r.code, 0, `${args.join(" ")}: exit ${r.code}\n${r.stderr}`);
  }
});

Deno.test("usage: the wrapped command's status passes through (not a usage error)", async () => {
  const r = await idwrap(["run", "--", "sh", "-c", "exit 2"]);
  assertEquals(r.code, 2);
  const f = await idwrap(["run", "--", "false"]);
  assertEquals(f.code, 1);
});
