/**
 * Path exceptions and the calls that change a file by path, on real processes under the seccomp source (red team
 * rt6 F5b, F8). A path in `except`/`not` exempts a file by name only when the file has no other name: a hard link of
 * the protected file into the exempt directory is still the protected file. And a rule on a file covers the calls
 * that change it by path — truncate(2), rename over it (its target), O_TMPFILE + linkat onto its name, unlink —
 * not only the opens. Each run has its control: the same commands unwrapped change the file.
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { ensureUser, idwrapAsUser, run, traced } from "../helpers.ts";

async function setup(): Promise<string> {
  const dir = await scratchDir({ prefix: "idwrap-path-exc-" });
  await Deno.mkdir(`${dir}/uploads`);
  await Deno.writeTextFile(`${dir}/secret`, "orig\n");
  return dir;
}

function exceptionPolicy(dir: string): string {
  return `name: protect-with-upload-exception
rules:
  - id: secret-write
    syscalls: [open, openat, openat2, creat]
    path: "${dir}/secret"
    flags: write
    except:
      - name: uploads
        fields: path
        values: ["${dir}/uploads/**"]
    action: deny
    errno: EACCES
  - id: writes-outside-out
    syscalls: [open, openat, openat2, creat]
    flags: write
    path: "${dir}/**"
    not: { path: "${dir}/uploads/**" }
    action: deny
    errno: EACCES
`;
}

// Links the protected file into uploads/, writes through the link; then writes a new upload (the exception).
const LINK_ATTACK =
  "ln secret uploads/x && { echo VIA-LINK > uploads/x; echo link=$?; }; echo new > uploads/new; echo new=$?";

Deno.test("a path exception does not exempt the protected file hard-linked into the exempt directory", async () => {
  const dir = await setup();
  try {
    // Control: unwrapped, the write through the link changes the secret.
    const bare = await new Deno.Command("/bin/sh", { args: ["-c", LINK_ATTACK], cwd: dir }).output();
    assertEquals(new TextDecoder().decode(bare.stdout), "link=0\nnew=0\n");
    assertEquals(await Deno.readTextFile(`${dir}/secret`), "VIA-LINK\n");
    await Deno.remove(`${dir}/uploads`, { recursive: true });
    await Deno.mkdir(`${dir}/uploads`);
    await Deno.writeTextFile(`${dir}/secret`, "orig\n");
    // Another file outside uploads/, linked in: not exempt by `not` either (a rule with no literal path).
    await Deno.writeTextFile(`${dir}/other`, "other\n");

    const file = `${dir}/policy.yaml`;
    await Deno.writeTextFile(file, exceptionPolicy(dir));
    const script = `${LINK_ATTACK}; ln other uploads/o && { echo VIA-O > uploads/o; echo o=$?; }`;
    const r = await traced("run", ["--source", "seccomp", "-p", file], ["/bin/sh", "-c", script], dir);
    assertEquals(r.stdout, "link=2\nnew=0\no=2\n", r.stderr);
    assertEquals(await Deno.readTextFile(`${dir}/secret`), "orig\n");
    assertEquals(await Deno.readTextFile(`${dir}/other`), "other\n");
    assertEquals(await Deno.readTextFile(`${dir}/uploads/new`), "new\n"); // the exception still holds
    assert(r.events.some((e) => e.kind === "syscall" && e.alerts?.includes("secret-write")), r.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a path exception does not exempt a hard link of the protected file, as an ordinary user", async () => {
  const uid = await ensureUser("idwrap-alice");
  const dir = await setup();
  try {
    await Deno.chmod(dir, 0o755);
    for (const f of ["", "/uploads", "/secret"]) await Deno.chown(`${dir}${f}`, uid, uid);
    const file = `${dir}/policy.yaml`;
    await Deno.writeTextFile(file, exceptionPolicy(dir));
    await Deno.chmod(file, 0o644);
    const script = `cd ${dir} && ${LINK_ATTACK}`;
    const r = await idwrapAsUser(uid, `${dir}/home`, [
      "run",
      "--source",
      "seccomp",
      "-p",
      file,
      "--",
      "/bin/sh",
      "-c",
      script,
    ]);
    assertEquals(r.stdout, "link=2\nnew=0\n", r.stderr);
    assertEquals(await Deno.readTextFile(`${dir}/secret`), "orig\n");
    // Control, as the same user unwrapped: the write through the link changes the secret.
    await Deno.remove(`${dir}/uploads`, { recursive: true });
    await Deno.mkdir(`${dir}/uploads`);
    await Deno.chown(`${dir}/uploads`, uid, uid);
    const bare = await run("setpriv", [
      `--reuid=${uid}`,
      `--regid=${uid}`,
      "--clear-groups",
      "--",
      "/bin/sh",
      "-c",
      script,
    ]);
    assertEquals(bare.stdout, "link=0\nnew=0\n", bare.stderr);
    assertEquals(await Deno.readTextFile(`${dir}/secret`), "VIA-LINK\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

function protectPolicy(dir: string): string {
  return `version: 2
name: protect-a-file
rules:
  - id: secret-open-write
    syscalls: [open, openat, openat2, creat]
    path: "${dir}/secret"
    flags: write
    action: deny
    errno: EACCES
  - id: secret-change
    syscalls: [truncate, rename, renameat, renameat2, link, linkat, unlink, unlinkat]
    path: "${dir}/secret"
    action: deny
    errno: EACCES
`;
}

// truncate(2); rename a new file over it (its target); an O_TMPFILE file linked onto its name; unlink.
const CHANGES = `
import os, sys
d = sys.argv[1]
t = d + "/secret"
def attempt(name, f):
    try:
        f(); print(name, "ok")
    except OSError as e:
        print(name, e.errno)
attempt("truncate", lambda: os.truncate(t, 0))
open(d + "/new", "w").write("X3\\n")
attempt("rename", lambda: os.rename(d + "/new", t))
def tmpfile():
    fd = os.open(d, os.O_TMPFILE | os.O_WRONLY, 0o644)
    os.write(fd, b"X4\\n")
    dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)  # a dir fd: Python's os.link then calls linkat(2)
    os.link("/proc/self/fd/%d" % fd, "gone", dst_dir_fd=dfd, follow_symlinks=True)
    os.rename(d + "/gone", t)
attempt("tmpfile", tmpfile)
attempt("unlink", lambda: os.unlink(t))
`;

Deno.test("Protect a file: truncate, rename over it, O_TMPFILE + link and unlink are denied", async () => {
  const dir = await setup();
  try {
    const py = `${dir}/changes.py`;
    await Deno.writeTextFile(py, CHANGES);
    // Control: unwrapped, every change runs.
    const bare = await new Deno.Command("python3", { args: [py, dir] }).output();
    assertEquals(new TextDecoder().decode(bare.stdout), "truncate ok\nrename ok\ntmpfile ok\nunlink ok\n");
    await Deno.writeTextFile(`${dir}/secret`, "orig\n");

    const file = `${dir}/policy.yaml`;
    await Deno.writeTextFile(file, protectPolicy(dir));
    const r = await traced("run", ["--source", "seccomp", "-p", file], ["python3", py, dir]);
    assertEquals(r.stdout, "truncate 13\nrename 13\ntmpfile 13\nunlink 13\n", r.stderr);
    assertEquals(await Deno.readTextFile(`${dir}/secret`), "orig\n");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
