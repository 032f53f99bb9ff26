/**
 * The .deb (tools/package.ts) on a clean Debian 12 root (./chroot.ts), not on this machine: dpkg -i, then the CLI
 * from the package as root and as an ordinary user, the module's source in DKMS, a reinstall that keeps an edited
 * conffile, and purge. Versions agree across the CLI, the package and dkms.conf.
 *
 * @module
 */
import assert from "node:assert/strict";
import { buildPackage, dkmsVersion } from "../../tools/package.ts";
import { VERSION } from "../../host/version.ts";
import { ROOT, run } from "../helpers.ts";
import { Chroot } from "./chroot.ts";
import { unitCommand } from "../daemon/unit_file.ts";

let deb: string | undefined;
/** Built once per run, from what `deno task build` made. */
async function theDeb(): Promise<string> {
  deb ??= await buildPackage();
  return deb;
}

const show = (r: { code: number; stdout: string; stderr: string }) =>
  `exit ${r.code}\nstdout:\n${r.stdout.slice(-6000)}\nstderr:\n${r.stderr.slice(-4000)}`;

/** The one output line of doctor's check `feature`, with its status. */
function doctorLine(out: string, feature: string): string | undefined {
  return out.split("\n").find((l) => l.slice(5).startsWith(`${feature} `));
}

Deno.test("package: the .deb's version is the CLI's, dkms.conf's, and the module's series", async () => {
  const file = await theDeb();
  assert.ok(file.endsWith(`/build/idwrap_${VERSION}_amd64.deb`), file);
  const control = await run("dpkg-deb", ["-f", file, "Version", "Package", "Architecture"]);
  assert.equal(control.stdout, `Version: ${VERSION}\nPackage: idwrap\nArchitecture: amd64\n`);
  assert.equal(dkmsVersion(Deno.readTextFileSync(`${ROOT}kmod/dkms.conf`)), VERSION);
  // The module reports its release series (major.minor) in /proc/idwrap and modinfo.
  const series = Deno.readTextFileSync(`${ROOT}kmod/idwrap.h`).match(/#define IDWRAP_VERSION\s+"([^"]+)"/)?.[1];
  assert.equal(series, VERSION.split(".").slice(0, 2).join("."));
});

Deno.test("package: installs on a clean Debian 12 without dkms; doctor, policy check and run work; purge cleans", async () => {
  const root = await Chroot.create();
  try {
    // The package only recommends dkms: a root without it must install cleanly.
    const purge = await root.exec(["dpkg", "--purge", "dkms"]);
    assert.equal(purge.code, 0, show(purge));
    const inst = await root.exec(["dpkg", "-i", await root.put(await theDeb())]);
    assert.equal(inst.code, 0, show(inst));
    assert.match(inst.stdout, /dkms is not installed; the kernel module's source is in \/usr\/src\/idwrap-/);

    // The daemon's store (audit records) and logs are not for other users to read.
    assert.equal(Deno.statSync(`${root.dir}/var/lib/idwrap`).mode! & 0o777, 0o700);
    assert.equal(Deno.statSync(`${root.dir}/var/log/idwrap`).mode! & 0o777, 0o750);

    const version = await root.exec(["idwrap", "--version"]);
    assert.equal(version.code, 0, show(version));
    assert.equal(version.stdout.trim(), VERSION);
    const dkmsConf = Deno.readTextFileSync(`${root.dir}/usr/src/idwrap-${VERSION}/dkms.conf`);
    assert.equal(dkmsVersion(dkmsConf), VERSION);

    // libbpf1 is absent too (a Recommends): doctor says the bpf sources are out and still reports the rest.
    const doctor = await root.exec(["idwrap", "doctor"], { timeoutMs: 180_000 });
    assert.equal(doctor.code, 0, show(doctor));
    assert.match(doctorLine(doctor.stdout, "seccomp source") ?? "", /^ok {3}seccomp source +ran \/bin\/cat/);
    assert.match(
      doctorLine(doctor.stdout, "installation") ?? "",
      new RegExp(
        `^ok {3}installation +idwrap ${VERSION} from the Debian package \\(deb ${VERSION}\\) in /usr/lib/idwrap/`,
      ),
    );
    assert.match(doctorLine(doctor.stdout, "bpf programs") ?? "", /^MISS bpf programs +Cannot load libbpf\.so\.1/);
    assert.match(doctorLine(doctor.stdout, "kernel module source (DKMS)") ?? "", /^MISS .*dkms is not installed/);
    assert.match(doctorLine(doctor.stdout, "default policy") ?? "", /^ok {3}default policy +\/usr\/lib\/idwrap\//);
    assert.match(
      doctorLine(doctor.stdout, "store (Deno KV)") ?? "",
      /^ok {3}store \(Deno KV\) +\/root\/\.local\/state\//,
    );

    // The module is DKMS's from the package: kmod build says so instead of running make in /usr/src (which would
    // write beside DKMS's source), and kmod load asks modprobe (no module for this kernel here).
    const build = await root.exec(["idwrap", "kmod", "build"]);
    assert.notEqual(build.code, 0, show(build));
    assert.match(build.stderr, new RegExp(`from the package DKMS builds the module: dkms install idwrap/${VERSION}`));
    assert.equal(await run("test", ["-e", `${root.dir}/usr/src/build`]).then((r) => r.code), 1, "make ran in /usr/src");
    const load = await root.exec(["idwrap", "kmod", "load"]);
    assert.notEqual(load.code, 0, show(load));
    assert.match(load.stderr, /DKMS has not installed idwrap for .*\n {2}modprobe said: .*not found/, show(load));

    const check = await root.exec(["idwrap", "policy", "check", "/usr/share/idwrap/policies"]);
    assert.equal(check.code, 0, show(check));
    assert.match(check.stdout, /^ok \/usr\/share\/idwrap\/policies\/default\.yaml/m);
    const checkEtc = await root.exec(["idwrap", "policy", "check", "/etc/idwrap/default.yaml"]);
    assert.equal(checkEtc.code, 0, show(checkEtc));

    const ran = await root.exec(["idwrap", "run", "-p", "/usr/share/idwrap/policies/default.yaml", "--", "/bin/true"]);
    assert.equal(ran.code, 0, show(ran));
    assert.match(ran.stderr, /\/bin\/true exited with 0/);
    // The default policy (its baseline wrapper is a .wasm from the package) flags a credential read.
    const shadow = await root.exec(["idwrap", "run", "--", "/bin/sh", "-c", "head -c0 /etc/shadow"]);
    assert.equal(shadow.code, 0, show(shadow));
    assert.match(shadow.stdout + shadow.stderr, /credential-read/);

    // An ordinary user runs it too, with their own Deno cache and store under their home.
    const add = await root.exec(["useradd", "--create-home", "--user-group", "--uid", "4242", "alice"]);
    assert.equal(add.code, 0, show(add));
    const user = await root.exec(["idwrap", "run", "--", "/bin/true"], { user: { uid: 4242, home: "/home/alice" } });
    assert.equal(user.code, 0, show(user));

    // The daemon as its unit starts it: the shipped config and policy load, and a command handed to it is recorded by
    // the configured file output.
    const unit = Deno.readTextFileSync(`${root.dir}/lib/systemd/system/idwrap.service`);
    const execStart = unitCommand(unit, "ExecStart");
    assert.equal(execStart[0], "/usr/bin/idwrap", unit);
    await Deno.mkdir(`${root.dir}/run/idwrap`, { recursive: true }); // systemd's RuntimeDirectory=
    const daemon = root.spawn(execStart);
    const daemonOut = daemon.output();
    try {
      let ps = await root.exec(["idwrap", "ps"]);
      for (let i = 0; i < 60 && ps.code !== 0; i++) {
        await new Promise((r) => setTimeout(r, 500));
        ps = await root.exec(["idwrap", "ps"]);
      }
      assert.equal(ps.code, 0, `the daemon did not answer: ${show(ps)}`);
      const handed = await root.exec(["idwrap", "run", "--", "/bin/sh", "-c", "head -c0 /etc/shadow"]);
      assert.equal(handed.code, 0, show(handed));
      const alerts = `${root.dir}/var/log/idwrap/alerts.jsonl`;
      let text = "";
      for (let i = 0; i < 40 && !text.includes("credential-read"); i++) {
        await new Promise((r) => setTimeout(r, 500));
        text = await Deno.readTextFile(alerts).catch(() => "");
      }
      assert.match(text, /credential-read/, `${alerts}: ${text.slice(0, 2000)}`);
      // `systemctl reload idwrap` (ExecReload): the daemon re-executes the installed version in place, same pid.
      const reload = await root.exec(unitCommand(unit, "ExecReload"));
      assert.equal(reload.code, 0, show(reload));
      assert.ok(reload.stderr.includes(`the daemon (pid ${daemon.pid}) restarted in place`), show(reload));
      const again = await root.exec(["idwrap", "run", "--", "/bin/true"]);
      assert.equal(again.code, 0, show(again));
    } finally {
      daemon.kill("SIGTERM");
      const out = await daemonOut;
      assert.equal(out.code, 0, `the daemon: ${new TextDecoder().decode(out.stderr).slice(-3000)}`);
    }

    // Nothing wrote into the package's files (a deno.lock, a rebuilt launcher or wrapper).
    const verify = await root.exec(["dpkg", "--verify", "idwrap"]);
    assert.equal(verify.code, 0, show(verify));
    assert.equal(verify.stdout, "");
    const extra = [...Deno.readDirSync(`${root.dir}/usr/lib/idwrap`)].map((e) => e.name).sort();
    assert.deepEqual(extra, [
      "build",
      "deno",
      "deno.json",
      "host",
      "kmod",
      "main.ts",
      "node_modules",
      "package.json",
      "packaged.json",
      "policies",
    ]);

    const gone = await root.exec(["dpkg", "--purge", "idwrap"]);
    assert.equal(gone.code, 0, show(gone));
    for (
      const p of ["/usr/lib/idwrap", "/usr/bin/idwrap", "/etc/idwrap", "/var/lib/idwrap", `/usr/src/idwrap-${VERSION}`]
    ) {
      assert.equal(await run("test", ["-e", `${root.dir}${p}`]).then((r) => r.code), 1, `${p} is left after purge`);
    }
  } finally {
    await root.destroy();
  }
});

Deno.test("package: with dkms the module's source is registered; a reinstall keeps an edited conffile; removal unregisters", async () => {
  const root = await Chroot.create();
  try {
    const inside = await root.put(await theDeb());
    const inst = await root.exec(["dpkg", "-i", inside]);
    assert.equal(inst.code, 0, show(inst));
    const status = await root.exec(["dkms", "status"]);
    assert.match(status.stdout, new RegExp(`^idwrap/${VERSION}(, [^:]+)?: added$`, "m"), show(status));
    const doctor = await root.exec(["idwrap", "doctor"], { timeoutMs: 180_000 });
    assert.equal(doctor.code, 0, show(doctor));
    assert.match(
      doctorLine(doctor.stdout, "kernel module source (DKMS)") ?? "",
      new RegExp(`^ok {3}kernel module source \\(DKMS\\) +idwrap/${VERSION}.*added`),
    );

    // The operator's edit of a conffile survives a reinstall (the upgrade path: prerm upgrade, then postinst).
    const conf = `${root.dir}/etc/idwrap/idwrap.yaml`;
    Deno.writeTextFileSync(conf, Deno.readTextFileSync(conf) + "# edited by the operator\n");
    const again = await root.exec(["dpkg", "-i", inside]);
    assert.equal(again.code, 0, show(again));
    assert.match(Deno.readTextFileSync(conf), /# edited by the operator\n$/);
    const status2 = await root.exec(["dkms", "status"]);
    assert.match(status2.stdout, new RegExp(`^idwrap/${VERSION}(, [^:]+)?: added$`, "m"), show(status2));

    const removed = await root.exec(["dpkg", "-r", "idwrap"]);
    assert.equal(removed.code, 0, show(removed));
    const status3 = await root.exec(["dkms", "status"]);
    assert.doesNotMatch(status3.stdout, /idwrap/, show(status3));
    // Removed, not purged: the conffiles stay, as Debian expects.
    assert.match(Deno.readTextFileSync(conf), /# edited by the operator\n$/);
  } finally {
    await root.destroy();
  }
});
