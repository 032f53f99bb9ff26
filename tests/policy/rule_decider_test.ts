/**
 * Path rules on the real object: a literal path (or `{a,b}` alternatives of
 * literals) matches the file it names by identity (dev:ino) under any name;
 * a glob matches names only.
 */
import { scratchDir } from "../temp.ts";
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
  const dir = await scratchDir();
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

function event(syscall: string, decoded: SyscallEvent["decoded"]): SyscallEvent {
  return { ...openat(""), nr: syscallNumber(syscall)!, syscall, decoded };
}

function exceptPolicy(rule: Partial<Policy["rules"][0]>): Policy {
  return {
    ...policy(""),
    rules: [{ id: "r", syscalls: ["openat", "rename", "link"], action: "deny", errno: 13, ...rule }],
  };
}

Deno.test("a rule path matches rename's and link's target (path2) too (rt6 F8)", async () => {
  const dir = await scratchDir();
  try {
    await Deno.writeTextFile(`${dir}/secret`, "s");
    const d = new RuleDecider([exceptPolicy({ path: `${dir}/secret` })]);
    const deny = { action: "deny", errno: 13 };
    assertEquals(d.decide(event("rename", { path: `${dir}/new`, path2: `${dir}/secret` })), deny);
    assertEquals(d.decide(event("link", { path: `${dir}/new`, path2: `${dir}/secret` })), deny);
    assertEquals(d.decide(event("rename", { path: `${dir}/new`, path2: `${dir}/other` })), { action: "allow" });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a path exemption holds by name only for a file with no other name (rt6 F5b)", async () => {
  const dir = await scratchDir();
  try {
    await Deno.mkdir(`${dir}/uploads`);
    await Deno.writeTextFile(`${dir}/secret`, "s");
    await Deno.writeTextFile(`${dir}/other`, "o");
    await Deno.writeTextFile(`${dir}/uploads/single`, "u");
    await Deno.link(`${dir}/secret`, `${dir}/uploads/x`);
    await Deno.link(`${dir}/other`, `${dir}/uploads/o`);
    const ident = async (p: string) => {
      const i = await Deno.stat(p);
      return `${i.dev}:${i.ino}`;
    };
    const exemptions = [{ name: "uploads", values: [{ path: [`${dir}/uploads/**`] }] }];
    const literal = new RuleDecider([exceptPolicy({ path: `${dir}/secret`, except: exemptions })]);
    const glob = new RuleDecider([exceptPolicy({ path: `${dir}/**`, not: [{ path: [`${dir}/uploads/**`] }] })]);
    const deny = { action: "deny", errno: 13 }, allow = { action: "allow" };
    // The protected file through its link in uploads/: the rule's file by identity, not exempt.
    assertEquals(
      literal.decide(event("openat", { path: `${dir}/uploads/x`, ident: await ident(`${dir}/secret`) })),
      deny,
    );
    // Any file with a second link, under a rule without a literal path: not exempt; a single-link file or a new one is.
    assertEquals(glob.decide(event("openat", { path: `${dir}/uploads/o`, ident: await ident(`${dir}/other`) })), deny);
    const single = await ident(`${dir}/uploads/single`);
    assertEquals(glob.decide(event("openat", { path: `${dir}/uploads/single`, ident: single })), allow);
    assertEquals(glob.decide(event("openat", { path: `${dir}/uploads/new` })), allow);
    // The host sees another file at that name: cannot be checked, not exempt.
    assertEquals(glob.decide(event("openat", { path: `${dir}/uploads/single`, ident: "1:2" })), deny);
    // Two files named: exempt only if both are (linking the protected file into uploads/ is not).
    assertEquals(glob.decide(event("link", { path: `${dir}/other`, path2: `${dir}/uploads/new2` })), deny);
    assertEquals(glob.decide(event("rename", { path: `${dir}/uploads/single`, path2: `${dir}/uploads/n` })), allow);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
