/** host/sources/bpf/layout.ts against kmod/bpf/idwrap_bpf.h, as the C compiler lays the header out. */
import { scratchDir } from "../../temp.ts";
import { deepStrictEqual as assertEquals, throws as assertThrows } from "node:assert/strict";
import * as layout from "../../../host/sources/bpf/layout.ts";
import { interestFor } from "../../../host/sources/bpf/interest.ts";
import { execArgvProblem, recordReader } from "../../../host/sources/bpf/events.ts";
import { decodeArgs } from "../../../host/wss/decode.ts";
import { ROOT } from "../../helpers.ts";

/** Compiles a program that prints the header's offsets, sizes and constants as JSON, and runs it. */
async function cLayout(): Promise<Record<string, number>> {
  const dir = await scratchDir();
  const fields: [string, string][] = [
    ["head.ktime", "offsetof(struct idw_head, ktime)"],
    ["head.kind", "offsetof(struct idw_head, kind)"],
    ["head.flags", "offsetof(struct idw_head, flags)"],
    ["head.tgid", "offsetof(struct idw_head, tgid)"],
    ["head.tid", "offsetof(struct idw_head, tid)"],
    ["head.nr", "offsetof(struct idw_head, nr)"],
    ["head.lost", "offsetof(struct idw_head, lost)"],
    ["head.ret", "offsetof(struct idw_head, ret)"],
    ["head.args", "offsetof(struct idw_head, args)"],
    ["head.uid", "offsetof(struct idw_head, uid)"],
    ["head.gid", "offsetof(struct idw_head, gid)"],
    ["head.size", "sizeof(struct idw_head)"],
    ["copy.path_len", "offsetof(struct idw_copy_rec, path_len)"],
    ["copy.path2_len", "offsetof(struct idw_copy_rec, path2_len)"],
    ["copy.data_len", "offsetof(struct idw_copy_rec, data_len)"],
    ["copy.path", "offsetof(struct idw_copy_rec, path)"],
    ["copy.path2", "offsetof(struct idw_copy_rec, path2)"],
    ["copy.data", "offsetof(struct idw_copy_rec, data)"],
    ["copy.size", "sizeof(struct idw_copy_rec)"],
    ["pathrec.path", "offsetof(struct idw_path_rec, path)"],
    ["pathrec.size", "sizeof(struct idw_path_rec)"],
    ["interest.flags", "offsetof(struct idw_interest, flags)"],
    ["interest.path_arg", "offsetof(struct idw_interest, path_arg)"],
    ["interest.path2_arg", "offsetof(struct idw_interest, path2_arg)"],
    ["interest.data_arg", "offsetof(struct idw_interest, data_arg)"],
    ["interest.len_arg", "offsetof(struct idw_interest, len_arg)"],
    ["interest.size", "sizeof(struct idw_interest)"],
    ["config.mode", "offsetof(struct idw_config, mode)"],
    ["config.cgroup_id", "offsetof(struct idw_config, cgroup_id)"],
    ["config.wake_bytes", "offsetof(struct idw_config, wake_bytes)"],
    ["config.size", "sizeof(struct idw_config)"],
    ["PATH_MAX", "IDW_PATH_MAX"],
    ["DATA_MAX", "IDW_DATA_MAX"],
    ["MAX_SYSCALLS", "IDW_MAX_SYSCALLS"],
    ["ENTER", "IDW_ENTER"],
    ["EXIT", "IDW_EXIT"],
    ["FORK", "IDW_FORK"],
    ["EXEC", "IDW_EXEC"],
    ["GONE", "IDW_GONE"],
    ["SKIPPED", "IDW_SKIPPED"],
    ["F_COPIES", "IDW_F_COPIES"],
    ["F_COMPAT", "IDW_F_COMPAT"],
    ["F_PATH_FAULT", "IDW_F_PATH_FAULT"],
    ["F_PATH2_FAULT", "IDW_F_PATH2_FAULT"],
    ["F_DATA_FAULT", "IDW_F_DATA_FAULT"],
    ["F_DATA_TRUNC", "IDW_F_DATA_TRUNC"],
    ["F_UNFOLLOWED", "IDW_F_UNFOLLOWED"],
    ["F_EXEC_KILLED", "IDW_F_EXEC_KILLED"],
    ["file.ino", "offsetof(struct idw_file, ino)"],
    ["file.dev", "offsetof(struct idw_file, dev)"],
    ["file.size", "sizeof(struct idw_file)"],
    ["F_WINDOW", "IDW_F_WINDOW"],
    ["I_ENTER", "IDW_I_ENTER"],
    ["I_EXIT", "IDW_I_EXIT"],
    ["I_WINDOW", "IDW_I_WINDOW"],
    ["I_FILTERABLE", "IDW_I_FILTERABLE"],
    ["I_ARGV", "IDW_I_ARGV"],
    ["ARGV_MAX", "IDW_ARGV_MAX"],
    ["WINDOW_BITS", "IDW_WINDOW_BITS"],
    ["WINDOW_MASK_HI", "(IDW_WINDOW_MASK >> 32)"],
    ["WINDOW_MASK_LO", "(IDW_WINDOW_MASK & 0xffffffff)"],
    ["seqf_arm.filter", "offsetof(struct idw_seqf_arm, filter)"],
    ["seqf_arm.gen", "offsetof(struct idw_seqf_arm, gen)"],
    ["seqf_arm.mask", "offsetof(struct idw_seqf_arm, mask)"],
    ["seqf_arm.size", "sizeof(struct idw_seqf_arm)"],
    ["seqf_state.window", "offsetof(struct idw_seqf_state, window)"],
    ["seqf_state.skipped", "offsetof(struct idw_seqf_state, skipped)"],
    ["seqf_state.gen", "offsetof(struct idw_seqf_state, gen)"],
    ["seqf_state.size", "sizeof(struct idw_seqf_state)"],
    ["seqf_key.filter", "offsetof(struct idw_seqf_key, filter)"],
    ["seqf_key.window", "offsetof(struct idw_seqf_key, window)"],
    ["seqf_key.size", "sizeof(struct idw_seqf_key)"],
    ["seqf_file.ino", "offsetof(struct idw_seqf_file, ino)"],
    ["seqf_file.dev", "offsetof(struct idw_seqf_file, dev)"],
    ["seqf_file.gen", "offsetof(struct idw_seqf_file, gen)"],
    ["seqf_file.mnt_id", "offsetof(struct idw_seqf_file, mnt_id)"],
    ["seqf_file.parent", "offsetof(struct idw_seqf_file, parent)"],
    ["seqf_file.name_hash", "offsetof(struct idw_seqf_file, name_hash)"],
    ["seqf_file.size", "sizeof(struct idw_seqf_file)"],
    ["MODE_PIDS", "IDW_MODE_PIDS"],
    ["MODE_CGROUP", "IDW_MODE_CGROUP"],
  ];
  const src = `#include <stdio.h>
#include <stddef.h>
#include <linux/types.h>
#include "${ROOT}kmod/bpf/idwrap_bpf.h"
int main(void) {
  printf("{");
${fields.map(([k, e], i) => `  printf("%s\\"${k}\\": %lu", ${i ? '","' : '""'}, (unsigned long)(${e}));`).join("\n")}
  printf("}\\n");
  return 0;
}
`;
  await Deno.writeTextFile(`${dir}/layout.c`, src);
  const cc = await new Deno.Command("cc", { args: ["-o", `${dir}/layout`, `${dir}/layout.c`] }).output();
  if (!cc.success) throw new Error(new TextDecoder().decode(cc.stderr));
  const out = await new Deno.Command(`${dir}/layout`).output();
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

Deno.test("layout.ts mirrors every offset, size and constant of idwrap_bpf.h", async () => {
  const c = await cLayout();
  const ts: Record<string, number> = {
    ...Object.fromEntries(Object.entries(layout.HEAD).map(([k, v]) => [`head.${k}`, v])),
    ...Object.fromEntries(
      Object.entries(layout.COPY).map(([k, v]) => [`copy.${k}`, v]),
    ),
    "pathrec.path": layout.COPY.path,
    "pathrec.size": layout.PATH_REC_SIZE,
    ...Object.fromEntries(Object.entries(layout.INTEREST).map(([k, v]) => [`interest.${k}`, v])),
    ...Object.fromEntries(Object.entries(layout.CONFIG).map(([k, v]) => [`config.${k}`, v])),
    ...Object.fromEntries(Object.entries(layout.FILE_KEY).map(([k, v]) => [`file.${k}`, v])),
    PATH_MAX: layout.PATH_MAX,
    DATA_MAX: layout.DATA_MAX,
    ARGV_MAX: layout.ARGV_MAX,
    MAX_SYSCALLS: layout.MAX_SYSCALLS,
    ...layout.KIND,
    ...Object.fromEntries(Object.entries(layout.FLAG).map(([k, v]) => [`F_${k}`, v])),
    ...Object.fromEntries(Object.entries(layout.INTEREST_FLAG).map(([k, v]) => [`I_${k}`, v])),
    ...Object.fromEntries(Object.entries(layout.MODE).map(([k, v]) => [`MODE_${k}`, v])),
    WINDOW_BITS: layout.WINDOW_BITS,
    WINDOW_MASK_HI: Number(layout.WINDOW_MASK >> 32n),
    WINDOW_MASK_LO: Number(layout.WINDOW_MASK & 0xffffffffn),
    ...Object.fromEntries(Object.entries(layout.SEQF_ARM).map(([k, v]) => [`seqf_arm.${k}`, v])),
    ...Object.fromEntries(Object.entries(layout.SEQF_STATE).map(([k, v]) => [`seqf_state.${k}`, v])),
    ...Object.fromEntries(Object.entries(layout.SEQF_KEY).map(([k, v]) => [`seqf_key.${k}`, v])),
    ...Object.fromEntries(Object.entries(layout.SEQF_FILE).map(([k, v]) => [`seqf_file.${k}`, v])),
  };
  assertEquals(ts, c);
});

Deno.test("interestFor() copies the arguments the host decodes as paths, buffers and addresses", () => {
  assertEquals(interestFor("openat", { enter: true, exit: true }), { enter: true, exit: true, pathArg: 1 });
  assertEquals(interestFor("renameat2", { enter: true, exit: false }), {
    enter: true,
    exit: false,
    pathArg: 1,
    path2Arg: 3,
  });
  assertEquals(interestFor("write", { enter: true, exit: true }), { enter: true, exit: true, dataArg: 1, lenArg: 2 });
  assertEquals(interestFor("connect", { enter: true, exit: true }), {
    enter: true,
    exit: true,
    dataArg: 1,
    lenArg: 2,
  });
  assertEquals(interestFor("getppid", { enter: true, exit: true }), { enter: true, exit: true });
  // execve's argv (not envp), for argv rules on bpf alone.
  assertEquals(interestFor("execve", { enter: true, exit: false }), {
    enter: true,
    exit: false,
    pathArg: 0,
    argvArg: 1,
  });
  assertEquals(interestFor("execveat", { enter: true, exit: false }), {
    enter: true,
    exit: false,
    pathArg: 1,
    argvArg: 2,
  });
  const argv = layout.encodeInterest({ enter: true, exit: false, pathArg: 0, argvArg: 1 });
  assertEquals([argv[layout.INTEREST.flags], argv[layout.INTEREST.data_arg], argv[layout.INTEREST.len_arg]], [
    layout.INTEREST_FLAG.ENTER | layout.INTEREST_FLAG.ARGV,
    1,
    255,
  ]);
});

Deno.test("encodeInterest() refuses an argument index the programs cannot copy, naming the field", () => {
  assertThrows(
    () => layout.encodeInterest({ enter: true, exit: false, pathArg: 6 }),
    /interest pathArg: expected 0–5, got 6/,
  );
  assertThrows(() => layout.encodeInterest({ enter: true, exit: false, dataArg: 1 }), /dataArg and lenArg: give both/);
  assertThrows(
    () => layout.encodeInterest({ enter: true, exit: false, dataArg: 1, lenArg: 2, argvArg: 3 }),
    /argvArg: not with dataArg/,
  );
});

Deno.test("decodeRecord() refuses a sample of a size no record has", () => {
  assertThrows(() => layout.decodeRecord(new Uint8Array(40)), /40 bytes is shorter than its head/);
  const copies = new Uint8Array(200);
  copies[layout.HEAD.flags] = layout.FLAG.COPIES;
  assertThrows(() => layout.decodeRecord(copies), /copy record of 200 bytes, expected 360 or 1128/);
});

/** An execve enter record whose data is `argv` bytes, with `flags`. */
function execveRecord(argv: string, flags: number): layout.BpfRecord {
  const b = new Uint8Array(layout.COPY.size);
  const v = new DataView(b.buffer);
  v.setUint32(layout.HEAD.kind, layout.KIND.ENTER, true);
  v.setUint32(layout.HEAD.flags, layout.FLAG.COPIES | flags, true);
  v.setInt32(layout.HEAD.nr, 59, true);
  v.setBigUint64(layout.HEAD.args + 8, 0x1000n, true);
  const bytes = new TextEncoder().encode(argv);
  b.set(bytes, layout.COPY.data);
  v.setUint16(layout.COPY.data_len, bytes.length, true);
  return layout.decodeRecord(b);
}

Deno.test("an execve record's argv: as copied, a cut string marked, an unreadable one a fault (never empty)", () => {
  const argv = (s: string, flags = 0) =>
    decodeArgs("execve", execveRecord(s, flags).args, recordReader(execveRecord(s, flags)));
  assertEquals(argv("nc\0-e\0/bin/sh\0").argv, ["nc", "-e", "/bin/sh"]);
  assertEquals(argv("nc\0-e\0/bin/s", layout.FLAG.DATA_TRUNC).argv, ["nc", "-e", "/bin/s…"]);
  // Cut after a whole string (more strings than copied): those copied, as they are.
  assertEquals(argv("nc\0-e\0", layout.FLAG.DATA_TRUNC).argv, ["nc", "-e"]);
  const unreadable = argv("", layout.FLAG.DATA_FAULT);
  assertEquals([unreadable.argv, unreadable.fault], [undefined, "arg1"]);
  assertEquals(
    execArgvProblem(execveRecord("", layout.FLAG.DATA_FAULT)),
    "execve's argv could not be read at the call (a page not resident): argv rules did not see it",
  );
  assertEquals(execArgvProblem(execveRecord("nc\0", 0)), undefined);
});
