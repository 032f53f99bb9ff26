/**
 * The rule language on real processes under the seccomp source, as root and
 * as an ordinary user: an open for writing outside a directory is denied
 * while reads of the same file run (`flags` + `not`), only for the user the
 * rule's `scope` names, and not for a program its `except` lists. Each run
 * has its control: the same commands unwrapped write the file.
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { ensureUser, exists, idwrapAsUser, parseJsonLines, run, traced } from "../helpers.ts";

function policy(dir: string, uid: number): string {
  return `version: 2
name: writes
rules:
  - id: write-outside-out
    syscalls: [open, openat, openat2, creat]
    flags: write
    not: { path: "${dir}/out/**" }
    scope: { user: ${uid} }
    except:
      - name: trusted
        fields: [program, path]
        values: [[cp, "${dir}/data/**"]]
    action: deny
    errno: EACCES
`;
}

/** Reads a file, writes into out/ and beside it, then cp writes beside it (the exception). */
function script(dir: string): string {
  return `cat ${dir}/data/in.txt; echo a > ${dir}/out/a.txt; echo b >> ${dir}/data/in.txt; echo rc=$?; ` +
    `cp ${dir}/data/in.txt ${dir}/data/copy.txt; echo cp=$?`;
}

async function setup(owner: number): Promise<string> {
  const dir = await scratchDir({ prefix: "idwrap-conditions-live-" });
  for (const sub of ["", "/out", "/data"]) {
    await Deno.mkdir(`${dir}${sub}`, { recursive: true });
    await Deno.chmod(`${dir}${sub}`, 0o755);
    await Deno.chown(`${dir}${sub}`, owner, owner);
  }
  await Deno.writeTextFile(`${dir}/data/in.txt`, "in\n");
  await Deno.chown(`${dir}/data/in.txt`, owner, owner);
  return dir;
}

// dash reports a redirection it cannot open with status 2 (and "Permission denied": EACCES).
const FLAGGED = "in\nrc=2\ncp=0\n";

Deno.test("flags + not + except + scope on real processes, as root: writes outside out/ denied, reads run", async () => {
  const dir = await setup(0);
  try {
    // Control: unwrapped, the append beside out/ succeeds.
    const bare = await run("/bin/sh", ["-c", script(dir)]);
    assertEquals(bare.stdout, "in\nrc=0\ncp=0\n");
    await Deno.writeTextFile(`${dir}/data/in.txt`, "in\n");
    await Deno.remove(`${dir}/data/copy.txt`);

    const file = `${dir}/policy.yaml`;
    await Deno.writeTextFile(file, policy(dir, 0));
    const r = await traced("run", ["-p", file], ["/bin/sh", "-c", script(dir)]);
    assertEquals(r.stdout, FLAGGED, r.stderr);
    assert(r.stderr.includes("Permission denied"), r.stderr);
    assertEquals(await Deno.readTextFile(`${dir}/data/in.txt`), "in\n"); // the append never happened
    assertEquals(await Deno.readTextFile(`${dir}/out/a.txt`), "a\n");
    assert(await exists(`${dir}/data/copy.txt`), "cp, the exception, was denied");
    const denied = r.events.filter((e) => e.kind === "syscall" && e.alerts?.includes("write-outside-out"));
    assertEquals(denied.length, 1);

    // Out of scope: the rule names another user, so root's writes run.
    await Deno.writeTextFile(file, policy(dir, 4242424));
    await Deno.remove(`${dir}/data/copy.txt`);
    const other = await traced("run", ["-p", file], ["/bin/sh", "-c", script(dir)]);
    assertEquals(other.stdout, "in\nrc=0\ncp=0\n", other.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("flags + not + except + scope on real processes, as an ordinary user", async () => {
  const uid = await ensureUser("idwrap-alice");
  const dir = await setup(uid);
  try {
    const file = `${dir}/policy.yaml`;
    await Deno.writeTextFile(file, policy(dir, uid));
    await Deno.chmod(file, 0o644);
    const out = `${dir}/events.jsonl`;
    const r = await idwrapAsUser(uid, `${dir}/home`, [
      "run",
      "--json",
      "-o",
      out,
      "-p",
      file,
      "--",
      "/bin/sh",
      "-c",
      script(dir),
    ]);
    assertEquals(r.stdout, FLAGGED, r.stderr);
    assert(r.stderr.includes("Permission denied"), r.stderr);
    assertEquals(await Deno.readTextFile(`${dir}/data/in.txt`), "in\n");
    const events = parseJsonLines(await Deno.readTextFile(out));
    assertEquals(events.filter((e) => e.kind === "syscall" && e.alerts?.includes("write-outside-out")).length, 1);
    // Control, as the same user unwrapped: the append runs.
    const bare = await run("setpriv", [
      `--reuid=${uid}`,
      `--regid=${uid}`,
      "--clear-groups",
      "--",
      "/bin/sh",
      "-c",
      script(dir),
    ]);
    assertEquals(bare.stdout, "in\nrc=0\ncp=0\n", bare.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
