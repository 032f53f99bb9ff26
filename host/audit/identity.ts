/**
 * Who recorded a record: the host (`host.name`, `host.id` from /etc/machine-id) and the agent (`agent.id`, kept in
 * the store so it survives restarts and upgrades; `agent.version`). The audit log sets these on every record it keeps
 * (./log.ts), so records from many hosts can be told apart in one SIEM.
 *
 * @module
 */
import { VERSION } from "../version.ts";

/** The fields the audit log adds to every record. */
export interface AgentIdentity {
  "host.name": string;
  "host.hostname": string;
  "host.id"?: string;
  "host.os.type": "linux";
  "agent.type": "idwrap";
  "agent.name": string;
  "agent.version": string;
  "agent.id": string;
}

const AGENT_ID_KEY = ["audit", "meta", "agent-id"] as const;

/** The machine id (systemd's /etc/machine-id, else D-Bus's), or undefined. */
export function machineId(): string | undefined {
  for (const path of ["/etc/machine-id", "/var/lib/dbus/machine-id"]) {
    try {
      const id = Deno.readTextFileSync(path).trim();
      if (/^[0-9a-f]{32}$/.test(id)) return id;
    } catch { /* absent */ }
  }
  return undefined;
}

/** The store's agent id, created (a random UUID) the first time; two writers racing agree on the first one kept. */
export async function agentId(kv: Deno.Kv): Promise<string> {
  for (;;) {
    const got = await kv.get<string>(AGENT_ID_KEY);
    if (typeof got.value === "string") return got.value;
    const id = crypto.randomUUID();
    const r = await kv.atomic().check({ key: AGENT_ID_KEY, versionstamp: null }).set(AGENT_ID_KEY, id).commit();
    if (r.ok) return id;
  }
}

/** The identity of this host and agent, with the store's agent id. */
export function agentIdentity(id: string): AgentIdentity {
  const name = Deno.hostname();
  const out: AgentIdentity = {
    "host.name": name,
    "host.hostname": name,
    "host.os.type": "linux",
    "agent.type": "idwrap",
    "agent.name": name,
    "agent.version": VERSION,
    "agent.id": id,
  };
  const mid = machineId();
  if (mid) out["host.id"] = mid;
  return out;
}
