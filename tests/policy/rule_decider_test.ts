/**
 * Path rules on the real object: a literal path (or `{a,b}` alternatives of
 * literals) matches the file it names by identity (dev:ino) under any name;
 * a glob matches names only.
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { literalPaths, RuleDecider } from "../../host/policy/rule_decider.ts";
import type { Policy } from "../../host/policy/policy.ts";
import type { SyscallEvent } from "../../host/events.ts";
import { syscallNumber } from "../../host/syscalls/mod.ts";

Deno.test("literalPaths: literals and brace alternatives of literals; globs are not literal", () => {
  assertEquals(literalPaths("/etc/shadow"), ["/etc/shadow"]);
  assertEquals(literalPaths("{/etc/shadow,/etc/gshadow}"), ["/etc/shadow", "/etc/gshadow"]);
  assertEquals(literalPaths("/etc/{a,b}/{c,d}"), ["/etc/a/c", "/etc/a/d", "/etc/b/c", "/etc/b/d"]);
  assertEquals(literalPaths("/tmp/**"), undefined);
  assertEquals(literalPaths("/etc/{a,*}"), undefined);
});

function policy(path: string): Policy {
  return {
    name: "t",
    file: "(test)",
    observe: [],
    rules: [{ id: "r", syscalls: ["openat"], path, action: "deny", errno: 13 }],
    wrappers: [],
  };
}

function openat(path: string, ident?: string): SyscallEvent {
  return {
    kind: "syscall",
    source: "seccomp",
    phase: "pre",
    time: 0,
    pid: 1,
    tid: 1,
    abi: "x86_64",
    nr: syscallNumber("openat")!,
    syscall: "openat",
    args: [],
    decoded: { path, ident },
    program: { exe: "", argv0: "", uid: 0, gid: 0 },
  };
}

Deno.test("a literal path rule matches its file by identity under another name; a glob does not", async () => {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/secret`, "s");
  const info = await Deno.stat(`${dir}/secret`);
  const ident = `${info.dev}:${info.ino}`;
  const deny = { action: "deny", errno: 13 };
  assertEquals(new RuleDecider([policy(`${dir}/secret`)]).decide(openat(`${dir}/hard-link`, ident)), deny);
  assertEquals(new RuleDecider([policy(`{${dir}/other,${dir}/secret}`)]).decide(openat("/x", ident)), deny);
  assertEquals(new RuleDecider([policy(`${dir}/secre?`)]).decide(openat("/x", ident)), { action: "allow" });
  assertEquals(new RuleDecider([policy(`${dir}/secret`)]).decide(openat("/x", "1:2")), { action: "allow" });
  // open_by_handle_at is examined by rules with a path on the open family.
  assertEquals(new RuleDecider([policy(`${dir}/secret`)]).examines(syscallNumber("open_by_handle_at")!), true);
});
