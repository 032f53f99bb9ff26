/**
 * One run of a server workload under a configuration: the audit rule (for the
 * audit configuration), the server started under the configuration, a
 * warm-up, the measured load from another process, the server stopped (its
 * whole tree), idwrap's report read.
 *
 * @module
 */
import { join } from "node:path";
import { type Config, wrapCommand } from "./configs.ts";
import { type IdwrapReport, readReport } from "./idwrap_report.ts";
import { Service, waitListening } from "./processes.ts";
import type { AuditPeer } from "./audit.ts";

export interface ServerRunOptions {
  config: Config;
  /** The server's command line (foreground). */
  command: string[];
  port: number;
  work: string;
  env: Record<string, string>;
  audit?: AuditPeer;
  auditDir: string;
  idwrapArgs: string[];
  /** Runs before the measurement, not counted. */
  warmup: () => Promise<unknown>;
  /** The measured load: metric name → value, plus notes. */
  load: () => Promise<{ metrics: Record<string, number>; notes?: Record<string, number | string> }>;
  /** Called after the server stopped (e.g. to empty its logs). */
  after?: () => Promise<void>;
}

let serial = 0;

export async function serverRun(o: ServerRunOptions): Promise<{
  metrics: Record<string, number>;
  report?: IdwrapReport;
  notes?: Record<string, number | string>;
}> {
  const report = join(o.work, `server-report-${++serial}.txt`);
  let removeRule: (() => Promise<void>) | undefined;
  let service: Service | undefined;
  try {
    if (o.config.kind === "audit") removeRule = await o.audit!.addRule();
    const auditBefore = o.config.kind === "audit" ? o.audit!.logBytes(o.auditDir) : 0;
    service = Service.spawn(wrapCommand(o.config, o.command, report, o.idwrapArgs), o.env);
    await waitListening(o.port, service, 60000);
    await o.warmup();
    const measured = await o.load();
    const stopped = await service.stop();
    service = undefined;
    await removeRule?.();
    removeRule = undefined;
    const notes = { ...measured.notes };
    if (o.config.kind === "audit") {
      // The log rotates at 64 MB: a smaller sum means it rotated, and the growth is unknown.
      const grown = o.audit!.logBytes(o.auditDir) - auditBefore;
      if (grown >= 0) notes.auditLogBytes = grown;
    }
    const rep = o.config.kind === "idwrap" ? await readReport(report, stopped.stderr) : undefined;
    return { metrics: measured.metrics, report: rep, notes };
  } catch (e) {
    // Say what the server and idwrap said: the exit, faults, denials (not the lifecycle and audit lines).
    const stopped = service ? await service.stop(3000) : undefined;
    service = undefined;
    let said = "";
    try {
      said = Deno.readTextFileSync(report).split("\n")
        .filter((l) => l && !/ \+\+\+ | \*\*\* audit | \*\*\* alert\/\d seq |\[seq: /.test(l)).slice(-4).join(" | ");
    } catch { /* no report */ }
    // vsftpd's fatal errors ("500 OOPS: …") go to its standard output.
    const out = `${stopped?.stdout ?? ""}\n${stopped?.stderr ?? ""}`;
    const tail = out.trim().split("\n").filter((l) => l.trim() && !l.startsWith("idwrap: warning:")).slice(-3)
      .join(" | ");
    throw new Error(`${(e as Error).message}${tail ? `; server: ${tail}` : ""}${said ? `; report: ${said}` : ""}`);
  } finally {
    if (service) await service.stop(3000);
    await removeRule?.();
    await o.after?.();
    await Deno.remove(report).catch(() => {});
  }
}
