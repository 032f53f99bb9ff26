/**
 * `idwrap run --source hybrid` end to end on the real kernel: the CLI, the hybrid transport under the WSS on its own
 * thread, a deterministic program (fixtures/work.c). A deny rule holds (the file is not opened; unwrapped, it is) while
 * seq in detect mode, an observer that may kill late, watches every call through the ring and raises the same alerts
 * as on the seccomp source. An ordinary user cannot load the bpf programs: refused before the command runs (exit 2,
 * with why), while the seccomp source serves the same user and policy.
 */
import { scratchDir } from "../../temp.ts";
import { deepStrictEqual as assertEquals, match as assertMatch, ok as assert } from "node:assert/strict";
import type { WrapperReport } from "../../../host/events.ts";
import { compileC } from "../../../tools/build.ts";
import { calls, ensureUser, exists, idwrapAsUser, reports, ROOT, traced, writePolicy } from "../../helpers.ts";

const FIXTURE = `${ROOT}build/tests/hybrid_work`;
await Deno.mkdir(`${ROOT}build/tests`, { recursive: true });
await compileC(`${ROOT}tests/sources/hybrid/fixtures/work.c`, FIXTURE);

async function secretFile(): Promise<{ secret: string; made: string }> {
  const dir = await scratchDir({ prefix: "idwrap-hybrid-cli-" });
  await Deno.chmod(dir, 0o755);
  await Deno.writeTextFile(`${dir}/secret`, "s3cret\n");
  return { secret: `${dir}/secret`, made: `${dir}/made` };
}

Deno.test("idwrap run --source hybrid: a deny rule holds and seq (detect) sees every call as on seccomp", async () => {
  const { secret, made } = await secretFile();
  const bare = await new Deno.Command(FIXTURE, { args: ["work", secret, made], stdout: "piped" }).output();
  assertEquals(new TextDecoder().decode(bare.stdout), "secret: opened\n"); // control: unwrapped, it opens
  const policy = await writePolicy(`version: 1
name: hybrid-cli
rules:
  - id: no-secret
    syscalls: [open, openat]
    path: ${secret}
    action: deny
wrappers:
  - name: seq
    settings: { mode: detect, program: hybrid-cli-untrained-${crypto.randomUUID()}, threshold: 3 }
    activate: { program: ${FIXTURE} }
`);
  const runOn = async (source: string) => {
    const t = await traced("run", ["--source", source, "-p", policy], [FIXTURE, "work", secret, made]);
    assertEquals(t.code, 0, t.stderr);
    assertEquals(t.stdout, "secret: refused 1\n", `${source}: ${t.stderr}`);
    const denied = calls(t.events).filter((e) => e.verdict?.startsWith("deny") && e.decoded.path === secret);
    assertEquals(denied.map((e) => e.syscall), ["openat"], source);
    const seq = reports(t.events, "alert").filter((r: WrapperReport) => r.wrapper === "seq");
    return { t, seq };
  };
  const h = await runOn("hybrid");
  assert(h.seq.length >= 1, `seq did not alert on the hybrid source: ${h.t.stderr}`);
  assert(h.seq.every((r) => r.source === "hybrid"));
  const s = await runOn("seccomp");
  // The same windows in the same order: the same alerts (seq's messages name the mismatching windows).
  assertEquals(h.seq.map((r) => r.message), s.seq.map((r) => r.message));
});

Deno.test("idwrap run --source hybrid: an ordinary user is refused with why (exit 2); seccomp serves the same user", async () => {
  const uid = await ensureUser("idwrap-alice");
  const home = await scratchDir({ prefix: "idwrap-hybrid-alice-" });
  await Deno.chmod(home, 0o755);
  const { secret } = await secretFile();
  await Deno.chmod(secret, 0o644);
  const marker = `${home}/u/ran`, made = `${home}/u/made`; // where the user may write
  const policy = await writePolicy(
    `version: 1\nname: deny\nrules:\n  - id: no-secret\n    syscalls: [openat]\n    path: ${secret}\n    action: deny\n`,
  );
  await Deno.chmod(policy, 0o644);
  await Deno.chmod(policy.replace(/\/policy\.yaml$/, ""), 0o755);
  const command = ["/bin/sh", "-c", `: > ${marker}; ${FIXTURE} work ${secret} ${made}`];
  const refused = await idwrapAsUser(uid, `${home}/u`, ["run", "--source", "hybrid", "-p", policy, "--", ...command]);
  assertEquals(refused.code, 2, refused.stderr);
  assertMatch(refused.stderr, new RegExp(`hybrid source: uid ${uid} lacks CAP_BPF and CAP_PERFMON`));
  assert(!(await exists(marker)), "the command ran although the source was refused");
  // Control: the same user, policy and command on seccomp: it runs, and the deny holds.
  const served = await idwrapAsUser(uid, `${home}/u`, ["run", "--source", "seccomp", "-p", policy, "--", ...command]);
  assertEquals(served.code, 0, served.stderr);
  assert(await exists(marker));
  assertEquals(served.stdout, "secret: refused 1\n");
});
