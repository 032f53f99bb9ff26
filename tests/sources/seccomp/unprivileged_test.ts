/**
 * idwrap run by an ordinary user (no CAP_SYS_ADMIN): the launcher sets
 * no_new_privs, the supervisor emulates opens as that user, and a deny rule
 * still holds — as the README claims.
 */
import { scratchDir } from "../../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { ensureUser, IDWRAP, run } from "../../helpers.ts";

Deno.test("an ordinary user runs a command under idwrap standalone; rules hold and opens run as that user", async () => {
  const uid = await ensureUser("idwrap-alice");
  const home = await scratchDir({ prefix: "idwrap-unpriv-" });
  await Deno.chmod(home, 0o755);
  await Deno.writeTextFile(`${home}/ok.txt`, "ok\n");
  await Deno.writeTextFile(`${home}/denied.txt`, "denied\n");
  await Deno.writeTextFile(`${home}/root-only.txt`, "secret\n");
  await Deno.chmod(`${home}/ok.txt`, 0o644);
  await Deno.chmod(`${home}/denied.txt`, 0o644);
  await Deno.chmod(`${home}/root-only.txt`, 0o600); // root's: alice may not read it
  await Deno.writeTextFile(
    `${home}/policy.yaml`,
    `rules:\n  - { id: no, syscalls: [openat], path: "${home}/denied.txt", action: deny, errno: EACCES }\n`,
  );
  await Deno.chown(home, uid, null);
  const r = await run("setpriv", [
    `--reuid=${uid}`,
    `--regid=${uid}`,
    "--clear-groups",
    "--",
    "env",
    `HOME=${home}`,
    `DENO_DIR=${home}/deno`,
    `IDWRAP_STORE=${home}/store.kv`,
    IDWRAP,
    "run",
    "-p",
    `${home}/policy.yaml`,
    "--",
    "/bin/sh",
    "-c",
    `cat ${home}/ok.txt; cat ${home}/denied.txt; cat ${home}/root-only.txt; id -u`,
  ]);
  assertEquals(r.stdout, `ok\n${uid}\n`);
  assert(r.stderr.includes("denied.txt: Permission denied"), r.stderr);
  // Nothing is gained through the supervisor: root's file stays closed to alice.
  assert(r.stderr.includes("root-only.txt: Permission denied"), r.stderr);
  assert(r.stderr.includes("uid=" + uid), r.stderr);
});

Deno.test("under a root supervisor, an emulated open runs with the caller's credentials, not root's", async () => {
  const uid = await ensureUser("idwrap-alice");
  const dir = await scratchDir({ prefix: "idwrap-creds-" });
  await Deno.chmod(dir, 0o755);
  await Deno.writeTextFile(`${dir}/root-only.txt`, "secret\n");
  await Deno.chmod(`${dir}/root-only.txt`, 0o600);
  // Readable by group root: a caller with no supplementary group must not be given it (an empty "Groups:" line of
  // /proc/PID/status was once parsed as [NaN, tgid], and NaN became group 0).
  await Deno.writeTextFile(`${dir}/root-group.txt`, "group secret\n");
  await Deno.chmod(`${dir}/root-group.txt`, 0o640);
  await Deno.mkdir(`${dir}/alice`);
  await Deno.chown(`${dir}/alice`, uid, null);
  const made = `${dir}/alice/made`;
  const r = await run(IDWRAP, [
    "trace", // every open is emulated by the (root) supervisor
    "-o",
    `${dir}/trace.txt`,
    "--",
    "setpriv",
    `--reuid=${uid}`,
    `--regid=${uid}`,
    "--clear-groups",
    "/bin/sh",
    "-c",
    `umask 077; cat ${dir}/root-only.txt; cat ${dir}/root-group.txt; : > ${made}`,
  ]);
  assertEquals(r.stdout, "");
  assert(r.stderr.includes("root-only.txt: Permission denied"), r.stderr);
  assert(r.stderr.includes("root-group.txt: Permission denied"), r.stderr);
  // A file the caller creates is the caller's, with the caller's umask.
  const info = await Deno.stat(made);
  assertEquals([info.uid, info.mode! & 0o777], [uid, 0o600]);
});
