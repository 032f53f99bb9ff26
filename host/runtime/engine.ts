/**
 * The WebAssembly engine behind one small interface, so another (wasmtime,
 * say) can be added without touching the runtime. Today: V8, through the
 * WebAssembly JS API Deno provides.
 *
 * @module
 */

/** Compiles and instantiates modules. */
export interface WasmEngine {
  readonly name: string;
  compile(bytes: Uint8Array): WebAssembly.Module;
  instantiate(module: WebAssembly.Module, imports: WebAssembly.Imports): WebAssembly.Instance;
}

/** V8's engine (synchronous compile: modules are small and compiled once). */
export const v8Engine: WasmEngine = {
  name: "v8",
  compile: (bytes) => new WebAssembly.Module(bytes as Uint8Array<ArrayBuffer>),
  instantiate: (module, imports) => new WebAssembly.Instance(module, imports),
};
