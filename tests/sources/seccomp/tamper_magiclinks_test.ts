/**
 * The supervisor's files reached through its /proc magic links (issue 13, item 4): /proc/PID/fd/N opens the file
 * behind the supervisor's fd N (its journal, its store, its pipes), /proc/PID/cwd/… and root/… walk from its
 * directories, exe and map_files/ open its program and mappings. Every alias is tried: the thread's own /proc/TID,
 * task/TID/, a second procfs mount, a dirfd of /proc or of task/, /dev/fd/D/…, /proc/self/../PID, a symbolic link to
 * /proc/PID/fd, openat2. Each runs under idwrap against a decoy that holds a file open (the control: it reads the
 * decoy's files wrapped), then against the supervisor: nothing read, refused and reported where the guard refused it.
 * As root, as root without CAP_SYS_ADMIN, as an ordinary user; under the default policy (opens examined, run in the
 * supervisor) and under an activation-scoped one (opens examined by nothing: tamper_procfs_test.ts's F4 hot path).
 * tests/progs/procwalk.c is the attacker.
 */
import { scratchDir } from "../../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { ensureUser, IDWRAP, idwrapAsUser, prog, type Ran, run, writePolicy } from "../../helpers.ts";

const PROCWALK = prog("procwalk");
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

/** Where the decoy and idwrap run (their cwd): a marker file the cwd/ walk reads. */
const DIR = await scratchDir({ prefix: "idwrap-magiclinks-" });
await Deno.chmod(DIR, 0o755);
await Deno.writeTextFile(`${DIR}/marker`, "the cwd's marker\n");
await Deno.chmod(`${DIR}/marker`, 0o644);

/** Attack → its argument (a directory of its own is made for mount and symlink). */
const ATTACKS: [string, string?][] = [
  ["fd"],
  ["tid"],
  ["task"],
  ["mount", "mnt"],
  ["dirfd"],
  ["taskdir"],
  ["devfd"],
  ["dotdot"],
  ["symlink", "."],
  ["openat2"],
  ["exe"],
  ["cwd", "marker"],
  ["root", "/etc/hostname"],
];

interface Attacker {
  label: string;
  /** setpriv (or nothing) before the attacker, inside the wrapped tree. */
  prefix: string[];
  uid?: number;
  /** Attacks this attacker cannot make even on a decoy (mount without CAP_SYS_ADMIN). */
  skip?: string[];
}

const NO_ADMIN = ["setpriv", "--inh-caps=-sys_admin", "--bounding-set=-sys_admin", "--"];

/** `idwrap run` (the default policy unless `policy`) of `command`, in DIR; as `uid` with its own store if given. */
function wrapped(command: string[], policy: string | undefined, uid?: number): Promise<Ran> {
  const args = ["run", ...(policy ? ["-p", policy] : []), "--", ...command];
  return uid === undefined
    ? run(IDWRAP, args, { cwd: DIR })
    : idwrapAsUser(uid, `${DIR}/home-${uid}`, args, { cwd: DIR });
}

/** A process holding DIR/marker open as fd 3, in DIR (as `uid` where given). */
async function decoy(uid?: number): Promise<Deno.ChildProcess> {
  const sh = ["sh", "-c", "exec sleep 120 3<marker"];
  const cmd = uid === undefined ? sh : ["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", ...sh];
  const child = new Deno.Command(cmd[0], { args: cmd.slice(1), cwd: DIR, stdout: "null", stderr: "null" }).spawn();
  // Until setpriv has become the user and sh exec'd sleep, the decoy is neither the user's nor holding the marker.
  while (!(await Deno.readTextFile(`/proc/${child.pid}/status`)).match(/^Name:\s*sleep$/m)) {
    await new Promise((r) => setTimeout(r, 10));
  }
  return child;
}

const field = (out: string, name: string) => out.match(new RegExp(`^${name}: (\\S+)$`, "m"))?.[1];

async function attackAll(attacker: Attacker, policy: string | undefined): Promise<void> {
  const target = await decoy(attacker.uid);
  const scratch = await scratchDir({ prefix: "idwrap-magiclinks-scratch-", dir: DIR });
  await Deno.chmod(scratch, 0o777);
  try {
    for (const [how, given] of ATTACKS) {
      if (attacker.skip?.includes(how)) continue;
      const arg = given === "mnt" ? `${scratch}/mnt-${how}` : given === "." ? scratch : given;
      const command = (pid: string) => [...attacker.prefix, PROCWALK, how, pid, ...(arg ? [arg] : [])];
      const control = await wrapped(command(String(target.pid)), policy, attacker.uid);
      assert(
        Number(field(control.stdout, "opened")) > 0 && Number(field(control.stdout, "bytes")) > 0,
        `${how} should read the decoy's files under idwrap:\n${control.stdout}${control.stderr}`,
      );
      const r = await wrapped(command("parent"), policy, attacker.uid);
      assertEquals(r.code, 0, `${how}: ${r.stderr}`);
      assertEquals(
        [field(r.stdout, "opened"), field(r.stdout, "bytes")],
        ["0", "0"],
        `${how} read the supervisor's files:\n${r.stdout}${r.stderr}`,
      );
      assert(/^first: (EPERM|EACCES)$/m.test(r.stdout), `${how}: ${r.stdout}`);
      // Refused by the guard (reported), or, for an ordinary user on the hot path, by the kernel (non-dumpable).
      if (/^first: EPERM$/m.test(r.stdout)) {
        assert(r.stderr.includes(`[${TAMPER_ALERT}]`), `${how}: refused but not reported:\n${r.stderr}`);
      }
    }
  } finally {
    target.kill("SIGKILL");
    await target.status;
    await Deno.remove(scratch, { recursive: true }).catch(() => {});
  }
}

const ATTACKERS = async (): Promise<Attacker[]> => [
  { label: "root", prefix: [] },
  { label: "root without CAP_SYS_ADMIN", prefix: NO_ADMIN, skip: ["mount"] },
  // An ordinary user can neither mount nor (the supervisor being non-dumpable) read another's fds: it must fail.
  { label: "an ordinary user", prefix: [], uid: await ensureUser("idwrap-alice"), skip: ["mount"] },
];

for (const [policyLabel, policy] of [["the default policy", undefined], ["a scoped policy", SCOPED]] as const) {
  for (const attacker of await ATTACKERS()) {
    Deno.test(`${attacker.label} reads nothing of the supervisor through its /proc magic links (${policyLabel}); a decoy's files are read`, async () => {
      await attackAll(attacker, policy);
    });
  }
}

/** The file-backed mappings of a process (the names in its map_files/). */
function mappings(pid: number): string[] {
  return [...Deno.readDirSync(`/proc/${pid}/map_files`)].map((e) => e.name);
}

/** procwalk map_files of `target` ("parent": idwrap itself, whose mappings are written once it runs). */
async function mapFiles(target: number | "parent", policy: string | undefined): Promise<string> {
  const ranges = `${DIR}/ranges-${crypto.randomUUID()}`;
  if (target !== "parent") await Deno.writeTextFile(ranges, mappings(target).join("\n") + "\n");
  const args = ["run", ...(policy ? ["-p", policy] : []), "--", PROCWALK, "map_files", "parent", ranges];
  if (target !== "parent") args.splice(args.indexOf("parent"), 1, String(target));
  const child = new Deno.Command(IDWRAP, { args, cwd: DIR, stdout: "piped", stderr: "piped" }).spawn();
  try {
    if (target === "parent") {
      // The idwrap script execs Deno: the child's pid is the supervisor's once its program is deno.
      while (!Deno.readLinkSync(`/proc/${child.pid}/exe`).includes("deno")) {
        await new Promise((r) => setTimeout(r, 20));
      }
      await new Promise((r) => setTimeout(r, 500)); // its libraries mapped
      await Deno.writeTextFile(`${ranges}.tmp`, mappings(child.pid).join("\n") + "\n");
      await Deno.rename(`${ranges}.tmp`, ranges);
    }
    const out = await child.output();
    const dec = new TextDecoder();
    return dec.decode(out.stdout) + dec.decode(out.stderr);
  } finally {
    await Deno.remove(ranges).catch(() => {});
  }
}

for (const [policyLabel, policy] of [["the default policy", undefined], ["a scoped policy", SCOPED]] as const) {
  Deno.test(`root opens none of the supervisor's mappings through map_files/ (${policyLabel}); a decoy's open`, async () => {
    const target = await decoy();
    try {
      const control = await mapFiles(target.pid, policy);
      assert(Number(field(control, "bytes")) > 0, `map_files should open a decoy's mappings:\n${control}`);
      const r = await mapFiles("parent", policy);
      assertEquals([field(r, "opened"), field(r, "bytes")], ["0", "0"], `the supervisor's mappings:\n${r}`);
      assert(/^first: EPERM$/m.test(r), r);
      assert(r.includes(`[${TAMPER_ALERT}]`), r);
    } finally {
      target.kill("SIGKILL");
      await target.status;
    }
  });
}

Deno.test("/proc/self in a path is the caller, never the supervisor that resolves it (root and an ordinary user)", async () => {
  // The emulation runs in idwrap's thread group: /proc/./self/fd/N, resolved there by the kernel, was idwrap's fd N.
  const uid = await ensureUser("idwrap-alice");
  for (const prefix of [[], ["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "--"]]) {
    const r = await wrapped([...prefix, PROCWALK, "self", "0", `${DIR}/marker`], undefined);
    assert(/^self: the cwd's marker$/m.test(r.stdout), `its own fd:\n${r.stdout}${r.stderr}`);
    assertEquals([field(r.stdout, "foreign"), field(r.stdout, "bytes")], ["0", "0"], r.stdout + r.stderr);
  }
});
