/**
 * Red-team findings on the daemon's control (rt6 F2, F3, F9): a wrapped root program administers the daemon through
 * a socket a since-exited child connected; a wrapped root program rewrites the daemon's policy file and the file
 * watch lifts its own deny; `status` hands a webhook's token to any user.
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { ensureUser, idwrap, prog, run } from "../helpers.ts";
import { startDaemon, waitFor } from "./daemon_helpers.ts";
import { redactUrls } from "../../host/outputs/transports.ts";

const dir = await scratchDir({ prefix: "idwrap-control-test-" });
await Deno.chmod(dir, 0o755);
await Deno.writeTextFile(`${dir}/target.txt`, "target\n");

const DENY_TARGET =
  `version: 1\nname: ctl\nrules:\n  - id: deny-target\n    syscalls: [openat]\n    path: ${dir}/target.txt\n` +
  `    action: deny\n    errno: EACCES\n`;

/** The answer line ctl_passed printed. */
function answer(out: string): { ok: boolean; error?: string; wrappers?: { name: string }[] } {
  const line = out.split("\n").find((l) => l.startsWith("{"));
  assert(line, `no answer in: ${out}`);
  return JSON.parse(line);
}

Deno.test("a wrapped root program cannot administer the daemon through a socket a child connected and left", async () => {
  const policy = `${dir}/passed.yaml`;
  await Deno.writeTextFile(policy, DENY_TARGET + "wrappers: [noop]\n");
  const d = await startDaemon(["--policy", policy]);
  const sock = `${d.runDir}/0.sock`;
  try {
    for (const req of [{ op: "unload", wrapper: "noop" }, { op: "reload" }, { op: "tail" }]) {
      // The attack: the child that connected has exited (and been reaped) before the request is sent.
      const attack = await idwrap(["run", "--", prog("ctl_passed"), sock, JSON.stringify(req)], { env: d.env });
      const a = answer(attack.stdout + attack.stderr);
      assertEquals(a.ok, false, `${req.op} from a wrapped tree through a passed socket: ${attack.stdout}`);
      assert(a.error?.includes("has exited"), a.error);
      // The wrapped tree connecting itself was refused before the fix too.
      const direct = await idwrap(["run", "--", prog("ctl_passed"), sock, JSON.stringify(req), "direct"], {
        env: d.env,
      });
      assertEquals(answer(direct.stdout).ok, false, direct.stdout);
    }
    const list = await idwrap(["wrappers", "list"], { env: d.env });
    assert(list.stdout.includes("noop"), list.stdout + list.stderr);
    // The control: the same request, unwrapped, connecting itself, is obeyed (the request is well-formed).
    const outside = await run(prog("ctl_passed"), [sock, JSON.stringify({ op: "unload", wrapper: "noop" }), "direct"]);
    const o = answer(outside.stdout);
    assertEquals(o.ok, true, outside.stdout);
    assertEquals(o.wrappers, []);
  } finally {
    await d.stop();
  }
});

Deno.test("by default a wrapped root program that rewrites the daemon's policy file does not lift its deny", async () => {
  const policy = `${dir}/rewrite.yaml`;
  await Deno.writeTextFile(policy, DENY_TARGET);
  const d = await startDaemon(["--policy", policy]);
  try {
    // The attack (rt6 F3): rewrite the policy, wait past the watch's poll and settle, then open the protected file.
    const script = `printf 'version: 1\\nname: ctl\\nrules: []\\n' > ${policy} && sleep 3 && cat ${dir}/target.txt`;
    const attack = await idwrap(["run", "--", "/bin/sh", "-c", script], { env: d.env });
    assertEquals(await Deno.readTextFile(policy), "version: 1\nname: ctl\nrules: []\n", "the rewrite happened");
    assert(attack.code !== 0 && !attack.stdout.includes("target"), attack.stdout + attack.stderr);
    assert(attack.stderr.includes("Permission denied"), attack.stderr);
    assert(!d.log().includes("reloading"), d.log());
  } finally {
    await d.stop();
  }
  // The control: with --watch (documented as letting a writer of the file change the policies) the same edit loads.
  await Deno.writeTextFile(policy, DENY_TARGET);
  const w = await startDaemon(["--policy", policy, "--watch"]);
  try {
    await Deno.writeTextFile(policy, "version: 1\nname: ctl\nrules: []\n");
    await waitFor("the watch to reload", () => w.log().includes("reloaded: ctl") || undefined);
    const after = await idwrap(["run", "--", "/bin/cat", `${dir}/target.txt`], { env: w.env });
    assertEquals(after.stdout, "target\n", after.stderr);
  } finally {
    await w.stop();
  }
});

Deno.test("redactUrls strips user, password, query and fragment from every URL in a message", () => {
  assertEquals(
    redactUrls("error sending request for url (http://u:pw@127.0.0.1:1/ingest?api_key=S3CR3T#x): refused"),
    "error sending request for url (http://<redacted>@127.0.0.1:1/ingest?<redacted>#<redacted>): refused",
  );
  assertEquals(redactUrls("https://siem.example/ingest: HTTP 503"), "https://siem.example/ingest: HTTP 503");
});

Deno.test("status shows outputs only to root outside the tree, and no output error holds the webhook's token", async () => {
  const aliceUid = await ensureUser("idwrap-alice");
  const policy = `${dir}/status.yaml`;
  await Deno.writeTextFile(
    policy,
    `version: 1\nname: st\nrules:\n  - id: watch-target\n    syscalls: [openat]\n    path: ${dir}/target.txt\n    action: alert\n`,
  );
  // A webhook that answers 503: the output's error names the URL (rt6 F9: with its token).
  const hook = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, async (req) => {
    await req.body?.cancel();
    return new Response("busy", { status: 503 });
  });
  const port = (hook.addr as Deno.NetAddr).port;
  const config = `${dir}/status-idwrap.yaml`;
  await Deno.writeTextFile(
    config,
    `outputs:\n  - type: webhook\n    name: siem\n    url: http://user:PASSW0RD@127.0.0.1:${port}/ingest?api_key=S3CR3T-TOKEN\n`,
  );
  const d = await startDaemon(["--policy", policy, "--config", config, "--allow", "idwrap-alice"]);
  try {
    const fired = await idwrap(["run", "--", "/bin/cat", `${dir}/target.txt`], { env: d.env });
    assertEquals(fired.code, 0, fired.stderr);
    const status = async () =>
      answer((await run(prog("ctl_passed"), [`${d.runDir}/0.sock`, '{"op":"status"}', "direct"])).stdout) as {
        outputs?: { name: string; lastError?: string }[];
      };
    const root = await waitFor("the webhook to fail", async () => {
      const s = await status();
      return s.outputs?.[0]?.lastError ? s : undefined;
    });
    const text = JSON.stringify(root) + d.log();
    assert(
      root.outputs?.[0].lastError?.includes(`<redacted>@127.0.0.1:${port}/ingest?<redacted>: HTTP 503`),
      JSON.stringify(root),
    );
    for (const secret of ["S3CR3T", "PASSW0RD"]) assert(!text.includes(secret), text);
    // An allowed user: no outputs at all.
    const alice = await run("setpriv", [
      `--reuid=${aliceUid}`,
      `--regid=${aliceUid}`,
      "--clear-groups",
      "--",
      prog("ctl_passed"),
      `${d.runDir}/${aliceUid}.sock`,
      '{"op":"status"}',
      "direct",
    ]);
    const a = answer(alice.stdout + alice.stderr) as { ok: boolean; outputs?: unknown };
    assertEquals(a.ok, true, alice.stdout);
    assertEquals(a.outputs, undefined, alice.stdout);
    // Root inside the wrapped tree: no outputs either.
    const inside = await idwrap(["run", "--", prog("ctl_passed"), `${d.runDir}/0.sock`, '{"op":"status"}', "direct"], {
      env: d.env,
    });
    const i = answer(inside.stdout) as { ok: boolean; outputs?: unknown };
    assertEquals(i.ok, true, inside.stdout);
    assertEquals(i.outputs, undefined, inside.stdout);
  } finally {
    await d.stop();
    await hook.shutdown();
  }
});
