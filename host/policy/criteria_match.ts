/**
 * Activation criteria of the Wrapper Support Subsystem: which processes a
 * wrapper is bound to, by the program they run, who invoked it, their
 * parent, and the executable file's attributes (set-id bits, owner, content
 * hash). A policy's wrapper entry has `activate` and `deactivate` criteria
 * (docs/policy.md); the WSS evaluates them when it first sees a process and
 * at every execve.
 *
 * Criteria are plain data (structured-clonable, so they cross to the
 * supervisor's worker with the policy); the globs are compiled on first use
 * and cached by their text.
 *
 * @module
 */
import { createHash } from "node:crypto";
import picomatch from "picomatch";
import type { Criteria } from "./criteria.ts";
import type { ProcessFacts } from "../decider.ts";

export type { ProcessFacts };

const S_ISUID = 0o4000;
const S_ISGID = 0o2000;

/** Attributes of the executable file, computed lazily (stat + sha256) and cached by the caller. */
export interface ExeAttributes {
  /** `st_mode`: type and permission bits, S_ISUID (0o4000) and S_ISGID (0o2000) included. */
  mode: number;
  uid: number;
  gid: number;
  /** Lower-case hex SHA-256 of the content. */
  sha256: string;
}

/**
 * Parsed, validated criteria: every present condition must hold (AND); a
 * list within one condition holds if any entry does (OR). An empty object
 * is never produced: parseCriteria requires at least one condition.
 */

const compiled = new Map<string, (s: string) => boolean>();

function matcher(glob: string): (s: string) => boolean {
  let m = compiled.get(glob);
  if (!m) {
    m = picomatch(glob, { dot: true });
    compiled.set(glob, m);
  }
  return m;
}

function baseName(path: string): string {
  return path.replace(/\/+$/, "").replace(/^.*\//, "");
}

/** A glob with "/" matches the path; one without, the base name of any of the paths. */
function globsMatch(globs: readonly string[], path: string, others: readonly string[] = []): boolean {
  return globs.some((g) => {
    const m = matcher(g);
    if (g.includes("/")) return m(path);
    return m(baseName(path)) || others.some((o) => o !== "" && m(baseName(o)));
  });
}

/**
 * Whether every condition holds (conditions AND together; lists within one condition OR together). `exe` is called
 * only if a condition needs the file's attributes; when it returns undefined (unreadable), such a condition does not
 * hold — whether it asks for true or false.
 */
export function matchesCriteria(c: Criteria, facts: ProcessFacts, exe: () => ExeAttributes | undefined): boolean {
  if (c.all) return true;
  // argv0 is chosen by the invoker (exec -a): only the executable itself identifies the program.
  if (c.program && !globsMatch(c.program, facts.exe)) return false;
  if (c.user && !c.user.includes(facts.uid)) return false;
  if (c.group && !c.group.includes(facts.gid)) return false;
  if (c.parent && !globsMatch(c.parent, facts.parentExe)) return false;
  if (c.setuid === undefined && c.setgid === undefined && !c.owner && !c.sha256) return true;
  const attrs = exe();
  if (!attrs) return false;
  if (c.setuid !== undefined && ((attrs.mode & S_ISUID) !== 0) !== c.setuid) return false;
  if (c.setgid !== undefined && ((attrs.mode & S_ISGID) !== 0) !== c.setgid) return false;
  if (c.owner && !c.owner.includes(attrs.uid)) return false;
  if (c.sha256 && !c.sha256.includes(attrs.sha256.toLowerCase())) return false;
  return true;
}

/** Whether the criteria need the executable's attributes (so the caller can skip reading it). */
export function needsExeAttributes(c: Criteria): boolean {
  return c.setuid !== undefined || c.setgid !== undefined || c.owner !== undefined || c.sha256 !== undefined;
}

/** Files changed this recently (ms) are never cached: timestamps are compared at millisecond precision. */
const SETTLE_MS = 2000;

/**
 * The key under which a file's attributes may be cached, or undefined when
 * they must be read afresh. A rewrite in place keeps device, inode and size,
 * and `touch -d`/utimensat can put the mtime back; the ctime it cannot set,
 * since every write or utimensat moves it to now. Deno gives both at
 * millisecond precision, so a file changed in the last SETTLE_MS (where two
 * changes could share a millisecond) is not cached at all.
 */
export function attributesCacheKey(info: Deno.FileInfo, now = Date.now()): string | undefined {
  const ctime = info.ctime?.getTime();
  const mtime = info.mtime?.getTime();
  if (ctime === undefined || mtime === undefined || now - ctime < SETTLE_MS || now - mtime < SETTLE_MS) {
    return undefined;
  }
  return `${info.dev}:${info.ino}:${info.size}:${mtime}:${ctime}`;
}

/**
 * Reads the executable's attributes: stat (mode, owner) and sha256 of its content (node:crypto createHash, streaming
 * the file). undefined if unreadable.
 */
export function readExeAttributes(path: string): ExeAttributes | undefined {
  let file: Deno.FsFile | undefined;
  try {
    file = Deno.openSync(path, { read: true });
    const info = file.statSync();
    if (!info.isFile || info.mode === null || info.uid === null || info.gid === null) return undefined;
    const hash = createHash("sha256");
    const buf = new Uint8Array(1 << 16);
    for (;;) {
      const n = file.readSync(buf);
      if (n === null || n === 0) break;
      hash.update(buf.subarray(0, n));
    }
    return { mode: info.mode, uid: info.uid, gid: info.gid, sha256: hash.digest("hex") };
  } catch {
    return undefined;
  } finally {
    file?.close();
  }
}
