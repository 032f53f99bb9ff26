/**
 * `idwrap doctor`: which kernel features idwrap can use here, each probed
 * for real where a probe is possible, and what follows for the user.
 *
 * @module
 */
import type { Command } from "commander";
import { errno, libc, SYS } from "../unsafe/libc.ts";
import { runUnderSeccomp } from "../sources/seccomp/source.ts";
import { probeKmod, runUnderKmod } from "../sources/kmod/source.ts";
import { resolveSource } from "../sources/run.ts";
import { hybridProblem, runUnderHybrid } from "../sources/hybrid/hybrid_run.ts";
import { DaemonClient, defaultRunDir, type Response } from "../daemon/protocol.ts";
import { loadPolicy } from "../policy/policy.ts";
import { defaultStorePath, prepareStoreFile } from "../store/kv.ts";
import { DEFAULT_POLICY } from "./run.ts";
import { probeBpf } from "../sources/bpf/probe.ts";
import { probeKernelNet } from "../sources/bpf/net_run.ts";
import { bpfPrivilegeProblem, runUnderBpf } from "../sources/bpf/supervise.ts";
import { fileURLToPath } from "node:url";
import { packaged, VERSION } from "../version.ts";

/** One line of the report. */
export interface Check {
  feature: string;
  ok: boolean;
  detail: string;
  /** What the user gets or loses. */
  consequence: string;
}

function kernelVersion(): [number, number] {
  const m = Deno.osRelease().match(/^(\d+)\.(\d+)/);
  return m ? [Number(m[1]), Number(m[2])] : [0, 0];
}

const atLeast = (v: [number, number], major: number, minor: number) =>
  v[0] > major || (v[0] === major && v[1] >= minor);

function readOr(path: string, fallback: string): string {
  try {
    return Deno.readTextFileSync(path).trim();
  } catch {
    return fallback;
  }
}

/** Runs every check; probes start a real process under a real filter. */
export async function runChecks(): Promise<Check[]> {
  const v = kernelVersion();
  const checks: Check[] = [];
  const actions = readOr("/proc/sys/kernel/seccomp/actions_avail", "");
  checks.push({
    feature: "seccomp user-notify",
    ok: actions.split(/\s+/).includes("user_notif"),
    detail: actions ? `actions: ${actions}` : "no /proc/sys/kernel/seccomp (CONFIG_SECCOMP_FILTER off?)",
    consequence: "required for the seccomp source",
  });

  const self = Number(libc.symbols.syscall(SYS.pidfd_open, BigInt(Deno.pid), 0n, 0n, 0n, 0n, 0n));
  let getfd = false;
  let getfdDetail = `pidfd_open: errno ${errno()}`;
  if (self >= 0) {
    const fd = Number(libc.symbols.syscall(SYS.pidfd_getfd, BigInt(self), 0n, 0n, 0n, 0n, 0n));
    getfd = fd >= 0;
    getfdDetail = getfd ? "copied our own fd 0" : `errno ${errno()}`;
    if (fd >= 0) libc.symbols.close(fd);
    libc.symbols.close(self);
  }
  checks.push({
    feature: "pidfd_getfd",
    ok: getfd,
    detail: getfdDetail,
    consequence: "required: the host takes the listener fd from idwrap-launch with it",
  });

  let probe = "not run";
  let syncWakeUp = false, emulated = false;
  try {
    const tmp = Deno.makeTempFileSync({ prefix: "idwrap-doctor-" });
    const r = await runUnderSeccomp(["/bin/cat", tmp], {
      policies: [{ name: "doctor", file: "(doctor)", observe: ["openat"], rules: [], wrappers: [] }],
      trace: { format: "json", output: "/dev/null" },
      storePath: ":memory:",
    });
    Deno.removeSync(tmp);
    syncWakeUp = r.summary.syncWakeUp;
    emulated = r.summary.emulated > 0 && r.exitCode === 0;
    probe = `ran /bin/cat under a filter: exit ${r.exitCode}, ${r.summary.notifications} calls notified`;
  } catch (e) {
    probe = `failed: ${(e as Error).message}`;
  }
  checks.push({
    feature: "seccomp source",
    ok: probe.startsWith("ran") && probe.includes("exit 0"),
    detail: probe,
    consequence: "idwrap run and idwrap trace work",
  });
  checks.push({
    feature: "SECCOMP_IOCTL_NOTIF_ADDFD",
    ok: emulated,
    detail: emulated ? "an open was emulated and its fd installed" : "no open was emulated",
    consequence: "TOCTOU-free path decisions and post results for the open family",
  });
  checks.push({
    feature: "SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP",
    ok: syncWakeUp,
    detail: syncWakeUp ? "accepted by the listener" : `refused (Linux ${v.join(".")}; needs 6.6)`,
    consequence: syncWakeUp ? "notified calls cost about half" : "notified calls cost about twice as much",
  });
  checks.push({
    feature: "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
    ok: atLeast(v, 5, 19),
    detail: `Linux ${v.join(".")}; needs 5.19`,
    consequence: "signals during a notified call do not restart it over and over (Go programs, timers); before the " +
      "supervisor has read a call, a signal still fails it with EINTR in handlers without SA_RESTART " +
      '(docs/seccomp.md, "Signals and EINTR")',
  });
  checks.push(...await bpfChecks());
  checks.push(await kernelNetCheck());
  checks.push(...await kmodChecks());
  checks.push(usableSources(checks));
  checks.push(...await hostChecks());
  checks.push(...await installChecks());
  return checks;
}

/** Network deny rules decided in the kernel (docs/bpf.md, "Decisions in the kernel"): which runs get them. */
async function kernelNetCheck(): Promise<Check> {
  const { ok, detail } = await probeKernelNet();
  return {
    feature: "network rules in the kernel",
    ok,
    detail,
    consequence: ok
      ? "runs on the seccomp and hybrid sources decide the policies' exact network deny rules in the kernel too, on the " +
        "address the kernel uses (no race with the seccomp check), sendmsg, sendmmsg and io_uring connects included; " +
        "bpf and kmod runs do not (docs/bpf.md)"
      : "network deny rules are judged on seccomp only: on the address in the caller's memory before the call runs, " +
        "sendmsg, sendmmsg and io_uring connects unexamined (docs/rules.md)",
  };
}

/** Each BPF program type, loaded and attached for real; then a command observed through the bpf source. */
async function bpfChecks(): Promise<Check[]> {
  let out: Check[];
  let noLibbpf: string | undefined;
  try {
    out = (await probeBpf()).map((p) => ({
      feature: `bpf: ${p.feature}`,
      ok: p.ok,
      detail: p.detail,
      consequence: p.ok ? `usable for ${p.use}` : `not usable here for ${p.use}`,
    }));
  } catch (e) {
    // libbpf1 is only recommended by the package: without it the bpf sources are out, the rest of the report stands.
    noLibbpf = (e as Error).message;
    out = [{
      feature: "bpf programs",
      ok: false,
      detail: (e as Error).message,
      consequence: "the bpf and hybrid sources cannot be used",
    }];
  }
  const tpBtf = out.find((c) => c.feature === "bpf: tp_btf");
  const privilege = bpfPrivilegeProblem();
  let ok = false;
  let detail: string;
  if (privilege) detail = privilege;
  else if (!tpBtf?.ok) detail = `its programs are tp_btf, refused here: ${tpBtf?.detail ?? "not probed"}`;
  else {
    try {
      // The path idwrap run --source bpf takes: the transport under the WSS on its thread.
      const r = await runUnderBpf(["/bin/cat", "/dev/null"], {
        policies: [{ name: "doctor", file: "(doctor)", observe: ["openat", "read"], rules: [], wrappers: [] }],
        trace: { format: "json", output: "/dev/null", allSyscalls: true },
        storePath: ":memory:",
      });
      ok = r.exitCode === 0 && r.summary.notifications > 0;
      detail = `observed /bin/cat: exit ${r.exitCode}, ${r.summary.notifications} calls seen, ${
        r.summary.lost ?? 0
      } records lost`;
    } catch (e) {
      detail = `failed: ${(e as Error).message}`;
    }
  }
  out.push({
    feature: "bpf source",
    ok,
    detail,
    consequence: ok
      ? "idwrap run|trace --source bpf observe (no deny: policies that deny, kill or rewrite are refused; docs/bpf.md)"
      : "idwrap run|trace --source bpf cannot be used",
  });
  out.push(await hybridCheck(noLibbpf));
  return out;
}

/**
 * The hybrid, run for real as `idwrap run --source hybrid` does: /bin/cat's open of /etc/hostname denied on seccomp
 * while its reads are observed through the ring.
 */
async function hybridCheck(noLibbpf?: string): Promise<Check> {
  // Not run without libbpf: the hybrid's start would fail the same way (and its launched command stayed waiting).
  const problem = noLibbpf ?? hybridProblem();
  let ok = false;
  let detail: string;
  if (problem) detail = problem;
  else {
    try {
      const r = await runUnderHybrid(["/bin/cat", "/etc/hostname"], {
        policies: [{
          name: "doctor",
          file: "(doctor)",
          observe: ["read", "close"],
          rules: [{ id: "doctor-deny", syscalls: ["open", "openat"], path: "/etc/hostname", action: "deny", errno: 1 }],
          wrappers: [],
        }],
        trace: { format: "json", output: "/dev/null", allSyscalls: true },
        storePath: ":memory:",
      });
      ok = r.exitCode !== 0 && r.summary.denied === 1 && (r.summary.lost ?? 0) === 0;
      detail = `ran /bin/cat /etc/hostname with its open denied: exit ${r.exitCode}, ${r.summary.denied} denied on ` +
        `seccomp, ${r.summary.notifications} calls seen, ${r.summary.lost ?? 0} records lost`;
    } catch (e) {
      detail = `failed: ${(e as Error).message}`;
    }
  }
  return {
    feature: "hybrid source",
    ok,
    detail,
    consequence: ok
      ? "idwrap run|trace --source hybrid: calls a policy may deny wait on seccomp, the rest are observed through the " +
        "bpf ring without waiting; auto chooses it (no module) with IDWRAP_AUTO_SOURCE=hybrid (docs/bpf.md)"
      : "idwrap run|trace --source hybrid cannot be used; auto falls back to seccomp",
  };
}

/** Which sources this machine can use, from the checks that ran each one for real. */
function usableSources(checks: Check[]): Check {
  const can = (feature: string) => checks.find((c) => c.feature === feature)?.ok === true;
  const sources = [
    can("seccomp source") && "seccomp",
    can("kmod source") && "kmod",
    can("hybrid source") && "hybrid",
    can("bpf source") && "bpf (observation only)",
  ].filter((s): s is string => !!s);
  return {
    feature: "usable sources",
    ok: sources.length > 0,
    detail: sources.length ? sources.join(", ") : "none",
    consequence: "what --source can name here; auto chooses kmod, else seccomp (IDWRAP_AUTO_SOURCE=hybrid: the " +
      "hybrid; =bpf: bpf for a run whose policies only observe, else the hybrid)",
  };
}

/** The kernel module: loaded? the device usable? a command run through it; which source is active and why. */
async function kmodChecks(): Promise<Check[]> {
  const out: Check[] = [];
  const probe = probeKmod();
  out.push({
    feature: "kernel module",
    ok: probe.loaded,
    detail: probe.loaded
      ? "idwrap is in /proc/modules"
      : packaged()
      ? "not loaded (modprobe idwrap, once DKMS has built it for this kernel: docs/operations.md)"
      : "not loaded (idwrap kmod build && idwrap kmod load)",
    consequence: probe.loaded ? "in-kernel interception is available" : "events come from the seccomp source",
  });
  out.push({
    feature: "/dev/idwrap",
    ok: probe.usable,
    detail: probe.detail,
    consequence: probe.usable ? "the kmod source can be used" : "the kmod source cannot be used",
  });
  if (probe.usable) {
    let detail: string;
    let ok = false;
    try {
      const r = await runUnderKmod(["/bin/cat", "/dev/null"], {
        policies: [{ name: "doctor", file: "(doctor)", observe: ["openat", "read"], rules: [], wrappers: [] }],
        trace: { format: "json", output: "/dev/null", allSyscalls: true },
        storePath: ":memory:",
      });
      ok = r.exitCode === 0 && r.summary.notifications > 0;
      detail = `ran /bin/cat through the module: exit ${r.exitCode}, ${r.summary.notifications} calls seen`;
    } catch (e) {
      detail = `failed: ${(e as Error).message}`;
    }
    out.push({ feature: "kmod source", ok, detail, consequence: "idwrap run and trace can use the kernel module" });
  }
  try {
    const { source, why } = resolveSource("auto");
    out.push({
      feature: "active source",
      ok: true,
      detail: `${source}: ${why}`,
      consequence: `idwrap run --source auto (the default) uses ${source}`,
    });
  } catch (e) {
    out.push({
      feature: "active source",
      ok: false,
      detail: (e as Error).message,
      consequence: "idwrap run and trace refuse to start with --source auto",
    });
  }
  return out;
}

/** The daemon, the store and the default policy. */
async function hostChecks(): Promise<Check[]> {
  const out: Check[] = [];
  const runDir = defaultRunDir();
  const client = await DaemonClient.connect(runDir);
  let daemon = `no daemon answers for uid ${Deno.uid()} at ${runDir}`;
  if (client) {
    try {
      const s = await client.request<Extract<Response, { uptime: number }>>({ op: "status" });
      daemon = `pid ${s.pid}, up ${Math.round(s.uptime)} s, ${s.sessions} sessions, policies ${s.policies.join(", ")}`;
    } catch (e) {
      daemon = `answered with an error: ${(e as Error).message}`;
    } finally {
      client.close();
    }
  }
  out.push({
    feature: "daemon",
    ok: client !== undefined,
    detail: daemon,
    consequence: client ? "idwrap run hands commands to the daemon" : "idwrap run supervises commands itself",
  });
  const store = defaultStorePath();
  let storeOk = false, storeDetail = "";
  try {
    await prepareStoreFile(store); // as idwrap run does: a fresh install has no state directory yet
    const kv = await Deno.openKv(store);
    kv.close();
    storeOk = true;
    storeDetail = `${store} opens`;
  } catch (e) {
    storeDetail = `${store}: ${(e as Error).message}`;
  }
  out.push({
    feature: "store (Deno KV)",
    ok: storeOk,
    detail: storeDetail,
    consequence: storeOk ? "wrapper state and audit records are kept" : "set IDWRAP_STORE to a writable path",
  });
  let policy = "", policyOk = false;
  try {
    const p = loadPolicy(DEFAULT_POLICY);
    policy = `${DEFAULT_POLICY}: ${p.rules.length} rules, ${p.wrappers.length} wrappers`;
    policyOk = true;
  } catch (e) {
    policy = (e as Error).message;
  }
  out.push({
    feature: "default policy",
    ok: policyOk,
    detail: policy,
    consequence: "what idwrap run applies without --policy",
  });
  return out;
}

/** The app's root (with a trailing slash): /usr/lib/idwrap/ in the package, else the checkout. */
const ROOT = fileURLToPath(new URL("../../", import.meta.url));

/** How this idwrap is installed and whether the built parts it runs are in place; from the package, DKMS's view. */
async function installChecks(): Promise<Check[]> {
  const pkg = packaged();
  const missing: string[] = [];
  let wasm = 0;
  try {
    for (const e of Deno.readDirSync(`${ROOT}build/wrappers`)) if (e.name.endsWith(".wasm")) wasm++;
  } catch { /* counted as missing below */ }
  if (wasm === 0) missing.push(`${ROOT}build/wrappers/*.wasm`);
  try {
    Deno.statSync(`${ROOT}build/idwrap-launch`);
  } catch {
    missing.push(`${ROOT}build/idwrap-launch`);
  }
  const where = pkg ? `the Debian package (${pkg.format} ${pkg.version}) in ${ROOT}` : `a source checkout, ${ROOT}`;
  const versionOk = !pkg || pkg.version === VERSION;
  const out: Check[] = [{
    feature: "installation",
    ok: missing.length === 0 && versionOk,
    detail: `idwrap ${VERSION} from ${where}: ${wasm} wrapper modules` +
      (missing.length ? `; missing ${missing.join(", ")}` : ", idwrap-launch") +
      (versionOk ? "" : `; the package says ${pkg!.version}, the code ${VERSION}`),
    consequence: missing.length === 0 && versionOk
      ? "built-in wrappers load by name"
      : pkg
      ? "reinstall the package: apt-get install --reinstall idwrap"
      : "run deno task build",
  }];
  if (pkg) out.push(await dkmsCheck());
  return out;
}

/** The kernel module's source as DKMS sees it (the package's postinst adds it where DKMS is installed). */
async function dkmsCheck(): Promise<Check> {
  const source = `/usr/src/idwrap-${VERSION}`;
  let status: string;
  try {
    const r = await new Deno.Command("dkms", { args: ["status", "-m", "idwrap", "-v", VERSION], stderr: "null" })
      .output();
    status = new TextDecoder().decode(r.stdout).trim();
  } catch {
    return {
      feature: "kernel module source (DKMS)",
      ok: false,
      detail: `dkms is not installed; the source is in ${source}`,
      consequence: "apt-get install dkms linux-headers-$(uname -r) && dpkg-reconfigure idwrap builds the module",
    };
  }
  return {
    feature: "kernel module source (DKMS)",
    ok: status !== "",
    detail: status || `idwrap/${VERSION} is not registered (dkms add -m idwrap -v ${VERSION})`,
    consequence: /installed/.test(status)
      ? "modprobe idwrap loads the module"
      : "DKMS builds the module for each kernel whose headers are installed",
  };
}

/** Adds the doctor command to the CLI. */
export function registerDoctor(program: Command): void {
  program.command("doctor")
    .description("check which kernel features idwrap can use on this machine")
    .option("--json", "print the checks as JSON")
    .action(async (opts: { json?: boolean }) => {
      const checks = await runChecks();
      if (opts.json) console.log(JSON.stringify(checks, null, 2));
      else {
        for (const c of checks) {
          console.log(
            `${c.ok ? "ok  " : "MISS"} ${c.feature.padEnd(40)} ${c.detail}\n     ${"".padEnd(40)} → ${c.consequence}`,
          );
        }
      }
      const active = checks.find((c) => c.feature === "active source")!.detail.startsWith("kmod")
        ? "kmod source"
        : "seccomp source";
      Deno.exitCode = checks.find((c) => c.feature === active)?.ok ? 0 : 1;
    });
}
