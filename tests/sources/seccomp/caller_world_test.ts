/**
 * Emulation in the caller's world (issue 13, item 2): every call the
 * supervisor runs for a wrapped process gives what the kernel gives that
 * process natively — in its mount namespace (ENOENT for what the namespace
 * hides, writes landing in the namespace), with its capabilities (root that
 * dropped CAP_DAC_OVERRIDE reads no other user's 0600 file), as an ordinary
 * user. A table of calls × setups compares each wrapped result and the
 * resulting files with the native ones.
 */
import { scratchDir, scratchFile } from "../../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { ensureUser, exists, IDWRAP, run } from "../../helpers.ts";

const STRANGER = 12345;

/** A fresh fixture: F (alice's), a, b (alice's), hidden/h (root's), ro/x (a stranger's, 0700/0600). */
async function fixture(uid: number): Promise<string> {
  const f = await scratchDir({ prefix: "idwrap-world-" });
  await Deno.writeTextFile(`${f}/a`, "A\n");
  await Deno.writeTextFile(`${f}/b`, "B\n");
  await Deno.mkdir(`${f}/hidden`);
  await Deno.writeTextFile(`${f}/hidden/h`, "HOST\n");
  await Deno.mkdir(`${f}/ro`);
  await Deno.writeTextFile(`${f}/ro/x`, "X\n");
  for (const p of ["a", "b"]) await Deno.chmod(`${f}/${p}`, 0o644);
  await Deno.chmod(f, 0o755);
  await Deno.chmod(`${f}/hidden`, 0o777);
  await Deno.chmod(`${f}/ro`, 0o700);
  await Deno.chmod(`${f}/ro/x`, 0o600);
  for (const p of ["", "/a", "/b"]) await Deno.chown(`${f}${p}`, uid, uid);
  for (const p of ["/ro", "/ro/x"]) await Deno.chown(`${f}${p}`, STRANGER, STRANGER);
  return f;
}

/** Each step prints its exit status; reads print what they read. */
const SCRIPT = `
cd "$1"
r() { label=$1; shift; out=$("$@" 2>/dev/null); printf '%s %s %s\\n' "$label" "$?" "$out"; }
r read-a cat a
r read-abs cat "$1/a"
r read-hidden cat hidden/h
r read-hidden-abs cat "$1/hidden/h"
r read-other cat ro/x
r create sh -c 'echo new > n'
r create-hidden sh -c 'echo ns > hidden/w'
r read-created cat hidden/w
r create-hidden-abs sh -c 'echo ns2 > "$1/hidden/w2"' sh "$1"
r read-created-abs cat "$1/hidden/w2"
r create-other sh -c 'echo y > ro/y'
r mkdir mkdir d
r mkdir-hidden mkdir hidden/d
r rmdir rmdir d
r chmod chmod 600 a
r chown chown ${STRANGER} b
r symlink ln -s a s
r link ln b hl
r rename mv n n2
r unlink rm b
r unlink-other rm -f ro/x
r rename-other mv ro/x x2
r truncate-via-open sh -c ': > a'
`;

/** The fixture's files as the host sees them: name, mode, owner, size. */
async function state(f: string): Promise<string> {
  const r = await run("find", [f, "-mindepth", "1", "-printf", "%P %m %U %s\\n"]);
  return r.stdout.split("\n").sort().join("\n");
}

type Setup = { name: string; wrap: (script: string[]) => string[] };

const policyDir = await scratchDir({ prefix: "idwrap-world-policy-" });
const policy = `${policyDir}/policy.yaml`;
// Every call of the table examined (so emulated), by a rule that denies nothing the table does.
await Deno.writeTextFile(
  policy,
  `rules:\n  - id: examine\n    syscalls: ["%file"]\n    path: /nonexistent/protected\n    action: deny\n    errno: EACCES\n`,
);
await Deno.chmod(policyDir, 0o755);
await Deno.chmod(policy, 0o644);

async function setups(): Promise<Setup[]> {
  const uid = await ensureUser("idwrap-alice");
  return [
    { name: "root", wrap: (s) => s },
    {
      name: "root without CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER, CAP_CHOWN",
      wrap: (s) => ["setpriv", "--bounding-set=-dac_override,-dac_read_search,-fowner,-chown", "--", ...s],
    },
    {
      name: "an ordinary user",
      wrap: (s) => ["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "--", ...s],
    },
    {
      name: "a mount namespace hiding a directory (tmpfs over it)",
      wrap: (
        s,
      ) => [
        "unshare",
        "-m",
        "--",
        "sh",
        "-c",
        'd=$1; shift; mount -t tmpfs none "$d/hidden" && exec "$@"',
        "sh",
        s[2],
        ...s,
      ],
    },
  ];
}

for (const setup of await setups()) {
  Deno.test(`emulated calls give the native results: ${setup.name}`, async () => {
    const uid = await ensureUser("idwrap-alice");
    const script = await scratchFile({ suffix: ".sh" });
    await Deno.writeTextFile(script, SCRIPT);
    await Deno.chmod(script, 0o755);
    const native = await fixture(uid);
    const bare = await run(setup.wrap(["sh", script, native])[0], setup.wrap(["sh", script, native]).slice(1));
    const wrappedDir = await fixture(uid);
    const cmd = setup.wrap(["sh", script, wrappedDir]);
    const wrapped = await run(IDWRAP, ["run", "-p", policy, "--", ...cmd]);
    assert(bare.stdout.includes("read-a "), `the native run ran: ${bare.stderr}`);
    assertEquals(wrapped.stdout, bare.stdout, `results differ (native left, wrapped right)\n${wrapped.stderr}`);
    assertEquals(await state(wrappedDir), await state(native), "the files left differ");
  });
}

Deno.test("a file hidden by the caller's mount namespace is not read from the host; its write stays in it", async () => {
  const uid = await ensureUser("idwrap-alice");
  const f = await fixture(uid);
  const script = `mount -t tmpfs none ${f}/hidden && { cat ${f}/hidden/h; echo "cat=$?"; echo ns > ${f}/hidden/w; }`;
  const bare = await run("unshare", ["-m", "--", "sh", "-c", script]);
  assertEquals(bare.stdout, "cat=1\n", "natively the namespace hides the file");
  const r = await run(IDWRAP, ["run", "-p", policy, "--", "unshare", "-m", "--", "sh", "-c", script]);
  assertEquals(r.stdout, "cat=1\n", r.stderr);
  assert(!(await exists(`${f}/hidden/w`)), "a write meant for the namespace landed on the host");
});

Deno.test("root that dropped CAP_DAC_OVERRIDE cannot read another user's 0600 file through idwrap", async () => {
  const uid = await ensureUser("idwrap-alice");
  const f = await fixture(uid);
  const drop = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "--", "cat", `${f}/ro/x`];
  const full = await run("cat", [`${f}/ro/x`]);
  assertEquals(full.stdout, "X\n", "root with its capabilities reads it");
  const bare = await run(drop[0], drop.slice(1));
  assertEquals(bare.code, 1, "natively, without the capabilities, it cannot");
  const r = await run(IDWRAP, ["run", "-p", policy, "--", ...drop]);
  assertEquals(r.stdout, "");
  assert(r.stderr.includes("Permission denied"), r.stderr);
});

Deno.test("an unprivileged idwrap fails closed, saying why, for a caller in a user and mount namespace", async () => {
  const uid = await ensureUser("idwrap-alice");
  const home = await scratchDir({ prefix: "idwrap-world-home-" });
  await Deno.chown(home, uid, null);
  const f = await fixture(uid);
  const asAlice = ["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "--"];
  const inNs = ["unshare", "-Ur", "-m", "--", "cat", `${f}/a`];
  const bare = await run(asAlice[0], [...asAlice.slice(1), ...inNs]);
  if (bare.code !== 0) throw new Error(`unprivileged user namespaces are needed for this test: ${bare.stderr}`);
  const env = ["env", `HOME=${home}`, `DENO_DIR=${home}/deno`, `IDWRAP_STORE=${home}/store.kv`];
  const out = `${home}/trace.jsonl`;
  const r = await run(asAlice[0], [
    ...asAlice.slice(1),
    ...env,
    IDWRAP,
    "run",
    "--json",
    "-o",
    out,
    "-p",
    policy,
    "--",
    ...inNs,
  ]);
  assertEquals(r.stdout, "", "nothing is read in a world idwrap cannot enter");
  const events = (await Deno.readTextFile(out)).split("\n").filter(Boolean).map((l) => JSON.parse(l));
  // unshare's own first open in the new namespaces (its uid_map) is already refused.
  const refused = events.find((e) => e.syscall === "openat" && e.verdict !== "allow" && e.phase === "pre");
  assertEquals(refused?.verdict, "deny EPERM");
  assert(/cannot enter the caller's mount namespace/.test(refused?.reason ?? ""), JSON.stringify(refused));
});

Deno.test("capabilities a user holds in its own user namespace give nothing on the host's files through idwrap", async () => {
  const uid = await ensureUser("idwrap-alice");
  const f = await fixture(uid);
  await Deno.writeTextFile(`${f}/root-only`, "ROOT\n");
  await Deno.chmod(`${f}/root-only`, 0o600);
  // unshare -Ur: alice becomes root of a new user namespace (full CapEff there), which owns nothing of the host's.
  const cmd = ["setpriv", `--reuid=${uid}`, `--regid=${uid}`, "--clear-groups", "--", "unshare", "-Ur", "--"];
  const script = [...cmd, "sh", "-c", `cat ${f}/root-only; echo "rc=$?"; cat ${f}/a`];
  const bare = await run(script[0], script.slice(1));
  assertEquals(bare.stdout, "rc=1\nA\n", `natively: denied, and the namespace works: ${bare.stderr}`);
  const r = await run(IDWRAP, ["run", "-p", policy, "--", ...script]);
  assertEquals(r.stdout, bare.stdout, r.stderr);
});
