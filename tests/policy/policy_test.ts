/** Policy files: good ones parse; each bad one gets its exact message. */
import { scratchDir, scratchFile } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { checkPolicies } from "../../host/cli/policy.ts";
import { IDWRAP } from "../helpers.ts";
import { builtinWrappers, loadPolicy, parsePolicy, PolicyError } from "../../host/policy/policy.ts";
import { SYSCALL_GROUPS } from "../../host/syscalls/mod.ts";
import { CRITERIA_KEYS } from "../../host/policy/criteria.ts";
import { parseTestFile } from "../../host/replay/replay_cases.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

Deno.test("parsePolicy() reads a full policy", () => {
  const p = parsePolicy(
    `version: 1
name: demo
observe: ["%exec", connect]
rules:
  - id: r1
    syscalls: [openat]
    path: /etc/*
    action: deny
    errno: EACCES
  - syscalls: execve
`,
    "demo.yaml",
  );
  assertEquals(p.name, "demo");
  assertEquals(p.observe, ["%exec", "connect"]);
  assertEquals(p.rules, [
    { id: "r1", syscalls: ["openat"], path: "/etc/*", action: "deny", errno: 13 },
    { id: "rule-2", syscalls: ["execve"], path: undefined, action: "alert", errno: 1 },
  ]);
});

const BAD: [string, string, string][] = [
  ["syntax", "rules: [", "bad.yaml:1: (syntax): "],
  ["not a mapping", "- a\n- b\n", "bad.yaml:1: (document): expected a mapping with name, observe and rules"],
  [
    "unknown top-level field",
    "name: x\nrulez: []\n",
    "bad.yaml:2: rulez: unknown field, expected one of version, name, observe, rules",
  ],
  ["wrong version", "version: 3\n", "bad.yaml:1: version: expected 1 or 2, got 3"],
  ["unknown syscall", "observe: [openatt]\n", 'bad.yaml:1: observe: Unknown system call "openatt" for x86_64'],
  ["unknown group", "observe: ['%files']\n", 'bad.yaml:1: observe: Unknown syscall group "%files"'],
  ["rules not a list", "rules: {a: 1}\n", "bad.yaml:1: rules: expected a list of rules"],
  ["missing syscalls", "rules:\n  - action: deny\n", "bad.yaml:2: rules[0]: missing field syscalls"],
  [
    "bad action",
    "rules:\n  - syscalls: openat\n    action: block\n",
    'bad.yaml:3: rules[0].action: expected one of alert, deny, kill, got "block"',
  ],
  [
    "bad errno",
    "rules:\n  - syscalls: openat\n    action: deny\n    errno: EFOO\n",
    'bad.yaml:4: rules[0].errno: expected an errno name such as EACCES, got "EFOO"',
  ],
  [
    "errno without deny",
    "rules:\n  - syscalls: openat\n    errno: EPERM\n",
    "bad.yaml:3: rules[0].errno: only a deny rule takes an errno",
  ],
  [
    "duplicate id",
    "rules:\n  - {id: a, syscalls: openat}\n  - {id: a, syscalls: openat}\n",
    'bad.yaml:3: rules[1].id: duplicate rule id "a"',
  ],
  ["unknown rule field", "rules:\n  - syscalls: openat\n    paht: /x\n", "bad.yaml:3: rules[0].paht: unknown field"],
  [
    "path not a string",
    "rules:\n  - syscalls: openat\n    path: 3\n",
    "bad.yaml:3: rules[0].path: expected a glob string",
  ],
];

for (const [name, text, message] of BAD) {
  Deno.test(`parsePolicy() refuses a policy with ${name}`, () => {
    throws(() => parsePolicy(text, "bad.yaml"), (e: unknown) => {
      if (!(e instanceof PolicyError)) throw e;
      if (!e.message.startsWith(message)) throw new Error(`got: ${e.message}\nwanted: ${message}`);
      return true;
    });
  });
}

Deno.test("loadPolicy() names a missing file", () => {
  throws(() => loadPolicy("/nonexistent/p.yaml"), /\/nonexistent\/p\.yaml:0: \(file\): cannot read/);
});

Deno.test("the shipped policies are valid", () => {
  for (const entry of Deno.readDirSync(new URL("../../policies/", import.meta.url))) {
    if (entry.name.endsWith(".yaml")) loadPolicy(new URL(`../../policies/${entry.name}`, import.meta.url).pathname);
  }
});

// Activation criteria, on_alert and built-in wrappers.

Deno.test("parsePolicy() reads activation criteria and on_alert", () => {
  const p = parsePolicy(
    `wrappers:
  - noop
  - name: deny_path
    settings: { path: /etc/passwd }
    activate:
      program: [cat, "/usr/bin/vi*"]
      user: root
      setuid: false
    deactivate:
      sha256: "${"A".repeat(64)}"
    on_alert: deny
`,
    "good.yaml",
  );
  assertEquals(p.wrappers.map((w) => [w.name, w.activate, w.deactivate, w.onAlert]), [
    ["noop", undefined, undefined, "alert"],
    ["deny_path", { program: ["cat", "/usr/bin/vi*"], user: [0], setuid: false }, { sha256: ["a".repeat(64)] }, "deny"],
  ]);
  assert(!("activate" in p.wrappers[0]), "an absent activate is left out, not undefined");
});

const BUILTINS = builtinWrappers()!;

const BAD_WRAPPERS: [string, string, string][] = [
  [
    "unknown user",
    "wrappers:\n  - name: noop\n    activate:\n      user: nosuchuser\n",
    'bad.yaml:4: wrappers[0].activate.user: unknown user "nosuchuser" (not found by getent passwd)',
  ],
  [
    "unknown user in a list",
    "wrappers:\n  - name: noop\n    activate:\n      user: [root, nosuchuser]\n",
    'bad.yaml:4: wrappers[0].activate.user[1]: unknown user "nosuchuser" (not found by getent passwd)',
  ],
  [
    "unknown group",
    "wrappers:\n  - name: noop\n    activate: { group: nosuchgroup }\n",
    'bad.yaml:3: wrappers[0].activate.group: unknown group "nosuchgroup" (not found by getent group)',
  ],
  [
    "unknown owner",
    "wrappers:\n  - name: noop\n    activate:\n      owner: nosuchuser\n",
    'bad.yaml:4: wrappers[0].activate.owner: unknown user "nosuchuser" (not found by getent passwd)',
  ],
  [
    "negative uid",
    "wrappers:\n  - name: noop\n    activate:\n      user: -1\n",
    "bad.yaml:4: wrappers[0].activate.user: expected a user name or uid, got -1",
  ],
  [
    "short sha256",
    "wrappers:\n  - name: noop\n    deactivate:\n      sha256: abc\n",
    'bad.yaml:4: wrappers[0].deactivate.sha256: expected 64 hexadecimal digits, got "abc"',
  ],
  [
    "non-hex sha256",
    `wrappers:\n  - name: noop\n    activate:\n      sha256: [${"z".repeat(64)}]\n`,
    `bad.yaml:4: wrappers[0].activate.sha256[0]: expected 64 hexadecimal digits, got "${"z".repeat(64)}"`,
  ],
  [
    "sha256 read as a number",
    `wrappers:\n  - name: noop\n    activate:\n      sha256: 1234\n`,
    "bad.yaml:4: wrappers[0].activate.sha256: expected 64 hexadecimal digits (quote the digest: YAML read it as a number)",
  ],
  [
    "unknown condition",
    "wrappers:\n  - name: noop\n    activate:\n      prgram: cat\n",
    "bad.yaml:4: wrappers[0].activate.prgram: unknown condition, expected one of all, program, user, group, parent, " +
    "setuid, setgid, owner, sha256",
  ],
  [
    "criteria not a mapping",
    "wrappers:\n  - name: noop\n    activate: cat\n",
    "bad.yaml:3: wrappers[0].activate: expected a mapping of conditions (all, program, user, group, parent, setuid, " +
    "setgid, owner, sha256)",
  ],
  [
    "empty criteria",
    "wrappers:\n  - name: noop\n    deactivate: {}\n",
    "bad.yaml:3: wrappers[0].deactivate: expected at least one condition (all, program, user, group, parent, setuid, " +
    "setgid, owner, sha256)",
  ],
  [
    "all: false",
    "wrappers:\n  - name: noop\n    activate: { all: false }\n",
    "bad.yaml:3: wrappers[0].activate.all: expected true (to bind a wrapper to no process, remove it)",
  ],
  [
    "all with other conditions",
    "wrappers:\n  - name: noop\n    activate:\n      all: true\n      user: root\n",
    "bad.yaml:4: wrappers[0].activate.all: all: true cannot be combined with other conditions",
  ],
  [
    "program not a glob",
    "wrappers:\n  - name: noop\n    activate:\n      program: 3\n",
    "bad.yaml:4: wrappers[0].activate.program: expected a glob, got 3",
  ],
  [
    "program a mapping",
    "wrappers:\n  - name: noop\n    activate:\n      program: { a: 1 }\n",
    "bad.yaml:4: wrappers[0].activate.program: expected a glob or a list of them",
  ],
  [
    "bad glob",
    'wrappers:\n  - noop\n  - name: counter\n    activate:\n      program: [cat, "["]\n',
    'bad.yaml:5: wrappers[1].activate.program[1]: bad glob "[": unclosed "[" at offset 0',
  ],
  [
    "unbalanced braces in parent",
    'wrappers:\n  - name: noop\n    activate:\n      parent: "{sh,bash"\n',
    'bad.yaml:4: wrappers[0].activate.parent: bad glob "{sh,bash": unclosed "{"',
  ],
  [
    "negated glob",
    'wrappers:\n  - name: noop\n    activate:\n      program: "!cat"\n',
    'bad.yaml:4: wrappers[0].activate.program: bad glob "!cat": a leading "!" would negate it; exclude programs ' +
    "with deactivate instead",
  ],
  [
    "unquoted glob starting with *",
    "wrappers:\n  - name: noop\n    activate:\n      program: *sh\n",
    'bad.yaml:4: (syntax): Unresolved alias (the anchor must be set before the alias): sh; quote a value that starts with "*"',
  ],
  [
    "setuid not a boolean",
    "wrappers:\n  - name: noop\n    activate:\n      setuid: yes\n",
    'bad.yaml:4: wrappers[0].activate.setuid: expected true or false, got "yes"',
  ],
  [
    "setgid not a boolean",
    "wrappers:\n  - name: noop\n    activate:\n      setgid: 1\n",
    "bad.yaml:4: wrappers[0].activate.setgid: expected true or false, got 1",
  ],
  [
    "unknown built-in wrapper",
    "wrappers:\n  - x\n",
    `bad.yaml:2: wrappers[0].module: unknown built-in wrapper "x": expected one of ${
      BUILTINS.join(", ")
    } or a path to a .wasm file`,
  ],
  [
    "unknown built-in module",
    "wrappers:\n  - name: mine\n    module: sdk\n",
    `bad.yaml:3: wrappers[0].module: unknown built-in wrapper "sdk": expected one of ${
      BUILTINS.join(", ")
    } or a path to a .wasm file`,
  ],
  [
    "bad on_alert",
    "wrappers:\n  - name: noop\n    on_alert: block\n",
    'bad.yaml:3: wrappers[0].on_alert: expected one of alert, deny, kill, got "block"',
  ],
  [
    "unknown wrapper field",
    "wrappers:\n  - name: noop\n    activation: {}\n",
    "bad.yaml:3: wrappers[0].activation: unknown field, expected one of name, module, settings, fail, memory, budget, " +
    "max_failures, on_max_failures, clock, activate, deactivate, on_alert",
  ],
  [
    "bad on_max_failures",
    "wrappers:\n  - name: noop\n    on_max_failures: unload\n",
    'bad.yaml:3: wrappers[0].on_max_failures: expected kill or deny, got "unload"',
  ],
  [
    "on_max_failures on a fail: open wrapper",
    "wrappers:\n  - name: noop\n    fail: open\n    on_max_failures: deny\n",
    "bad.yaml:4: wrappers[0].on_max_failures: applies to fail: closed wrappers only (a fail: open wrapper is " +
    "disabled after max_failures)",
  ],
];

for (const [name, text, message] of BAD_WRAPPERS) {
  Deno.test(`parsePolicy() refuses a wrapper with ${name}`, () => {
    throws(() => parsePolicy(text, "bad.yaml"), (e: unknown) => {
      if (!(e instanceof PolicyError)) throw e;
      assertEquals(e.message, message);
      return true;
    });
  });
}

Deno.test("the built-in wrappers are the folders under wrappers/ with an index.ts", () => {
  const expected = [...Deno.readDirSync(new URL("../../wrappers/", import.meta.url))]
    .filter((e) => e.isDirectory && !["sdk", "abi"].includes(e.name))
    .filter((e) => {
      try {
        return Deno.statSync(new URL(`../../wrappers/${e.name}/index.ts`, import.meta.url)).isFile;
      } catch {
        return false;
      }
    })
    .map((e) => e.name).sort();
  assertEquals(BUILTINS, expected);
  for (const name of ["counter", "deny_path", "noop"]) assert(BUILTINS.includes(name), name);
});

// docs/policy.md cannot drift: its examples parse, its tables match the code.

const DOC = fileURLToPath(new URL("../../docs/policy.md", import.meta.url));
const docText = Deno.readTextFileSync(DOC);

Deno.test("every yaml example in docs/policy.md is a valid policy (or a valid policy test file)", () => {
  const blocks = [...docText.matchAll(/^```yaml\n([\s\S]*?)^```$/gm)];
  assert(blocks.length >= 8, `only ${blocks.length} yaml blocks`);
  for (const block of blocks) {
    const line = docText.slice(0, block.index).split("\n").length + 1;
    try {
      // "Testing a policy" shows a test file for `idwrap policy test`: checked by its own parser.
      if (/^tests:/m.test(block[1])) parseTestFile(block[1], DOC);
      else parsePolicy(block[1], DOC);
    } catch (e) {
      throw new Error(`docs/policy.md, the yaml block at line ${line}: ${(e as Error).message}`);
    }
  }
});

Deno.test("docs/policy.md lists every syscall group with its members, and every condition", () => {
  const documented: Record<string, string[]> = {};
  for (const m of docText.matchAll(/^\| `%(\w+)` +\| ([^|]+)\|$/gm)) {
    documented[m[1]] = m[2].trim().split(", ");
  }
  assertEquals(documented, Object.fromEntries(Object.entries(SYSCALL_GROUPS).map(([k, v]) => [k, [...v]])));
  const table = docText.slice(docText.indexOf("| condition ")).split("\n\n")[0].split("\n").slice(2);
  const conditions = table.map((row) => row.match(/^\| `(\w+)`/)?.[1]);
  assertEquals(conditions, [...CRITERIA_KEYS]);
});

// idwrap policy check.

Deno.test("checkPolicies() reports each file, and a wrapper name two files use", async () => {
  const dir = await scratchDir({ prefix: "idwrap-policy-check-" });
  const a = `${dir}/a.yaml`, b = `${dir}/b.yaml`, bad = `${dir}/bad.yaml`;
  await Deno.writeTextFile(a, "rules:\n  - syscalls: openat\nwrappers: [counter]\n");
  await Deno.writeTextFile(b, "wrappers:\n  - counter\n  - noop\n");
  await Deno.writeTextFile(bad, "rules:\n  - syscalls: openat\n    action: block\n");
  assertEquals(await checkPolicies([a, bad, b, `${dir}/none.yaml`]), [
    { file: a, ok: true, rules: 1, wrappers: 1 },
    { file: bad, ok: false, error: `${bad}:3: rules[0].action: expected one of alert, deny, kill, got "block"` },
    {
      file: b,
      ok: false,
      error: `Cannot load wrapper "counter": it is named by both ${a}:3 and ${b}:2`,
      rules: 0,
      wrappers: 2,
    },
    {
      file: `${dir}/none.yaml`,
      ok: false,
      error:
        `${dir}/none.yaml:0: (file): cannot read: No such file or directory (os error 2): readfile '${dir}/none.yaml'`,
    },
  ]);
});

/** Runs `idwrap policy ARGS…` through registerPolicy (main.ts registers it the same way). */
async function policyCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const code = 'import { Command } from "commander"; import { registerPolicy } from "./host/cli/policy.ts";' +
    'const p = new Command("idwrap"); registerPolicy(p); await p.parseAsync(Deno.args, { from: "user" });';
  const out = await new Deno.Command(Deno.execPath(), { args: ["eval", code, "--", "policy", ...args], cwd: ROOT })
    .output();
  const dec = new TextDecoder();
  return { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
}

Deno.test("idwrap policy check: text, JSON, exit status", async () => {
  const dir = await scratchDir({ prefix: "idwrap-policy-cli-" });
  const bad = `${dir}/bad.yaml`;
  await Deno.writeTextFile(bad, "wrappers:\n  - name: noop\n    activate: { user: nosuchuser }\n");
  const def = loadPolicy(`${ROOT}policies/default.yaml`);
  const count = (n: number, what: string) => `${n} ${what}${n === 1 ? "" : "s"}`;
  const okLine = `ok policies/default.yaml (${count(def.rules.length, "rule")}, ${
    count(def.wrappers.length, "wrapper")
  })\n`;
  const good = await policyCli(["check", "policies/default.yaml"]);
  assertEquals([good.code, good.stdout, good.stderr], [0, okLine, ""]);

  const mixed = await policyCli(["check", "policies/default.yaml", bad]);
  assertEquals([mixed.code, mixed.stdout, mixed.stderr], [
    2,
    okLine,
    `${bad}:3: wrappers[0].activate.user: unknown user "nosuchuser" (not found by getent passwd)\n`,
  ]);

  const json = await policyCli(["check", "--json", "policies/default.yaml", bad]);
  assertEquals(json.code, 2);
  assertEquals(JSON.parse(json.stdout), [
    { file: "policies/default.yaml", ok: true, rules: def.rules.length, wrappers: def.wrappers.length },
    {
      file: bad,
      ok: false,
      error: `${bad}:3: wrappers[0].activate.user: unknown user "nosuchuser" (not found by getent passwd)`,
    },
  ]);
});

// `policy check` refuses everything `run` would refuse when it loads the policy and its wrappers.
const RUN_WOULD_REFUSE: { entry: string; error: (file: string) => RegExp }[] = [
  {
    entry: "memory: 5000",
    error: (f) => exact(`${f}:5: wrappers[0].memory: expected a whole number from 1 to 4096, got 5000`),
  },
  {
    entry: "memory: 1.5",
    error: (f) => exact(`${f}:5: wrappers[0].memory: expected a whole number from 1 to 4096, got 1.5`),
  },
  {
    entry: "memory: -1",
    error: (f) => exact(`${f}:5: wrappers[0].memory: expected a whole number from 1 to 4096, got -1`),
  },
  {
    entry: "memory: 0",
    error: (f) => exact(`${f}:5: wrappers[0].memory: expected a whole number from 1 to 4096, got 0`),
  },
  {
    entry: "budget: 1e400",
    error: (f) =>
      exact(
        `${f}:5: wrappers[0].budget: expected a whole number from 1 to 2147483647, got Infinity (a number out of range)`,
      ),
  },
  {
    entry: "budget: 3000000000",
    error: (f) => exact(`${f}:5: wrappers[0].budget: expected a whole number from 1 to 2147483647, got 3000000000`),
  },
  {
    entry: "budget: -5",
    error: (f) => exact(`${f}:5: wrappers[0].budget: expected a whole number from 1 to 2147483647, got -5`),
  },
  {
    entry: "max_failures: .nan",
    error: (f) =>
      exact(
        `${f}:5: wrappers[0].max_failures: expected a whole number from 1 to 2147483647, got NaN (a number out of range)`,
      ),
  },
  {
    entry: 'max_failures: "3"',
    error: (f) => exact(`${f}:5: wrappers[0].max_failures: expected a whole number from 1 to 2147483647, got "3"`),
  },
  // Not a WebAssembly module: found when the wrapper is loaded, as `run` loads it.
  { entry: "module: ./garbage.wasm", error: (f) => new RegExp(`^${escape(f)}: Cannot load wrapper "w": `) },
];

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
}
function exact(s: string): RegExp {
  return new RegExp(`^${escape(s)}$`);
}

Deno.test("policy check refuses every number and module that run refuses, with file:line:field", async () => {
  const dir = await scratchDir({ prefix: "idwrap-policy-parity-" });
  await Deno.writeFile(`${dir}/garbage.wasm`, new TextEncoder().encode("not wasm at all"));
  for (const [i, c] of RUN_WOULD_REFUSE.entries()) {
    const file = `${dir}/p${i}.yaml`;
    const module = c.entry.startsWith("module:") ? "" : "    module: baseline\n";
    await Deno.writeTextFile(file, `version: 1\nname: t\nwrappers:\n  - name: w\n    ${c.entry}\n${module}`);
    const [check] = await checkPolicies([file]);
    assert(!check.ok && c.error(file).test(check.error!), `${c.entry}: policy check said ${JSON.stringify(check)}`);
    // The control: run refuses the same file (before running anything).
    const run = await new Deno.Command(IDWRAP, { args: ["run", "-p", file, "--", "/bin/true"], stdin: "null" })
      .output();
    const stderr = new TextDecoder().decode(run.stderr);
    assert(run.code !== 0 && !stderr.includes("exited with 0"), `${c.entry}: run accepted it: ${stderr}`);
  }
  // And the limits themselves are accepted.
  const edge = `${dir}/edge.yaml`;
  await Deno.writeTextFile(
    edge,
    "wrappers:\n  - name: w\n    module: baseline\n    memory: 4096\n    budget: 2147483647\n    max_failures: 2147483647\n",
  );
  assertEquals((await checkPolicies([edge]))[0].ok, true);
});

Deno.test("a deny rule's exception by a program's base name is warned about, with file and line (rt6 F5a)", () => {
  const text = (program: string) =>
    `name: p\nrules:\n  - id: r\n    syscalls: [openat]\n    path: /etc/shadow\n    except:\n` +
    `      - name: tools\n        fields: program\n        values: [${program}]\n    action: deny\n`;
  const bare = parsePolicy(text("passwd"), "p.yaml").warnings ?? [];
  assertEquals(bare.length, 1);
  assert(bare[0].startsWith('p.yaml:7: rules[0].except: "passwd" names a program by its base name'), bare[0]);
  assertEquals(parsePolicy(text("/usr/bin/passwd"), "p.yaml").warnings, undefined);
  // An alert rule's exception only silences an alert: no warning.
  assertEquals(parsePolicy(text("passwd").replace("action: deny", "action: alert"), "p.yaml").warnings, undefined);
});

Deno.test("policy check carries a policy's warnings (a deny's exception by base name)", async () => {
  const file = await scratchFile({ suffix: ".yaml" });
  try {
    await Deno.writeTextFile(file, POLICY_WITH_BASE_NAME);
    const [r] = await checkPolicies([file]);
    assert(r.ok, r.error);
    assertEquals(r.warnings?.length, 1);
    assert(r.warnings![0].startsWith(`${file}:`) && r.warnings![0].includes('"passwd"'), r.warnings![0]);
  } finally {
    await Deno.remove(file);
  }
});

const POLICY_WITH_BASE_NAME = `name: p
rules:
  - id: r
    syscalls: [openat]
    path: /etc/shadow
    not: { program: passwd }
    action: deny
`;
