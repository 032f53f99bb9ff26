/**
 * The bpf transport under the source-neutral WSS (host/wss/supervisor.ts), on the real kernel: a real program
 * observed, the policy's rules matched on the programs' copies, lifecycle followed, sessions ended; and an interest
 * that would need a deny refused with the calls named.
 */
import { scratchDir } from "../../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert, throws as assertThrows } from "node:assert/strict";
import { join } from "node:path";
import type { EventSink } from "../../../host/decider.ts";
import type { HostEvent, LifecycleEvent, SyscallEvent } from "../../../host/events.ts";
import type { Policy, Rule } from "../../../host/policy/policy.ts";
import { RuleDecider } from "../../../host/policy/rule_decider.ts";
import { BpfTransport, compileInterest } from "../../../host/sources/bpf/transport.ts";
import { acceptLauncher } from "../../../host/sources/launch.ts";
import { launcherPath } from "../../../host/sources/launcher.ts";
import { buildInterest } from "../../../host/wss/interest.ts";
import { type Session, Wss } from "../../../host/wss/supervisor.ts";
import { compileC } from "../../../tools/build.ts";
import { ROOT } from "../../helpers.ts";

const FIXTURE = `${ROOT}build/tests/bpf_calls`;
await Deno.mkdir(`${ROOT}build/tests`, { recursive: true });
await compileC(`${ROOT}tests/sources/bpf/fixtures/calls.c`, FIXTURE);

class Collect implements EventSink {
  readonly wantsSyscalls = true;
  readonly events: HostEvent[] = [];
  emit(e: HostEvent): void {
    this.events.push(e);
  }
  flush(): void {}
  calls(): SyscallEvent[] {
    return this.events.filter((e): e is SyscallEvent => e.kind === "syscall");
  }
}

const alert = (id: string, syscalls: string[], path: string): Rule => ({
  id,
  syscalls,
  path,
  action: "alert",
  errno: 0,
});
const policyOf = (rules: Rule[], observe: string[]): Policy => ({
  name: "t",
  file: "t.yaml",
  observe,
  rules,
  wrappers: [],
});

/** Runs `command` under a WSS over the bpf transport until its session ends. */
async function underWss(policy: Policy, command: string[]) {
  const interest = buildInterest([policy], [], true);
  const source = new BpfTransport({ interest });
  const sink = new Collect();
  const wss = new Wss({ source, decider: new RuleDecider([policy]), sink, wrappers: [], interest, sweepMs: 200 });
  const dir = await scratchDir();
  const server = Deno.listen({ transport: "unix", path: join(dir, "launch.sock") });
  const child = new Deno.Command(await launcherPath(), {
    args: ["--no-filter", join(dir, "launch.sock"), "--", ...command],
    stdout: "null",
  }).spawn();
  const sessions: Session[] = [];
  const guard = setTimeout(() => wss.stop(), 30_000);
  try {
    const hs = await acceptLauncher(server, child, command[0]);
    server.close();
    wss.attach(1, hs.pid);
    await hs.go();
    await wss.run({
      untilIdle: true,
      idleMs: 5,
      idle: () => new Promise((r) => setTimeout(r, 0)),
      onSessionEnd: (s) => sessions.push(s),
    });
    return { status: await child.status, sink, sessions, lost: source.lost };
  } finally {
    clearTimeout(guard);
    wss.close();
  }
}

Deno.test("bpf transport under the WSS: rules match the copied paths, lifecycle is followed, the session ends", async () => {
  const dir = await scratchDir();
  const policy = policyOf([
    alert("hostname-read", ["openat"], "/etc/hostname"),
    // Control: a rule on a file the program never opens raises nothing, so the one above cannot pass by accident.
    alert("never-opened", ["openat"], "/etc/idwrap-never-opened"),
  ], ["mkdir"]);
  const r = await underWss(policy, [FIXTURE, "calls", `${dir}/d`]);
  assertEquals(r.status.code, 0);
  assertEquals(r.lost, 0);
  const alerted = r.sink.calls().filter((e) => e.alerts?.length);
  assertEquals(alerted.map((e) => [e.syscall, e.decoded.path, e.alerts]), [["openat", "/etc/hostname", [
    "hostname-read",
  ]]]);
  assertEquals(alerted[0].source, "bpf");
  assert(r.sink.calls().some((e) => e.syscall === "mkdir" && e.phase === "pre" && e.decoded.path === `${dir}/d`));
  // Observe-only: the calls were reported without waiting, and nothing was denied.
  assert(r.sink.calls().every((e) => !e.verdict || e.verdict === "allow"));
  const life = r.sink.events.filter((e): e is LifecycleEvent => e.kind !== "syscall" && "program" in e);
  const exec = life.find((e) => e.kind === "exec" && e.program.exe === FIXTURE);
  assert(exec, "no exec event for the fixture");
  const child = life.find((e) => e.kind === "spawn" && e.ppid === exec.pid);
  assert(child, "the fork was not followed");
  assertEquals(life.find((e) => e.kind === "exit" && e.pid === child.pid)?.exitCode, 7);
  assertEquals(r.sessions.map((s) => s.id), [1]);
});

Deno.test("bpf transport refuses an interest that would need a call held, naming the calls", () => {
  const deny: Rule = {
    id: "no-shadow",
    syscalls: ["openat", "unlink"],
    path: "/etc/shadow",
    action: "deny",
    errno: 13,
  };
  const interest = buildInterest([policyOf([deny], [])], [], false);
  assertThrows(
    () => new BpfTransport({ interest }),
    // open_by_handle_at: a path rule on opens covers the opens that take no path too (a handle to the file).
    /Cannot serve openat, unlink, open_by_handle_at on the bpf source: a rule or wrapper/,
  );
  // Control: the same calls only alerted on are served.
  const observed = compileInterest(buildInterest([policyOf([{ ...deny, action: "alert" }], [])], [], false));
  assert(observed.get(257)?.enter && observed.get(257)?.pathArg === 1);
});
