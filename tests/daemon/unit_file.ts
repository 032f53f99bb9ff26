/**
 * Reads a systemd unit's command lines as systemd runs them, for tests that run them without systemd as pid 1.
 *
 * @module
 */

/** A setting's value (the last one: systemd lets a later line override), or undefined. */
export function unitSetting(unit: string, key: string): string | undefined {
  const values = [...unit.matchAll(new RegExp(`^${key}=(.*)$`, "gm"))].map((m) => m[1]);
  return values.at(-1);
}

/**
 * An Exec line as systemd runs it: words, each `$NAME` replaced by the words of the unit's `Environment="NAME=…"`
 * (systemd.service, "Command lines").
 *
 * @throws when the line is missing or names a variable the unit does not set
 */
export function unitCommand(unit: string, key: string): string[] {
  const line = unitSetting(unit, key);
  if (line === undefined) throw new Error(`no ${key}= in the unit`);
  const env = new Map<string, string>();
  for (const m of unit.matchAll(/^Environment="?([A-Za-z_][A-Za-z0-9_]*)=(.*?)"?$/gm)) env.set(m[1], m[2]);
  return line.split(/\s+/).flatMap((w) => {
    const v = /^\$([A-Za-z_][A-Za-z0-9_]*)$/.exec(w);
    if (!v) return [w];
    const value = env.get(v[1]);
    if (value === undefined) throw new Error(`${key} names $${v[1]}, which no Environment= sets`);
    return value.split(/\s+/);
  });
}
