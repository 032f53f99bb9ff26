/**
 * Path text helpers for wrappers: lexical only (symbolic links are not
 * followed; wr_stat is the way to ask about the file itself).
 */

/** An absolute path with "//", "/./" and ".." folded, no trailing "/" (except "/" itself). */
export function foldPath(path: string): string {
  const parts = path.split("/");
  const out = new Array<string>(0);
  for (let i = 0; i < parts.length; i++) {
    const p = parts[i];
    if (p.length == 0 || p == ".") continue;
    if (p == "..") {
      if (out.length > 0) out.pop();
      continue;
    }
    out.push(p);
  }
  return "/" + out.join("/");
}
