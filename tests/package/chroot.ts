/**
 * A clean Debian 12 root for the package's tests: `debootstrap --variant=minbase --include=dkms bookworm`, made once
 * into build/package-test/bookworm (about a minute from deb.debian.org) and copied for each test, which mounts /proc,
 * /sys and /dev in its copy and runs commands in it with chroot(8). dkms is in the root so that a test can see the
 * postinst register the module; a test that wants a root without it purges it first.
 *
 * @module
 */
import { scratchDir } from "../temp.ts";
import { ROOT, run } from "../helpers.ts";

const CACHE = `${ROOT}build/package-test/bookworm`;
const MIRROR = Deno.env.get("IDWRAP_DEBIAN_MIRROR") ?? "http://deb.debian.org/debian";

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** The cached root, bootstrapped if it is not there yet (into a temporary name first: a half-made root is never used). */
async function cachedRoot(): Promise<string> {
  if (await exists(`${CACHE}/usr/sbin/dkms`)) return CACHE;
  const partial = `${CACHE}.partial`;
  await Deno.remove(partial, { recursive: true }).catch(() => {});
  await Deno.mkdir(partial, { recursive: true });
  const r = await run(
    "debootstrap",
    ["--variant=minbase", "--include=dkms", "bookworm", partial, MIRROR],
    { timeoutMs: 600_000 },
  ).catch((e) => {
    throw new Error(`debootstrap could not run (tools/debian-deps.sh --install installs it): ${(e as Error).message}`);
  });
  if (r.code !== 0) {
    throw new Error(
      `debootstrap bookworm from ${MIRROR} failed (exit ${r.code}):\n${r.stdout.slice(-3000)}${r.stderr}`,
    );
  }
  await Deno.remove(CACHE, { recursive: true }).catch(() => {});
  await Deno.rename(partial, CACHE);
  return CACHE;
}

/** One throw-away Debian 12 root with /proc, /sys and /dev mounted. */
export class Chroot {
  private constructor(readonly dir: string) {}

  /** A fresh copy of the clean root. */
  static async create(): Promise<Chroot> {
    const cache = await cachedRoot();
    const dir = await scratchDir({ prefix: "idwrap-deb-root-" });
    const c = new Chroot(dir);
    try {
      await c.must("cp", ["-a", `${cache}/.`, dir]);
      await c.must("mount", ["-t", "proc", "proc", `${dir}/proc`]);
      // rbind, then slave at once: unmounting the copies below must never propagate to the host's /sys and /dev.
      for (const m of ["sys", "dev"]) {
        await c.must("mount", ["--rbind", `/${m}`, `${dir}/${m}`]);
        await c.must("mount", ["--make-rslave", `${dir}/${m}`]);
      }
    } catch (e) {
      await c.destroy();
      throw e;
    }
    return c;
  }

  private async must(cmd: string, args: string[]): Promise<void> {
    const r = await run(cmd, args);
    if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")}: exit ${r.code}: ${r.stderr}`);
  }

  /** Runs a command inside the root: as root with a clean environment, HOME=/root; as `user` (setpriv) with theirs. */
  exec(args: string[], opts: { timeoutMs?: number; user?: { uid: number; home: string } } = {}) {
    const as = opts.user
      ? ["setpriv", `--reuid=${opts.user.uid}`, `--regid=${opts.user.uid}`, "--clear-groups", "--"]
      : [];
    const env = ["/usr/bin/env", "-i", `HOME=${opts.user?.home ?? "/root"}`, "PATH=/usr/sbin:/usr/bin:/sbin:/bin"];
    return run("chroot", [this.dir, ...env, ...as, ...args], { timeoutMs: opts.timeoutMs ?? 300_000 });
  }

  /** Starts a long-running command inside the root, as root (chroot and env exec it: its pid is the command's). */
  spawn(args: string[]): Deno.ChildProcess {
    return new Deno.Command("chroot", {
      args: [this.dir, "/usr/bin/env", "-i", "HOME=/root", "PATH=/usr/sbin:/usr/bin:/sbin:/bin", ...args],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  }

  /** Copies a host file into the root; returns its path inside. */
  async put(file: string): Promise<string> {
    const inside = `/tmp/${file.slice(file.lastIndexOf("/") + 1)}`;
    await Deno.copyFile(file, `${this.dir}${inside}`);
    return inside;
  }

  /** Unmounts everything and deletes the root. */
  async destroy(): Promise<void> {
    for (const m of ["dev", "sys", "proc"]) await run("umount", ["-R", `${this.dir}/${m}`]).catch(() => {});
    const mounted = await run("findmnt", ["-rn", "-o", "TARGET"]);
    if (mounted.stdout.split("\n").some((t) => t.startsWith(this.dir))) {
      throw new Error(`${this.dir}: still mounted after umount -R; left in place`);
    }
    await Deno.remove(this.dir, { recursive: true });
  }
}
