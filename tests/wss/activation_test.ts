/**
 * Activation on real processes: each criterion binds the wrapper to exactly
 * the processes it names, evaluated at every execve (the paper's WSS).
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { createHash } from "node:crypto";
import type { LifecycleEvent } from "../../host/events.ts";
import { ensureUser, reports, traced, writePolicy } from "../helpers.ts";
import { watToWasm, witnessWat, writeWasm } from "../runtime/wat.ts";

/** Raises one alert per instance, at idwrap_init: an instance exists iff the wrapper is bound. */
const witness = await writeWasm("witness", watToWasm(witnessWat("bound", "init")));

const dir = await scratchDir({ prefix: "idwrap-activation-" });
await Deno.chmod(dir, 0o755);
await Deno.writeTextFile(`${dir}/f.txt`, "f\n");

/** Runs `script` under the witness with these criteria; returns the exes of the processes it was bound to. */
async function boundPrograms(activate: string, script: string, flags: string[] = []): Promise<string[]> {
  const policy = await writePolicy(`wrappers:\n  - name: witness\n    module: ${witness}\n    activate: ${activate}\n`);
  const r = await traced("run", ["-p", policy, ...flags], ["/bin/sh", "-c", script]);
  assertEquals(r.code, 0, r.stderr);
  const exe = new Map<number, string>();
  for (const e of r.events) if (e.kind === "exec") exe.set(e.pid, (e as LifecycleEvent).program.exe);
  return reports(r.events, "alert").filter((a) => a.wrapper === "witness").map((a) => exe.get(a.pid) ?? "?").sort();
}

Deno.test("activate by program: a script running cat, ls, cat binds exactly the two cats", async () => {
  const bound = await boundPrograms("{ program: /usr/bin/cat }", `cat ${dir}/f.txt; ls ${dir}; cat ${dir}/f.txt`);
  assertEquals(bound, ["/usr/bin/cat", "/usr/bin/cat"]);
});

Deno.test("activate by invoking user: only the process a real other user runs", async () => {
  const uid = await ensureUser("idwrap-alice");
  const bound = await boundPrograms(
    "{ user: idwrap-alice }",
    `setpriv --reuid=${uid} --regid=${uid} --clear-groups /bin/cat ${dir}/f.txt; /bin/cat ${dir}/f.txt`,
  );
  assertEquals(bound, ["/usr/bin/cat"]); // one cat (alice's), not root's
});

Deno.test("activate by the set-user-ID bit: only the set-uid copy", async () => {
  await Deno.copyFile("/bin/cat", `${dir}/suid-cat`);
  await Deno.chmod(`${dir}/suid-cat`, 0o4755);
  await Deno.copyFile("/bin/cat", `${dir}/plain-cat`);
  await Deno.chmod(`${dir}/plain-cat`, 0o755);
  const bound = await boundPrograms("{ setuid: true }", `${dir}/plain-cat ${dir}/f.txt; ${dir}/suid-cat ${dir}/f.txt`);
  assertEquals(bound, [`${dir}/suid-cat`]);
});

Deno.test("activate by content hash: only the program with that sha256", async () => {
  const sha = createHash("sha256").update(await Deno.readFile("/usr/bin/true")).digest("hex");
  const bound = await boundPrograms(`{ sha256: "${sha}" }`, `/bin/cat ${dir}/f.txt; /usr/bin/true; /bin/ls ${dir}`);
  assertEquals(bound, ["/usr/bin/true"]);
});

Deno.test("deactivate: everything but ls", async () => {
  const policy = `{ all: true }\n    deactivate: { program: /usr/bin/ls }`;
  const bound = await boundPrograms(policy, `/bin/cat ${dir}/f.txt; /bin/ls ${dir}`);
  assertEquals(bound, ["/usr/bin/cat", "/usr/bin/dash"]);
});

Deno.test("activate by content hash: a binary rewritten in place with its mtime put back no longer matches", async () => {
  // An executable with 16 bytes of trailing padding (ignored when run): the attack rewrites the last one in place,
  // so device, inode, size and (restored with touch -r) mtime all stay what the cache saw.
  const exe = `${dir}/hashed-true`, ref = `${dir}/hashed-true.mtime`;
  const bytes = await Deno.readFile("/usr/bin/true");
  const padded = new Uint8Array(bytes.length + 16);
  padded.set(bytes);
  await Deno.writeFile(exe, padded, { mode: 0o755 });
  const sha = createHash("sha256").update(padded).digest("hex");
  // Old enough to be cached (a file changed in the last seconds is always re-hashed).
  const old = new Date(Date.now() - 60_000);
  await Deno.utime(exe, old, old);
  await new Promise((r) => setTimeout(r, 2100));
  await Deno.writeFile(ref, new Uint8Array());
  await Deno.utime(ref, old, old);
  const rewrite = `printf '\\001' | dd of=${exe} bs=1 seek=${padded.length - 1} conv=notrunc status=none`;
  // The file is hashed while its process is held (seccomp, kmod, the hybrid): bpf alone, which IDWRAP_AUTO_SOURCE=bpf
  // picks for this observing wrapper, serves the first exec after the script has rewritten the file (docs/bpf.md).
  const held = Deno.env.get("IDWRAP_AUTO_SOURCE") === "bpf" ? ["--source", "hybrid"] : [];
  const bound = await boundPrograms(
    `{ sha256: "${sha}" }`,
    `${exe}; ${rewrite}; touch -r ${ref} ${exe}; ${exe}`,
    held,
  );
  // Control: the rewrite kept what the old cache key looked at.
  const after = await Deno.stat(exe);
  assertEquals([after.size, after.mtime?.getTime()], [padded.length, old.getTime()]);
  assertEquals((await Deno.readFile(exe)).at(-1), 1);
  assertEquals(bound, [exe]); // the first run only
});
