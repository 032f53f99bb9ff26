/**
 * In daemon mode, `idwrap run` writes what the daemon reports about its tree as it comes (within 100 ms), not when
 * 64 KiB have gathered or the tree ends: a service's journal shows an alert while the service runs.
 *
 * @module
 */
import { scratchDir } from "../temp.ts";
import { ok as assert } from "node:assert/strict";
import { IDWRAP } from "../helpers.ts";
import { startDaemon } from "./daemon_helpers.ts";

Deno.test("idwrap run under the daemon writes an alert while its tree still runs", async () => {
  const dir = await scratchDir({ prefix: "idwrap-run-output-" });
  await Deno.writeTextFile(`${dir}/watched.txt`, "w\n");
  const policy = `${dir}/alert.yaml`;
  await Deno.writeTextFile(
    policy,
    `rules:\n  - id: watched-open\n    syscalls: [openat]\n    path: ${dir}/watched.txt\n    action: alert\n`,
  );
  const d = await startDaemon(["--policy", policy, "--no-watch"]);
  try {
    const started = Date.now();
    const child = new Deno.Command(IDWRAP, {
      args: ["run", "--", "/bin/sh", "-c", `cat ${dir}/watched.txt >/dev/null; sleep 6`],
      env: d.env,
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    let exited = false;
    const status = child.status.then((s) => (exited = true, s));
    let text = "";
    let seenAt: number | undefined;
    let exitedWhenSeen = true;
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      text += chunk;
      if (seenAt === undefined && text.includes("watched-open")) {
        seenAt = Date.now() - started;
        exitedWhenSeen = exited;
      }
    }
    await status;
    assert(seenAt !== undefined, `no alert line at all:\n${text}`);
    assert(!exitedWhenSeen && seenAt < 5000, `the alert was written ${seenAt} ms in, after the tree ended:\n${text}`);
  } finally {
    await d.stop();
  }
});
