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

Deno.test("idwrap run --source hybrid: an open of the supervisor's /proc/PID/mem is refused when only an alert rule examines opens (rt6 F1)", async () => {
  const policy = await writePolicy(`version: 1
name: alert-only
rules:
  - id: cred-read
    syscalls: [open, openat, openat2]
    path: /etc/shadow
    action: alert
`);
  const decoy = new Deno.Command("sleep", { args: ["120"], stdout: "null", stderr: "null" }).spawn();
  try {
    const hybrid = (target: string) =>
      run(IDWRAP, ["run", "--source", "hybrid", "-p", policy, "--", TAMPER, "procmem", target]);
    // Controls: root opens another process's memory for writing, unwrapped (its parent: this test) and wrapped (a decoy).
    const bare = await run(TAMPER, ["procmem", "parent"]);
    assertEquals(bare.stdout, "procmem: 0\n", bare.stderr);
    const onDecoy = await hybrid(String(decoy.pid));
    assertEquals(onDecoy.code, 0, onDecoy.stderr);
    assertEquals(onDecoy.stdout, "procmem: 0\n", onDecoy.stderr);
    // The attack: the supervisor's own memory.
    const r = await hybrid("parent");
    assertEquals(r.code, 0, r.stderr);
    assertEquals(r.stdout, "procmem: EPERM\n", `the open reached the supervisor's memory:\n${r.stdout}${r.stderr}`);
    assert(r.stderr.includes(`[${TAMPER_ALERT}]`), `no ${TAMPER_ALERT} report:\n${r.stderr}`);
  } finally {
    decoy.kill("SIGKILL");
    await decoy.status;
  }
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
