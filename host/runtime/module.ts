/**
 * Loading a wrapper: read, check its imports against the ABI, meter it,
 * compile it once, check its ABI version and collect its declarations on a
 * scratch instance. Everything that can be refused is refused here, before
 * any process runs, with a message naming the wrapper.
 *
 * @module
 */
import type { WrapperSpec } from "../policy/policy.ts";
import { syscallName } from "../syscalls/mod.ts";
import {
  ABI_EXPORTS,
  ABI_IMPORTS,
  ABI_MAJOR,
  ABI_MINOR,
  ABI_MODULE,
  DECLARE_DENY,
  DECLARE_POST,
  DECLARE_PRE,
  DECLARE_WRITES,
  SETTINGS_MINOR,
} from "./abi.ts";
import type { Declarations } from "./declarations.ts";
import type { SourceCapabilities } from "../capabilities.ts";
import type { WasmEngine } from "./engine.ts";
import { createImports } from "./imports.ts";
import { checkSettings, type GivenSetting, readSettingsSection, type SettingsSchema } from "./settings.ts";
import { instrument, signatureText, summarize, WasmBinaryError } from "./wasm/mod.ts";

export type { Declarations } from "./declarations.ts";

export type { SourceCapabilities };

/** A wrapper refused at load time. */
export class WrapperLoadError extends Error {
  constructor(readonly wrapper: string, detail: string) {
    super(`Cannot load wrapper "${wrapper}": ${detail}`);
    this.name = "WrapperLoadError";
  }
}

/**
 * A policy's settings refused by the wrapper's schema: one line per setting, each
 * `file:line: wrapper NAME, setting "KEY": what was expected, got what`.
 */
export class WrapperSettingsError extends WrapperLoadError {
  constructor(wrapper: string, readonly problems: string[]) {
    super(wrapper, problems.join("; "));
    this.message = problems.join("\n");
    this.name = "WrapperSettingsError";
  }
}

/** A loaded, validated, compiled wrapper; instances are made from it per process. */
export interface WrapperModule {
  spec: WrapperSpec;
  /** Where the bytes came from. */
  path: string;
  module: WebAssembly.Module;
  declarations: Declarations;
  /** The minor ABI version the module was built for (absent: a module made by hand, in tests). */
  abiMinor?: number;
  /** Its settings schema (ABI 1.3); undefined for a module of an older minor, whose settings are not checked. */
  settings?: SettingsSchema;
}

/** How to load. */
export interface LoadOptions {
  /** Meter CPU and cap memory. Off only for benchmarks that measure the metering. @default true */
  meter?: boolean;
}

const REQUIRED_EXPORTS = ["memory", "idwrap_abi_version", "idwrap_declare"];

/** Resolves a spec's module to a file: a path as given, or a built-in under build/wrappers/. */
export function wrapperPath(spec: WrapperSpec): string {
  if (spec.module.includes("/") || spec.module.endsWith(".wasm")) return spec.module;
  return new URL(`../../build/wrappers/${spec.module}.wasm`, import.meta.url).pathname;
}

/**
 * Loads and validates one wrapper.
 *
 * @param spec the policy's entry
 * @param bytes the module's bytes (read by the caller, which knows where from)
 */
export function loadWrapper(
  spec: WrapperSpec,
  bytes: Uint8Array,
  engine: WasmEngine,
  path = wrapperPath(spec),
  options: LoadOptions = {},
): WrapperModule {
  const refuse = (detail: string): never => {
    throw new WrapperLoadError(spec.name, detail);
  };
  let summary;
  try {
    summary = summarize(bytes);
  } catch (e) {
    refuse(`${path} is not a valid WebAssembly module: ${(e as Error).message}`);
  }
  for (const imp of summary!.imports) {
    if (imp.module !== ABI_MODULE || imp.kind !== "func" || !Object.hasOwn(ABI_IMPORTS, imp.name)) {
      refuse(
        `imports "${imp.module}.${imp.name}" (${imp.kind}), which is outside the ABI (only functions of "${ABI_MODULE}" listed in docs/abi.md)`,
      );
    }
    // A JS function fits any wasm signature: a wrong one would link and then read garbage arguments.
    if (imp.signature !== ABI_IMPORTS[imp.name]) {
      refuse(
        `imports "${imp.module}.${imp.name}" with signature ${signatureText(imp.signature ?? ">")}, expected ${
          signatureText(ABI_IMPORTS[imp.name])
        } (docs/abi.md)`,
      );
    }
  }
  const exported = new Set(summary!.exports.map((e) => e.name));
  for (const name of REQUIRED_EXPORTS) if (!exported.has(name)) refuse(`does not export "${name}"`);
  for (const exp of summary!.exports) {
    if (exp.name === "memory" && exp.kind !== "memory") refuse(`exports "memory" as a ${exp.kind}, expected a memory`);
    if (!Object.hasOwn(ABI_EXPORTS, exp.name)) continue;
    // A hook of another signature would return undefined (read as allow), a BigInt or a float for its verdict.
    if (exp.kind !== "func" || exp.signature !== ABI_EXPORTS[exp.name]) {
      const found = exp.kind === "func" ? `signature ${signatureText(exp.signature ?? ">")}` : `a ${exp.kind}`;
      refuse(
        `exports "${exp.name}" with ${found}, expected signature ${signatureText(ABI_EXPORTS[exp.name])} (docs/abi.md)`,
      );
    }
  }
  let metered: Uint8Array = bytes;
  try {
    if (options.meter ?? true) {
      metered = instrument(bytes, { maxMemoryPages: spec.memoryMiB * 16, initialFuel: spec.budget });
    }
  } catch (e) {
    if (e instanceof WasmBinaryError) refuse(e.message);
    throw e;
  }
  let module: WebAssembly.Module;
  try {
    module = engine.compile(metered!);
  } catch (e) {
    refuse(`${path} does not compile: ${(e as Error).message}`);
  }

  const declarations: Declarations = { syscalls: new Map(), lifecycle: 0, subscriptions: [], emits: [] };
  const scratch = createImports({ mode: "declare", spec, declarations });
  let instance: WebAssembly.Instance;
  try {
    instance = engine.instantiate(module!, scratch.imports);
  } catch (e) {
    refuse(`cannot be instantiated: ${(e as Error).message}`);
  }
  scratch.bind(instance!);
  const fuel = instance!.exports.idwrap_fuel as WebAssembly.Global | undefined;
  const call = (name: string): number => {
    if (fuel) fuel.value = spec.budget;
    try {
      return (instance.exports[name] as () => number)();
    } catch (e) {
      const overBudget = fuel !== undefined && (fuel.value as number) < 0;
      return refuse(`${name}() failed: ${overBudget ? "it ran past its CPU budget" : (e as Error).message}`);
    }
  };
  const version = call("idwrap_abi_version");
  const major = version >>> 16, minor = version & 0xffff;
  if (major !== ABI_MAJOR || minor > ABI_MINOR) {
    refuse(`it was built for hook ABI ${major}.${minor}; this idwrap speaks ${ABI_MAJOR}.${ABI_MINOR}`);
  }
  let settings: SettingsSchema | undefined;
  if (minor >= SETTINGS_MINOR) {
    try {
      // A 1.3 module without the section declares no settings.
      settings = readSettingsSection(summary!.custom) ?? new Map();
    } catch (e) {
      refuse((e as Error).message);
    }
    checkSpecSettings(spec, settings!);
  }
  const declared = call("idwrap_declare");
  if (declared !== 0) refuse(`idwrap_declare() returned ${declared}`);
  if (declarations.syscalls.size && !exported.has("idwrap_on_syscall")) {
    refuse(`declares system calls but does not export "idwrap_on_syscall"`);
  }
  if (declarations.subscriptions.length && !exported.has("idwrap_on_abstract")) {
    refuse(`subscribes to abstract events but does not export "idwrap_on_abstract"`);
  }
  if (declarations.lifecycle && !exported.has("idwrap_on_lifecycle")) {
    refuse(`declares lifecycle events but does not export "idwrap_on_lifecycle"`);
  }
  holdForAlertResponse(spec, declarations);
  return { spec, path, module: module!, declarations, abiMinor: minor, ...(settings ? { settings } : {}) };
}

/**
 * The policy's `on_alert: deny|kill` turns the wrapper's alerts into denials or kills on the calls it may deny
 * (chain.ts): every call the wrapper examines before it runs is then one it may deny, whatever the wrapper declared
 * (baseline declares a call whose rules only alert observe-only, which a source need not hold).
 */
function holdForAlertResponse(spec: WrapperSpec, declarations: Declarations): void {
  if (spec.onAlert === "alert") return;
  for (const [nr, flags] of declarations.syscalls) {
    // Any open it examines may then be denied, not only those that write (DECLARE_WRITES dropped).
    if (flags & DECLARE_PRE) declarations.syscalls.set(nr, (flags | DECLARE_DENY) & ~DECLARE_WRITES);
  }
}

/**
 * Refuses a policy's settings that the wrapper's schema does not accept, naming the policy file and line (when the
 * spec came from a file), the wrapper and the setting.
 *
 * @throws WrapperSettingsError
 */
export function checkSpecSettings(spec: WrapperSpec, schema: SettingsSchema): void {
  const given = new Map<string, GivenSetting>(
    spec.origin
      ? Object.entries(spec.origin.settings)
      : Object.entries(spec.settings).map(([k, v]) => [k, { value: v, line: 0 }]),
  );
  const problems = checkSettings(schema, given);
  if (!problems.length) return;
  const where = spec.origin ? `${spec.origin.file}:` : "";
  throw new WrapperSettingsError(
    spec.name,
    problems.map((p) =>
      `${where}${
        spec.origin ? `${p.line ?? spec.origin.line}: ` : ""
      }wrapper ${spec.name}, setting "${p.setting}": ${p.detail}`
    ),
  );
}

/** Refuses a wrapper whose declarations the active source cannot serve. */
export function checkCapabilities(w: WrapperModule, caps: SourceCapabilities): void {
  if (caps.post === "all") return;
  for (const [nr, flags] of w.declarations.syscalls) {
    if (flags & DECLARE_POST && !caps.post.has(nr)) {
      const served = [...caps.post].map(syscallName).join(", ");
      throw new WrapperLoadError(
        w.spec.name,
        `it asks for post events of ${
          syscallName(nr)
        }, which the ${caps.name} source cannot serve (it serves post for ${served})`,
      );
    }
  }
}
