/**
 * Rules on the real object (issue 13, item 1): a deny rule on one file holds
 * against every alias of it — lexical tricks, relative paths, dirfds (also
 * O_PATH ones), symbolic and hard links, /proc/self/{root,cwd,fd/N} and
 * /dev/fd/N magic links, openat2 and open_by_handle_at — as root and as an
 * ordinary user, with a root and with an unprivileged supervisor. Each alias
 * first opens the file without idwrap (the attack is real).
 */
import { scratchDir } from "../../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { calls, ensureUser, IDWRAP, idwrapAsUser, prog, reports, run, traced, writePolicy } from "../../helpers.ts";

const dir = await scratchDir({ prefix: "idwrap-alias-" });
const other = await scratchDir({ prefix: "idwrap-alias-other-" });
const secret = `${dir}/secret.txt`;
await Deno.writeTextFile(secret, "SECRET\n");
await Deno.writeTextFile(`${dir}/public.txt`, "public\n");
await Deno.symlink(secret, `${other}/link`);
await Deno.link(secret, `${other}/hard`); // same filesystem (/tmp)
for (const d of [dir, other]) await Deno.chmod(d, 0o755);
await Deno.chmod(secret, 0o644);
await Deno.chmod(`${dir}/public.txt`, 0o644);
const policy = `${dir}/policy.yaml`;
await Deno.writeTextFile(
  policy,
  `rules:\n  - { id: no-secret, syscalls: [open, openat, openat2], path: "${secret}", action: deny, errno: EACCES }\n`,
);
await Deno.chmod(policy, 0o644);
const base = dir.split("/").pop()!;

/** label, the aliases program's arguments, cwd, root only (needs CAP_DAC_READ_SEARCH). */
const ALIASES: [string, string[], string?, boolean?][] = [
  ["the path itself", ["path", secret]],
  ["//doubled//slashes", ["path", secret.replaceAll("/", "//")]],
  ["/./", ["path", `${dir}/./secret.txt`]],
  ["/../", ["path", `${dir}/../${base}/secret.txt`]],
  ["relative, cwd the directory", ["path", "secret.txt"], dir],
  ["relative with ..", ["path", `../${base}/secret.txt`], other],
  ["openat on a dirfd", ["at", dir, "secret.txt"]],
  ["openat on an O_PATH dirfd", ["atpath", dir, "secret.txt"]],
  ["a symbolic link", ["path", `${other}/link`]],
  ["a hard link", ["path", `${other}/hard`]],
  ["/proc/self/root/…", ["path", `/proc/self/root${secret}`]],
  ["/proc/self/cwd/…", ["path", "/proc/self/cwd/secret.txt"], dir],
  ["/proc/thread-self/cwd/…", ["path", "/proc/thread-self/cwd/secret.txt"], dir],
  ["/dev/fd/N/… on a directory fd", ["devfd", dir, "secret.txt"]],
  ["/proc/self/fd/N/… on a directory fd", ["procfd", dir, "secret.txt"]],
  ["openat2", ["openat2", `${dir}/../${base}/secret.txt`]],
  ["open_by_handle_at", ["handle", secret], undefined, true],
];

/** The same ways to a file the rule does not cover: they must still work wrapped. */
const ALLOWED: [string, string[], boolean?][] = [
  ["openat on an O_PATH dirfd (EBADF before)", ["atpath", dir, "public.txt"]],
  ["/dev/fd/N/…", ["devfd", dir, "public.txt"]],
  ["/proc/self/fd/N/…", ["procfd", dir, "public.txt"]],
  ["open_by_handle_at", ["handle", `${dir}/public.txt`], true],
];

type Who = "root" | "user, root supervisor" | "user, unprivileged supervisor";

async function wrapped(who: Who, args: string[], cwd?: string) {
  const uid = await ensureUser("idwrap-alice");
  const asUser = ["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "--"];
  const cmd = [prog("aliases"), ...args];
  if (who === "root") return run(IDWRAP, ["run", "-p", policy, "--", ...cmd], { cwd });
  if (who === "user, root supervisor") return run(IDWRAP, ["run", "-p", policy, "--", ...asUser, ...cmd], { cwd });
  const home = await scratchDir({ prefix: "idwrap-alias-home-" });
  return idwrapAsUser(uid, home, ["run", "-p", policy, "--", ...cmd], { cwd });
}

async function native(who: Who, args: string[], cwd?: string) {
  const uid = await ensureUser("idwrap-alice");
  if (who === "root") return run(prog("aliases"), args, { cwd });
  return run("setpriv", [`--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "--", prog("aliases"), ...args], {
    cwd,
  });
}

for (const who of ["root", "user, root supervisor", "user, unprivileged supervisor"] as Who[]) {
  Deno.test(`a deny rule on a file holds against every alias of it (${who})`, async () => {
    const failures: string[] = [];
    for (const [label, args, cwd, rootOnly] of ALIASES) {
      if (rootOnly && who !== "root") continue; // an ordinary user cannot open by handle at all
      const bare = await native(who, args, cwd);
      assertEquals(bare.stdout, "read SECRET\n", `${label}: the alias must open the file without idwrap`);
      const r = await wrapped(who, args, cwd);
      if (r.stdout !== "errno 13\n") failures.push(`${label}: ${r.stdout.trim() || r.stderr.trim()}`);
    }
    assertEquals(failures, [], "aliases that reached the denied file");
  });

  Deno.test(`other files stay reachable the same ways (${who})`, async () => {
    for (const [label, args, rootOnly] of ALLOWED) {
      if (rootOnly && who !== "root") continue;
      const r = await wrapped(who, args);
      assertEquals(r.stdout, "read public\n", `${label}: ${r.stderr}`);
    }
  });
}

Deno.test("events carry the canonical path, the raw string and the file's identity", async () => {
  const r = await traced("run", ["-p", policy], [prog("aliases"), "path", `${other}/link`]);
  const denied = calls(r.events).filter((e) => e.verdict === "deny EACCES");
  const info = await Deno.stat(secret);
  assertEquals(denied.map((e) => [e.decoded.path, e.decoded.rawPath, e.decoded.ident]), [
    [secret, `${other}/link`, `${info.dev}:${info.ino}`],
  ]);
  // A hard link keeps its own name as its path: the identity is what the rule matched.
  const h = await traced("run", ["-p", policy], [prog("aliases"), "path", `${other}/hard`]);
  const byIdent = calls(h.events).filter((e) => e.verdict === "deny EACCES");
  assertEquals(byIdent.map((e) => [e.decoded.path, e.decoded.ident]), [[`${other}/hard`, `${info.dev}:${info.ino}`]]);
  assert(byIdent[0].alerts?.includes("no-secret"));
});

/** On openat, alerts "<path>|<raw path>|<ident>" (event_string fields 0, 7, 9). */
const SHOW_PATHS = `(module
  (import "idwrap" "declare_syscall" (func $d (param i32 i32) (result i32)))
  (import "idwrap" "event_string" (func $s (param i32 i32 i32) (result i32)))
  (import "idwrap" "alert" (func $alert (param i32 i32 i32)))
  (memory (export "memory") 1)
  (func (export "idwrap_abi_version") (result i32) (i32.const 0x00010000))
  (func (export "idwrap_declare") (result i32) (drop (call $d (i32.const 257) (i32.const 1))) (i32.const 0))
  (func $put (param $field i32) (param $at i32) (result i32) (local $n i32)
    (local.set $n (call $s (local.get $field) (local.get $at) (i32.const 1000)))
    (if (i32.lt_s (local.get $n) (i32.const 0)) (then (local.set $n (i32.const 0))))
    (i32.store8 (i32.add (local.get $at) (local.get $n)) (i32.const 124))
    (i32.add (i32.add (local.get $at) (local.get $n)) (i32.const 1)))
  (func (export "idwrap_on_syscall") (result i32) (local $end i32)
    (local.set $end (call $put (i32.const 0) (i32.const 0)))
    (local.set $end (call $put (i32.const 7) (local.get $end)))
    (local.set $end (call $put (i32.const 9) (local.get $end)))
    (call $alert (i32.const 1) (i32.const 0) (i32.sub (local.get $end) (i32.const 1)))
    (i32.const 0)))`;

Deno.test("wrappers read the canonical path, the raw string and the identity (event_string 0, 7, 9)", async () => {
  const { watToWasm, writeWasm } = await import("../../runtime/wat.ts");
  const wasm = await writeWasm("show_paths", watToWasm(SHOW_PATHS));
  const p = await writePolicy(`wrappers:\n  - { name: show, module: ${wasm} }\n`);
  const r = await traced("run", ["-p", p], ["/bin/cat", `${other}/link`]);
  assertEquals(r.stdout, "SECRET\n");
  const info = await Deno.stat(secret);
  const shown = reports(r.events, "alert").map((x) => x.message);
  assert(shown.includes(`${secret}|${other}/link|${info.dev}:${info.ino}`), shown.join("\n"));
});

Deno.test("an alert rule of brace alternatives (as the default credential-read) sees every alias, hard links included", async () => {
  const p = await writePolicy(
    `rules:\n  - { id: cred, syscalls: [open, openat, openat2], path: "{${dir}/nothing,${secret}}", action: alert }\n`,
  );
  const missed: string[] = [];
  for (const [label, args, cwd] of ALIASES) {
    const r = await traced("run", ["-p", p], [prog("aliases"), ...args], { cwd });
    assertEquals(r.stdout, "read SECRET\n", `${label}: an alert does not deny`);
    if (!calls(r.events).some((e) => e.alerts?.includes("cred"))) missed.push(label);
  }
  assertEquals(missed, [], "aliases the alert missed");
});
