/**
 * The module's argument table (idw_spec in kmod/idwrap_record.c: which
 * arguments it copies as path, path2 and data) against the host's
 * (host/syscalls/mod.ts): the host decodes a kmod record's first "path"
 * argument from its path, the second from its path2, the buffer of
 * write/pwrite64 and the sockaddr of connect/bind from its data, and
 * execve's argv from its data (NUL-separated), so a call
 * the host decodes a path for must have that path copied by the module, at
 * the same argument. No VM: the C source is parsed.
 */
import assert from "node:assert/strict";
import { argKinds, syscallNumber } from "../../host/syscalls/mod.ts";
import { X86_64_NAMES } from "../../host/syscalls/tables.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

interface Spec {
  paths: number[];
  data?: [number, number];
  argv?: number;
}

/** idw_spec's entries by syscall name. */
async function moduleSpec(): Promise<Map<string, Spec>> {
  const src = await Deno.readTextFile(`${ROOT}kmod/idwrap_record.c`);
  const body = src.match(/idw_spec\[IDWRAP_MAX_SYSCALLS\] = \{([\s\S]*?)\n\};/);
  assert.ok(body, "idw_spec not found in kmod/idwrap_record.c");
  const out = new Map<string, Spec>();
  const entry = /\[__NR_(\w+)\]\s*=\s*(PATHS|PATH|DATA|EXEC)\(([^)]*)\)/g;
  for (const [, name, kind, list] of body[1].matchAll(entry)) {
    const args = list.split(",").map((a) => Number(a.trim()));
    assert.ok(!out.has(name), `${name} twice in idw_spec`);
    out.set(
      name,
      kind === "DATA"
        ? { paths: [], data: [args[0], args[1]] }
        : kind === "EXEC"
        ? { paths: [args[0]], argv: args[1] }
        : { paths: args },
    );
  }
  // Every entry in the initializer was understood.
  const all = body[1].match(/\[__NR_\w+\]/g) ?? [];
  assert.equal(all.length, out.size, "an idw_spec entry the test does not parse");
  return out;
}

Deno.test("kmod idw_spec: the module copies exactly the path arguments the host decodes (path, path2)", async () => {
  const spec = await moduleSpec();
  const mismatches: string[] = [];
  for (const name of X86_64_NAMES) {
    if (!name) continue;
    // The record carries two strings: the host's first two "path" arguments.
    const host = argKinds(name).flatMap((k, i) => k === "path" ? [i] : []).slice(0, 2);
    const mod = spec.get(name)?.paths ?? [];
    if (JSON.stringify(host) !== JSON.stringify(mod)) {
      mismatches.push(`${name}: host ${JSON.stringify(host)}, module ${JSON.stringify(mod)}`);
    }
  }
  for (const name of spec.keys()) {
    assert.ok(syscallNumber(name) !== undefined, `idw_spec names ${name}, not an x86_64 syscall for the host`);
  }
  assert.deepEqual(mismatches, []);
});

Deno.test("kmod idw_spec: the buffers the host decodes from a record's data are the ones the module copies", async () => {
  const spec = await moduleSpec();
  // host/sources/kmod/record_reader.ts: data and sockaddr at argument 1, their length at 2.
  for (const name of X86_64_NAMES) {
    const kinds = name ? argKinds(name) : [];
    if (kinds[1] !== "data" && kinds[1] !== "sockaddr") continue;
    assert.deepEqual(spec.get(name)?.data, [1, 2], `${name}: the module copies argument 1 (length 2) as data`);
  }
  for (const [name, s] of spec) {
    if (s.data) assert.ok(s.data[1] === s.data[0] + 1, `${name}: data's length follows it`);
  }
});

Deno.test("kmod idw_spec: execve's and execveat's argv are copied (as data), at the host's argv argument", async () => {
  const spec = await moduleSpec();
  for (const name of X86_64_NAMES) {
    const at = name ? argKinds(name).indexOf("argv") : -1;
    assert.equal(spec.get(name)?.argv, at < 0 ? undefined : at, name);
  }
  assert.equal(spec.get("execve")?.argv, 1);
});
