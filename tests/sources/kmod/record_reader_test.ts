/**
 * The kmod source decodes a SYSCALL record's pointer arguments from the
 * module's copies (host/sources/kmod/record_reader.ts): execve's
 * argv from the record's data, never from the caller's memory, whether the
 * call waits for a verdict or is only observed.
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { recordReader } from "../../../host/sources/kmod/record_reader.ts";
import { EVF, type KmodRecord } from "../../../host/sources/kmod/uapi.ts";
import { decodeArgs } from "../../../host/wss/decode.ts";
import type { TargetMemory } from "../../../host/unsafe/memory.ts";
import { syscallNumber } from "../../../host/syscalls/mod.ts";

const enc = new TextEncoder();

/** A caller's memory that must not be read. */
const untouchable = new Proxy({}, {
  get: (_t, name) => () => {
    throw new Error(`the caller's memory was read (${String(name)})`);
  },
}) as TargetMemory;

function execRecord(flags: number, data?: string): KmodRecord {
  return {
    size: 0,
    type: 1,
    flags,
    id: 1n,
    timeNs: 0n,
    pid: 10,
    tid: 10,
    ppid: 1,
    uid: 0,
    gid: 0,
    euid: 0,
    egid: 0,
    nr: syscallNumber("execve")!,
    args: new BigUint64Array([0x1000n, 0x2000n, 0x3000n, 0n, 0n, 0n]),
    ret: 0n,
    lost: 0n,
    comm: "sh",
    path: "/bin/ls",
    data: data === undefined ? undefined : enc.encode(data),
  };
}

Deno.test("kmod records: execve's argv comes from the record's copy (decided and observed)", () => {
  for (const flags of [EVF.VERDICT, 0]) {
    const d = decodeArgs(
      "execve",
      execRecord(flags, "ls\0-l\0/tmp\0").args,
      recordReader(execRecord(flags, "ls\0-l\0/tmp\0"), untouchable),
    );
    assertEquals(d.path, "/bin/ls");
    assertEquals(d.argv, ["ls", "-l", "/tmp"]);
    assertEquals(d.fault, undefined);
  }
});

Deno.test("kmod records: an execve whose argv could not be copied is a fault, not a read of memory", () => {
  const rec = execRecord(EVF.VERDICT | EVF.FAULT);
  const d = decodeArgs("execve", rec.args, recordReader(rec, untouchable));
  assertEquals(d.argv, undefined);
  assertEquals(d.fault, "arg1");
});
