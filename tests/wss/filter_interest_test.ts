/**
 * Which calls a window filter may drop (host/wss/interest.ts, FilterInterest): the filtering wrapper's pre calls form
 * the window; of those, only the ones nothing else wants are filterable — never a call another wrapper declares, a rule
 * or observe list names, one the wrapper also wants in post, nor execve, execveat, exit, exit_group; nothing when the
 * output wants every call.
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import type { Policy } from "../../host/policy/policy.ts";
import { DECLARE_KILL, DECLARE_POST, DECLARE_PRE } from "../../host/runtime/abi.ts";
import type { WrapperModule } from "../../host/runtime/module.ts";
import { syscallNumber } from "../../host/syscalls/mod.ts";
import { buildInterest } from "../../host/wss/interest.ts";
import { watToWasm } from "../runtime/wat.ts";

const nr = (name: string) => syscallNumber(name);
const names = (calls: ReadonlySet<number> | undefined) =>
  [...(calls ?? [])].map((n) =>
    ["getppid", "getpid", "read", "write", "close", "execve", "exit_group", "openat"]
      .find((name) => nr(name) === n) ?? String(n)
  ).sort();

/** A wrapper module declaring `calls` (name → flags); `filters`: it imports filter_windows. */
function wrapper(name: string, calls: Record<string, number>, filters: boolean): WrapperModule {
  const imports = filters ? `(import "idwrap" "filter_windows" (func (param i32 i32 i32) (result i32)))` : "";
  const module = new WebAssembly.Module(watToWasm(`(module ${imports} (memory (export "memory") 1))`) as BufferSource);
  const syscalls = new Map(Object.entries(calls).map(([n, f]) => [nr(n), f]));
  return {
    spec: { name },
    path: `${name}.wasm`,
    module,
    declarations: { syscalls, lifecycle: 0, subscriptions: [], emits: [] },
    abiMinor: 4,
  } as unknown as WrapperModule;
}

const SEQ = DECLARE_PRE | DECLARE_KILL;
const seqCalls = { getppid: SEQ, getpid: SEQ, read: SEQ, write: SEQ, close: SEQ, execve: SEQ, exit_group: SEQ };
const policy = (p: Partial<Policy>) => ({ name: "p", observe: [], rules: [], wrappers: [], ...p }) as unknown as Policy;

Deno.test("buildInterest() names the filtering wrapper's window and the calls only it consumes", () => {
  const seq = wrapper("seq", seqCalls, true);
  const f = buildInterest([], [seq], false).filter!;
  assertEquals(f.wrapper, "seq");
  assertEquals(names(f.window), ["close", "execve", "exit_group", "getpid", "getppid", "read", "write"]);
  // execve and exit_group close a process's account: never dropped.
  assertEquals(names(f.filterable), ["close", "getpid", "getppid", "read", "write"]);
});

Deno.test("buildInterest() keeps a call another consumer wants out of the filterable set", () => {
  const seq = wrapper("seq", { ...seqCalls, openat: SEQ | DECLARE_POST }, true);
  const other = wrapper("other", { read: DECLARE_PRE }, false);
  const observing = policy({ observe: ["getpid"] });
  const f = buildInterest([observing], [seq, other], false).filter!;
  assertEquals(names(f.window), ["close", "execve", "exit_group", "getpid", "getppid", "openat", "read", "write"]);
  // read: another wrapper; getpid: an observe list; openat: seq wants its result.
  assertEquals(names(f.filterable), ["close", "getppid", "write"]);
  // The output wants every call (trace, -v): nothing is dropped.
  assertEquals(names(buildInterest([], [seq], true).filter!.filterable), []);
});

Deno.test("buildInterest() gives no filter without a wrapper that imports filter_windows, and one filter at most", () => {
  assertEquals(buildInterest([], [wrapper("plain", seqCalls, false)], false).filter, undefined);
  const first = wrapper("first", { getppid: SEQ }, true), second = wrapper("second", { getpid: SEQ }, true);
  const f = buildInterest([], [first, second], false).filter!;
  assertEquals(f.wrapper, "first");
  // The second filtering wrapper is just another consumer for the first.
  assertEquals(names(f.filterable), ["getppid"]);
});
