/** Policy files: good ones parse; each bad one gets its exact message. */
import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import { loadPolicy, parsePolicy, PolicyError } from "../../host/policy/policy.ts";

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
  ["wrong version", "version: 2\n", "bad.yaml:1: version: expected 1, got 2"],
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
