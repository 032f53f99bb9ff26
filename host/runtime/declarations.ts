/**
 * What a wrapper declares in `idwrap_declare` (docs/abi.md, "Declaration"):
 * the record the declare imports fill on a scratch instance at load time,
 * and the rules of `declare_syscall` / `declare_group`.
 *
 * @module
 */
import { SYSCALL_GROUPS, syscallName, syscallNumber } from "../syscalls/mod.ts";
import { DECLARE_DENY, DECLARE_KILL, DECLARE_POST, DECLARE_PRE, STATUS } from "./abi.ts";

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
    (flags & ~(DECLARE_PRE | DECLARE_POST | DECLARE_DENY | DECLARE_KILL)) || !(flags & (DECLARE_PRE | DECLARE_POST))
  ) {
    return STATUS.EINVAL;
  }
  const numbers: number[] = [];
  for (const n of names) {
    const nr = typeof n === "number" ? n : syscallNumber(n);
    if (nr === undefined || nr < 0 || syscallName(nr).startsWith("syscall_")) return STATUS.EINVAL;
    numbers.push(nr);
  }
  for (const nr of numbers) d.syscalls.set(nr, (d.syscalls.get(nr) ?? 0) | flags);
  return 0;
}

/** The members of a declare_group name, or undefined. */
export function groupMembers(name: string): readonly string[] | undefined {
  return Object.hasOwn(SYSCALL_GROUPS, name) ? SYSCALL_GROUPS[name] : undefined;
}
