/**
 * User and group names are resolved through NSS (getent), not by reading /etc/passwd (issue 17: LDAP and SSSD users
 * were unknown). For real: in a private mount namespace whose /etc/passwd and /etc/group lack `nobody` and
 * `nogroup`, a policy naming them still loads — glibc's NSS (here systemd's module, which synthesizes them) knows them,
 * as it would know an LDAP user. The control: the same namespace's files really lack them.
 */
import { scratchDir } from "../temp.ts";
import { ok as assert } from "node:assert/strict";
import { IDWRAP, run } from "../helpers.ts";

const nssSystemd = (() => {
  try {
    return /^(passwd|group):.*\bsystemd\b/m.test(Deno.readTextFileSync("/etc/nsswitch.conf")) &&
      ["/lib/x86_64-linux-gnu/libnss_systemd.so.2", "/usr/lib/x86_64-linux-gnu/libnss_systemd.so.2"].some((f) => {
        try {
          return Deno.statSync(f).isFile;
        } catch {
          return false;
        }
      });
  } catch {
    return false;
  }
})();

Deno.test({
  name: "policy names resolve through NSS: a user and a group only NSS knows (not in /etc/passwd or /etc/group)",
  ignore: Deno.uid() !== 0 || !nssSystemd,
  fn: async () => {
    const dir = await scratchDir({ prefix: "idwrap-nss-" });
    try {
      for (const [db, name] of [["passwd", "nobody"], ["group", "nogroup"]]) {
        const text = await Deno.readTextFile(`/etc/${db}`);
        await Deno.writeTextFile(`${dir}/${db}`, text.split("\n").filter((l) => !l.startsWith(`${name}:`)).join("\n"));
      }
      await Deno.writeTextFile(
        `${dir}/policy.yaml`,
        "version: 1\nname: nss\nwrappers:\n  - name: seq\n    activate: { user: nobody, group: nogroup, owner: nobody }\n",
      );
      const script = `mount --bind ${dir}/passwd /etc/passwd && mount --bind ${dir}/group /etc/group && ` +
        `echo "files: $(grep -c '^nobody:' /etc/passwd) $(grep -c '^nogroup:' /etc/group)" && ` +
        `${IDWRAP} policy check ${dir}/policy.yaml`;
      const r = await run("unshare", ["-m", "--propagation", "private", "sh", "-c", script]);
      assert(r.stdout.includes("files: 0 0"), `the namespace's files still name them:\n${r.stdout}${r.stderr}`);
      assert(r.code === 0, `policy check refused names NSS knows:\n${r.stdout}${r.stderr}`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
