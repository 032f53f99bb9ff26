/**
 * The setting lists (JSON arrays of strings, or comma-separated text) and
 * how names and paths are matched against them: a program entry without
 * "/" matches the executable's base name, one with "/" its whole path; a
 * trailing "*" makes an entry a prefix.
 */
import { Event, foldPath, setting } from "../sdk/index";

/**
 * Parses a list setting: a JSON array of strings (escapes \" \\ \/ \n \t
 * understood), or plain text split at commas.
 */
export function parseList(text: string): string[] {
  const out = new Array<string>(0);
  const s = text.trim();
  if (s.length == 0) return out;
  if (s.charCodeAt(0) != 0x5b) { // not "[": comma-separated text
    const parts = s.split(",");
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i].trim();
      if (p.length > 0) out.push(p);
    }
    return out;
  }
  let i = 1;
  while (i < s.length) {
    const c = s.charCodeAt(i);
    if (c == 0x22) { // "
      let cur = "";
      i++;
      while (i < s.length && s.charCodeAt(i) != 0x22) {
        let ch = s.charCodeAt(i);
        if (ch == 0x5c && i + 1 < s.length) { // backslash
          i++;
          ch = s.charCodeAt(i);
          if (ch == 0x6e) ch = 0x0a;
          else if (ch == 0x74) ch = 0x09;
        }
        cur += String.fromCharCode(ch);
        i++;
      }
      out.push(cur);
    }
    i++;
  }
  return out;
}

export function listSetting(key: string, def: string): string[] {
  const v = setting(key);
  return parseList(v === null ? def : v);
}

export function baseName(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? path : path.substring(i + 1);
}

export function dirName(path: string): string {
  const i = path.lastIndexOf("/");
  return i <= 0 ? (i == 0 ? "/" : ".") : path.substring(0, i);
}

/** One name pattern against a value: exact, or a prefix with a trailing "*". */
export function nameMatches(pattern: string, value: string): bool {
  if (pattern.endsWith("*")) return value.startsWith(pattern.substring(0, pattern.length - 1));
  return pattern == value;
}

/** A program list against an executable path (entries with "/" match the whole path, others the base name). */
export function programIn(list: string[], exe: string): bool {
  const base = baseName(exe);
  for (let i = 0; i < list.length; i++) {
    const p = list[i];
    if (nameMatches(p, p.includes("/") ? exe : base)) return true;
  }
  return false;
}

/** A canonical absolute path ("//", "/./", ".." folded), or the path itself if relative. */
export function canonical(path: string): string {
  if (path.length == 0 || path.charCodeAt(0) != 0x2f) return path;
  return foldPath(path);
}

/** Whether path is a directory of the list or below one ("/lib*" is any top component starting "lib"). */
export function underAny(list: string[], path: string): string | null {
  for (let i = 0; i < list.length; i++) {
    const d = list[i];
    if (d.endsWith("*")) {
      if (path.startsWith(d.substring(0, d.length - 1))) return d;
      continue;
    }
    if (path == d || path.startsWith(d == "/" ? d : d + "/")) return d;
  }
  return null;
}

/** Whether any path of the list has this base name. */
export function nameIn(list: string[], base: string): bool {
  for (let i = 0; i < list.length; i++) if (baseName(list[i]) == base) return true;
  return false;
}

export function inList(list: string[], value: string): bool {
  for (let i = 0; i < list.length; i++) if (nameMatches(list[i], value)) return true;
  return false;
}

export function exePath(): string {
  const e = Event.exe();
  return e === null ? "?" : e;
}

export function strPath(p: string | null): string {
  return p === null ? "" : p;
}

/** The dirfd of a path relative to the current directory. */
export const AT_FDCWD: i32 = -100;
