/**
 * rt9 F1 end to end (its PoC, syslog_poison.sh, as a test): a daemon with a UDP syslog output and a file output, an
 * exec alert rule whose message quotes argv, and an ordinary user's `/bin/echo` with 40 arguments of 1,000 × U+4E00.
 * Before the fix the record became a datagram over 64 KiB, sendto failed (EMSGSIZE) and the output retried it for good:
 * no later alert of any tree reached syslog. Now it goes out cut (marked truncated) and the later alerts follow.
 */
import { ok as assert } from "node:assert/strict";
import dgram from "node:dgram";
import { dirname } from "node:path";
import { ensureUser, idwrapAsUser } from "../helpers.ts";
import { startDaemon, waitFor } from "../daemon/daemon_helpers.ts";
import { scratchDir } from "../temp.ts";

Deno.test("daemon: one wrapped user's huge CJK argv does not silence the UDP syslog output; later alerts arrive", async () => {
  const uid = await ensureUser("idwrap-alice");
  const dir = await scratchDir({ prefix: "idwrap-syslog-poison-" });
  await Deno.chmod(dir, 0o755);
  const server = dgram.createSocket("udp4");
  const got: { size: number; marker?: string; truncated: boolean }[] = [];
  server.on("message", (m) => {
    const t = m.toString();
    got.push({
      size: m.length,
      marker: /rt9-marker-([a-z0-9]+)/.exec(t)?.[1],
      truncated: t.includes('"idwrap.truncated":true'),
    });
  });
  await new Promise<void>((r) => server.bind(0, "127.0.0.1", () => r()));
  const policy = `${dir}/alert.yaml`, config = `${dir}/idwrap.yaml`;
  await Deno.writeTextFile(
    policy,
    "rules:\n  - id: exec-alert\n    syscalls: [execve]\n    path: /bin/echo\n    action: alert\n",
  );
  await Deno.writeTextFile(
    config,
    `outputs:\n  - type: syslog\n    name: udp-syslog\n    address: 127.0.0.1:${server.address().port}\n` +
      `  - type: file\n    name: f\n    path: ${dir}/alerts.jsonl\n`,
  );
  await Deno.chmod(policy, 0o644);
  const d = await startDaemon(["--policy", policy, "--no-watch", "--config", config, "--allow", "idwrap-alice"]);
  const echo = (marker: string, pad: string[] = []) =>
    idwrapAsUser(uid, `${dir}/home`, ["run", "--", "/bin/echo", `rt9-marker-${marker}`, ...pad], { env: d.env });
  try {
    assert((await echo("before")).code === 0);
    await waitFor("the control's datagram", () => got.some((g) => g.marker === "before") || undefined);
    const poison = await echo("poison", Array.from({ length: 40 }, () => "\u4e00".repeat(1000)));
    assert(poison.code === 0, poison.stderr);
    for (const m of ["after1", "after2", "after3"]) assert((await echo(m)).code === 0);
    await waitFor("the later alerts", () => got.filter((g) => g.marker?.startsWith("after")).length === 3 || undefined);
    const cut = got.find((g) => g.marker === "poison");
    assert(cut && cut.truncated && cut.size <= 65_507, JSON.stringify(got));
  } finally {
    await d.stop();
    server.close();
    await Deno.remove(dir, { recursive: true });
    await Deno.remove(dirname(d.store), { recursive: true }); // the daemon's run dir and store
  }
});
