/**
 * The fleet's bucket behind authorization (red team rt7 F5): on a server without it, any process that reaches the
 * server — an ordinary user's, a program the daemon wraps — writes the bucket and so every host's policies (the
 * control below does it). With `token_file` (a root-only file) the daemon connects and takes a deny from the bucket,
 * while a client without the token is refused; a token file other users may read is refused, naming it.
 *
 * @module
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { connect } from "@nats-io/transport-node";
import { Kvm } from "@nats-io/kv";
import { idwrap } from "../helpers.ts";
import { startDaemon, waitFor } from "./daemon_helpers.ts";
import { freePort, NATS_SERVER, sayIfSkipped, startNats } from "../outputs/nats_helpers.ts";
import { natsAuthOptions } from "../../host/outputs/nats_auth.ts";

sayIfSkipped("tests/daemon/nats_auth_test.ts");

const BUCKET = "idwrap-policies";

/**
 * What an attacker's process does (rt7 F5's PoC): speaks NATS by hand, with no credentials, publishes a policy into
 * the bucket's subject, and asks for an acknowledgement (PING). Returns what the server said.
 */
async function rawPublish(port: number, subject: string, payload: string): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const bytes = new TextEncoder().encode(payload);
  await conn.write(
    new TextEncoder().encode(`CONNECT {"verbose":false,"pedantic":false}\r\nPUB ${subject} ${bytes.length}\r\n`),
  );
  await conn.write(new Uint8Array([...bytes, 13, 10, ...new TextEncoder().encode("PING\r\n")]));
  let said = "";
  const buf = new Uint8Array(4096);
  const until = Date.now() + 5000;
  while (Date.now() < until && !/PONG|-ERR/.test(said)) {
    const n = await conn.read(buf).catch(() => null);
    if (n === null) break;
    said += new TextDecoder().decode(buf.subarray(0, n));
  }
  conn.close();
  return said;
}

Deno.test({
  name: "fleet: with a token the daemon takes the bucket's deny; a client without it cannot write the bucket",
  ignore: !NATS_SERVER,
  sanitizeResources: false,
  sanitizeOps: false,
}, async () => {
  const dir = await scratchDir({ prefix: "idwrap-nats-auth-" });
  await Deno.chmod(dir, 0o755);
  const secret = `${dir}/secret.txt`;
  await Deno.writeTextFile(secret, "the secret\n");
  const deny =
    `version: 1\nname: fleet-deny\nrules:\n  - id: deny-secret\n    syscalls: [openat]\n    path: ${secret}\n` +
    "    action: deny\n    errno: EACCES\n";
  const servers: Deno.ChildProcess[] = [];
  try {
    // The control: an anonymous server takes an anonymous client's write to the bucket.
    const open = freePort();
    servers.push(await startNats(open, `${dir}/js-open`));
    const anon = await connect({ servers: `nats://127.0.0.1:${open}` });
    const openKv = await new Kvm(anon).create(BUCKET);
    assert((await rawPublish(open, `$KV.${BUCKET}.policies.lifted`, "version: 1\nname: lifted\n")).includes("PONG"));
    assertEquals((await openKv.get("policies.lifted"))?.string(), "version: 1\nname: lifted\n");
    await anon.close();

    const token = "t0ken-" + crypto.randomUUID();
    const port = freePort();
    servers.push(await startNats(port, `${dir}/js-auth`, ["--auth", token]));
    const url = `nats://127.0.0.1:${port}`;
    const said = await rawPublish(port, `$KV.${BUCKET}.policies.lifted`, "version: 1\nname: lifted\n");
    assert(/-ERR 'Authorization Violation'/.test(said), said);

    const tokenFile = `${dir}/nats.token`;
    await Deno.writeTextFile(tokenFile, `${token}\n`);
    await Deno.chmod(tokenFile, 0o644);
    let refused = "";
    try {
      natsAuthOptions({ tokenFile });
    } catch (e) {
      refused = (e as Error).message;
    }
    assert(refused.includes(`${tokenFile} may be read by other users (mode 0644)`), refused);
    await Deno.chmod(tokenFile, 0o600);

    const admin = await connect({ servers: url, ...natsAuthOptions({ tokenFile }) });
    const kv = await new Kvm(admin).create(BUCKET);
    const config = `${dir}/daemon.yaml`;
    await Deno.writeTextFile(config, `fleet:\n  url: ${url}\n  bucket: ${BUCKET}\n  token_file: ${tokenFile}\n`);
    const d = await startDaemon(["--config", config, "--no-watch"]);
    try {
      const rev = await kv.put("policies.deny-secret", deny);
      await waitFor(
        "the fleet's deny in force",
        () => d.log().includes(`fleet: policies.deny-secret revision ${rev} in force`) || undefined,
      );
      const r = await idwrap(["run", "--", "/bin/cat", secret], { env: d.env });
      assert(r.code !== 0 && !r.stdout.includes("the secret"), `cat read the file: ${r.stdout}${r.stderr}`);
      // The bucket never took the anonymous write.
      assertEquals(await kv.get("policies.lifted"), null);
    } finally {
      await d.stop();
      await admin.close();
    }
  } finally {
    for (const s of servers) {
      s.kill("SIGKILL");
      await s.status;
    }
    await Deno.remove(dir, { recursive: true });
  }
});
