/**
 * A wrapped program must not drive a process outside its tree (rt9 F4): with no Yama (as here) or ptrace_scope 0, an
 * ordinary user's wrapped program could PTRACE_SEIZE its own unwrapped process, or write its memory with
 * process_vm_writev or /proc/PID/mem, and have it do what the policy denies the tree. Each attack: unwrapped it works on the outside
 * process (the control), wrapped it works on a process of the tree (the guard refuses only what leaves the tree), and
 * wrapped it is refused (EPERM, reported) on the outside process — as root and as an ordinary user on seccomp, as root
 * on the hybrid (an ordinary user cannot load its bpf programs). tests/progs/tamper.c is the attacker.
 */
import { ok as assert } from "node:assert/strict";
import { ensureUser, IDWRAP, idwrapAsUser, prog, run } from "../../helpers.ts";
import { scratchDir } from "../../temp.ts";

const TAMPER = prog("tamper");
const ATTACKS: [string, RegExp][] = [
  ["ptrace", /^ptrace: 0$/m],
  ["ptrace-thread", /^ptrace: 0$/m],
  ["vmread", /^vm: 0$/m],
  ["vmwrite", /^vm: 0$/m],
  ["procmem", /^procmem: 0$/m], // /proc/PID/mem opened for writing (the policy examines opens)
];

const dir = await scratchDir({ prefix: "idwrap-ptrace-outside-" });
await Deno.chmod(dir, 0o755);
const policy = `${dir}/policy.yaml`;
await Deno.writeTextFile(
  policy,
  `rules:\n  - { id: no-secret, syscalls: [open, openat], path: "${dir}/secret", action: deny, errno: EACCES }\n`,
);
await Deno.chmod(policy, 0o644);

function asUser(uid: number | undefined, cmd: string[]): string[] {
  return uid === undefined ? cmd : ["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", ...cmd];
}

function wrapped(source: string, command: string[], uid?: number) {
  const args = ["run", "--source", source, "-p", policy, "--", ...command];
  return uid === undefined ? run(IDWRAP, args) : idwrapAsUser(uid, `${dir}/home-${uid}`, args);
}

async function attackOutside(source: string, uid?: number): Promise<void> {
  const cmd = asUser(uid, ["sleep", "120"]);
  const outside = new Deno.Command(cmd[0], { args: cmd.slice(1), stdout: "null", stderr: "null" }).spawn();
  while (!(await Deno.readTextFile(`/proc/${outside.pid}/status`)).match(/^Name:\s*sleep$/m)) {
    await new Promise((r) => setTimeout(r, 10));
  }
  try {
    for (const [attack, worked] of ATTACKS) {
      const bare = await run(asUser(uid, [TAMPER])[0], [...asUser(uid, [TAMPER]).slice(1), attack, `${outside.pid}`]);
      assert(worked.test(bare.stdout), `${attack} unwrapped should work:\n${bare.stdout}${bare.stderr}`);
      const inTree = await wrapped(
        source,
        ["/bin/sh", "-c", `sleep 60 & sleep 0.2; ${TAMPER} ${attack} $!; kill $!`],
        uid,
      );
      assert(worked.test(inTree.stdout), `${attack} on the tree's own process:\n${inTree.stdout}${inTree.stderr}`);
      const r = await wrapped(source, [TAMPER, attack, `${outside.pid}`], uid);
      assert(!worked.test(r.stdout), `${attack} reached a process outside the tree:\n${r.stdout}${r.stderr}`);
      assert(/EPERM/.test(r.stdout), `${attack}: ${r.stdout}`);
      assert(r.stderr.includes(`of process ${outside.pid}, outside the wrapped tree`), `${attack}: ${r.stderr}`);
      assert(r.stderr.includes("[idwrap.outside-tree]"), `${attack}: ${r.stderr}`);
    }
  } finally {
    outside.kill("SIGKILL");
    await outside.status;
  }
}

for (const source of ["seccomp", "hybrid"]) {
  Deno.test(`${source}: a root program cannot ptrace or write the memory of a process outside its tree`, async () => {
    await attackOutside(source);
  });
  // The hybrid loads bpf programs: root's (CAP_BPF, CAP_PERFMON) alone.
  if (source === "seccomp") {
    Deno.test(`${source}: an ordinary user's program cannot drive its own process outside the tree`, async () => {
      await attackOutside(source, await ensureUser("idwrap-alice"));
    });
  }
}
