/**
 * The supervisor's /proc entries reached by other strings than /proc/PID (red-team findings F1 and F4, issue 13
 * item 4): root with CAP_SYS_ADMIN mounts a second procfs or bind-mounts /proc/PID (or /proc/PID/mem) and opens the
 * supervisor's mem there (F1); a policy that makes opens wait but examines none for this process (activation-scoped
 * wrappers) let an open of /proc/PID/mem through unread (F4). Each attack runs under idwrap against a decoy first
 * (the control: it works wrapped), then against the supervisor (refused, reported). tests/progs/procmount.c and
 * tests/progs/tamper.c are the attackers.
 */
import { scratchDir } from "../../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { ensureUser, IDWRAP, idwrapAsUser, prog, run, writePolicy } from "../../helpers.ts";

const PROCMOUNT = prog("procmount");
const TAMPER = prog("tamper");
const TAMPER_ALERT = "idwrap.supervisor-tamper";

/** A policy whose only wrapper is scoped to a program that never runs: opens wait, nothing examines them. */
const SCOPED = await writePolicy(`version: 1
name: scoped
wrappers:
  - name: httpd
    settings:
      docroot: [/var/www]
      ports: [80]
      upstreams: []
      response: deny
    activate:
      program: nginx
`);

await Deno.chmod(SCOPED.slice(0, SCOPED.lastIndexOf("/")), 0o755);
await Deno.chmod(SCOPED, 0o644);

/** `idwrap run` (the default policy unless `policy`) of `command`. */
function wrapped(command: string[], policy?: string) {
  return run(IDWRAP, ["run", ...(policy ? ["-p", policy] : []), "--", ...command]);
}

/**
 * `command` aimed at a decoy the tree starts (`sleep`): a process outside the tree is refused for another reason
 * (idwrap.outside-tree, tests/sources/seccomp/ptrace_outside_test.ts), so the control's decoy lives in the tree.
 */
function onDecoyInTree(command: (target: string) => string[]): string[] {
  const words = command("TARGET").map((w) => w === "TARGET" ? "$!" : `'${w.replaceAll("'", "'\\''")}'`);
  return ["/bin/sh", "-c", `sleep 60 & sleep 0.2; ${words.join(" ")}; kill $!`];
}

/** The attack worked on the decoy, and was refused and reported on the supervisor. */
async function attack(command: (target: string) => string[], opened: RegExp, policy?: string): Promise<void> {
  const control = await wrapped(onDecoyInTree(command), policy);
  assert(opened.test(control.stdout), `the attack should work on a decoy:\n${control.stdout}${control.stderr}`);
  const r = await wrapped(command("parent"), policy);
  assertEquals(r.code, 0, r.stderr);
  assert(!opened.test(r.stdout), `the attack reached the supervisor's memory:\n${r.stdout}${r.stderr}`);
  assert(/EPERM/.test(r.stdout), r.stdout);
  assert(r.stderr.includes(`[${TAMPER_ALERT}]`), `no ${TAMPER_ALERT} report:\n${r.stderr}`);
}

for (const how of ["proc", "bind", "bind-mem"]) {
  for (const [label, policy] of [["the default policy", undefined], ["a scoped policy", SCOPED]] as const) {
    Deno.test(`root cannot open the supervisor's mem through a ${how} mount (${label}); a decoy's mem opens`, async () => {
      const dir = await scratchDir({ prefix: "idwrap-procmount-" });
      try {
        await attack((target) => [PROCMOUNT, how, `${dir}/mnt`, target], /^mem: 0$/m, policy);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    });
  }
}

Deno.test("under a policy that examines no open, /proc/PID/mem of the supervisor stays refused (root)", async () => {
  await attack((target) => [TAMPER, "procmem", target], /^procmem: 0$/m, SCOPED);
});

Deno.test("… and as root without CAP_SYS_ADMIN", async () => {
  const noAdmin = ["setpriv", "--inh-caps=-sys_admin", "--bounding-set=-sys_admin", "--"];
  await attack((target) => [...noAdmin, TAMPER, "procmem", target], /^procmem: 0$/m, SCOPED);
});

Deno.test("an ordinary user's opens keep the hot path (nothing examines them), and the kernel keeps it out of the supervisor's mem", async () => {
  const uid = await ensureUser("idwrap-alice");
  const home = await scratchDir({ prefix: "idwrap-procfs-user-" });
  await Deno.chmod(home, 0o755);
  const asUser = (target: string) =>
    idwrapAsUser(uid, `${home}/home`, ["run", "-p", SCOPED, "--", TAMPER, "procmem", target]);
  const decoy = new Deno.Command("setpriv", {
    args: [`--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "sleep", "120"],
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    while (!(await Deno.readTextFile(`/proc/${decoy.pid}/status`)).match(/^Name:\s*sleep$/m)) {
      await new Promise((r) => setTimeout(r, 10));
    }
    const control = await asUser(String(decoy.pid));
    assert(/^procmem: 0$/m.test(control.stdout), `the user's own process:\n${control.stdout}${control.stderr}`);
    const r = await asUser("parent");
    assertEquals(r.code, 0, r.stderr);
    assert(/^procmem: (EACCES|EPERM)$/m.test(r.stdout), `the supervisor's mem:\n${r.stdout}${r.stderr}`);
    // Refused by the kernel (the supervisor is non-dumpable), not by the guard: the open took the hot path.
    assert(!r.stderr.includes(`[${TAMPER_ALERT}]`), r.stderr);
  } finally {
    decoy.kill("SIGKILL");
    await decoy.status;
    await Deno.remove(home, { recursive: true });
  }
});
