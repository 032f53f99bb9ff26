/**
 * The rule language of issue 16: conditions on decoded arguments, not:,
 * except:, lists and macros, scope, when; the schema; what is refused.
 */
import { deepStrictEqual as assertEquals, ok as assert, throws } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { parse } from "yaml";
import type { LifecycleEvent, SyscallEvent } from "../../host/events.ts";
import { parsePolicy, PolicyError, RULE_FIELDS } from "../../host/policy/policy.ts";
import { CRITERIA_KEYS } from "../../host/policy/criteria.ts";
import schema from "../../policies/schema.json" with { type: "json" };
import { RuleDecider } from "../../host/policy/rule_decider.ts";
import { validateSchema } from "../../host/policy/schema.ts";
import { syscallNumber } from "../../host/syscalls/mod.ts";
import { checkPolicies } from "../../host/cli/policy.ts";
import { toAuditRecords } from "../../host/audit/record.ts";
import { formatEvent } from "../../host/trace/sink.ts";
import { buildInterest } from "../../host/wss/interest.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));

function call(
  syscall: string,
  args: (number | bigint)[],
  decoded: SyscallEvent["decoded"],
  exe = "/usr/sbin/nginx",
  uid = 0,
): SyscallEvent {
  return {
    kind: "syscall",
    source: "seccomp",
    phase: "pre",
    time: 0,
    pid: 10,
    tid: 10,
    abi: "x86_64",
    nr: syscallNumber(syscall)!,
    syscall,
    args: args.map((a) => BigInt.asUintN(64, BigInt(a)).toString()),
    decoded,
    program: { exe, argv0: exe, uid, gid: 0 },
  };
}

const verdictOf = (d: RuleDecider, e: SyscallEvent) => {
  const v = d.decide(e);
  return v.action === "deny" ? `deny ${v.errno}` : v.action + (e.alerts?.length ? ` ${e.alerts.join(",")}` : "");
};

const O_WRONLY = 1, O_RDWR = 2, O_CREAT = 0o100, O_TRUNC = 0o1000, O_PATH = 0o10000000;

Deno.test("flags: write means any change an open can make; O_PATH opens change nothing", () => {
  const p = parsePolicy(
    `rules:
  - id: w
    syscalls: [open, openat, creat]
    flags: write
    not: { path: "/var/log/nginx/**" }
    action: deny
    errno: EACCES
`,
    "t.yaml",
  );
  const d = new RuleDecider([p]);
  const at = (flags: number, path = "/srv/www/x") => call("openat", [-100, 0, flags, 0o644], { path });
  assertEquals(verdictOf(d, at(0)), "allow"); // O_RDONLY
  assertEquals(verdictOf(d, at(O_WRONLY)), "deny 13");
  assertEquals(verdictOf(d, at(O_RDWR)), "deny 13");
  assertEquals(verdictOf(d, at(O_TRUNC)), "deny 13"); // O_RDONLY|O_TRUNC truncates
  assertEquals(verdictOf(d, at(O_CREAT)), "deny 13"); // creates a file
  assertEquals(verdictOf(d, at(O_PATH | O_WRONLY | O_CREAT)), "allow"); // the kernel ignores them with O_PATH
  assertEquals(verdictOf(d, at(O_WRONLY, "/var/log/nginx/access.log")), "allow"); // not:
  assertEquals(verdictOf(d, call("open", [0, O_WRONLY], { path: "/etc/x" })), "deny 13");
  assertEquals(verdictOf(d, call("creat", [0, 0o644], { path: "/etc/x" })), "deny 13");
});

Deno.test("argv, port/address/family, signal/target: each condition holds only on its field", () => {
  const p = parsePolicy(
    `lists:
  miners: ["*xmrig*", "*stratum+tcp*"]
rules:
  - { id: miner, syscalls: execve, argv: $miners, when: attempt }
  - { id: second-arg, syscalls: execve, argv: { 1: "-c" }, when: attempt }
  - { id: web-out, syscalls: connect, family: [inet, inet6], port: ["1-1023"], not: { address: "127.*" } }
  - { id: kill-other, syscalls: kill, signal: [KILL, SIGTERM], target: [other, all] }
`,
    "t.yaml",
  );
  const d = new RuleDecider([p], new Set());
  const exec = (argv: string[]) => call("execve", [0, 0, 0], { path: argv[0], argv });
  assertEquals(verdictOf(d, exec(["/tmp/x", "--url", "stratum+tcp://pool"])), "allow miner");
  assertEquals(verdictOf(d, exec(["/bin/sh", "-c", "id"])), "allow second-arg");
  assertEquals(verdictOf(d, exec(["/bin/ls", "-l"])), "allow");
  const connect = (addr: string) => call("connect", [3, 0, 16], { addr });
  assertEquals(verdictOf(d, connect("inet:10.0.0.1:443")), "allow web-out");
  assertEquals(verdictOf(d, connect("inet:127.0.0.1:443")), "allow");
  assertEquals(verdictOf(d, connect("inet:10.0.0.1:8080")), "allow");
  assertEquals(verdictOf(d, connect("inet6:[2001:db8::1]:80")), "allow web-out");
  assertEquals(verdictOf(d, connect("unix:/run/x.sock")), "allow");
  const kill = (pid: number, signal: number) => call("kill", [pid, signal], { signal });
  assertEquals(verdictOf(d, kill(4242, 9)), "allow kill-other");
  assertEquals(verdictOf(d, kill(-1, 15)), "allow kill-other");
  assertEquals(verdictOf(d, kill(10, 9)), "allow"); // itself
  assertEquals(verdictOf(d, kill(4242, 1)), "allow"); // SIGHUP
});

Deno.test("except: Falco's exceptions turn a rule off for their value tuples; macros add conditions", () => {
  const p = parsePolicy(
    `macros:
  write_open: { flags: [write] }
rules:
  - id: etc-write
    syscalls: openat
    path: "/etc/**"
    macro: write_open
    except:
      - name: package_managers
        fields: [program, path]
        values:
          - [dpkg, "/etc/**"]
          - [[passwd, chpasswd], /etc/shadow]
    action: deny
`,
    "t.yaml",
  );
  const d = new RuleDecider([p]);
  const w = (path: string, exe: string) => call("openat", [-100, 0, O_WRONLY], { path }, exe);
  assertEquals(verdictOf(d, w("/etc/hosts", "/usr/bin/vi")), "deny 1");
  assertEquals(verdictOf(d, w("/etc/hosts", "/usr/bin/dpkg")), "allow");
  assertEquals(verdictOf(d, w("/etc/shadow", "/usr/bin/passwd")), "allow");
  assertEquals(verdictOf(d, w("/etc/hosts", "/usr/bin/passwd")), "deny 1");
  assertEquals(verdictOf(d, call("openat", [-100, 0, 0], { path: "/etc/hosts" }, "/usr/bin/vi")), "allow"); // read
});

Deno.test("scope: a rule fires only in the processes its criteria select (program, parent, user)", () => {
  const p = parsePolicy(
    `rules:
  - { id: nginx-only, syscalls: openat, action: deny, scope: { program: nginx } }
  - { id: nginx-children, syscalls: execve, scope: { parent: nginx, user: 33 }, when: attempt }
`,
    "t.yaml",
  );
  const d = new RuleDecider([p]);
  assertEquals(verdictOf(d, call("openat", [-100, 0, 0], { path: "/x" }, "/usr/sbin/nginx")), "deny 1");
  assertEquals(verdictOf(d, call("openat", [-100, 0, 0], { path: "/x" }, "/usr/bin/bash")), "allow");
  const facts = { pid: 10, exe: "/usr/bin/dash", argv0: "sh", uid: 33, gid: 33, parentExe: "/usr/sbin/nginx" };
  d.bind(10, new Set(), undefined, facts);
  assertEquals(
    verdictOf(d, call("execve", [0, 0, 0], { path: "/bin/id" }, "/usr/bin/dash", 33)),
    "allow nginx-children",
  );
  d.bind(10, new Set(), undefined, { ...facts, parentExe: "/usr/bin/bash" });
  assertEquals(verdictOf(d, call("execve", [0, 0, 0], { path: "/bin/id" }, "/usr/bin/dash", 33)), "allow");
});

Deno.test("when: an alert fires on success by default (post, or the exec that ran); attempt fires at once", () => {
  const p = parsePolicy(
    `version: 2
rules:
  - { id: shell, syscalls: execve, path: "**/sh", attack: T1059.004, tags: [shell] }
  - { id: conn, syscalls: connect }
  - { id: conn-try, syscalls: connect, when: attempt }
`,
    "t.yaml",
  );
  const d = new RuleDecider([p], new Set()); // a source with no results (seccomp, but for opens)
  const fail = call("execve", [0, 0, 0], { path: "/nonexistent/sh" });
  assertEquals(verdictOf(d, fail), "allow"); // not yet
  assertEquals(verdictOf(d, call("execve", [0, 0, 0], { path: "/usr/bin/sh" })), "allow");
  const exec: LifecycleEvent = {
    kind: "exec",
    source: "seccomp",
    time: 0,
    pid: 10,
    program: { exe: "/usr/bin/dash", argv0: "sh", uid: 0, gid: 0 },
  };
  d.observe(exec);
  assertEquals([exec.alerts, exec.onSuccess, exec.attack, exec.tags], [["shell"], ["shell"], ["T1059.004"], ["shell"]]);
  assertEquals(formatEvent(exec), "10 +++ exec /usr/bin/dash (sh) uid=0 [shell]");
  // The audit record of the exec carries the alert, its ATT&CK id and tags.
  const records = toAuditRecords(exec).filter((r) => r["idwrap.queue"] === "alerts");
  assertEquals(
    records.map((r) => [r["rule.name"], r["threat.technique.id"], r["threat.technique.subtechnique.id"], r.tags]),
    [["shell", "T1059", "T1059.004", ["shell"]]],
  );
  // A failed exec's match, followed by an exec of something else, fires nothing.
  verdictOf(d, call("execve", [0, 0, 0], { path: "/nonexistent/sh" }));
  verdictOf(d, call("execve", [0, 0, 0], { path: "/usr/bin/true" }));
  const other: LifecycleEvent = {
    ...exec,
    alerts: undefined,
    onSuccess: undefined,
    attack: undefined,
    tags: undefined,
  };
  d.observe(other);
  assertEquals(other.alerts, undefined);
  // A version 1 file's alert rule fires at the attempt, as it always did.
  const v1 = new RuleDecider([parsePolicy(`rules:\n  - { id: shell, syscalls: execve, path: "**/sh" }\n`, "v1.yaml")]);
  assertEquals(verdictOf(v1, call("execve", [0, 0, 0], { path: "/nonexistent/sh" })), "allow shell");
  // Where the source has no result for the call, the alert fires at the attempt.
  assertEquals(verdictOf(d, call("connect", [3, 0, 16], { addr: "inet:1.2.3.4:80" })), "allow conn,conn-try");
  // With results (kmod): a failed connect fires only the attempt rule, a successful one both.
  const k = new RuleDecider([p], "all");
  const pre = call("connect", [3, 0, 16], { addr: "inet:1.2.3.4:80" });
  assertEquals(verdictOf(k, pre), "allow conn-try");
  assert(k.examinesPost(syscallNumber("connect")!));
  const failed = { ...pre, phase: "post" as const, ret: -1, errno: "ECONNREFUSED", alerts: undefined };
  k.observe(failed);
  assertEquals(failed.alerts, undefined);
  verdictOf(k, { ...pre, alerts: undefined });
  const ok = { ...pre, phase: "post" as const, ret: 0, alerts: undefined };
  k.observe(ok);
  assertEquals([ok.alerts, ok.onSuccess], [["conn"], ["conn"]]);
  // A post event's audit records: the rules that fired on success only, not the pre event's again.
  const both = { ...ok, alerts: ["conn-try", "conn"] };
  assertEquals(toAuditRecords(both).map((r) => r["rule.name"]), ["conn"]);
});

const REFUSED: [string, string, string][] = [
  [
    "a negated glob",
    'rules:\n  - syscalls: openat\n    path: "!/var/log/**"\n',
    't.yaml:3: rules[0].path: bad glob "!/var/log/**": a leading "!" does not negate here; write the condition under not:',
  ],
  [
    "a negated glob in a list",
    'lists:\n  l: [/a, "!/b"]\nrules:\n  - syscalls: openat\n    path: $l\n',
    't.yaml:5: rules[0].path: bad glob "!/b"',
  ],
  [
    "a negated program in a scope",
    'rules:\n  - syscalls: openat\n    scope: { program: "!nginx" }\n',
    't.yaml:3: rules[0].scope.program: bad glob "!nginx": a leading "!" would negate it; exclude programs with the rule\'s not: { program: … }',
  ],
  [
    "an unknown flag word",
    "rules:\n  - syscalls: openat\n    flags: [read, wrte]\n",
    "t.yaml:3: rules[0].flags: expected one of read, write, create, truncate",
  ],
  [
    "an unknown list",
    "rules:\n  - syscalls: openat\n    path: $nope\n",
    't.yaml:3: rules[0].path: unknown list "nope"',
  ],
  [
    "an unknown macro",
    "rules:\n  - syscalls: openat\n    macro: nope\n",
    't.yaml:3: rules[0].macro: unknown macro "nope"',
  ],
  [
    "when: success on a deny rule",
    "rules:\n  - syscalls: openat\n    action: deny\n    when: success\n",
    "t.yaml:4: rules[0].when: a deny rule acts before the call runs",
  ],
  [
    "a bad ATT&CK id",
    "rules:\n  - syscalls: openat\n    attack: [T59]\n",
    "t.yaml:3: rules[0].attack[0]: expected an ATT&CK",
  ],
  [
    "a port out of range",
    "rules:\n  - syscalls: connect\n    port: [80, 70000]\n",
    "t.yaml:3: rules[0].port: expected a port (0 to 65535)",
  ],
  [
    "an exception tuple of the wrong size",
    "rules:\n  - syscalls: openat\n    except:\n      - name: a\n        fields: [program, path]\n        values:\n          - [dpkg]\n",
    "t.yaml:7: rules[0].except[0].values[0]: expected 2 values, one per field (program, path)",
  ],
  [
    "a negated glob in an exception",
    'rules:\n  - syscalls: openat\n    except:\n      - name: a\n        fields: [program, path]\n        values:\n          - [dpkg, "!/x"]\n',
    't.yaml:7: rules[0].except[0].values[0][1]: bad glob "!/x"',
  ],
  [
    "an unknown condition under not",
    "rules:\n  - syscalls: openat\n    not: { paths: /x }\n",
    "t.yaml:3: rules[0].not.paths: unknown condition",
  ],
];

for (const [name, text, message] of REFUSED) {
  Deno.test(`parsePolicy() refuses ${name}, with file, line and field`, () => {
    throws(() => parsePolicy(text, "t.yaml"), (e: unknown) => {
      if (!(e instanceof PolicyError)) throw e;
      if (!e.message.startsWith(message)) throw new Error(`got: ${e.message}\nwanted: ${message}`);
      return true;
    });
  });
}

Deno.test("policies/schema.json: every shipped policy meets it; a negated glob does not, at its path", () => {
  for (const e of Deno.readDirSync(`${ROOT}policies`)) {
    if (!e.name.endsWith(".yaml")) continue;
    assertEquals(validateSchema(parse(Deno.readTextFileSync(`${ROOT}policies/${e.name}`))), undefined, e.name);
  }
  const bad = validateSchema({ rules: [{ syscalls: "openat", path: "!/x" }] });
  assertEquals(bad?.path, ["rules", 0, "path"]);
  assertEquals(validateSchema({ rules: [{ syscalls: "openat", flgs: "write" }] })?.path, ["rules", 0, "flgs"]);
});

Deno.test("policy check policies/: the shipped set passes; shared wrapper names are noted with file:line", async () => {
  const results = await checkPolicies([`${ROOT}policies`]);
  assert(results.length >= 11);
  assertEquals(results.filter((r) => !r.ok), []);
  const notes = results.flatMap((r) => r.notes ?? []);
  assert(
    notes.some((n) => /wrapper "imapd" at .*policies\/ngram\.yaml:\d+ is also named at .*imapd\.yaml:\d+/.test(n)),
  );
});

Deno.test("policies/schema.json names the fields the parser knows: rules, criteria", () => {
  const defs = (schema as unknown as { definitions: Record<string, { properties: Record<string, unknown> }> })
    .definitions;
  assertEquals(Object.keys(defs.rule.properties).sort(), [...RULE_FIELDS].sort());
  assertEquals(Object.keys(defs.criteria.properties).sort(), [...CRITERIA_KEYS].sort());
});

Deno.test("interest: a when: success rule asks every source for the call's result; a version 1 alert rule does not", () => {
  const v2 = parsePolicy("version: 2\nrules:\n  - { id: c, syscalls: connect }\n", "v2.yaml");
  const v1 = parsePolicy("rules:\n  - { id: c, syscalls: connect }\n", "v1.yaml");
  const nr = syscallNumber("connect")!;
  assertEquals(buildInterest([v2], [], false).calls.get(nr), { pre: "observe", post: "observe" });
  assertEquals(buildInterest([v1], [], false).calls.get(nr), { pre: "observe" });
});
