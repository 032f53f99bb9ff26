/**
 * The kernel-module event source, host side: which source to use, the
 * supervisor thread that holds /dev/idwrap, and running a command under it
 * (idwrap-launch --no-filter: the host watches the launcher's pid before it
 * execs the command, and children inherit the watch).
 *
 * @module
 */
import type { OnEvents } from "../thread.ts";
import type { Policy } from "../../policy/policy.ts";
import { v8Engine } from "../../runtime/engine.ts";
import { loadPolicyWrappers } from "../../runtime/load.ts";
import type { WrapperModule } from "../../runtime/module.ts";
import { defaultStorePath } from "../../store/kv.ts";
import type { TraceSinkOptions } from "../../trace/sink.ts";
import { KMOD_CAPABILITIES } from "../capabilities.ts";
import type { Enforcement, SupervisorSummary } from "../enforce.ts";
import { spawnUnfilteredLauncher } from "../launcher.ts";
import { launchAndServe } from "../launch.ts";
import { SourceThread } from "../thread.ts";
import { libc } from "../../unsafe/libc.ts";
import { DEVICE, DeviceError, openDevice } from "./device.ts";
import { ABI_VERSION } from "./uapi.ts";
import type { KmodWorkerConfig } from "./worker.ts";

/** Which source `--source` asks for. */
export type SourceChoice = "auto" | "kmod" | "seccomp";

/** What a probe of the device found. */
export interface KmodProbe {
  usable: boolean;
  /** In words: why it is (not) usable. */
  detail: string;
  /** The module is in /proc/modules. */
  loaded: boolean;
}

/** Whether the idwrap module is loaded (/proc/modules). */
export function moduleLoaded(): boolean {
  try {
    return /^idwrap /m.test(Deno.readTextFileSync("/proc/modules"));
  } catch {
    return false;
  }
}

/** Opens the device, checks its ABI and closes it again. */
export function probeKmod(device = DEVICE): KmodProbe {
  const loaded = moduleLoaded();
  try {
    const fd = openDevice(device);
    libc.symbols.close(fd);
    return { usable: true, loaded, detail: `${device} opens and speaks ABI ${ABI_VERSION}` };
  } catch (e) {
    if (!(e instanceof DeviceError)) throw e;
    const why = !loaded && e.code === "absent" ? "the idwrap module is not loaded" : e.message;
    return { usable: false, loaded, detail: why };
  }
}

/**
 * The source to use: `kmod` and `seccomp` as asked (kmod fails if the device
 * cannot be used), `auto` the module where /dev/idwrap opens, else seccomp.
 *
 * @returns the source and why, in words
 * @throws when kmod is asked for and cannot be used
 */
export function chooseSource(choice: SourceChoice, device = DEVICE): { source: "kmod" | "seccomp"; why: string } {
  if (choice === "seccomp") return { source: "seccomp", why: "asked for (--source seccomp)" };
  const probe = probeKmod(device);
  if (choice === "kmod") {
    if (!probe.usable) throw new Error(`Cannot use the kernel-module source: ${probe.detail}`);
    return { source: "kmod", why: `asked for (--source kmod); ${probe.detail}` };
  }
  return probe.usable
    ? { source: "kmod", why: `the kernel module is loaded: ${probe.detail}` }
    : { source: "seccomp", why: `the kernel module cannot be used (${probe.detail}): seccomp user-notify` };
}

/** How the kmod thread starts. */
export interface KmodThreadOptions extends Enforcement, KmodWorkerConfig {
  storePath: string;
  trace?: TraceSinkOptions;
  onEvents?: OnEvents;
  /** Told what the user should know while the command runs (its tree outliving it). */
  onWarning?: (message: string) => void;
}

/** The supervisor thread holding /dev/idwrap. */
export class KmodThread extends SourceThread {
  /** Opens the device on a new thread; resolves when it serves. */
  static start(options: KmodThreadOptions): Promise<KmodThread> {
    const { systemWide, timeoutMs, device, deviceFd, ...rest } = options;
    const config: KmodWorkerConfig = { systemWide, timeoutMs, device, deviceFd };
    const opts = { ...rest, config: config as Record<string, unknown> };
    return SourceThread.startAt(new KmodThread(new URL("./worker.ts", import.meta.url), opts), opts);
  }

  /** Watches a launcher's pid (and its future children) as session `session`. */
  watch(session: number, pid: number): Promise<void> {
    return this.attachHandle(session, pid);
  }
}

/** Loads the policies' wrappers for the kmod source (which serves every post hook and rewrite). */
export function prepareKmodEnforcement(policies: Policy[]): Promise<WrapperModule[]> {
  return loadPolicyWrappers(policies, v8Engine, KMOD_CAPABILITIES);
}

/** How to run a command under the kmod source. */
export interface KmodRunOptions {
  policies: Policy[];
  trace?: TraceSinkOptions;
  storePath?: string;
  onEvents?: OnEvents;
  /** Told what the user should know while the command runs (its tree outliving it). */
  onWarning?: (message: string) => void;
  timeoutMs?: number;
}

/** How a wrapped command ended. */
export interface KmodRunResult {
  exitCode: number;
  signal?: string;
  summary: SupervisorSummary;
}

/** Runs `command` with its calls served by the kernel module. */
export async function runUnderKmod(command: string[], options: KmodRunOptions): Promise<KmodRunResult> {
  const wrappers = await prepareKmodEnforcement(options.policies);
  const thread = await KmodThread.start({
    policies: options.policies,
    wrappers,
    storePath: options.storePath ?? defaultStorePath(),
    trace: options.trace,
    onEvents: options.onEvents,
    timeoutMs: options.timeoutMs,
  });
  return await launchAndServe(
    command,
    (socketPath) => spawnUnfilteredLauncher(socketPath, command),
    (hs) => thread.watch(0, hs.pid),
    thread,
    options.onWarning,
  );
}
