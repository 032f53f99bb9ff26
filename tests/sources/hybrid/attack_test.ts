/**
 * Red-team rt6 attacks on `idwrap run --source hybrid`, each with a control that shows the attack works where nothing
 * stops it (so the test can fail), then the attack under the hybrid, refused:
 *  - F1: an open of /proc/<supervisor>/mem for writing under a policy whose only open rule alerts. The hybrid put such
 *    opens on the ring, where the tamper guard never saw them; it now holds every open the interest names on seccomp.
 *  - F4: a root program chroots into a jail holding a copy of itself at /usr/sbin/usermod and execs it there: the
 *    hybrid named it by the exec's path resolved in idwrap's root (the real usermod), so a rule's `except: program`
 *    let its write through. It is now named by /proc/PID/exe, as on seccomp: the jail's copy, denied. A copy that
 *    writes and exits before its exec record is read (only observed calls: the bpf source) is checked against the
 *    file identity the record carries and named "PATH (unverified)", so the exception does not hide its write.
 * And the read-only opens the hybrid leaves on its ring under the default policy (./landlock.ts): root in the tree
 * cannot open the supervisor's ptrace-checked /proc entries (mem, fd/N, cwd, root, exe) for reading either — the kernel
 * refuses them (the launcher's Landlock domain) — while its processes' own entries stay open to it; the baseline's
 * denies of write-opens still hold, and its read-only opens are observed without waiting (none emulated).
 * Root only: an ordinary user cannot load the hybrid's bpf programs (cli_test.ts) and cannot chroot.
 */
import { scratchDir } from "../../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import type { LifecycleEvent } from "../../../host/events.ts";
import { compileC } from "../../../tools/build.ts";
import { calls, IDWRAP, prog, ROOT, run, traced, writePolicy } from "../../helpers.ts";

const TAMPER = prog("tamper"); // tests/progs/tamper.c (deno task build)
const CHROOT_EXEC = `${ROOT}build/tests/hybrid_chroot_exec`;
await Deno.mkdir(`${ROOT}build/tests`, { recursive: true });
// Static: it runs inside a jail that holds nothing else.
await compileC(`${ROOT}tests/sources/hybrid/fixtures/chroot_exec.c`, CHROOT_EXEC, ["-static"]);
const TAMPER_ALERT = "idwrap.supervisor-tamper";
const PROCOPEN = `${ROOT}build/tests/hybrid_procopen`;
await compileC(`${ROOT}tests/sources/hybrid/fixtures/procopen.c`, PROCOPEN);
/** The supervisor's entries that reach its memory or its files, each checked by the kernel's ptrace access check. */
const PTRACE_CHECKED = ["mem", "fd/0", "fd/2", "cwd/.", "root/etc/hostname", "exe"];
const lines = (entries: string[], answer: string) => entries.map((e) => `${e}: ${answer}\n`).join("");

Deno.test("idwrap run --source hybrid: an open of the supervisor's /proc/PID/mem is refused when only an alert rule examines opens (rt6 F1)", async () => {
  const policy = await writePolicy(`version: 1
name: alert-only
rules:
  - id: cred-read
    syscalls: [open, openat, openat2]
    path: /etc/shadow
    action: alert
`);
  const hybrid = (...command: string[]) => run(IDWRAP, ["run", "--source", "hybrid", "-p", policy, "--", ...command]);
  // Controls: root opens another process's memory for writing, unwrapped (its parent: this test) and wrapped (a decoy
  // in the tree: one outside it is refused as idwrap.outside-tree, tests/sources/seccomp/ptrace_outside_test.ts).
  const bare = await run(TAMPER, ["procmem", "parent"]);
  assertEquals(bare.stdout, "procmem: 0\n", bare.stderr);
  const onDecoy = await hybrid("/bin/sh", "-c", `sleep 60 & sleep 0.2; ${TAMPER} procmem $!; kill $!`);
  assertEquals(onDecoy.code, 0, onDecoy.stderr);
  assertEquals(onDecoy.stdout, "procmem: 0\n", onDecoy.stderr);
  // The attack: the supervisor's own memory.
  const r = await hybrid(TAMPER, "procmem", "parent");
  assertEquals(r.code, 0, r.stderr);
  assertEquals(r.stdout, "procmem: EPERM\n", `the open reached the supervisor's memory:\n${r.stdout}${r.stderr}`);
  assert(r.stderr.includes(`[${TAMPER_ALERT}]`), `no ${TAMPER_ALERT} report:\n${r.stderr}`);
});

Deno.test("idwrap run --source hybrid: a chrooted copy exec'd at /usr/sbin/usermod is named by its file, not the path (rt6 F4)", async () => {
  const dir = await scratchDir({ prefix: "idwrap-hybrid-chroot-" });
  const jail = `${dir}/jail`, fake = `${jail}/usr/sbin/usermod`, secret = `${dir}/secret`;
  await Deno.mkdir(`${jail}/usr/sbin`, { recursive: true });
  await Deno.copyFile(CHROOT_EXEC, fake);
  await Deno.chmod(fake, 0o755);
  const policy = await writePolicy(`version: 1
name: protect-secret
rules:
  - id: secret-write
    syscalls: [open, openat, openat2, creat]
    path: ${secret}
    flags: write
    except:
      - name: password_tools
        fields: program
        values: [/usr/sbin/usermod, /usr/bin/passwd]
    action: deny
    errno: EACCES
`);
  const command = [CHROOT_EXEC, jail, "/usr/sbin/usermod", dir, "secret"];
  const written = async () => (await Deno.readTextFile(secret)).includes("SPOOFED");
  // Control: unwrapped, the copy writes the file.
  await Deno.writeTextFile(secret, "s3cret\n");
  const bare = await run(command[0], command.slice(1));
  assertEquals(bare.stdout, "payload (/usr/sbin/usermod) write: opened\n", bare.stderr);
  assert(await written());
  for (const source of ["seccomp", "hybrid"]) {
    await Deno.writeTextFile(secret, "s3cret\n");
    const t = await traced("run", ["--source", source, "-p", policy], command);
    assertEquals(t.code, 0, t.stderr);
    assertEquals(t.stdout, "payload (/usr/sbin/usermod) write: refused 13\n", `${source}: ${t.stderr}`);
    assert(!(await written()), `${source}: the jail's usermod wrote the protected file`);
    const execs = t.events.filter((e): e is LifecycleEvent => e.kind === "exec").map((e) => e.program.exe);
    assert(execs.includes(fake), `${source}: the jail's copy is not named by its file: ${execs.join(", ")}`);
    assert(!execs.includes("/usr/sbin/usermod"), `${source}: named as the real usermod: ${execs.join(", ")}`);
  }
});

Deno.test("idwrap run --source bpf (the hybrid's ring): a chrooted copy gone before its exec record is read is not named /usr/sbin/usermod (rt6 F4)", async () => {
  const dir = await scratchDir({ prefix: "idwrap-bpf-chroot-" });
  const jail = `${dir}/jail`, fake = `${jail}/usr/sbin/usermod`, secret = `${dir}/secret`;
  await Deno.mkdir(`${jail}/usr/sbin`, { recursive: true });
  await Deno.copyFile(CHROOT_EXEC, fake);
  await Deno.chmod(fake, 0o755);
  await Deno.writeTextFile(secret, "s3cret\n");
  // Only observed calls: nothing holds the copy, which writes and exits before the ring's exec record is read (its
  // dirfd-relative path cannot be resolved by then: the rule names no path, only the program's exception).
  const policy = await writePolicy(`version: 1
name: watch-writes
rules:
  - id: secret-write
    syscalls: [open, openat, openat2, creat]
    flags: write
    except:
      - name: password_tools
        fields: program
        values: [/usr/sbin/usermod]
    action: alert
`);
  const command = [CHROOT_EXEC, jail, "/usr/sbin/usermod", dir, "secret"];
  const t = await traced("run", ["--source", "bpf", "-p", policy], command);
  assertEquals(t.code, 0, t.stderr);
  assertEquals(t.stdout, "payload (/usr/sbin/usermod) write: opened\n", t.stderr);
  const execs = t.events.filter((e): e is LifecycleEvent => e.kind === "exec").map((e) => e.program.exe);
  assert(!execs.includes("/usr/sbin/usermod"), `named as the real usermod: ${execs.join(", ")}`);
  const alerted = calls(t.events).filter((e) => e.alerts?.includes("secret-write"));
  assert(alerted.length >= 1, `the jail's usermod met the exception: ${execs.join(", ")}`);
});

Deno.test("idwrap run --source hybrid, the default policy: root's read-only opens of the supervisor's mem, fd/N, cwd, root, exe are refused by the kernel while its opens skip the round trip", async () => {
  const entries = [...PTRACE_CHECKED];
  // Control: unwrapped, root opens every one of them in its parent (this test).
  const bare = await run(PROCOPEN, ["parent", ...entries]);
  assertEquals(bare.stdout, lines(entries, "opened"), bare.stderr);
  // The attack, under the default policy (no -p), on the hybrid: the kernel refuses them all (Landlock's ptrace scope).
  const t = await traced("run", ["--source", "hybrid"], [PROCOPEN, "parent", ...entries]);
  assertEquals(t.code, 0, t.stderr);
  assertEquals(t.stdout, lines(entries, "EACCES"), `the tree reached the supervisor:\n${t.stdout}${t.stderr}`);
  // ... and the opens left the seccomp path: none was held and run by the supervisor (the loader's, these six).
  assertEquals(t.summary?.emulated, 0, `opens held on seccomp: ${JSON.stringify(t.summary)}`);
  // The tree's own processes stay open to it: a child of the program, in the same domain.
  const own = await traced("run", ["--source", "hybrid"], [PROCOPEN, "child", "mem", "fd/0"]);
  assertEquals(own.stdout, lines(["mem", "fd/0"], "opened"), own.stderr);
  // Without the domain (IDWRAP_HYBRID_LANDLOCK=0) every open is held again, and the tamper guard refuses them.
  const held = await traced("run", ["--source", "hybrid"], [PROCOPEN, "parent", ...entries], {
    env: { IDWRAP_HYBRID_LANDLOCK: "0" },
  });
  assertEquals(held.stdout, lines(entries, "EPERM"), held.stderr);
  assert((held.summary?.emulated ?? 0) > 0, `no open held without the domain: ${JSON.stringify(held.summary)}`);
});

Deno.test("idwrap run --source hybrid, the default policy: the baseline's write-open deny holds and its read-only opens are observed through the ring", async () => {
  const preload = "/etc/ld.so.preload";
  try {
    await Deno.stat(preload);
    throw new Error(`${preload} exists on this machine: the test would not show a deny`);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const script = `(: >> ${preload}); echo "preload: $?"; cat /etc/shadow > /dev/null; echo "shadow: $?"`;
  try {
    const t = await traced("run", ["--source", "hybrid"], ["/bin/sh", "-c", script]);
    assertEquals(t.code, 0, t.stderr);
    // The write-open is held (DENY | WRITES) and denied before it runs: the file never exists.
    assertEquals(t.stdout, "preload: 2\nshadow: 0\n", t.stderr);
    const denied = calls(t.events).filter((e) => e.decoded.path === preload && e.verdict?.startsWith("deny"));
    assertEquals(denied.length, 1, `no deny of ${preload}: ${t.stderr}`);
    // The read of /etc/shadow ran unheld and was still seen: the baseline's and the policy's credential-read alerts.
    const shadow = calls(t.events).filter((e) => e.decoded.path === "/etc/shadow");
    assert(shadow.some((e) => e.alerts?.some((a) => a.includes("credential-read"))), `no alert: ${t.stderr}`);
    // Only the write-opens were held (the shell's redirection and the deny): cat's and the loader's read-opens were not.
    assert((t.summary?.emulated ?? 99) <= 1, `read-only opens held on seccomp: ${JSON.stringify(t.summary)}`);
  } finally {
    await Deno.remove(preload).catch(() => {});
  }
});
