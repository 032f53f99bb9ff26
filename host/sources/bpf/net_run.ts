/**
 * A run's network decisions in the kernel (docs/bpf.md, "Decisions in the
 * kernel"): which runs get them, and their reports. For a run whose policies
 * have network deny rules the kernel can decide exactly
 * (host/policy/net_kernel.ts), and where this process can load them, the
 * programs are attached to the tree's own cgroup before the command execs
 * (`place`), and every denial they make is reported as the seccomp path
 * reports a rule's denial: a `pre` event with the verdict, the rule ids, their
 * ATT&CK techniques and tags, and the address, handed to the run's audit log
 * (and printed, where the report goes to standard error). A `kill` rule's
 * denial also kills the process, from the host, when it reads the record.
 *
 * The seccomp path is left as it was (the rules are still examined there, on
 * the address the caller's memory held when the call was notified): the
 * kernel's programs add a second decision on the address the kernel uses, so
 * what seccomp denies is unchanged, and what it let through by a race, or
 * never saw (sendmsg, sendmmsg, io_uring), is denied in the kernel.
 *
 * @module
 */
import type { HostEvent, SourceName, SyscallEvent } from "../../events.ts";
import { compileKernelNet, type KernelNetPlan } from "../../policy/net_kernel.ts";
import type { Policy } from "../../policy/policy.ts";
import { formatEvent, jsonLine, type TraceSinkOptions } from "../../trace/sink.ts";
import type { OnEvents } from "../thread.ts";
import { readIdentity } from "./events.ts";
import { KernelNet, NET_OBJECT } from "./net.ts";
import type { NetDenial } from "./net_layout.ts";
import { bpfPrivilegeProblem, BpfRefusal } from "./privilege.ts";

/** How often the host reads the denials' ring (ms). */
const POLL_MS = 10;

/** Set to 0 to keep every network rule on the seccomp path alone (a control for tests, or a kernel that misbehaves). */
export const KERNEL_NET_ENV = "IDWRAP_KERNEL_NET";

/** Why this process cannot attach the kernel's network programs, or undefined when it can. */
export function kernelNetProblem(): string | undefined {
  if (Deno.env.get(KERNEL_NET_ENV) === "0") return `${KERNEL_NET_ENV}=0`;
  const privilege = bpfPrivilegeProblem();
  if (privilege) return privilege;
  try {
    Deno.statSync(NET_OBJECT);
  } catch {
    return `${NET_OBJECT} is missing (deno task build makes it)`;
  }
  return undefined;
}

/** How a run's kernel decisions report. */
export interface KernelNetOptions {
  /** The run's source, named in the reports (the programs are BPF whatever the source). */
  source: SourceName;
  onEvents?: OnEvents;
  trace?: TraceSinkOptions;
  /** Told why the rules stay on seccomp alone when they could have been decided in the kernel. */
  onWarning?: (message: string) => void;
  /** The rules have no other judge (the bpf source): a failure to load is thrown, never a warning. */
  required?: boolean;
}

/** The calls each hook stands for in a report (the kernel does not say which call reached it). */
const HOOK_CALL = {
  connect: { nr: 42, syscall: "connect" },
  sendmsg: { nr: 46, syscall: "sendmsg" },
  socket: { nr: 41, syscall: "socket" },
} as const;

/** The reason a report gives: the program that decided. */
function hookReason(d: NetDenial): string {
  if (d.hook === "socket") {
    return "decided in the kernel (cgroup/sock_create: no raw socket while network deny rules are in the kernel)";
  }
  return `decided in the kernel (cgroup/${d.hook}${d.addr.startsWith("inet6:") ? 6 : 4})`;
}

/** A denial as the event the seccomp path would have made for the call. */
export function denialEvent(plan: KernelNetPlan, d: NetDenial, source: SourceName, time = Date.now()): SyscallEvent {
  const rules = d.rules.map((i) => plan.rules[i]?.rule).filter((r) => r !== undefined);
  const kill = rules.some((r) => r.action === "kill");
  const attack = [...new Set(rules.flatMap((r) => r.attack ?? []))];
  const tags = [...new Set(rules.flatMap((r) => r.tags ?? []))];
  // The process may be gone when the record is read (or its pid reused): /proc is believed only if its name is the
  // kernel's; else the report names the process by the command name the kernel gave (comm).
  const identity = readIdentity(d.tgid);
  const known = identity.exe !== "" && identity.exe.slice(identity.exe.lastIndexOf("/") + 1).slice(0, 15) === d.comm;
  return {
    kind: "syscall",
    source,
    phase: "pre",
    time,
    pid: d.tgid,
    tid: d.tid,
    abi: "x86_64",
    ...HOOK_CALL[d.hook],
    // A sock_addr program does not know the registers (the fd, the pointer): none are made up; socket's are its
    // family, type and protocol, which sock_create sees.
    args: d.socket ? [d.socket.family, d.socket.type, d.socket.protocol].map(String) : [],
    decoded: d.socket ? {} : { addr: d.addr },
    program: known ? { ...identity, uid: d.uid, gid: d.gid } : { exe: "", argv0: d.comm, uid: d.uid, gid: d.gid },
    verdict: kill ? "kill" : "deny EPERM",
    reason: hookReason(d),
    alerts: rules.map((r) => r.id),
    ...(attack.length ? { attack } : {}),
    ...(tags.length ? { tags } : {}),
  };
}

/** A run's kernel decisions, attached. */
export class KernelNetRun {
  readonly #net: KernelNet;
  readonly #plan: KernelNetPlan;
  readonly #options: KernelNetOptions;
  readonly #timer: ReturnType<typeof setInterval>;
  #lostReported = 0;
  /** Denials reported so far. */
  denials = 0;

  private constructor(net: KernelNet, plan: KernelNetPlan, options: KernelNetOptions) {
    this.#net = net;
    this.#plan = plan;
    this.#options = options;
    this.#timer = setInterval(() => {
      this.#report().catch((e) => options.onWarning?.(`cannot report the kernel's network denials: ${e.message}`));
    }, POLL_MS);
  }

  /**
   * Attaches the programs for the policies' kernel rules, or returns undefined when there are none or this process
   * cannot (then the rules stay on seccomp alone, as before: said through onWarning when there were rules).
   */
  static start(policies: readonly Policy[], options: KernelNetOptions): KernelNetRun | undefined {
    const plan = compileKernelNet(policies);
    if (!plan.rules.length) return undefined;
    const problem = kernelNetProblem();
    if (problem && options.required) throw new BpfRefusal(requiredNotice(plan, problem));
    // Not said on every run of an ordinary user (who cannot load BPF programs here): `idwrap doctor` says it.
    if (problem) return undefined;
    try {
      return new KernelNetRun(KernelNet.open(plan), plan, options);
    } catch (e) {
      if (options.required) throw new BpfRefusal(requiredNotice(plan, (e as Error).message));
      options.onWarning?.(kernelNetNotice(plan, (e as Error).message));
      return undefined;
    }
  }

  /** The tree's cgroup. */
  get cgroup(): string {
    return this.#net.cgroup;
  }

  /**
   * Moves the launcher into the tree's cgroup: call before it execs the command. Where the programs are the rules'
   * only judge (required), a failure is thrown (the command must not run); else it is said, and the seccomp path
   * judges the rules alone, as before.
   */
  place(pid: number): void {
    try {
      this.#net.place(pid);
    } catch (e) {
      const why = `cannot place process ${pid} in ${this.#net.cgroup}: ${(e as Error).message}`;
      if (this.#options.required) throw new BpfRefusal(requiredNotice(this.#plan, why));
      this.#options.onWarning?.(kernelNetNotice(this.#plan, why));
    }
  }

  /** Reports what is left in the ring and detaches the programs. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    await this.#report();
    this.#net.close();
  }

  async #report(): Promise<void> {
    const denials = this.#net.take();
    const events: HostEvent[] = [];
    for (const d of denials) {
      const event = denialEvent(this.#plan, d, this.#options.source);
      // A kill rule: the program killed the caller already where the kernel allows bpf_send_signal there; else the
      // call was denied in the kernel and the process is killed now, when the host reads the record (late).
      if (event.verdict === "kill" && !this.#net.killsInKernel) {
        try {
          Deno.kill(d.tgid, "SIGKILL");
        } catch { /* gone already */ }
      }
      events.push(event);
    }
    const lost = this.#net.lost() - this.#lostReported;
    if (lost > 0) {
      this.#lostReported += lost;
      this.#options.onWarning?.(
        `the kernel denied ${lost} network call(s) it could not report (its ring was full): they were denied all the same`,
      );
    }
    if (!events.length) return;
    this.denials += events.length;
    const trace = this.#options.trace;
    if (trace && !trace.output) {
      const text = events.map((e) => trace.format === "json" ? jsonLine(e) : formatEvent(e)).join("\n") + "\n";
      const bytes = new TextEncoder().encode(text);
      for (let done = 0; done < bytes.length;) done += Deno.stderr.writeSync(bytes.subarray(done));
    }
    await this.#options.onEvents?.(events);
  }
}

/** Why the bpf source cannot serve a plan's rules, in words. */
function requiredNotice(plan: KernelNetPlan, why: string): string {
  const ids = plan.rules.map((r) => r.rule.id).join(", ");
  return `Cannot decide the network deny rules ${ids} in the kernel (${why}): the bpf source has no other way to ` +
    'deny them (docs/bpf.md, "Decisions in the kernel")';
}

/** Why a plan's rules stay on seccomp alone, in words. */
function kernelNetNotice(plan: KernelNetPlan, why: string): string {
  const ids = plan.rules.map((r) => r.rule.id).join(", ");
  return `network deny rules ${ids} are judged on the seccomp path only, not in the kernel (${why}): the address is ` +
    "read from the caller's memory before the call runs, and sendmsg, sendmmsg and io_uring connects are not examined " +
    '(docs/bpf.md, "Decisions in the kernel")';
}

/**
 * `idwrap doctor`: whether runs of this process get the kernel's network decisions. The programs are loaded and
 * attached for real with a one-rule table (connect to port 9 denied), and a child is placed in their cgroup.
 */
export async function probeKernelNet(): Promise<{ ok: boolean; detail: string }> {
  const problem = kernelNetProblem();
  if (problem) return { ok: false, detail: problem };
  const plan: KernelNetPlan = {
    rules: [{
      rule: { id: "doctor", syscalls: ["connect"], action: "kill", errno: 1, match: [{ port: [[9, 9]] }] },
      file: "(doctor)",
      connect: true,
      sendmsg: false,
    }],
    conds: [{ rule: 0, negate: false, families: 0, prefixes: [], ports: [[9, 9]] }],
    skipped: [],
  };
  let net: KernelNet | undefined;
  try {
    net = KernelNet.open(plan);
    const child = new Deno.Command("/bin/sleep", { args: ["0.1"], stdout: "null", stderr: "null" }).spawn();
    net.place(child.pid);
    await child.status;
    return {
      ok: true,
      detail: `cgroup/connect4, connect6, sendmsg4, sendmsg6 and sock_create load and attach at the cgroup v2 root, ` +
        `acting on ${net.cgroup} (a process placed there); a kill rule kills ${
          net.killsInKernel ? "from the program (bpf_send_signal)" : "from the host when it reads the record"
        }`,
    };
  } catch (e) {
    return { ok: false, detail: (e as Error).message };
  } finally {
    net?.close();
  }
}
