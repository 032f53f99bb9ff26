/**
 * Finds, and where needed builds, the native helpers: idwrap-launch
 * (kmod/seccomp/launch.c) and idwrap-holder (kmod/seccomp/holder.c, which
 * keeps the listeners when the supervisor is gone). IDWRAP_LAUNCH and
 * IDWRAP_HOLDER name prebuilt ones; a compiled idwrap looks beside its own
 * executable.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";

function mtime(path: string | URL): number | undefined {
  try {
    return Deno.statSync(path).mtime?.getTime();
  } catch {
    return undefined;
  }
}

/** Where idwrap-launch is, built first if it is missing or older than its source. */
export function launcherPath(): Promise<string> {
  return nativeHelper("idwrap-launch", "IDWRAP_LAUNCH", ["-lpthread"]);
}

/** Where idwrap-holder is, built first if it is missing or older than its source. */
export function holderPath(): Promise<string> {
  return nativeHelper("idwrap-holder", "IDWRAP_HOLDER", []);
}

const SOURCES: Record<string, URL> = {
  "idwrap-launch": new URL("../../kmod/seccomp/launch.c", import.meta.url),
  "idwrap-holder": new URL("../../kmod/seccomp/holder.c", import.meta.url),
};

/**
 * Compiles a helper's source to build/NAME if it is missing or older than its
 * source.
 *
 * @returns the helper's path
 */
async function nativeHelper(name: string, envOverride: string, libs: string[]): Promise<string> {
  const SOURCE = SOURCES[name];
  const BUILT = new URL(`../../build/${name}`, import.meta.url);
  const override = Deno.env.get(envOverride);
  if (override) return override;
  const built = fromFileUrl(BUILT);
  const src = mtime(SOURCE);
  const bin = mtime(BUILT);
  if (bin !== undefined && (src === undefined || bin >= src)) return built;
  if (src === undefined) {
    // A `deno compile`d idwrap has no sources: use the helper beside the binary.
    const beside = join(dirname(Deno.execPath()), name);
    if (mtime(beside) !== undefined) return beside;
    throw new Error(`Cannot find ${name}: not at ${built}, nor at ${beside}; set ${envOverride}`);
  }
  await Deno.mkdir(new URL(".", BUILT), { recursive: true });
  const cc = Deno.env.get("CC") ?? "cc";
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(cc, {
      args: ["-O2", "-Wall", "-Wextra", "-o", built, fromFileUrl(SOURCE), ...libs],
    }).output();
  } catch (e) {
    throw new Error(
      `Cannot build ${name}: "${cc}" could not run (${
        (e as Error).message
      }); install a C compiler (apt-get install gcc)`,
    );
  }
  if (!out.success) {
    throw new Error(`Cannot build ${name} with ${cc}:\n${new TextDecoder().decode(out.stderr)}`);
  }
  return built;
}

/**
 * Starts idwrap-launch --no-filter (the kernel-side sources, which install no seccomp filter): it connects to
 * `socketPath` and waits for "go", so the command's pid is watched before its first call.
 */
export async function spawnUnfilteredLauncher(socketPath: string, command: string[]): Promise<Deno.ChildProcess> {
  return new Deno.Command(await launcherPath(), {
    args: ["--no-filter", socketPath, "--", ...command],
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
}
