/**
 * idwrap wrapper SDK for AssemblyScript: the wrapper side of the hook ABI
 * v1.2 (docs/abi.md). imports.ts holds the raw host functions; this file
 * re-exports the typed API built on them.
 *
 * A wrapper is one folder under wrappers/ with an index.ts entry. Only the
 * entry file's exports become module exports, so each entry exports its
 * hooks itself; the version export can be re-exported from here:
 *
 *   import { allow, deny, declareSyscall, declared, Event, EACCES, PRE, DENY, SYS_openat } from "../sdk/index";
 *   export { idwrap_abi_version } from "../sdk/index";
 *
 *   export function idwrap_declare(): i32 {
 *     declareSyscall(SYS_openat, PRE | DENY);
 *     return declared();
 *   }
 *
 *   export function idwrap_on_syscall(): i32 {
 *     const path = Event.path();
 *     return path !== null && path == "/etc/shadow" ? deny(EACCES) : allow();
 *   }
 *
 * Build with wrappers/asconfig.json from the repository root (tools/
 * build_wrappers.ts does): it sets `use: abort=wrappers/sdk/abort/idwrapAbort`
 * so the module imports no env.abort (that name is resolved relative to the
 * root, and resolves only because this file imports abort.ts). Do not use
 * Math.random, Date or trace(): they import env.seed, env.Date.now and
 * env.trace, which the host refuses.
 */

// Keeps abort.ts in every program that uses the SDK, so --use abort=... resolves.
export { idwrapAbort } from "./abort";

export * from "./errno";
export * from "./verdict";
export * from "./syscalls";
export * from "./declare";
export * from "./event";
export * from "./wrlib";
export * from "./kv";
export * from "./abstract";
export * from "./host";
export { lastStatus, SCRATCH_SIZE } from "./buffer";

/** The ABI version this SDK implements: (major << 16) | minor = 1.5. */
export const ABI_VERSION: i32 = 0x00010005;

/**
 * ABI 1.3: the custom section that carries a wrapper's settings schema. asc
 * cannot write custom sections: the build (tools/build_wrappers.ts) appends
 * wrappers/<name>/settings.json under this name.
 */
export const SETTINGS_SECTION: string = "idwrap.settings";

/** The required version export; re-export it from the wrapper's entry file. */
export function idwrap_abi_version(): i32 {
  return ABI_VERSION;
}
export { foldPath } from "./path";
