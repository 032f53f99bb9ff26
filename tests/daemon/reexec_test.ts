/**
 * What `idwrap daemon --restart` may exec (host/daemon/reexec.ts `checkRestartCommand`): the files checked are the
 * files run. Red team rt10: F1, a symbolic link in a directory another user can write passed the check (its target was
 * root's) and was re-pointed before the exec; F2, a flag naming a file in a form the check skipped (`--preload=F`).
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { join } from "node:path";
import { checkRestartCommand } from "../../host/daemon/reexec.ts";
import { ROOT } from "../helpers.ts";
import { tempDir } from "../temp.ts";

const root = Deno.uid() === 0;
const deno = Deno.execPath();
const main = join(ROOT, "main.ts");

Deno.test({
  name: "restart: a runtime reached through a link another user could re-point is exec'd by its resolved path",
  ignore: !root,
  async fn() {
    await using open = await tempDir({ prefix: "idwrap-reexec-" });
    await Deno.chmod(open.path, 0o777);
    await Deno.symlink(deno, `${open.path}/deno`);
    await Deno.symlink(main, `${open.path}/main.ts`);
    const checked = checkRestartCommand({
      runtime: [`${open.path}/deno`, "run", "--allow-all", `${open.path}/main.ts`],
      args: ["daemon"],
    });
    assert("command" in checked, JSON.stringify(checked));
    // The links' targets, not the links: re-pointing them after the check changes nothing.
    assertEquals(checked.command.runtime, [Deno.realPathSync(deno), "run", "--allow-all", Deno.realPathSync(main)]);
  },
});

Deno.test({
  name: "restart: flags the check does not know (a file in --preload=F, --config=F) and relative files are refused",
  ignore: !root,
  fn() {
    for (const extra of ["--preload=/tmp/x.ts", "--config=/tmp/deno.json", "--import-map", "./main.ts", "-Afoo"]) {
      const checked = checkRestartCommand({ runtime: [deno, "run", extra, main], args: ["daemon"] });
      assert("why" in checked && checked.why.includes("neither a known flag nor an absolute path"), extra);
    }
    const noRun = checkRestartCommand({ runtime: [deno, "eval", main], args: ["daemon"] });
    assert("why" in noRun && noRun.why.includes(" run …"), JSON.stringify(noRun));
    const ok = checkRestartCommand({ runtime: [deno, "run", "--config", join(ROOT, "deno.json"), main], args: [] });
    assert("command" in ok, JSON.stringify(ok));
  },
});
