/**
 * `deno task package`: builds build/idwrap_<version>_amd64.deb with dpkg-deb from what `deno task build` built.
 *
 * The package ships the pinned Deno and the app's sources (`deno compile` needs a denort download: docs/operations.md):
 *
 * - /usr/lib/idwrap: main.ts, deno.json, package.json, host/, the runtime npm packages (node_modules, offline), the
 *   built wrappers, idwrap-launch, idwrap-holder and the BPF objects (build/), `deno`, and `packaged.json` (what `idwrap doctor`
 *   reads); `policies` and `kmod` there are links to the two below
 * - /usr/share/idwrap/policies: the shipped policies; /etc/idwrap: the daemon's config and policy (conffiles)
 * - /usr/src/idwrap-<version>: the kernel module's source, registered with DKMS by the postinst
 * - /usr/bin/idwrap, /lib/systemd/system/idwrap.service, /usr/share/doc/idwrap
 *
 * Every file gets one modification time (the last commit's, or SOURCE_DATE_EPOCH), so no built file looks older than
 * its source to the runtime (host/sources/launcher.ts, host/runtime/builtin_wrappers.ts) and rebuilds give the same
 * package.
 *
 * @module
 */
import { VERSION } from "../host/version.ts";

const root = new URL("../", import.meta.url).pathname;

/** The package's architecture: the Deno binary and idwrap-launch are x86-64. */
const ARCH = "amd64";

/** The npm packages the app imports at run time (package.json's dependencies) and theirs: package-lock.json's entries
 * that are not dev-only (`npm ls` cannot say through a symlinked node_modules). */
function runtimeNodeModules(): string[] {
  const lock = JSON.parse(Deno.readTextFileSync(`${root}package-lock.json`)) as {
    packages: Record<string, { dev?: boolean; devOptional?: boolean }>;
  };
  return Object.entries(lock.packages)
    .filter(([path, p]) => path.startsWith("node_modules/") && !p.dev && !p.devOptional)
    .map(([path]) => path);
}

async function run(cmd: string, args: string[], opts: { allowFailure?: boolean; cwd?: string } = {}): Promise<string> {
  const out = await new Deno.Command(cmd, { args, cwd: opts.cwd ?? root, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success && !opts.allowFailure) {
    throw new Error(`${cmd} ${args.join(" ")} failed:\n${new TextDecoder().decode(out.stderr)}${text}`);
  }
  return text;
}

/** The kernel module's version in kmod/dkms.conf: it must be the CLI's, or DKMS would register another version. */
export function dkmsVersion(text: string): string | undefined {
  return text.match(/^PACKAGE_VERSION="?([^"\n]+)"?$/m)?.[1];
}

/** Copies src (a file or a folder, recursively) to dst, creating dst's parents. */
async function copy(src: string, dst: string): Promise<void> {
  await Deno.mkdir(dst.slice(0, dst.lastIndexOf("/")), { recursive: true });
  await run("cp", ["-a", "--no-preserve=ownership", src, dst]);
}

function need(path: string, why: string): void {
  try {
    Deno.statSync(path);
  } catch {
    throw new Error(`idwrap package: ${path} is missing (${why})`);
  }
}

/** Builds the .deb; returns its path. */
export async function buildPackage(): Promise<string> {
  const dkms = dkmsVersion(Deno.readTextFileSync(`${root}kmod/dkms.conf`));
  if (dkms !== VERSION) {
    throw new Error(
      `idwrap package: kmod/dkms.conf: PACKAGE_VERSION is "${dkms}", expected "${VERSION}" (host/version.ts)`,
    );
  }
  const deno = `${root}node_modules/deno/deno`;
  need(deno, "the pinned Deno: npm ci");
  for (const h of ["idwrap-launch", "idwrap-holder"]) need(`${root}build/${h}`, "deno task build");
  need(`${root}build/wrappers/baseline.wasm`, "deno task build");
  for (const o of ["idwrap.o", "probes.o"]) need(`${root}build/bpf/${o}`, "deno task build, with clang and bpftool");

  const stage = `${root}build/package/idwrap_${VERSION}_${ARCH}`;
  await Deno.remove(stage, { recursive: true }).catch(() => {});
  const lib = `${stage}/usr/lib/idwrap`;
  const src = `${stage}/usr/src/idwrap-${VERSION}`;
  const doc = `${stage}/usr/share/doc/idwrap`;

  for (const f of ["main.ts", "deno.json", "package.json"]) await copy(`${root}${f}`, `${lib}/${f}`);
  await copy(`${root}host`, `${lib}/host`);
  await copy(deno, `${lib}/deno`);
  for (const m of runtimeNodeModules()) await copy(`${root}${m}`, `${lib}/${m}`);
  await Deno.mkdir(`${lib}/build/wrappers`, { recursive: true });
  for (const e of Deno.readDirSync(`${root}build/wrappers`)) {
    if (e.isFile && e.name.endsWith(".wasm")) await copy(`${root}build/wrappers/${e.name}`, `${lib}/build/wrappers/`);
  }
  // Both native helpers: the launcher, and the holder every seccomp run starts (host/sources/launcher.ts).
  for (const h of ["idwrap-launch", "idwrap-holder"]) await copy(`${root}build/${h}`, `${lib}/build/${h}`);
  for (const o of ["idwrap.o", "probes.o"]) await copy(`${root}build/bpf/${o}`, `${lib}/build/bpf/${o}`);
  Deno.writeTextFileSync(`${lib}/packaged.json`, JSON.stringify({ version: VERSION, format: "deb" }) + "\n");

  await copy(`${root}policies`, `${stage}/usr/share/idwrap/policies`);
  Deno.symlinkSync("../../share/idwrap/policies", `${lib}/policies`);
  await copy(`${root}kmod`, src);
  Deno.symlinkSync(`../../src/idwrap-${VERSION}`, `${lib}/kmod`);

  await copy(`${root}packaging/idwrap`, `${stage}/usr/bin/idwrap`);
  await copy(`${root}packaging/idwrap.service`, `${stage}/lib/systemd/system/idwrap.service`);
  await copy(`${root}packaging/etc/idwrap.yaml`, `${stage}/etc/idwrap/idwrap.yaml`);
  await copy(`${root}policies/default.yaml`, `${stage}/etc/idwrap/default.yaml`);
  await copy(`${root}README.md`, `${doc}/README.md`);
  await copy(`${root}docs`, `${doc}/docs`);
  await copy(`${root}dist/systemd/example-nginx.service`, `${doc}/examples/example-nginx.service`);
  await copy(`${root}packaging/debian/copyright`, `${doc}/copyright`);

  const control = `${stage}/DEBIAN`;
  await Deno.mkdir(control, { recursive: true });
  const installedKiB = (await run("du", ["-sk", "--apparent-size", stage])).split(/\s/)[0];
  const fill = (text: string) => text.replaceAll("@VERSION@", VERSION).replaceAll("@INSTALLED_SIZE@", installedKiB);
  for (const f of ["control", "conffiles", "postinst", "prerm", "postrm"]) {
    Deno.writeTextFileSync(`${control}/${f}`, fill(Deno.readTextFileSync(`${root}packaging/debian/${f}`)));
  }

  // Ownership is root's (dpkg-deb --root-owner-group); modes are set here, whatever the checkout's umask was.
  await run("chmod", ["-R", "u=rwX,go=rX", stage]);
  for (
    const x of [
      "usr/bin/idwrap",
      "usr/lib/idwrap/deno",
      "usr/lib/idwrap/build/idwrap-launch",
      "usr/lib/idwrap/build/idwrap-holder",
    ]
  ) {
    Deno.chmodSync(`${stage}/${x}`, 0o755);
  }
  for (const f of ["postinst", "prerm", "postrm"]) Deno.chmodSync(`${control}/${f}`, 0o755);
  // md5sums: what `dpkg --verify` checks (conffiles are tracked by dpkg itself, as dh_md5sums leaves them out).
  await run("sh", [
    "-c",
    "find . -type f ! -path './DEBIAN/*' ! -path './etc/*' -printf '%P\\0' | sort -z | xargs -0 md5sum > DEBIAN/md5sums",
  ], { cwd: stage });
  const epoch = Deno.env.get("SOURCE_DATE_EPOCH") ?? (await run("git", ["log", "-1", "--format=%ct"])).trim();
  await run("find", [stage, "-exec", "touch", "--no-dereference", "-d", `@${epoch}`, "{}", "+"]);

  const deb = `${root}build/idwrap_${VERSION}_${ARCH}.deb`;
  // gzip: xz takes minutes on Deno's 95 MB binary on a shared CI machine, for a package that is installed locally.
  await run("dpkg-deb", ["--root-owner-group", "-Zgzip", "--build", stage, deb]);
  return deb;
}

if (import.meta.main) {
  try {
    console.log(`package: ${await buildPackage()}`);
  } catch (e) {
    console.error((e as Error).message);
    Deno.exit(1);
  }
}
