/**
 * The systemd units (packaging/idwrap.service, the .deb's; dist/systemd/idwrap.service, a checkout's): `systemctl
 * reload idwrap` runs ExecReload, `idwrap daemon --restart` with the options ExecStart gave, and the daemon re-executes
 * in place, so the unit's main pid stays and its trees are served on. systemd is not pid 1 here: each unit is checked
 * by `systemd-analyze verify` (with its paths pointed at this checkout), and its ExecStart and ExecReload lines are run
 * as systemd runs them (the environment variable split into words), the main pid watched across the reload.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { IDWRAP, ROOT, run } from "../helpers.ts";
import { DaemonClient, type Response } from "../../host/daemon/protocol.ts";
import { waitFor } from "./daemon_helpers.ts";
import { unitCommand } from "./unit_file.ts";
import { scratchDir } from "../temp.ts";

const UNITS = [`${ROOT}packaging/idwrap.service`, `${ROOT}dist/systemd/idwrap.service`];
const haveAnalyze = await Deno.stat("/usr/bin/systemd-analyze").then(() => true, () => false);

/** The unit's text with its installation's paths pointed into this checkout and `dir`. */
function localized(unit: string, dir: string): string {
  return unit
    .replaceAll("/usr/bin/idwrap", IDWRAP)
    .replaceAll("/opt/idwrap/idwrap", IDWRAP)
    .replaceAll("/etc/idwrap/default.yaml", `${ROOT}policies/default.yaml`)
    .replaceAll("/etc/idwrap/idwrap.yaml", `${dir}/idwrap.yaml`)
    .replaceAll("/run/idwrap", `${dir}/run`)
    .replaceAll("/var/lib/idwrap", `${dir}/lib`);
}

for (const path of UNITS) {
  const name = path.slice(ROOT.length);
  Deno.test({
    name: `${name}: systemd-analyze verify accepts it; a broken ExecReload is caught (the control)`,
    ignore: !haveAnalyze,
    async fn() {
      const dir = await scratchDir({ prefix: "idwrap-unit-" });
      try {
        const unit = localized(await Deno.readTextFile(path), dir);
        await Deno.writeTextFile(`${dir}/idwrap.service`, unit);
        const ok = await run("systemd-analyze", ["verify", `${dir}/idwrap.service`]);
        assertEquals(ok.code, 0, ok.stdout + ok.stderr);
        assert(!ok.stderr.includes("idwrap.service"), ok.stderr);
        const broken = unit.replace(/^ExecReload=\S+/m, "ExecReload=/nonexistent/idwrap");
        await Deno.writeTextFile(`${dir}/idwrap.service`, broken);
        const bad = await run("systemd-analyze", ["verify", `${dir}/idwrap.service`]);
        assert(bad.code !== 0 && bad.stderr.includes("/nonexistent/idwrap"), bad.stdout + bad.stderr);
      } finally {
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}

Deno.test("packaging/idwrap.service: its ExecReload restarts the daemon its ExecStart started, in place (same main pid)", async () => {
  const dir = await scratchDir({ prefix: "idwrap-unit-run-" });
  await Deno.mkdir(`${dir}/lib`);
  await Deno.writeTextFile(`${dir}/idwrap.yaml`, "outputs: []\n");
  const unit = localized(await Deno.readTextFile(UNITS[0]), dir);
  const start = unitCommand(unit, "ExecStart");
  const reload = unitCommand(unit, "ExecReload");
  assertEquals(reload.slice(0, 3), [IDWRAP, "daemon", "--restart"]);
  assertEquals(reload.slice(3), start.slice(2), "the reload names the options the start gave");
  const main = new Deno.Command(start[0], { args: start.slice(1), stdin: "null", stdout: "null", stderr: "piped" })
    .spawn();
  let log = "";
  const logged = (async () => {
    for await (const chunk of main.stderr) log += new TextDecoder().decode(chunk);
  })();
  const status = async () => {
    const c = await DaemonClient.connect(`${dir}/run`);
    const s = await c?.request<Extract<Response, { uptime: number }>>({ op: "status" }).catch(() => undefined);
    c?.close();
    return s;
  };
  try {
    await waitFor("the daemon", status, 60000);
    const tree = new Deno.Command(IDWRAP, {
      args: ["run", "--run-dir", `${dir}/run`, "--", "/bin/sh", "-c", `until [ -e ${dir}/go ]; do sleep 0.2; done`],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    await waitFor("the tree's session", async () => (await status())?.sessions === 1 || undefined, 30000);
    const r = await run(reload[0], reload.slice(1));
    assertEquals(r.code, 0, r.stderr + log);
    const after = await status();
    assertEquals(after?.pid, main.pid, "the unit's main pid serves after the reload");
    assert(log.includes(`restarted in place (pid ${main.pid}): serving the 1 sessions on`), log);
    await Deno.writeTextFile(`${dir}/go`, "");
    const t = await tree.output();
    assertEquals(t.code, 0, new TextDecoder().decode(t.stderr));
  } finally {
    main.kill("SIGTERM");
    await main.status;
    await logged;
    await Deno.remove(dir, { recursive: true });
  }
});
