/**
 * Wrapper settings against the wrappers' declared schemas (ABI 1.3, docs/abi.md "Settings"), from the command line:
 * `idwrap policy check` and `idwrap run` refuse each kind of bad setting with the policy file, line, wrapper and
 * setting (exit 2) before anything runs; the shipped policies pass; a wrapper of an older ABI minor still loads, its
 * settings unchecked, and `policy check` says so.
 *
 * @module
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { exists, idwrap, ROOT, writePolicy } from "../helpers.ts";
import { watToWasm, writeWasm } from "../runtime/wat.ts";
import { startDaemon } from "../daemon/daemon_helpers.ts";

/** One bad setting per kind of error: the settings line, and the message expected for it (after `file:line: `). */
const BAD: { kind: string; wrapper: string; settings: string; message: string }[] = [
  {
    kind: "unknown setting",
    wrapper: "seq",
    settings: "colour: blue",
    message: 'wrapper seq, setting "colour": unknown setting, expected one of mode, window, frame, threshold,',
  },
  {
    kind: "value not allowed",
    wrapper: "seq",
    settings: "mode: detcet",
    message: 'wrapper seq, setting "mode": expected one of record|detect, got "detcet"',
  },
  {
    kind: "out of range",
    wrapper: "seq",
    settings: "window: 9",
    message: 'wrapper seq, setting "window": expected an integer from 1 to 6, got 9',
  },
  {
    kind: "wrong type",
    wrapper: "seq",
    settings: "only_trained: maybe",
    message: 'wrapper seq, setting "only_trained": expected true or false, got "maybe"',
  },
  {
    kind: "bad list item",
    wrapper: "httpd",
    settings: "ports: [eighty]",
    message:
      'wrapper httpd, setting "ports": expected a list of ports or LO-HI port ranges (0 to 65535), item 1 is "eighty"',
  },
  {
    kind: "bad response (the issue's example)",
    wrapper: "httpd",
    settings: "response: block",
    message: 'wrapper httpd, setting "response": expected one of alert|deny, got "block"',
  },
  {
    kind: "a baseline rule's response",
    wrapper: "baseline",
    settings: "response.mount: block",
    message: 'wrapper baseline, setting "response.mount": expected one of alert|deny|kill|off, got "block"',
  },
];

/** A good setting of each wrapper under test: it comes first, so the refused one is not the first setting. */
const GOOD: Record<string, string> = { seq: "program: p", httpd: "docroot: [/var/www]", baseline: "shells: [sh]" };

/** A policy whose one wrapper has a good setting, then `settings` from line 8. */
const policyText = (wrapper: string, settings: string) =>
  `version: 1
name: settings-check
# a comment, so that the setting is not on the wrapper's line
wrappers:
  - name: ${wrapper}
    settings:
      ${GOOD[wrapper]}
      ${settings}
`;

for (const c of BAD) {
  Deno.test(`settings check: ${c.kind} is refused by policy check and run with file:line, wrapper and setting`, async () => {
    const policy = await writePolicy(policyText(c.wrapper, c.settings));
    const want = `${policy}:8: ${c.message}`;
    const check = await idwrap(["policy", "check", policy]);
    assertEquals(check.code, 2, check.stdout + check.stderr);
    assert(check.stderr.startsWith(want), `expected ${want}\ngot ${check.stderr}`);

    // run: refused before the command starts (it would leave a marker), exit 2, the same message.
    const marker = `${policy}.ran`;
    const ran = await idwrap(["run", "-p", policy, "--", "/bin/touch", marker]);
    assertEquals(ran.code, 2, ran.stdout + ran.stderr);
    assert(ran.stderr.includes(want), `expected ${want}\ngot ${ran.stderr}`);
    assert(!(await exists(marker)), "the command ran");
  });
}

Deno.test("settings check: a missing required setting is refused, naming the wrapper's entry", async () => {
  const policy = await writePolicy("version: 1\nwrappers:\n  - name: deny_path\n    settings: { errno: 2 }\n");
  const check = await idwrap(["policy", "check", policy]);
  assertEquals(check.code, 2, check.stdout + check.stderr);
  const want =
    `${policy}:3: wrapper deny_path, setting "path": required (the path whose opens are denied), expected a string`;
  assert(check.stderr.startsWith(want), `expected ${want}\ngot ${check.stderr}`);
});

Deno.test("settings check: the same policy with good settings runs the command (the control)", async () => {
  const policy = await writePolicy(policyText("seq", "mode: detect\n      window: 6\n      only_trained: true"));
  const check = await idwrap(["policy", "check", policy]);
  assertEquals([check.code, check.stderr], [0, ""]);
  const marker = `${policy}.ran`;
  const ran = await idwrap(["run", "-p", policy, "--", "/bin/touch", marker]);
  assertEquals(ran.code, 0, ran.stderr);
  assert(await exists(marker), "the command did not run");
});

Deno.test("settings check: the shipped policies pass, every wrapper's settings checked", async () => {
  const check = await idwrap(["policy", "check", `${ROOT}policies/`]);
  assertEquals(check.code, 0, check.stdout + check.stderr);
  assert(!/not checked/.test(check.stdout + check.stderr), check.stdout + check.stderr);
  assert(!/^error|setting "/m.test(check.stderr), check.stderr);
});

Deno.test("settings check: a wrapper built for ABI 1.2 loads, its settings unchecked, and policy check notes it", async () => {
  const wasm = await writeWasm(
    "old",
    watToWasm(`(module
      (memory (export "memory") 1)
      (func (export "idwrap_abi_version") (result i32) (i32.const 0x00010002))
      (func (export "idwrap_declare") (result i32) (i32.const 0)))`),
  );
  const policy = await writePolicy(
    `version: 1\nwrappers:\n  - name: old\n    module: ${wasm}\n    settings: { anything: [1, 2] }\n`,
  );
  const check = await idwrap(["policy", "check", policy]);
  assertEquals(check.code, 0, check.stdout + check.stderr);
  assert(
    check.stdout.includes(
      `note: wrapper "old" at ${policy}:3 was built for hook ABI 1.2, which declares no settings schema: its settings are not checked`,
    ),
    check.stdout,
  );
  const ran = await idwrap(["run", "-p", policy, "--", "/bin/true"]);
  assertEquals(ran.code, 0, ran.stderr);
});

Deno.test("settings check: the daemon's reload refuses a bad setting with file:line, and the old policy stays", async () => {
  const dir = await scratchDir({ prefix: "idwrap-settings-reload-" });
  await Deno.chmod(dir, 0o755);
  const target = `${dir}/target.txt`;
  await Deno.writeTextFile(target, "target\n");
  const policy = `${dir}/p.yaml`;
  const entry = (errno: number) =>
    `version: 1\nname: p\nwrappers:\n  - name: deny_path\n    settings:\n      path: ${target}\n      errno: ${errno}\n`;
  await Deno.writeTextFile(policy, entry(13));
  const d = await startDaemon(["--policy", policy, "--no-watch"]);
  try {
    const denied = async () => (await idwrap(["run", "--", "/bin/cat", target], { env: d.env })).code !== 0;
    assert(await denied(), "the first policy does not deny");
    await Deno.writeTextFile(policy, entry(5000));
    const reload = await idwrap(["wrappers", "reload"], { env: d.env });
    assert(reload.code !== 0, reload.stdout + reload.stderr);
    const want = `${policy}:7: wrapper deny_path, setting "errno": expected an integer from 1 to 4095, got 5000`;
    assert(reload.stderr.includes(want), `expected ${want}\ngot ${reload.stderr}`);
    assert(d.log().includes("reload refused") && d.log().includes(want), d.log());
    assert(await denied(), "the old policy no longer denies");
    // The control: a good edit reloads.
    await Deno.writeTextFile(policy, entry(2));
    const good = await idwrap(["wrappers", "reload"], { env: d.env });
    assertEquals(good.code, 0, good.stderr);
  } finally {
    await d.stop();
  }
});
