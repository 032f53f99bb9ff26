/**
 * host/sources/kmod/uapi.ts against kmod/idwrap_uapi.h, the header the module
 * is built from: a C program compiled here with gcc prints every constant,
 * every struct's size and every field's offset, and encodes a record and a
 * verdict byte by byte; the mirror must agree on all of it. The header's
 * macro and field names are read from the header itself, so a field or
 * constant added there and not here fails the test.
 */
import { scratchDir } from "../../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { fileURLToPath } from "node:url";
import * as uapi from "../../../host/sources/kmod/uapi.ts";

const ROOT = fileURLToPath(new URL("../../../", import.meta.url));
const HEADER = `${ROOT}kmod/idwrap_uapi.h`;
const header = await Deno.readTextFile(HEADER);

/** Every `#define IDWRAP_*` the header has (not the include guard). */
const macros = [...header.matchAll(/^#define\s+(IDWRAP_\w+)\s/gm)].map((m) => m[1]);

/** The fields of each struct, in order, as written in the header. */
const structs = new Map<string, string[]>();
for (const m of header.matchAll(/^struct (idwrap_\w+) \{\n([\s\S]*?)^\};/gm)) {
  const fields = [...m[2].replace(/\/\*[\s\S]*?\*\//g, "").matchAll(/^\s*[\w ]+?\s+(\w+)(?:\[[^\]]*\])?;/gm)]
    .map((f) => f[1]);
  structs.set(m[1], fields);
}

/** The mirror's value for a header macro. */
function mirrorOf(name: string): number | undefined {
  const n = name.replace(/^IDWRAP_/, "");
  const pick = (table: Record<string, number>, key: string) => table[key];
  if (n === "ABI_VERSION") return uapi.ABI_VERSION;
  if (n === "MAX_SYSCALLS") return uapi.MAX_SYSCALLS;
  if (n === "IOC_MAGIC") return uapi.IOC_MAGIC;
  for (
    const [prefix, table] of [
      ["CFG_", uapi.CFG],
      ["ACT_", uapi.ACT],
      ["WATCH_", uapi.WATCH],
      ["EVF_", uapi.EVF],
      ["EV_", uapi.EV],
      ["VF_", uapi.VF],
      ["IOC_", uapi.IOC],
    ] as const
  ) {
    if (n.startsWith(prefix)) return pick(table as Record<string, number>, n.slice(prefix.length));
  }
  if (/^(PRE|POST)_/.test(n)) return (uapi.INTEREST as Record<string, number>)[n];
  return undefined;
}

/** The mirror's layout of a struct: its size and field → offset. */
function layoutOf(struct: string): { size: number; fields: Record<string, number> } | undefined {
  const strip = (t: Record<string, number>) => {
    const { size, size_, ...rest } = t;
    return { size, fields: size_ === undefined ? rest : { size: size_, ...rest } };
  };
  switch (struct) {
    case "idwrap_config":
      return strip(uapi.CONFIG);
    case "idwrap_interest":
      return { size: uapi.INTEREST_SIZE, fields: { mask: 0 } };
    case "idwrap_watch":
      return strip(uapi.WATCH_STRUCT);
    case "idwrap_event":
      return strip(uapi.EVENT);
    case "idwrap_verdict":
      return strip(uapi.VERDICT);
    case "idwrap_stats":
      return { size: uapi.STATS_SIZE, fields: Object.fromEntries(uapi.STATS_FIELDS.map((f, i) => [f, i * 8])) };
  }
  return undefined;
}

const C = `
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include "${HEADER}"

static void hex(const void *p, size_t n)
{
	const unsigned char *b = p;
	for (size_t i = 0; i < n; i++)
		printf("%02x", b[i]);
	printf("\\n");
}

int main(void)
{
${macros.map((m) => `\tprintf("macro ${m} %llu\\n", (unsigned long long)(${m}));`).join("\n")}
${
  [...structs].map(([s, fields]) =>
    [
      `\tprintf("size ${s} %zu\\n", sizeof(struct ${s}));`,
      ...fields.map((f) => `\tprintf("offset ${s}.${f} %zu\\n", offsetof(struct ${s}, ${f}));`),
    ].join("\n")
  ).join("\n")
}
	/* A SYSCALL record with every field set and a payload, as the module lays it out. */
	{
		static unsigned char rec[sizeof(struct idwrap_event) + 64];
		struct idwrap_event *e = (struct idwrap_event *)rec;
		const char path[] = "/etc/shadow", path2[] = "/tmp/x";
		const char data[] = "ab\\0cd";
		size_t at = sizeof(*e), total;
		e->type = IDWRAP_EV_SYSCALL;
		e->flags = IDWRAP_EVF_POST | IDWRAP_EVF_VERDICT | IDWRAP_EVF_TRUNC;
		e->id = 0x1122334455667788ULL;
		e->time_ns = 1700000000123456789ULL;
		e->pid = 4242; e->tid = 4243; e->ppid = 1;
		e->uid = 1000; e->gid = 1001; e->euid = 0; e->egid = 2;
		e->nr = 257;
		for (int i = 0; i < 6; i++)
			e->args[i] = 0xfffffffffffffff0ULL + i;
		e->ret = -13;
		e->lost = 7;
		e->path_len = sizeof(path);
		e->path2_len = sizeof(path2);
		e->data_len = sizeof(data) - 1;
		strcpy(e->comm, "cat");
		memcpy(rec + at, path, sizeof(path)); at += sizeof(path);
		memcpy(rec + at, path2, sizeof(path2)); at += sizeof(path2);
		memcpy(rec + at, data, sizeof(data) - 1); at += sizeof(data) - 1;
		total = (at + 7) & ~(size_t)7;
		e->size = (unsigned)total;
		printf("record ");
		hex(rec, total);
	}
	/* A REWRITE verdict with a new path. */
	{
		unsigned char out[sizeof(struct idwrap_verdict) + 16] = { 0 };
		struct idwrap_verdict *v = (struct idwrap_verdict *)out;
		v->id = 99; v->action = IDWRAP_ACT_REWRITE; v->err = 0; v->flags = IDWRAP_VF_WATCH;
		v->arg = 2; v->value = 0x8000000000000001ULL; v->path_len = sizeof("/dev/null");
		memcpy(out + sizeof(*v), "/dev/null", sizeof("/dev/null"));
		printf("verdict ");
		hex(out, sizeof(*v) + sizeof("/dev/null"));
	}
	return 0;
}
`;

let compiled: Promise<Map<string, string>> | undefined;
/** Compiles and runs the C program once per test file. */
function compileAndRun(): Promise<Map<string, string>> {
  return compiled ??= compileAndRunOnce();
}

async function compileAndRunOnce(): Promise<Map<string, string>> {
  const dir = await scratchDir({ prefix: "idwrap-uapi-" });
  try {
    await Deno.writeTextFile(`${dir}/uapi.c`, C);
    const cc = await new Deno.Command("gcc", {
      args: ["-std=gnu11", "-Wall", "-Werror", "-o", `${dir}/uapi`, `${dir}/uapi.c`],
    }).output();
    assert(cc.success, `gcc failed:\n${new TextDecoder().decode(cc.stderr)}`);
    const out = await new Deno.Command(`${dir}/uapi`).output();
    assert(out.success);
    const lines = new Map<string, string>();
    for (const line of new TextDecoder().decode(out.stdout).trim().split("\n")) {
      const m = line.match(/^(macro \S+|size \S+|offset \S+|record|verdict) (\S+)$/);
      assert(m, line);
      lines.set(m[1], m[2]);
    }
    return lines;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const fromHex = (h: string) => new Uint8Array(h.match(/../g)!.map((b) => parseInt(b, 16)));

Deno.test("kmod uapi: every constant of idwrap_uapi.h is mirrored with its value", async () => {
  const c = await compileAndRun();
  assert(macros.length >= 37, `only ${macros.length} macros found in the header`);
  const expected = Object.fromEntries(macros.map((m) => [m, Number(c.get(`macro ${m}`))]));
  const actual = Object.fromEntries(macros.map((m) => [m, mirrorOf(m)]));
  assertEquals(actual, expected);
});

Deno.test("kmod uapi: every struct's size and every field's offset are mirrored", async () => {
  const c = await compileAndRun();
  assertEquals(
    [...structs.keys()].sort(),
    ["idwrap_config", "idwrap_event", "idwrap_interest", "idwrap_stats", "idwrap_verdict", "idwrap_watch"],
  );
  for (const [s, fields] of structs) {
    const layout = layoutOf(s)!;
    const expected = {
      size: Number(c.get(`size ${s}`)),
      fields: Object.fromEntries(fields.map((f) => [f, Number(c.get(`offset ${s}.${f}`))])),
    };
    assertEquals(layout, expected, s);
  }
});

Deno.test("kmod uapi: a record laid out by C parses to the same fields and payload", async () => {
  const c = await compileAndRun();
  const bytes = fromHex(c.get("record")!);
  // Two records back to back, as one read() returns them.
  const two = new Uint8Array(bytes.length * 2);
  two.set(bytes);
  two.set(bytes, bytes.length);
  const recs = uapi.parseRecords(two);
  assertEquals(recs.length, 2);
  const r = recs[1];
  assertEquals(r.size, bytes.length);
  assertEquals(r.size % 8, 0);
  assertEquals(
    { ...r, args: [...r.args], data: [...r.data!] },
    {
      size: bytes.length,
      type: uapi.EV.SYSCALL,
      flags: uapi.EVF.POST | uapi.EVF.VERDICT | uapi.EVF.TRUNC,
      id: 0x1122334455667788n,
      timeNs: 1700000000123456789n,
      pid: 4242,
      tid: 4243,
      ppid: 1,
      uid: 1000,
      gid: 1001,
      euid: 0,
      egid: 2,
      nr: 257,
      args: [0, 1, 2, 3, 4, 5].map((i) => 0xfffffffffffffff0n + BigInt(i)),
      ret: -13n,
      lost: 7n,
      comm: "cat",
      path: "/etc/shadow",
      path2: "/tmp/x",
      data: [0x61, 0x62, 0, 0x63, 0x64],
    },
  );
  assertEquals(uapi.splitArgv(r.data), ["ab", "cd"]);
  // A truncated stream is refused, not misread.
  let threw = false;
  try {
    uapi.parseRecords(two.subarray(0, bytes.length + 8));
  } catch (e) {
    threw = e instanceof uapi.RecordError;
  }
  assert(threw, "a cut record must be refused");
});

Deno.test("kmod uapi: a verdict encodes byte for byte as C lays it out", async () => {
  const c = await compileAndRun();
  const expected = fromHex(c.get("verdict")!);
  const actual = uapi.encodeVerdict({
    id: 99n,
    action: uapi.ACT.REWRITE,
    flags: uapi.VF.WATCH,
    arg: 2,
    value: 0x8000000000000001n,
    path: "/dev/null",
  });
  assertEquals([...actual], [...expected]);
});
