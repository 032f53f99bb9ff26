/**
 * The servers' file sets (WebStone 2's classes) with deterministic content, and
 * directories every user can read.
 *
 * @module
 */
import { join } from "node:path";

/** WebStone 2's file classes: size in bytes, share of requests (percent). */
export const WEBSTONE_CLASSES: [number, number][] = [[500, 35], [5000, 50], [50000, 14], [500000, 0.9], [5000000, 0.1]];

/** A server's fixed file set, and the fixed order of requests over it, drawn once with the classes' shares. */
export interface FileSet {
  /** The request order: file names (with `prefix`). */
  order: string[];
  summary: { files: number; bytes: number; classes: [number, number][] };
}

/**
 * Writes `perClass` files of each WebStone class into `dir` (deterministic content from `seed`) and draws an order
 * of `orderLength` requests over them (from `orderSeed`).
 */
export async function webstoneFiles(
  dir: string,
  o: { perClass: number; orderLength: number; seed: number; orderSeed: number; ext: string; prefix: string },
): Promise<FileSet> {
  const names: string[][] = [];
  let bytes = 0;
  for (const [ci, [size]] of WEBSTONE_CLASSES.entries()) {
    names.push([]);
    for (let f = 0; f < o.perClass; f++) {
      const name = `c${ci}-${f}.${o.ext}`;
      await writeFileOfSize(join(dir, name), size, o.seed + ci * 100 + f);
      names[ci].push(o.prefix + name);
      bytes += size;
    }
  }
  const next = lcg(o.orderSeed);
  const order: string[] = [];
  for (let i = 0; i < o.orderLength; i++) {
    let x = next() * 100, ci = 0;
    while (ci < WEBSTONE_CLASSES.length - 1 && x >= WEBSTONE_CLASSES[ci][1]) x -= WEBSTONE_CLASSES[ci++][1];
    order.push(names[ci][Math.floor(next() * o.perClass)]);
  }
  return { order, summary: { files: WEBSTONE_CLASSES.length * o.perClass, bytes, classes: WEBSTONE_CLASSES } };
}

/** A deterministic pseudo-random sequence (LCG), for file sets and request orders. */
export function lcg(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 2 ** 32;
  };
}

/** A file of `size` deterministic bytes. */
export async function writeFileOfSize(path: string, size: number, seed: number): Promise<void> {
  const next = lcg(seed);
  const line = new TextEncoder().encode(
    Array.from({ length: 63 }, () => String.fromCharCode(97 + Math.floor(next() * 26))).join("") + "\n",
  );
  const buf = new Uint8Array(size);
  for (let i = 0; i < size; i += line.length) buf.set(line.subarray(0, Math.min(line.length, size - i)), i);
  await Deno.writeFile(path, buf);
}

/** A directory readable by everyone (servers drop privileges; Deno makes 0700 temp dirs). */
export async function publicDir(path: string): Promise<string> {
  await Deno.mkdir(path, { recursive: true });
  await Deno.chmod(path, 0o755);
  return path;
}
