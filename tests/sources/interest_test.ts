/**
 * The kernel module's interest mask and fail mode from policies and wrapper
 * declarations (no module needed): a call waits only where something may
 * deny, kill or rewrite it; what is only watched is observed.
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { type Policy, WRAPPER_DEFAULTS } from "../../host/policy/policy.ts";
import { DECLARE_DENY, DECLARE_KILL, DECLARE_POST, DECLARE_PRE } from "../../host/runtime/abi.ts";
import type { WrapperModule } from "../../host/runtime/module.ts";
import { syscallName, syscallNumber } from "../../host/syscalls/mod.ts";
import { describeMask, interestMask } from "../../host/sources/kmod/interest.ts";
import { buildInterest, failsClosed as failClosed, lateCalls } from "../../host/wss/interest.ts";
import { compileNotifySet } from "../../host/sources/seccomp/source.ts";

const answerFirstCalls = (p: Policy[], w: WrapperModule[]) => lateCalls(buildInterest(p, w, false));
import { KMOD_GUARDED_OPENS, KMOD_GUARDED_SYSCALLS } from "../../host/sources/kmod/tamper.ts";

const nr = (n: string) => syscallNumber(n)!;

function policy(p: Partial<Policy>): Policy {
  return { name: "t", file: "t.yaml", observe: [], rules: [], wrappers: [], ...p };
}

function wrapper(decls: [string, number][], fail: "closed" | "open" = "closed"): WrapperModule {
  return {
    spec: { name: "w", module: "w", settings: {}, ...WRAPPER_DEFAULTS, fail, clock: false },
    path: "w.wasm",
    module: undefined as unknown as WebAssembly.Module,
    declarations: { syscalls: new Map(decls.map(([n, f]) => [nr(n), f])), lifecycle: 0, subscriptions: [], emits: [] },
  };
}

Deno.test("kmod interest: deny/kill rules and DENY wrappers decide; alert rules, observe lists and watchers observe", () => {
  const policies = [policy({
    observe: ["read"],
    rules: [
      { id: "a", syscalls: ["unlink"], action: "alert", errno: 1 },
      { id: "d", syscalls: ["openat"], action: "deny", errno: 13 },
      { id: "k", syscalls: ["kill"], action: "kill", errno: 1 },
    ],
  })];
  const wrappers = [
    wrapper([["connect", DECLARE_PRE | DECLARE_DENY], ["write", DECLARE_PRE], ["openat", DECLARE_POST]]),
    wrapper([["execve", DECLARE_POST | DECLARE_DENY], ["unlink", DECLARE_PRE | DECLARE_DENY]]),
  ];
  const mask = interestMask(policies, wrappers, false);
  const guard = new Set(KMOD_GUARDED_SYSCALLS.map(nr));
  const ruled = new Map([...mask].filter(([n]) => !guard.has(n) || ["kill", "openat"].includes(syscallName(n))));
  assertEquals(
    describeMask(ruled, syscallName),
    "read:pre-observe write:pre-observe connect:pre-decide execve:post-decide kill:pre-decide " +
      "unlink:pre-decide openat:pre-decide,post-observe io_uring_setup:pre-decide",
  );
  // The output wanting every call (trace): post records for every watched call too.
  const all = interestMask(policies, wrappers, true);
  assertEquals(all.get(nr("read")), 0x1 | 0x4);
  assertEquals(all.get(nr("kill")), 0x2 | 0x4);
  assertEquals(all.get(nr("execve")), 0x8); // post-decide covers post-observe
});

Deno.test("kmod interest: the calls that could reach the supervisor always wait for its guard, whatever the policy", () => {
  const mask = interestMask([], [], false);
  for (const name of KMOD_GUARDED_SYSCALLS) assertEquals(mask.get(nr(name)), 0x2, name); // pre-decide
  // Opens wait only where the policy makes them: the module's observe path stays for the rest.
  for (const name of KMOD_GUARDED_OPENS) assertEquals(mask.get(nr(name)), undefined, name);
  // Only those, and io_uring_setup (refused by the module, reported by the host).
  assertEquals(mask.size, KMOD_GUARDED_SYSCALLS.length + 1);
});

Deno.test("kmod interest: the fail mode is closed when something may deny, open when everything only watches", () => {
  assertEquals(failClosed([policy({ observe: ["read"] })], []), false);
  assertEquals(
    failClosed([policy({ rules: [{ id: "a", syscalls: ["read"], action: "alert", errno: 1 }] })], []),
    false,
  );
  assertEquals(failClosed([policy({ rules: [{ id: "d", syscalls: ["read"], action: "deny", errno: 1 }] })], []), true);
  assertEquals(failClosed([], [wrapper([["read", DECLARE_PRE]])]), false);
  assertEquals(failClosed([], [wrapper([["read", DECLARE_PRE | DECLARE_DENY]])]), true);
  assertEquals(failClosed([], [wrapper([["read", DECLARE_PRE | DECLARE_DENY]], "open")]), false);
});

Deno.test("seccomp answers first only the calls every declaring wrapper watches MAY_KILL, with no rule or observe list", () => {
  const seqLike = wrapper([
    ["getpid", DECLARE_PRE | DECLARE_KILL],
    ["close", DECLARE_PRE | DECLARE_KILL],
    ["chmod", DECLARE_PRE | DECLARE_KILL],
    ["read", DECLARE_PRE | DECLARE_KILL],
    ["unlink", DECLARE_PRE | DECLARE_KILL],
    ["openat", DECLARE_PRE | DECLARE_KILL],
    ["open", DECLARE_PRE | DECLARE_POST | DECLARE_KILL],
  ]);
  // A watcher that wants exact arguments (PRE alone: the caller waits for it), and one that may deny.
  const exact = wrapper([["chmod", DECLARE_PRE]]);
  const denier = wrapper([["close", DECLARE_PRE | DECLARE_DENY]]);
  const policies = [policy({
    observe: ["read"],
    rules: [{ id: "a", syscalls: ["unlink"], action: "alert", errno: 1 }],
  })];
  const calls = answerFirstCalls(policies, [seqLike, exact, denier]);
  assertEquals([...calls].map(syscallName).sort(), ["getpid", "openat"]);
  assertEquals(answerFirstCalls([], [exact]).size, 0);
});

Deno.test("interest: a path rule on opens covers open_by_handle_at too (a handle to the file is the file), on every source", () => {
  const rules = [{ id: "r", syscalls: ["openat"], path: "/etc/shadow", action: "deny" as const, errno: 13 }];
  const interest = buildInterest([policy({ rules })], [], false);
  assertEquals(interest.calls.get(nr("open_by_handle_at"))?.pre, "decide");
  // The same rule without a path covers only what it names.
  const pathless = buildInterest([policy({ rules: [{ ...rules[0], path: undefined }] })], [], false);
  assertEquals(pathless.calls.get(nr("open_by_handle_at")), undefined);
});

Deno.test("seccomp: the filter's notify set is the interest compiled (plus exec and, where it emulates, the credential calls)", () => {
  const rules = [{ id: "r", syscalls: ["openat"], path: "/etc/shadow", action: "deny" as const, errno: 13 }];
  const w = wrapper([["connect", DECLARE_PRE]]);
  const interest = buildInterest([policy({ rules, observe: ["mkdir"] })], [w], false);
  const set = compileNotifySet(interest, true);
  for (const call of interest.calls.keys()) assertEquals(set.has(call), true, syscallName(call));
  for (const call of ["execve", "execveat", "setuid", "open_by_handle_at", "connect", "mkdir"]) {
    assertEquals(set.has(nr(call)), true, call);
  }
  assertEquals(compileNotifySet(interest, false).has(nr("setuid")), false);
});
