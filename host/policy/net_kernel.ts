/**
 * A policy's network deny rules as the kernel can decide them (issue 15;
 * docs/bpf.md, "Decisions in the kernel"): the rules that deny or kill a
 * `connect` or a send with an address (`sendto`, `sendmsg`, `sendmmsg`) and
 * whose every condition is on the address's family, address and port, compiled
 * into the table kmod/bpf/net.bpf.c reads (host/sources/bpf/net_layout.ts
 * encodes it). The kernel's programs must deny exactly what the rule denies on
 * the seccomp path (host/policy/match.ts): an address glob is compiled only
 * when it is exactly a set of prefixes on the text idwrap prints
 * (host/net/address.ts), and a rule with anything else — a path, a program
 * scope, a `not` or exception on the process, a glob that is not a prefix, an
 * errno other than EPERM (all a cgroup program can return) — is left out, with
 * why, and stays where it was (seccomp).
 *
 * @module
 */
import { inet6Address } from "../net/address.ts";
import { resolveSyscalls, syscallName } from "../syscalls/mod.ts";
import type { Condition } from "./conditions.ts";
import type { Policy, Rule } from "./policy.ts";

/** What the table holds at most (kmod/bpf/idwrap_net.h). */
export const NET_LIMITS = { rules: 64, conds: 64, prefixes: 8, ports: 8 } as const;

/** Condition family bits (IDW_NET_INET, IDW_NET_INET6). */
export const NET_FAMILY = { inet: 1, inet6: 2 } as const;

/** An address prefix: the first `len` bits of `addr` (4 bytes for inet, 16 for inet6). */
export interface NetPrefix {
  family: "inet" | "inet6";
  addr: Uint8Array;
  len: number;
}

/** One compiled condition of a kernel rule. */
export interface NetCond {
  /** Index in {@linkcode KernelNetPlan.rules}. */
  rule: number;
  /** A `not:` or exception condition: when it holds, the rule does not fire. */
  negate: boolean;
  /** NET_FAMILY bits; 0: any. */
  families: number;
  /** Empty: any address. */
  prefixes: NetPrefix[];
  /** Inclusive ranges; empty: any port. */
  ports: [number, number][];
}

/** A rule the kernel decides. */
export interface KernelNetRule {
  rule: Rule;
  /** The policy file it came from. */
  file: string;
  /** It judges connects (and io_uring connects: the kernel cannot tell them apart). */
  connect: boolean;
  /** It judges sends with an address (sendto, sendmsg, sendmmsg, io_uring sends: one hook for all). */
  sendmsg: boolean;
}

/** The kernel's share of the policies. */
export interface KernelNetPlan {
  rules: KernelNetRule[];
  conds: NetCond[];
  /** Network deny rules left to seccomp, with why (`idwrap doctor`, `-v`). */
  skipped: { file: string; id: string; why: string }[];
}

const CONNECT = "connect";
const SENDS = new Set(["sendto", "sendmsg", "sendmmsg"]);
/** The calls the kernel's programs judge: a rule on these alone is decided whole in the kernel. */
export const KERNEL_NET_CALLS: ReadonlySet<string> = new Set([CONNECT, ...SENDS]);
const EPERM = 1;

/** Not exactly compilable: why. */
class NotExact extends Error {}

/** A glob's meaning on the printed address: prefixes, every address, or none. */
type AddressSet = { any: true } | { any: false; prefixes: NetPrefix[] };

const OCTET = /^(0|[1-9]\d{0,2})$/;
const GROUP = /^[1-9a-f][0-9a-f]{0,3}$/;
/** Characters that make a picomatch pattern more than a literal with a trailing `*`. */
const GLOB_CHARS = /[?[\]{}()!+@\\|^$]/;

function octets(parts: string[]): number[] | undefined {
  const out = parts.map((p) => OCTET.test(p) ? Number(p) : NaN);
  return out.every((o) => o <= 255) ? out : undefined;
}

/** Parses an IPv6 literal (hex groups, one `::` at most) to 16 bytes, or undefined. */
function parseInet6(text: string): Uint8Array | undefined {
  const halves = text.split("::");
  if (halves.length > 2) return undefined;
  const groups = (s: string) => s === "" ? [] : s.split(":");
  const head = groups(halves[0]), tail = halves.length === 2 ? groups(halves[1]) : [];
  const missing = 8 - head.length - tail.length;
  if (halves.length === 1 ? missing !== 0 : missing < 1) return undefined;
  const all = [...head, ...Array(halves.length === 2 ? missing : 0).fill("0"), ...tail];
  if (!all.every((g) => /^[0-9a-fA-F]{1,4}$/.test(g))) return undefined;
  const bytes = new Uint8Array(16);
  all.forEach((g, i) => {
    const v = parseInt(g, 16);
    bytes[i * 2] = v >> 8;
    bytes[i * 2 + 1] = v & 0xff;
  });
  return bytes;
}

/**
 * What an `address:` glob matches among the addresses idwrap prints (`1.2.3.4`, RFC 5952 IPv6 without dotted quads),
 * exactly, or NotExact. Exact forms: `*`; a canonical IPv4 address, or its first 1–3 octets and `.*`; an IPv6 address
 * (it matches only if written as idwrap prints it), or its first 1–7 groups, none zero, and `:*`; a pattern with both
 * `.` and `:` (no printed address has both: `::ffff:127.*` matches nothing).
 */
export function addressGlobSet(glob: string): AddressSet {
  if (glob === "*") return { any: true };
  if (GLOB_CHARS.test(glob)) throw new NotExact(`address "${glob}" is not a prefix`);
  const star = glob.indexOf("*");
  if (star >= 0 && star !== glob.length - 1) throw new NotExact(`address "${glob}" is not a prefix`);
  if (glob.includes(".") && glob.includes(":")) return { any: false, prefixes: [] };
  if (!glob.includes(":")) {
    const body = star >= 0 ? glob.slice(0, -1) : glob;
    if (star >= 0) {
      if (!body.endsWith(".")) throw new NotExact(`address "${glob}" is not a whole-octet prefix`);
      const o = octets(body.slice(0, -1).split("."));
      if (!o || o.length > 3) throw new NotExact(`address "${glob}" is not a whole-octet prefix`);
      const addr = new Uint8Array(4);
      addr.set(o);
      return { any: false, prefixes: [{ family: "inet", addr, len: 8 * o.length }] };
    }
    const o = octets(glob.split("."));
    // A literal no printed address equals (leading zeros, not four octets) matches nothing.
    if (!o || o.length !== 4) return { any: false, prefixes: [] };
    return { any: false, prefixes: [{ family: "inet", addr: new Uint8Array(o), len: 32 }] };
  }
  if (star >= 0) {
    const body = glob.slice(0, -1);
    if (!body.endsWith(":") || body.endsWith("::")) throw new NotExact(`address "${glob}" is not a whole-group prefix`);
    const groups = body.slice(0, -1).split(":");
    if (groups.length > 7 || !groups.every((g) => GROUP.test(g))) {
      throw new NotExact(`address "${glob}" is not a prefix of non-zero groups`);
    }
    const addr = new Uint8Array(16);
    groups.forEach((g, i) => {
      const v = parseInt(g, 16);
      addr[i * 2] = v >> 8;
      addr[i * 2 + 1] = v & 0xff;
    });
    return { any: false, prefixes: [{ family: "inet6", addr, len: 16 * groups.length }] };
  }
  const bytes = parseInet6(glob);
  if (!bytes || inet6Address(bytes, 0) !== `inet6:[${glob}]:0`) return { any: false, prefixes: [] };
  return { any: false, prefixes: [{ family: "inet6", addr: bytes, len: 128 }] };
}

/** Fields a kernel condition can hold. */
const KERNEL_FIELDS = new Set(["family", "address", "port"]);

/**
 * One condition compiled: a NetCond without its rule, "always" (no field: holds for every IP call) or "never" (it
 * cannot hold for an inet or inet6 address).
 */
function compileCondition(c: Condition): Omit<NetCond, "rule" | "negate"> | "always" | "never" {
  for (const [field, value] of Object.entries(c)) {
    if (value !== undefined && !KERNEL_FIELDS.has(field)) {
      throw new NotExact(`a condition on ${field} (the kernel sees only the address)`);
    }
  }
  let families = 0;
  if (c.family) {
    for (const f of c.family) if (f === "inet" || f === "inet6") families |= NET_FAMILY[f];
    if (!families) return "never";
  }
  let prefixes: NetPrefix[] = [];
  if (c.address) {
    const sets = c.address.map(addressGlobSet);
    if (!sets.some((s) => s.any)) {
      prefixes = sets.flatMap((s) => s.any ? [] : s.prefixes);
      if (!prefixes.length) return "never";
      if (prefixes.length > NET_LIMITS.prefixes) {
        throw new NotExact(`${prefixes.length} address prefixes in one condition (at most ${NET_LIMITS.prefixes})`);
      }
    }
  }
  const ports: [number, number][] = [];
  for (const [lo, hi] of c.port ?? []) {
    const a = Math.max(0, lo), b = Math.min(65535, hi);
    if (a <= b) ports.push([a, b]);
  }
  if (c.port && !ports.length) return "never";
  if (ports.length > NET_LIMITS.ports) {
    throw new NotExact(`${ports.length} port ranges in one condition (at most ${NET_LIMITS.ports})`);
  }
  if (!families && !prefixes.length && !ports.length) return "always";
  return { families, prefixes, ports };
}

/** One rule's conditions, or NotExact; undefined when the rule can never fire on an IP address. */
function compileRule(rule: Rule): { connect: boolean; sendmsg: boolean; conds: Omit<NetCond, "rule">[] } | undefined {
  const names = [...resolveSyscalls(rule.syscalls)].map(syscallName);
  const connect = names.includes(CONNECT), sendmsg = names.some((n) => SENDS.has(n));
  if (!connect && !sendmsg) return undefined;
  if (rule.action === "deny" && rule.errno !== EPERM) {
    throw new NotExact(`errno ${rule.errno} (a cgroup program's denial is EPERM)`);
  }
  if (rule.path !== undefined) throw new NotExact("a path");
  if (rule.scope) throw new NotExact("a program scope (the kernel's programs do not see the executable)");
  const conds: Omit<NetCond, "rule">[] = [];
  for (const c of rule.match ?? []) {
    const k = compileCondition(c);
    if (k === "never") return undefined;
    if (k !== "always") conds.push({ ...k, negate: false });
  }
  const exclusions = [...rule.not ?? [], ...(rule.except ?? []).flatMap((e) => e.values)];
  for (const c of exclusions) {
    const k = compileCondition(c);
    if (k === "always") return undefined; // excluded for every IP address
    if (k !== "never") conds.push({ ...k, negate: true });
  }
  return { connect, sendmsg, conds };
}

/** The kernel's share of the policies' rules: deny and kill rules on connect and sends, compiled exactly. */
export function compileKernelNet(policies: readonly Policy[]): KernelNetPlan {
  const plan: KernelNetPlan = { rules: [], conds: [], skipped: [] };
  for (const policy of policies) {
    for (const rule of policy.rules) {
      if (rule.action !== "deny" && rule.action !== "kill") continue;
      let compiled;
      try {
        compiled = compileRule(rule);
      } catch (e) {
        if (!(e instanceof NotExact)) throw e;
        plan.skipped.push({ file: policy.file, id: rule.id, why: e.message });
        continue;
      }
      if (!compiled) continue;
      if (plan.rules.length >= NET_LIMITS.rules || plan.conds.length + compiled.conds.length > NET_LIMITS.conds) {
        plan.skipped.push({
          file: policy.file,
          id: rule.id,
          why: `the kernel's table is full (${NET_LIMITS.rules} rules, ${NET_LIMITS.conds} conditions)`,
        });
        continue;
      }
      const index = plan.rules.length;
      plan.rules.push({ rule, file: policy.file, connect: compiled.connect, sendmsg: compiled.sendmsg });
      for (const c of compiled.conds) plan.conds.push({ ...c, rule: index });
    }
  }
  return plan;
}

/** Whether a prefix holds for an address (16 bytes for inet6, 4 for inet): the kernel's test, for the host's tests. */
export function prefixHolds(p: NetPrefix, family: "inet" | "inet6", addr: Uint8Array): boolean {
  if (p.family !== family) return false;
  for (let bit = 0; bit < p.len; bit++) {
    const byte = bit >> 3, mask = 0x80 >> (bit & 7);
    if ((addr[byte] & mask) !== (p.addr[byte] & mask)) return false;
  }
  return true;
}

/** Whether an inet6 address is v4-mapped (::ffff:0:0/96): it reaches the IPv4 host and is judged as both forms. */
export function isV4Mapped(family: "inet" | "inet6", addr: Uint8Array): boolean {
  return family === "inet6" && addr.subarray(0, 10).every((b) => b === 0) && addr[10] === 0xff && addr[11] === 0xff;
}

/**
 * Whether a compiled condition holds for an address (net.bpf.c's cond_holds, for the host's tests): a v4-mapped
 * inet6 address also holds for the inet family and the inet prefixes of its last four bytes (rt8 F1).
 */
export function kernelCondHolds(c: NetCond, family: "inet" | "inet6", addr: Uint8Array, port: number): boolean {
  const mapped = isV4Mapped(family, addr);
  return (!c.families || (c.families & NET_FAMILY[family]) !== 0 || (mapped && (c.families & NET_FAMILY.inet) !== 0)) &&
    (!c.prefixes.length ||
      c.prefixes.some((p) => prefixHolds(p, family, addr) || (mapped && prefixHolds(p, "inet", addr.subarray(12))))) &&
    (!c.ports.length || c.ports.some(([lo, hi]) => port >= lo && port <= hi));
}
