/**
 * Compiles WebAssembly text to a binary with the wabt npm package, for tests
 * that need modules no AssemblyScript compiler would produce.
 *
 * @module
 */
import wabtInit from "wabt";

const wabt = await wabtInit();

/** WAT text → .wasm bytes. */
export function watToWasm(text: string, features: Record<string, boolean> = {}): Uint8Array {
  const mod = wabt.parseWat("test.wat", text, features);
  try {
    return new Uint8Array(mod.toBinary({}).buffer);
  } finally {
    mod.destroy();
  }
}

/** Writes a .wasm into a temp dir and returns its path. */
export async function writeWasm(name: string, bytes: Uint8Array): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "idwrap-wasm-" });
  const path = `${dir}/${name}.wasm`;
  await Deno.writeFile(path, bytes);
  return path;
}
