/**
 * What the source benches set up alike: their command line ([N] [RUNS] [DIR], flags aside), a C fixture built into
 * build/tests/, and tar's walk of a directory timed by the shell that runs it.
 *
 * @module
 */
import { compileC } from "../tools/build.ts";

/** The repository root, with a trailing slash. */
export const ROOT = new URL("../", import.meta.url).pathname;

/** A bench's positional arguments: N (calls or rounds), RUNS (repetitions), DIR (what tar walks). */
export interface BenchArgs {
  N: number;
  RUNS: number;
  DIR: string;
}

/**
 * Reads `[N] [RUNS] [DIR]` from the command line, flags (`--save-run`) aside.
 *
 * @param defaults N and RUNS when not given; DIR defaults to /usr/share/doc
 */
export function benchArgs(defaults: { n: number; runs: number; dir?: string }): BenchArgs {
  const positional = Deno.args.filter((a) => !a.startsWith("--"));
  return {
    N: Number(positional[0] ?? defaults.n),
    RUNS: Number(positional[1] ?? defaults.runs),
    DIR: positional[2] ?? defaults.dir ?? "/usr/share/doc",
  };
}

/**
 * Compiles a C fixture (a path under the repository) to build/tests/NAME.
 *
 * @returns the program's path
 */
export async function buildFixture(source: string, name: string): Promise<string> {
  const out = `${ROOT}build/tests/${name}`;
  await Deno.mkdir(`${ROOT}build/tests`, { recursive: true });
  await compileC(`${ROOT}${source}`, out);
  return out;
}

/** `tar -cf /dev/null DIR`, timed by the shell that runs it: prints µs. */
export function tarCommand(dir: string): string[] {
  return [
    "/bin/sh",
    "-c",
    `s=$(date +%s%N); tar -cf /dev/null ${dir} 2>/dev/null; e=$(date +%s%N); echo $(((e-s)/1000))`,
  ];
}
