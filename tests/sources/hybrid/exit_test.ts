/**
 * The hybrid holds exit and exit_group (host/sources/hybrid/hybrid.ts, HELD_EXITS), so that a process's records still
 * in the ring are served while it exists. Without that, an observed call made just before a process exits was served
 * after the process was gone: a wrapper's wr_stat (/proc/PID/root) failed and mailstat lost the binmail attack's first
 * step (found by running tests/attacks/binmail_test.ts with IDWRAP_AUTO_SOURCE=bpf), and a late kill (seq, Com_id)
 * came after imapish had exited by itself (tests/attacks/imapd_test.ts, "4.1 with the real Seq_id").
 *
 * The attack: a process of nobody's makes root's mailbox in the spool set-uid (chmod 4777, its last call before it exits), then
 * binmailish (the mailer) appends to it and chowns it to root. Control in the same test: the seccomp source, where
 * every call mailstat watches waits, raises the alert.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import type { HostEvent, WrapperReport } from "../../../host/events.ts";
import { IDWRAP, parseJsonLines, prog, ROOT } from "../../helpers.ts";
import { scratchDir } from "../../temp.ts";

const dir = await scratchDir({ prefix: "idwrap-hybrid-exit-" });
await Deno.chmod(dir, 0o755); // nobody reaches the spool

/** Runs `command` under `idwrap run --source SOURCE --json` with the case's policy and store. */
async function under(source: string, base: string, command: string[], input = ""): Promise<HostEvent[]> {
  const out = `${base}/events-${crypto.randomUUID()}.jsonl`;
  const child = new Deno.Command(IDWRAP, {
    args: ["run", "--source", source, "--json", "-o", out, "-p", `${base}/policy.yaml`, "--", ...command],
    env: { IDWRAP_STORE: `${base}/store.kv` },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(input));
  await w.close();
  const r = await child.output();
  assertEquals(r.code, 0, new TextDecoder().decode(r.stderr));
  return parseJsonLines(await Deno.readTextFile(out));
}

Deno.test({
  name: "hybrid: a call made just before the process exits is served while it exists (mailstat's wr_stat, binmail)",
  ignore: Deno.uid() !== 0,
  fn: async () => {
    for (const source of ["seccomp", "hybrid"]) {
      const base = `${dir}/${source}`;
      await Deno.mkdir(`${base}/spool`, { recursive: true });
      await Deno.chmod(base, 0o755);
      await Deno.chmod(`${base}/spool`, 0o1777);
      const yaml = (await Deno.readTextFile(`${ROOT}policies/mailstat.yaml`))
        .replace("spool: /var/spool/mail", `spool: ${JSON.stringify(`${base}/spool`)}`);
      await Deno.writeTextFile(`${base}/policy.yaml`, yaml);
      const box = `${base}/spool/root`;
      // chmod's fchmodat is its last call: observed (mailstat only alerts on it), through the ring on the hybrid.
      // As nobody: binmailish gives the mailbox to root only when root does not own it.
      const asNobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "--"];
      await under(source, base, [...asNobody, "/bin/sh", "-c", `echo '#!/bin/sh' > ${box} && chmod 4777 ${box}`]);
      const events = await under(source, base, [prog("binmailish"), `${base}/spool`, "root"], "Subject: hi\n\nhi\n");
      const alerts = events.filter((e): e is WrapperReport => e.kind === "alert");
      assertEquals(alerts.map((a) => [a.wrapper, a.severity, a.syscall]), [["mailstat", 4, "fchown"]], source);
      assert(alerts[0].message.includes("made set-uid by pid"), alerts[0].message);
      assert(events.some((e) => e.source === source), `${source}: no event of that source`);
    }
  },
});

Deno.test("hybrid exit: clean up", async () => {
  await Deno.remove(dir, { recursive: true });
});
