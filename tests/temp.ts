/**
 * Temporary files and directories for tests and benches, removed when they are done. The suite once left thousands of
 * /tmp/idwrap-* behind (policies, stores, daemons' run dirs: the disk filled).
 *
 * - `tempDir()` owns a directory for one block: `await using dir = await tempDir(…)` removes it when the block ends.
 * - `scratchDir()`, `scratchFile()` (and their Sync forms) make ones that live as long as the test file or bench that
 *   made them: they are removed at its module's `unload`, which Deno dispatches after the file's last test, failed or
 *   not, and on `Deno.exit()`. For helpers whose files outlive the call that made them (a policy file, a store).
 *
 * Unnamed ones are prefixed `idwrap-tmp-`, so .ci/run's count of what a run left behind sees them.
 *
 * @module
 */

const DEFAULT_PREFIX = "idwrap-tmp-";
const scratch = new Set<string>();
let listening = false;

/** Removes every scratch path made so far (also called at unload); never one with something mounted in it. */
export function removeScratch(): void {
  for (const path of scratch) removeUnlessMounted(path);
  scratch.clear();
}

/**
 * Removes a temporary path recursively, unless a filesystem is mounted at or below it (in this mount namespace): a
 * recursive removal would go down into it — a test's chroot with /dev and /sys bound in (tests/package/chroot.ts) left
 * mounted would lose the host's device nodes. Such a path is left, and said so.
 */
function removeUnlessMounted(path: string): void {
  let real: string;
  try {
    real = Deno.realPathSync(path);
  } catch {
    return; // already gone
  }
  const points = mountPoints();
  const mounted = points?.filter((m) => m === real || m.startsWith(`${real}/`)) ?? ["(mountinfo unreadable)"];
  if (mounted.length) {
    console.error(`tests/temp.ts: ${path} left in place: ${mounted.join(", ")} mounted in it`);
    return;
  }
  try {
    Deno.removeSync(path, { recursive: true });
  } catch { /* gone meanwhile */ }
}

/** This mount namespace's mount points (mountinfo's fifth field, octal escapes decoded); undefined if unreadable. */
function mountPoints(): string[] | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync("/proc/self/mountinfo");
  } catch {
    return undefined;
  }
  return text.split("\n").filter((l) => l).map((l) =>
    l.split(" ")[4].replace(/\\([0-7]{3})/g, (_, o) => String.fromCharCode(parseInt(o, 8)))
  );
}

function keep(path: string): string {
  if (!listening) {
    listening = true;
    globalThis.addEventListener("unload", removeScratch);
  }
  scratch.add(path);
  return path;
}

function named(options?: Deno.MakeTempOptions): Deno.MakeTempOptions {
  return { ...options, prefix: options?.prefix ?? DEFAULT_PREFIX };
}

/**
 * A temporary directory removed when the test file (or bench) ends.
 *
 * @param options as Deno.makeTempDir's; the prefix defaults to "idwrap-tmp-"
 * @returns its path
 */
export async function scratchDir(options?: Deno.MakeTempOptions): Promise<string> {
  return keep(await Deno.makeTempDir(named(options)));
}

/** scratchDir(), synchronously. */
export function scratchDirSync(options?: Deno.MakeTempOptions): string {
  return keep(Deno.makeTempDirSync(named(options)));
}

/**
 * A temporary file removed when the test file (or bench) ends.
 *
 * @param options as Deno.makeTempFile's; the prefix defaults to "idwrap-tmp-"
 * @returns its path
 */
export async function scratchFile(options?: Deno.MakeTempOptions): Promise<string> {
  return keep(await Deno.makeTempFile(named(options)));
}

/** scratchFile(), synchronously. */
export function scratchFileSync(options?: Deno.MakeTempOptions): string {
  return keep(Deno.makeTempFileSync(named(options)));
}

/** A temporary directory owned by a block: removed (recursively) when it is disposed. */
export interface TempDir extends AsyncDisposable {
  readonly path: string;
}

/**
 * A temporary directory for one block: `await using dir = await tempDir({ prefix: "idwrap-x-" })`.
 *
 * @param options as Deno.makeTempDir's; the prefix defaults to "idwrap-tmp-"
 * @returns the directory, removed when disposed (and, should disposal not run, when the test file ends)
 */
export async function tempDir(options?: Deno.MakeTempOptions): Promise<TempDir> {
  const path = await scratchDir(options);
  return {
    path,
    [Symbol.asyncDispose]() {
      scratch.delete(path);
      removeUnlessMounted(path);
      return Promise.resolve();
    },
  };
}
