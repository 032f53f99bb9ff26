/**
 * Finds, and where needed builds, the native idwrap-launch helper
 * (kmod/seccomp/launch.c). IDWRAP_LAUNCH names a prebuilt one; a compiled
 * idwrap looks beside its own executable.
 *
 * @module
 */
import { dirname, join } from "node:path";
import { fileURLToPath as fromFileUrl } from "node:url";

const SOURCE = new URL("../../kmod/seccomp/launch.c", import.meta.url);
const BUILT = new URL("../../build/idwrap-launch", import.meta.url);

function mtime(path: string | URL): number | undefined {
  try {
    return Deno.statSync(path).mtime?.getTime();
  } catch {
    return undefined;
  }
}

/**
 * Compiles kmod/seccomp/launch.c to build/idwrap-launch if it is missing or
 * older than its source.
 *
 * @returns the launcher's path
 */
export async function launcherPath(): Promise<string> {
  const override = Deno.env.get("IDWRAP_LAUNCH");
  if (override) return override;
  const built = fromFileUrl(BUILT);
  const src = mtime(SOURCE);
  const bin = mtime(BUILT);
  if (bin !== undefined && (src === undefined || bin >= src)) return built;
  if (src === undefined) {
    // A `deno compile`d idwrap has no sources: use the launcher beside the binary.
    const beside = join(dirname(Deno.execPath()), "idwrap-launch");
    if (mtime(beside) !== undefined) return beside;
    throw new Error(`Cannot find idwrap-launch: not at ${built}, nor at ${beside}; set IDWRAP_LAUNCH`);
  }
  await Deno.mkdir(new URL(".", BUILT), { recursive: true });
  const cc = Deno.env.get("CC") ?? "cc";
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command(cc, {
      args: ["-O2", "-Wall", "-Wextra", "-o", built, fromFileUrl(SOURCE), "-lpthread"],
    }).output();
  } catch (e) {
    throw new Error(
      `Cannot build idwrap-launch: "${cc}" could not run (${
        (e as Error).message
      }); install a C compiler (apt-get install gcc)`,
    );
  }
  if (!out.success) {
    throw new Error(`Cannot build idwrap-launch with ${cc}:\n${new TextDecoder().decode(out.stderr)}`);
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
