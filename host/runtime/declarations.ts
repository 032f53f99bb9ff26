/**
 * What a wrapper declares in `idwrap_declare` (docs/abi.md, "Declaration"):
 * the record the declare imports fill on a scratch instance at load time,
 * and the rules of `declare_syscall` / `declare_group`.
 *
 * @module
 */
import { SYSCALL_GROUPS, syscallName, syscallNumber } from "../syscalls/mod.ts";
import { DECLARE_DENY, DECLARE_KILL, DECLARE_POST, DECLARE_PRE, DECLARE_WRITES, STATUS } from "./abi.ts";

/** What a wrapper declared in idwrap_declare. */
export interface Declarations {
  /** syscall number → DECLARE_* flags. */
  syscalls: Map<number, number>;
  /** LIFECYCLE_* bits. */
  lifecycle: number;
  /** Abstract events subscribed to, by subscription number. */
  subscriptions: string[];
  /** Abstract events announced, by handle. */
  emits: string[];
}

/** Applies declare_syscall / declare_group; returns a status. */
export function declareSyscalls(d: Declarations, names: string[] | number[], flags: number): number {
  if (
    (flags & ~(DECLARE_PRE | DECLARE_POST | DECLARE_DENY | DECLARE_KILL | DECLARE_WRITES)) ||
    !(flags & (DECLARE_PRE | DECLARE_POST)) || ((flags & DECLARE_WRITES) && !(flags & DECLARE_DENY))
  ) {
    return STATUS.EINVAL;
  }
  const numbers: number[] = [];
  for (const n of names) {
    const nr = typeof n === "number" ? n : syscallNumber(n);
    if (nr === undefined || nr < 0 || syscallName(nr).startsWith("syscall_")) return STATUS.EINVAL;
    numbers.push(nr);
  }
  for (const nr of numbers) d.syscalls.set(nr, mergeFlags(d.syscalls.get(nr) ?? 0, flags));
  return 0;
}

/**
 * Two declarations of one call, merged: the union of their phases, and WRITES (ABI 1.5) only while every DENY among
 * them has it — a DENY without it may deny any open, which the narrower one must not hide.
 */
export function mergeFlags(a: number, b: number): number {
  const wide = (f: number) => (f & DECLARE_DENY) !== 0 && (f & DECLARE_WRITES) === 0;
  const merged = a | b;
  return wide(a) || wide(b) ? merged & ~DECLARE_WRITES : merged;
}

/** The members of a declare_group name, or undefined. */
export function groupMembers(name: string): readonly string[] | undefined {
  return Object.hasOwn(SYSCALL_GROUPS, name) ? SYSCALL_GROUPS[name] : undefined;
}
