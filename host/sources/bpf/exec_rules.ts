/**
 * Exec rules the bpf programs enforce alone (docs/bpf.md, "Decisions in the
 * kernel: exec"): a rule with `action: kill` or `deny` on execve/execveat whose
 * only condition is a literal program path. Each listed file is stat'ed here
 * (following symbolic links) and its identity (inode, device) goes into the
 * `exec_kill` map; the program kills an exec of that file at
 * sched_process_exec, before the new image runs. By identity, so a hard link,
 * a symbolic link, /proc/self/fd/N or fexecve of the file are the file; a copy
 * is another file and is not caught (as the rule's identity match on the other
 * sources). A deny becomes a kill: the exec has passed its point of no return
 * when the program runs, so there is no call left to fail.
 *
 * @module
 */
import type { Policy, Rule } from "../../policy/policy.ts";
import { literalPaths } from "../../policy/rule_decider.ts";
import { resolveSyscalls, syscallNumber } from "../../syscalls/mod.ts";

/** The exec calls: a rule on these alone can be decided at sched_process_exec. */
export const EXEC_NRS: ReadonlySet<number> = new Set([syscallNumber("execve")!, syscallNumber("execveat")!]);

/** One exec rule the kernel enforces. */
export interface KernelExecRule {
  /** The rule's id (the alert names it). */
  id: string;
  /** As written: the kernel can only kill, so a deny is reported as a kill. */
  action: "deny" | "kill";
  /** The files it names, as written (absolute paths). */
  paths: string[];
  /** The policy file. */
  file: string;
}

/** A file's identity as the kernel keeps it: inode and s_dev (major << 20 | minor). */
export interface KernelFile {
  ino: bigint;
  kdev: bigint;
}

/**
 * The literal program paths of an exec rule the kernel can decide, or why it cannot. A rule on other calls too, with
 * conditions other than its path, or a glob is decided by the host alone; and so is a rule naming a script: the
 * kernel has swapped the script for its interpreter by sched_process_exec, so its identity is no longer there.
 */
function kernelPaths(rule: Rule): string[] | string {
  if (rule.action === "alert") return "an alert rule";
  const calls = resolveSyscalls(rule.syscalls);
  if (![...calls].every((nr) => EXEC_NRS.has(nr))) return "it examines calls other than execve and execveat";
  if (rule.not || rule.except || rule.scope) return "it has not, except or scope";
  const globs: string[] = [];
  if (rule.path !== undefined) globs.push(rule.path);
  for (const c of rule.match ?? []) {
    if (Object.keys(c).some((k) => k !== "path") || !c.path || rule.match!.length > 1) {
      return "it has conditions other than the program's path";
    }
    globs.push(...c.path);
  }
  if (!globs.length) return "it names no program (every exec)";
  const out: string[] = [];
  for (const g of globs) {
    const literal = literalPaths(g);
    if (!literal || !literal.every((p) => p.startsWith("/"))) return `${g} is not a literal absolute path`;
    out.push(...literal);
  }
  const script = out.find(isScript);
  if (script) return `${script} is a script (at sched_process_exec the kernel runs its interpreter instead)`;
  return out;
}

/** The file starts with "#!" (the kernel execs its interpreter); a file that cannot be read is not taken for one. */
function isScript(path: string): boolean {
  let f: Deno.FsFile | undefined;
  try {
    f = Deno.openSync(path, { read: true });
    const head = new Uint8Array(2);
    return f.readSync(head) === 2 && head[0] === 0x23 && head[1] === 0x21;
  } catch {
    return false;
  } finally {
    f?.close();
  }
}

/** Why the kernel cannot enforce this rule by itself (see the module's note), or undefined when it can. */
export function execRuleProblem(rule: Rule): string | undefined {
  const paths = kernelPaths(rule);
  return typeof paths === "string" ? paths : undefined;
}

/** Whether the kernel enforces this rule by itself. */
export function isKernelExecRule(rule: Rule): boolean {
  return execRuleProblem(rule) === undefined;
}

/** The policies' exec rules the kernel enforces, in policy and rule order (the index is the map's value). */
export function kernelExecRules(policies: readonly Policy[]): KernelExecRule[] {
  const out: KernelExecRule[] = [];
  for (const policy of policies) {
    for (const rule of policy.rules) {
      const paths = kernelPaths(rule);
      if (typeof paths !== "string") {
        out.push({ id: rule.id, action: rule.action as "deny" | "kill", paths, file: policy.file });
      }
    }
  }
  return out;
}

/** A stat's st_dev (userspace encoding) in the kernel's dev_t encoding, as sb->s_dev holds it. */
export function kernelDev(dev: number | bigint): bigint {
  const d = BigInt(dev);
  const major = ((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn);
  const minor = (d & 0xffn) | ((d >> 12n) & ~0xffn);
  return (major << 20n) | minor;
}

/**
 * The exec_kill map's entries: each rule's files by identity, stat'ed now (symbolic links followed). A file that does
 * not exist yet cannot be exec'd by that name, but may be created later: it is listed in `missing` (the caller
 * re-stats them; docs/bpf.md).
 */
export function execKillEntries(rules: readonly KernelExecRule[]): {
  entries: { file: KernelFile; rule: number }[];
  missing: string[];
} {
  const entries: { file: KernelFile; rule: number }[] = [];
  const missing: string[] = [];
  rules.forEach((r, i) => {
    for (const path of r.paths) {
      try {
        const info = Deno.statSync(path);
        if (info.ino === null || info.dev === null) throw new Error(`no inode for ${path}`);
        entries.push({ file: { ino: BigInt(info.ino), kdev: kernelDev(info.dev) }, rule: i });
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) throw e;
        missing.push(path);
      }
    }
  });
  return { entries, missing };
}
