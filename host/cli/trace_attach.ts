/**
 * `idwrap trace -p PID`: observe a running process. Only the bpf source can
 * (its programs follow any pid it is told to watch, and the children that pid
 * makes from then on); a seccomp filter is installed by the process itself
 * before it runs the program, and the kernel module intercepts the trees the
 * launcher starts.
 *
 * @module
 */
import { defaultStorePath } from "../store/kv.ts";
import type { Policy } from "../policy/policy.ts";
import { BpfRefusal, BpfThread, prepareBpfEnforcement } from "../sources/bpf/supervise.ts";
import type { SupervisorSummary } from "../sources/enforce.ts";
import type { TraceSinkOptions } from "../trace/sink.ts";

/** Why `-p` cannot be served on a source other than bpf. */
export function attachRefusal(source: string): string {
  return `-p: attaching to a running process needs --source bpf (root): the ${source} source can only serve a ` +
    "command it starts (a seccomp filter is installed by the process itself before its program runs)";
}

/** Observes `pid` (and the children it makes from now on) until it exits. */
export async function attachUnderBpf(
  pid: number,
  options: { policies: Policy[]; trace?: TraceSinkOptions; storePath?: string },
): Promise<SupervisorSummary> {
  try {
    Deno.statSync(`/proc/${pid}`);
  } catch {
    throw new BpfRefusal(`-p ${pid}: no such process`);
  }
  const wrappers = await prepareBpfEnforcement(options.policies);
  const thread = await BpfThread.start({
    policies: options.policies,
    wrappers,
    storePath: options.storePath ?? defaultStorePath(),
    trace: options.trace,
  });
  try {
    const ended = thread.ended(0);
    await thread.watch(0, pid);
    return await ended;
  } finally {
    await thread.stop();
  }
}
