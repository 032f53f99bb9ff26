/**
 * The byte layouts of kmod/bpf/idwrap_net.h: the deny table the host writes
 * (from host/policy/net_kernel.ts's plan) and the denial record it reads.
 * Little-endian; addresses and masks in network byte order, as the kernel
 * gives `user_ip4`/`user_ip6`. tests/sources/bpf/net_layout_test.ts checks
 * the sizes and offsets against the C compiler.
 *
 * @module
 */
import { inet6Address, inetAddress } from "../../net/address.ts";
import { type KernelNetPlan, NET_FAMILY, NET_LIMITS, type NetPrefix } from "../../policy/net_kernel.ts";

export const NET_PREFIX_SIZE = 36;
export const NET_COND_SIZE = 8 + NET_LIMITS.prefixes * NET_PREFIX_SIZE + NET_LIMITS.ports * 4;
export const NET_TABLE_SIZE = 32 + NET_LIMITS.conds * NET_COND_SIZE;
export const NET_EVENT_SIZE = 72;
/** IDW_NET_HOOK_SOCKET: a raw socket refused by cgroup/sock_create. */
export const NET_HOOK_SOCKET = 2;

/** Offsets the layout test compares with offsetof(). */
export const NET_OFFSETS = {
  "idw_net_cond.prefix": 8,
  "idw_net_cond.ports": 8 + NET_LIMITS.prefixes * NET_PREFIX_SIZE,
  "idw_net_table.connect_rules": 8,
  "idw_net_table.sendmsg_rules": 16,
  "idw_net_table.kill_rules": 24,
  "idw_net_table.conds": 32,
  "idw_net_event.rules": 8,
  "idw_net_event.tgid": 16,
  "idw_net_event.uid": 24,
  "idw_net_event.addr": 32,
  "idw_net_event.port": 48,
  "idw_net_event.family": 50,
  "idw_net_event.hook": 51,
  "idw_net_event.sock_type": 52,
  "idw_net_event.comm": 56,
} as const;

function prefixBytes(p: NetPrefix, into: Uint8Array): void {
  // addr[4] and mask[4] as bytes in network order: inet uses the first 4 bytes of each.
  const size = p.family === "inet" ? 4 : 16;
  for (let bit = 0; bit < p.len; bit++) into[16 + (bit >> 3)] |= 0x80 >> (bit & 7);
  for (let i = 0; i < size; i++) into[i] = p.addr[i] & into[16 + i];
  new DataView(into.buffer, into.byteOffset).setUint32(32, NET_FAMILY[p.family], true);
}

/** The table's one element for a plan. */
export function encodeNetTable(plan: KernelNetPlan): Uint8Array {
  const out = new Uint8Array(NET_TABLE_SIZE);
  const view = new DataView(out.buffer);
  view.setUint32(0, plan.conds.length, true);
  let connect = 0n, sendmsg = 0n, kill = 0n;
  plan.rules.forEach((r, i) => {
    if (r.connect) connect |= 1n << BigInt(i);
    if (r.sendmsg) sendmsg |= 1n << BigInt(i);
    if (r.rule.action === "kill") kill |= 1n << BigInt(i);
  });
  view.setBigUint64(8, connect, true);
  view.setBigUint64(16, sendmsg, true);
  view.setBigUint64(24, kill, true);
  plan.conds.forEach((c, i) => {
    const at = NET_OFFSETS["idw_net_table.conds"] + i * NET_COND_SIZE;
    out[at] = c.rule;
    out[at + 1] = c.negate ? 1 : 0;
    out[at + 2] = c.families;
    out[at + 3] = c.prefixes.length;
    out[at + 4] = c.ports.length;
    c.prefixes.forEach((p, j) => {
      const start = at + NET_OFFSETS["idw_net_cond.prefix"] + j * NET_PREFIX_SIZE;
      prefixBytes(p, out.subarray(start, start + NET_PREFIX_SIZE));
    });
    c.ports.forEach(([lo, hi], j) => {
      const start = at + NET_OFFSETS["idw_net_cond.ports"] + j * 4;
      view.setUint16(start, lo, true);
      view.setUint16(start + 2, hi, true);
    });
  });
  return out;
}

/** A denial the kernel made. */
export interface NetDenial {
  /** CLOCK_MONOTONIC, ns. */
  ktime: bigint;
  /** Indexes of the plan's rules that matched. */
  rules: number[];
  tgid: number;
  tid: number;
  uid: number;
  gid: number;
  /** As idwrap prints addresses: `inet:1.2.3.4:80`, `inet6:[::1]:80`. */
  addr: string;
  /**
   * The hook: a connect (connect, io_uring connect, TCP Fast Open), a send with an address, or a raw socket refused
   * at creation (`socket`: `addr` is empty, `socket` says what was asked).
   */
  hook: "connect" | "sendmsg" | "socket";
  /** For a `socket` record: the call's family (AF_*), type and protocol. */
  socket?: { family: number; type: number; protocol: number };
  /** SOCK_STREAM 1, SOCK_DGRAM 2, … */
  sockType: number;
  comm: string;
}

/** Decodes one record of the net ring. */
export function decodeNetDenial(bytes: Uint8Array): NetDenial {
  if (bytes.length < NET_EVENT_SIZE) throw new RangeError(`net record: ${bytes.length} bytes, want ${NET_EVENT_SIZE}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const mask = view.getBigUint64(8, true);
  const rules: number[] = [];
  for (let i = 0; i < 64; i++) if ((mask >> BigInt(i)) & 1n) rules.push(i);
  const addrBytes = bytes.subarray(32, 48);
  const port = view.getUint16(48, true);
  const family = bytes[50];
  const comm = new TextDecoder().decode(bytes.subarray(56, 72)).replace(/\0.*$/s, "");
  const ids = {
    ktime: view.getBigUint64(0, true),
    rules,
    tgid: view.getUint32(16, true),
    tid: view.getUint32(20, true),
    uid: view.getUint32(24, true),
    gid: view.getUint32(28, true),
  };
  if (bytes[51] === NET_HOOK_SOCKET) {
    const socket = { family, type: view.getUint32(52, true), protocol: port };
    return { ...ids, addr: "", hook: "socket", sockType: socket.type, socket, comm };
  }
  return {
    ktime: view.getBigUint64(0, true),
    rules,
    tgid: view.getUint32(16, true),
    tid: view.getUint32(20, true),
    uid: view.getUint32(24, true),
    gid: view.getUint32(28, true),
    addr: family === NET_FAMILY.inet ? inetAddress(addrBytes, port) : inet6Address(addrBytes, port),
    hook: bytes[51] === 0 ? "connect" : "sendmsg",
    sockType: view.getUint32(52, true),
    comm,
  };
}
