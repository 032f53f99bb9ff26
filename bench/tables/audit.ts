/**
 * The Linux audit peer: a private auditd (its own configuration and log in the
 * bench's work directory, never the system's), and one rule that records every
 * system call of the subject's tree, selected by the loginuid the audit
 * configuration gives it (AUDIT_AUID; descendants inherit it). The rule exists
 * only while an audit run runs; the daemon, the rule and the kernel's audit
 * settings are restored whatever happens.
 *
 * @module
 */
import { join } from "node:path";
import { onCleanup, undo } from "./cleanup.ts";
import { AUDIT_AUID } from "./configs.ts";
import { log } from "./log.ts";
import { runCommand, Service, sleep } from "./processes.ts";

const KEY = "idwrap-bench";
const RULE = ["-a", "always,exit", "-F", "arch=b64", "-S", "all", "-F", `auid=${AUDIT_AUID}`, "-k", KEY];
const RULE_DEL = ["-d", ...RULE.slice(1)];

async function auditctl(args: string[]): Promise<{ ok: boolean; out: string }> {
  try {
    const r = await runCommand(["auditctl", ...args], { stdout: true, timeoutMs: 10000 });
    return { ok: r.code === 0, out: r.stdout + r.stderr };
  } catch (e) {
    return { ok: false, out: (e as Error).message };
  }
}

function field(status: string, name: string): number | undefined {
  const m = status.match(new RegExp(`^${name} (\\d+)`, "m"));
  return m ? Number(m[1]) : undefined;
}

/** A running private auditd, or why there cannot be one. */
export class AuditPeer {
  private constructor(
    private daemon: Service,
    private restore: { enabled: number; backlog: number },
    private handle: number,
  ) {}

  /** Probes `auditctl -s`, starts auditd with a configuration in `dir`; a string says why it is unavailable. */
  static async start(dir: string): Promise<AuditPeer | string> {
    const probe = await auditctl(["-s"]);
    if (!probe.ok) return `auditctl -s failed (${probe.out.trim().split("\n")[0] || "no audit support"})`;
    const enabled = field(probe.out, "enabled"), pid = field(probe.out, "pid");
    const backlog = field(probe.out, "backlog_limit");
    if (enabled === undefined || backlog === undefined) return `auditctl -s said: ${probe.out.trim()}`;
    if (enabled === 2) return "the audit configuration is locked (enabled 2)";
    if (pid) return `another audit daemon (pid ${pid}) is registered; not touching it`;
    try {
      Deno.statSync("/usr/sbin/auditd");
    } catch {
      return "/usr/sbin/auditd is missing (Debian package auditd)";
    }
    await Deno.mkdir(join(dir, "plugins.d"), { recursive: true });
    const conf = join(dir, "auditd.conf");
    // Log to a file of our own, rotated so that a syscall-heavy run stays within 2 x 64 MB.
    await Deno.writeTextFile(
      conf,
      [
        "local_events = yes",
        "write_logs = yes",
        `log_file = ${join(dir, "audit.log")}`,
        "log_format = RAW",
        "flush = INCREMENTAL_ASYNC",
        "freq = 50",
        "max_log_file = 64",
        "num_logs = 2",
        "max_log_file_action = ROTATE",
        "space_left = 75",
        "space_left_action = IGNORE",
        "admin_space_left = 50",
        "admin_space_left_action = IGNORE",
        "disk_full_action = IGNORE",
        "disk_error_action = IGNORE",
        "name_format = NONE",
        "priority_boost = 4",
        "q_depth = 2000",
        "overflow_action = IGNORE",
        `plugin_dir = ${join(dir, "plugins.d")}`,
        "end_of_event_timeout = 2",
        "",
      ].join("\n"),
    );
    await Deno.chmod(conf, 0o640);
    const daemon = Service.spawn(["/usr/sbin/auditd", "-n", "-c", dir]);
    const restore = { enabled, backlog };
    const peer = new AuditPeer(daemon, restore, 0);
    peer.handle = onCleanup(() => peer.stopNow());
    for (let i = 0; i < 100; i++) {
      const s = await auditctl(["-s"]);
      if (field(s.out, "pid")) {
        // A backlog deep enough that records are queued, not lost, while auditd writes.
        await auditctl(["-b", "8192"]);
        log(`audit: private auditd running (log in ${dir})`);
        return peer;
      }
      if (await daemon.exited()) break;
      await sleep(100);
    }
    const { stderr } = await daemon.stop();
    await undo(peer.handle);
    return `auditd did not start: ${stderr.trim().split("\n").slice(-2).join(" ") || "no registration"}`;
  }

  /** Adds the rule for the subject's tree; the returned function deletes it. */
  async addRule(): Promise<() => Promise<void>> {
    const r = await auditctl(RULE);
    if (!r.ok) throw new Error(`auditctl ${RULE.join(" ")} failed: ${r.out.trim()}`);
    const h = onCleanup(async () => void await auditctl(RULE_DEL));
    return () => undo(h);
  }

  /** The size of the audit log so far (all rotated files). */
  logBytes(dir: string): number {
    let n = 0;
    for (const f of ["audit.log", "audit.log.1", "audit.log.2"]) {
      try {
        n += Deno.statSync(join(dir, f)).size;
      } catch { /* not there */ }
    }
    return n;
  }

  private async stopNow(): Promise<void> {
    await auditctl(RULE_DEL); // in case a run was interrupted
    await this.daemon.stop(5000);
    await auditctl(["-b", String(this.restore.backlog)]);
    await auditctl(["-e", String(this.restore.enabled)]);
  }

  async stop(): Promise<void> {
    await undo(this.handle);
  }
}
