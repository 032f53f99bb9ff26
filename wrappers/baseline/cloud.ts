/**
 * Cloud and Kubernetes credentials (cloud-credential-read): the path
 * patterns of cloud_credential_paths, absolute or under any home, and who
 * may read them (the program, or the script an interpreter runs).
 */
import { wrStat } from "../sdk/index";
import { scriptArg, scriptPath } from "./exec";
import { AT_FDCWD, programIn } from "./lists";
import { cloudAllow, cloudPaths, homeDirs } from "./settings";

// Patterns (cloud_credential_paths): absolute, or "~/…" for any home of
// home_dirs; "*" within a component matches any run of characters, "**" as a
// whole component any number of components (zero included). Patterns are
// split into components once, at init; "~/" patterns once per home.
export const cloudComps = new Array<string[]>(0);
/** The same patterns' components without the home: what a relative path is matched against. */
const cloudTails = new Array<string[]>(0);

/** Whether one component matches a pattern component with "*" wildcards. */
export function wildMatch(p: string, s: string): bool {
  let pi = 0;
  let si = 0;
  let star = -1;
  let mark = 0;
  while (si < s.length) {
    if (pi < p.length && p.charCodeAt(pi) == 0x2a) {
      star = pi++;
      mark = si;
    } else if (pi < p.length && p.charCodeAt(pi) == s.charCodeAt(si)) {
      pi++;
      si++;
    } else if (star >= 0) {
      pi = star + 1;
      si = ++mark;
    } else {
      return false;
    }
  }
  while (pi < p.length && p.charCodeAt(pi) == 0x2a) pi++;
  return pi == p.length;
}

/** Whether the components s[si..] match the pattern components p[pi..] ("**" spans components). */
function compsMatch(p: string[], pi: i32, s: string[], si: i32): bool {
  while (pi < p.length) {
    const c = p[pi];
    if (c == "**") {
      for (let k = si; k <= s.length; k++) if (compsMatch(p, pi + 1, s, k)) return true;
      return false;
    }
    if (si >= s.length || !wildMatch(c, s[si])) return false;
    pi++;
    si++;
  }
  return si == s.length;
}

/** Components of a path: "/a/b" gives ["", "a", "b"]; empty and "." components dropped after the first. */
function splitPath(path: string): string[] {
  const parts = path.split("/");
  const out = new Array<string>(0);
  for (let i = 0; i < parts.length; i++) {
    const c = parts[i];
    if (i > 0 && (c.length == 0 || c == ".")) continue;
    if (i == 0 && c == ".") continue;
    out.push(c);
  }
  return out;
}

export function compileCloudPatterns(): void {
  for (let i = 0; i < cloudPaths.length; i++) {
    let p = cloudPaths[i].trim();
    if (p.endsWith("/")) p += "**"; // a directory: everything below it
    if (p.startsWith("~/")) {
      const tail = p.substring(2);
      cloudTails.push(splitPath(tail));
      for (let h = 0; h < homeDirs.length; h++) {
        let home = homeDirs[h];
        while (home.length > 1 && home.endsWith("/")) home = home.substring(0, home.length - 1);
        cloudComps.push(splitPath(home == "/" ? "/" + tail : home + "/" + tail));
      }
    } else if (p.startsWith("/")) {
      const comps = splitPath(p);
      cloudComps.push(comps);
      cloudTails.push(comps.slice(1));
    }
  }
}

/** Whether an absolute canonical path matches a pattern. */
export function cloudAbsolute(path: string): bool {
  const s = splitPath(path);
  for (let i = 0; i < cloudComps.length; i++) if (compsMatch(cloudComps[i], 0, s, 0)) return true;
  return false;
}

/** Components of t from k on without a wildcard. */
function literals(t: string[], k: i32): i32 {
  let n = 0;
  for (let i = k; i < t.length; i++) if (!t[i].includes("*")) n++;
  return n;
}

/**
 * Whether the components r[m..] match t[k..] for some m (r's components
 * before m are a home) and k where t[k..] has two components without a
 * wildcard at least: ".aws/credentials", "sso/cache/x.json", not
 * "cache/x.json" (a directory called cache is no AWS token cache).
 */
function tailMatch(t: string[], r: string[]): bool {
  for (let m = 0; m + 2 <= r.length; m++) {
    for (let k = 0; k < t.length; k++) {
      if (t[k] != "**" && literals(t, k) >= 2 && compsMatch(t, k, r, m)) return true;
    }
  }
  return false;
}

/**
 * A relative path against the patterns' tails ("" when it matches as
 * written, the directory-qualified name when its directory was verified,
 * null for no match): its components (those after
 * the last "..") must end with the end of a pattern, from one of its
 * components on that holds two without a wildcard at least (the file and
 * its directory: ".aws/credentials", not a bare "credentials"). A
 * bare name relative to the cwd gets its directory's name first when the
 * directory is the one a pattern names: "credentials" in a cwd that is
 * "../.aws" as the process sees it (dev:ino) is ".aws/credentials".
 */
export function cloudRelative(raw: string, dirfd: i32): string | null {
  const all = splitPath(raw);
  let from = 0;
  for (let i = 0; i < all.length; i++) if (all[i] == "..") from = i + 1;
  const s = all.slice(from);
  if (s.length == 0) return null;
  const last = s[s.length - 1];
  for (let i = 0; i < cloudTails.length; i++) {
    const t = cloudTails[i];
    if (t.length < 2 || !wildMatch(t[t.length - 1], last)) continue;
    let r = s;
    if (s.length == 1) {
      // A bare name: the pattern's file and directory must both be named (".kube/config", not "pki/**/*.key").
      if (dirfd != AT_FDCWD || all.length != 1) continue; // in the cwd ("config", "./config"), not "../config"
      const j = t.length - 2;
      if (t[j].includes("*") || t[j + 1].includes("*")) continue;
      const here = wrStat(".");
      const named = wrStat("../" + t[j]);
      if (here === null || named === null || here.nodeId() != named.nodeId()) continue;
      r = [t[j], last];
    }
    if (tailMatch(t, r)) return r === s ? "" : r.join("/");
  }
  return null;
}

/** Whether this process's program (or the script it runs) may read cloud credentials. */
export function cloudAllowed(exe: string): bool {
  if (programIn(cloudAllow, exe)) return true;
  if (scriptPath.length > 0 && programIn(cloudAllow, scriptPath)) return true;
  return scriptArg.length > 0 && programIn(cloudAllow, scriptArg);
}
