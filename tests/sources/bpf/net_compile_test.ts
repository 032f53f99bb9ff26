/**
 * host/policy/net_kernel.ts: the kernel must deny exactly what a rule denies on the seccomp path. The compiled plan,
 * evaluated as kmod/bpf/net.bpf.c evaluates its table, is compared with host/policy/match.ts on the same calls
 * (thousands of addresses: near every prefix, IPv4, IPv6, v4-mapped), and what cannot be compiled exactly is left out
 * with why. The table's layout (host/sources/bpf/net_layout.ts) is checked against the C compiler.
 */
import { scratchDir } from "../../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import type { SyscallEvent } from "../../../host/events.ts";
import { inet6Address, inetAddress } from "../../../host/net/address.ts";
import { conditionHolds } from "../../../host/policy/match.ts";
import {
  addressGlobSet,
  compileKernelNet,
  kernelCondHolds,
  type KernelNetPlan,
  NET_FAMILY,
  NET_LIMITS,
} from "../../../host/policy/net_kernel.ts";
import { parsePolicy, type Rule } from "../../../host/policy/policy.ts";
import * as net from "../../../host/sources/bpf/net_layout.ts";
import { ROOT } from "../../helpers.ts";

const RULES = `version: 2
name: net
lists:
  ports: [53, 80, 443]
rules:
  - { id: c2-port, syscalls: [connect, sendto], action: deny, port: [4444, "6660-6669"] }
  - id: out-but-loopback
    syscalls: [connect, sendto, sendmsg, sendmmsg]
    action: kill
    family: [inet, inet6]
    not: [{ port: $ports }, { address: ["127.*", "::1", "::ffff:127.*"] }]
  - { id: nets, syscalls: connect, action: deny, address: ["10.*", "192.168.1.*", "172.16.*", "fe80:*", "2001:db8:*", "::ffff:7f00:1", "1.2.3.4"] }
  - id: except-dns
    syscalls: sendmsg
    action: deny
    family: inet6
    except: [{ name: dns, fields: [port], values: [[53]] }]
  - { id: unix-only, syscalls: connect, action: deny, family: [unix] }
  - { id: v4-family, syscalls: [connect, sendto], action: deny, family: inet, address: ["192.168.1.*", "1.2.3.4"] }
`;

/** The kernel's decision, as net.bpf.c makes it from the plan: the indexes of the rules that fire. */
function kernelFires(
  plan: KernelNetPlan,
  hook: "connect" | "sendmsg",
  family: "inet" | "inet6",
  addr: Uint8Array,
  port: number,
): number[] {
  const out: number[] = [];
  plan.rules.forEach((r, i) => {
    if (!(hook === "connect" ? r.connect : r.sendmsg)) return;
    for (const c of plan.conds.filter((c) => c.rule === i)) {
      const holds = kernelCondHolds(c, family, addr, port);
      if (c.negate ? holds : !holds) return;
    }
    out.push(i);
  });
  return out;
}

/** The seccomp path's decision (rule_decider.ts's #ruleMatches for rules without scope or path). */
function seccompMatches(rule: Rule, syscall: string, addr: string): boolean {
  const event = { syscall, decoded: { addr }, args: [] } as unknown as SyscallEvent;
  const facts = { pid: 1, exe: "/x", argv0: "x", uid: 0, gid: 0, parentExe: "" };
  const path = () => false;
  if (!rule.syscalls.includes(syscall)) return false;
  if (!(rule.match ?? []).every((c) => conditionHolds(c, event, facts, path))) return false;
  if ((rule.not ?? []).some((c) => conditionHolds(c, event, facts, path))) return false;
  return !(rule.except ?? []).some((x) => x.values.some((c) => conditionHolds(c, event, facts, path)));
}

/** Addresses near every prefix the rules name, and random ones. */
function addresses(seed: number): { family: "inet" | "inet6"; addr: Uint8Array }[] {
  let s = seed;
  const rnd = () => (s = (s * 1103515245 + 12345) & 0x7fffffff) / 0x7fffffff;
  const out: { family: "inet" | "inet6"; addr: Uint8Array }[] = [];
  // Each prefix's address, its neighbour, and one that differs only in the bit after the prefix.
  const v4 = [
    [127, 0, 0, 1],
    [10, 1, 2, 3],
    [10, 128, 0, 1],
    [11, 0, 0, 1],
    [192, 168, 1, 9],
    [192, 168, 1, 200],
    [192, 168, 2, 9],
    [172, 16, 0, 1],
    [172, 16, 128, 1],
    [172, 17, 0, 1],
    [1, 2, 3, 4],
    [1, 2, 3, 5],
    [1, 2, 3, 132],
    [198, 51, 100, 7],
  ];
  for (const a of v4) {
    out.push({ family: "inet", addr: new Uint8Array(a) });
    const mapped = new Uint8Array(16);
    mapped[10] = mapped[11] = 0xff;
    mapped.set(a, 12);
    out.push({ family: "inet6", addr: mapped });
  }
  const v6 = [
    "fe80::1",
    "fe80:8000::1",
    "fe81::1",
    "2001:db8::1",
    "2001:db8:8000::1",
    "2001:db9::1",
    "::1",
    "::2",
    "::8001",
    "::",
    "2001:db8:0:0:1::",
  ];
  for (const text of v6) {
    const bytes = new Uint8Array(16);
    const [head, tail = ""] = text.split("::");
    const h = head ? head.split(":") : [], t = tail ? tail.split(":") : [];
    const groups = [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
    groups.forEach((g, i) => {
      bytes[i * 2] = parseInt(g, 16) >> 8;
      bytes[i * 2 + 1] = parseInt(g, 16) & 0xff;
    });
    out.push({ family: "inet6", addr: bytes });
  }
  for (let i = 0; i < 400; i++) {
    const v = i % 2 === 0;
    const a = new Uint8Array(v ? 4 : 16).map(() => Math.floor(rnd() * 256));
    if (!v && i % 3 === 0) a.fill(0, 2, 14); // runs of zero groups
    out.push({ family: v ? "inet" : "inet6", addr: a });
  }
  return out;
}

Deno.test("net_kernel: the compiled plan fires exactly where the seccomp path's rule matches", () => {
  const policy = parsePolicy(RULES, "net.yaml");
  const plan = compileKernelNet([policy]);
  assertEquals(plan.rules.map((r) => r.rule.id), ["c2-port", "out-but-loopback", "nets", "except-dns", "v4-family"]);
  assertEquals(plan.skipped, []);
  const ports = [0, 53, 80, 443, 4443, 4444, 4445, 6659, 6660, 6665, 6669, 6670, 65535];
  let compared = 0, fired = 0;
  for (const { family, addr } of addresses(7)) {
    for (const port of ports) {
      const text = family === "inet" ? inetAddress(addr, port) : inet6Address(addr, port);
      for (const [hook, calls] of [["connect", ["connect"]], ["sendmsg", ["sendto", "sendmsg", "sendmmsg"]]] as const) {
        const kernel = kernelFires(plan, hook, family, addr, port).map((i) => plan.rules[i].rule.id);
        // The kernel's hook stands for every call it covers: a rule fires there when it matches one of them.
        const seccomp = policy.rules.filter((r) =>
          plan.rules.some((k) => k.rule === r) && calls.some((c) => seccompMatches(r, c, text))
        ).map((r) => r.id);
        assertEquals(kernel, seccomp, `${hook} ${text}`);
        compared++;
        fired += kernel.length;
      }
    }
  }
  assert(compared > 10_000 && fired > 1000, `${compared} compared, ${fired} fired`);
});

Deno.test("a v4-mapped IPv6 address is matched as its IPv4 address too, on the seccomp path and in the kernel (rt8 F1)", () => {
  const policy = parsePolicy(
    `version: 2
name: f1
rules:
  - { id: v4, syscalls: connect, action: deny, address: ["127.0.0.1", "10.*"] }
  - { id: v4-family, syscalls: connect, action: deny, family: inet, port: [4444] }
  - { id: v6-glob, syscalls: connect, action: deny, address: ["2001:db8:*"] }
`,
    "f1.yaml",
  );
  const plan = compileKernelNet([policy]);
  const mapped = (a: number[]) => new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ...a]);
  const cases: [Uint8Array, number, string[]][] = [
    [mapped([127, 0, 0, 1]), 80, ["v4"]],
    [mapped([10, 9, 8, 7]), 80, ["v4"]],
    [mapped([127, 0, 0, 2]), 4444, ["v4-family"]],
    [mapped([11, 0, 0, 1]), 80, []],
    // IPv4-compatible (::127.0.0.1) is not IPv4 to the kernel's sockets: not the v4 rule.
    [new Uint8Array([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 127, 0, 0, 1]), 80, []],
    [new Uint8Array([0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]), 80, ["v6-glob"]],
  ];
  for (const [addr, port, want] of cases) {
    const text = inet6Address(addr, port);
    assertEquals(policy.rules.filter((r) => seccompMatches(r, "connect", text)).map((r) => r.id), want, text);
    assertEquals(kernelFires(plan, "connect", "inet6", addr, port).map((i) => plan.rules[i].rule.id), want, text);
  }
});

Deno.test("net_kernel: address globs compile only when they are exactly prefixes of the printed address", () => {
  assertEquals(addressGlobSet("*"), { any: true });
  assertEquals(addressGlobSet("10.*"), {
    any: false,
    prefixes: [{ family: "inet", addr: new Uint8Array([10, 0, 0, 0]), len: 8 }],
  });
  // No printed address has both "." and ":", nor leading zeros, nor a dotted quad in IPv6.
  assertEquals(addressGlobSet("::ffff:127.*"), { any: false, prefixes: [] });
  assertEquals(addressGlobSet("010.0.0.1"), { any: false, prefixes: [] });
  assertEquals(addressGlobSet("0:0::1"), { any: false, prefixes: [] });
  for (const glob of ["1*", "10.*.1", "10.?.*", "[::1]", "0:*", "fe80::*", "10.0", "10.0.*.*"]) {
    let why = "";
    try {
      const s = addressGlobSet(glob);
      // "10.0" is a literal no address prints as: it matches nothing, exactly.
      if (!s.any && s.prefixes.length === 0) continue;
    } catch (e) {
      why = (e as Error).message;
    }
    assert(why.includes(glob), `${glob}: ${why}`);
  }
});

Deno.test("net_kernel: rules the kernel cannot judge exactly stay on seccomp, each with why", () => {
  const policy = parsePolicy(
    `version: 2
name: skipped
rules:
  - { id: scoped, syscalls: connect, action: deny, port: [4444], scope: { program: [/usr/sbin/nginx] } }
  - { id: eacces, syscalls: connect, action: deny, errno: EACCES, port: [4444] }
  - { id: not-prefix, syscalls: connect, action: deny, address: ["1*"] }
  - { id: by-program, syscalls: connect, action: deny, not: [{ program: [curl] }] }
  - { id: alert-only, syscalls: connect, port: [4444] }
  - { id: files, syscalls: openat, action: deny, path: /etc/shadow }
`,
    "s.yaml",
  );
  const plan = compileKernelNet([policy]);
  assertEquals(plan.rules, []);
  assertEquals(plan.skipped.map((s) => [s.id, s.why]), [
    ["scoped", "a program scope (the kernel's programs do not see the executable)"],
    ["eacces", "errno 13 (a cgroup program's denial is EPERM)"],
    ["not-prefix", 'address "1*" is not a whole-octet prefix'],
    ["by-program", "a condition on program (the kernel sees only the address)"],
  ]);
});

Deno.test("net_layout.ts mirrors idwrap_net.h as the C compiler lays it out", async () => {
  const dir = await scratchDir();
  const fields: [string, string][] = [
    ...Object.keys(net.NET_OFFSETS).map((k): [string, string] => {
      const [s, f] = k.split(".");
      return [k, `offsetof(struct ${s}, ${f})`];
    }),
    ["prefix.size", "sizeof(struct idw_net_prefix)"],
    ["cond.size", "sizeof(struct idw_net_cond)"],
    ["table.size", "sizeof(struct idw_net_table)"],
    ["event.size", "sizeof(struct idw_net_event)"],
    ["rules", "IDW_NET_MAX_RULES"],
    ["conds", "IDW_NET_MAX_CONDS"],
    ["prefixes", "IDW_NET_MAX_PREFIXES"],
    ["ports", "IDW_NET_MAX_PORTS"],
    ["inet", "IDW_NET_INET"],
    ["inet6", "IDW_NET_INET6"],
  ];
  await Deno.writeTextFile(
    `${dir}/layout.c`,
    `#include <stdio.h>
#include <stddef.h>
#include <linux/types.h>
#include "${ROOT}kmod/bpf/idwrap_net.h"
int main(void) {
  printf("{");
${fields.map(([k, e], i) => `  printf("%s\\"${k}\\": %lu", ${i ? '","' : '""'}, (unsigned long)(${e}));`).join("\n")}
  printf("}\\n");
  return 0;
}
`,
  );
  const cc = await new Deno.Command("cc", { args: ["-o", `${dir}/layout`, `${dir}/layout.c`] }).output();
  assert(cc.success, new TextDecoder().decode(cc.stderr));
  const c = JSON.parse(new TextDecoder().decode((await new Deno.Command(`${dir}/layout`).output()).stdout));
  assertEquals(c, {
    ...net.NET_OFFSETS,
    "prefix.size": net.NET_PREFIX_SIZE,
    "cond.size": net.NET_COND_SIZE,
    "table.size": net.NET_TABLE_SIZE,
    "event.size": net.NET_EVENT_SIZE,
    ...NET_LIMITS,
    ...NET_FAMILY,
  });
});
