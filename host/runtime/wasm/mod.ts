/**
 * Reading and instrumenting ID wrapper binaries (docs/abi.md, "Limits and
 * failures"): {@link summarize} lists a module's imports, exports and
 * memory; {@link instrument} clamps its memory and meters its CPU with fuel.
 *
 * @module
 */
export { WasmBinaryError, type WasmExport, type WasmExternKind, type WasmImport } from "./binary.ts";
export { instrument, type InstrumentOptions } from "./metering.ts";
export { type MemoryLimits, signatureText, summarize, type WasmSummary } from "./summary.ts";
