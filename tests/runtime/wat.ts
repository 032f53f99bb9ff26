/**
 * Compiles WebAssembly text to a binary with the wabt npm package, for tests
 * that need modules no AssemblyScript compiler would produce.
 *
 * @module
 */
import { scratchDir } from "../temp.ts";
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
  const dir = await scratchDir({ prefix: "idwrap-wasm-" });
  const path = `${dir}/${name}.wasm`;
  await Deno.writeFile(path, bytes);
  return path;
}

/**
 * WAT of a witness wrapper: it declares openat (pre) and raises `message` as
 * an info alert once per instance (`"init"`: so an alert means "bound to this
 * process") or at every openat (`"syscall"`).
 */
export function witnessWat(message: string, when: "init" | "syscall"): string {
  const alert = `(call $alert (i32.const 0) (i32.const 0) (i32.const ${message.length}))`;
  return `(module
    (import "idwrap" "declare_syscall" (func $d (param i32 i32) (result i32)))
    (import "idwrap" "alert" (func $alert (param i32 i32 i32)))
    (memory (export "memory") 1)
    (data (i32.const 0) "${message}")
    (func (export "idwrap_abi_version") (result i32) (i32.const 0x00010000))
    (func (export "idwrap_declare") (result i32) (drop (call $d (i32.const 257) (i32.const 1))) (i32.const 0))
    (func (export "idwrap_init") (result i32) ${when === "init" ? alert : ""} (i32.const 0))
    (func (export "idwrap_on_syscall") (result i32) ${when === "syscall" ? alert : ""} (i32.const 0)))`;
}
