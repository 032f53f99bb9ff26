/**
 * User and group names → ids through the system's name service switch (NSS:
 * files, LDAP, SSSD, systemd's synthesized users…), as `id` and `ls` resolve
 * them: `getent`, which asks glibc's NSS. A policy naming an LDAP user, or a
 * daemon's `--allow-user` of one, works on hosts whose users are not in
 * /etc/passwd. Without getent, the files (/etc/passwd, /etc/group).
 *
 * @module
 */

/** The NSS databases a name is looked up in. */
export type IdDatabase = "passwd" | "group";

const cache = new Map<string, number | undefined>();

/** The id of user or group `name` (its third field), or undefined when NSS does not know it. */
export function lookupId(db: IdDatabase, name: string): number | undefined {
  const key = `${db}:${name}`;
  if (!cache.has(key)) cache.set(key, name.includes(":") || name.includes("\n") ? undefined : ask(db, name));
  return cache.get(key);
}

function ask(db: IdDatabase, name: string): number | undefined {
  let out: Deno.CommandOutput;
  try {
    out = new Deno.Command("getent", { args: [db, "--", name], stdout: "piped", stderr: "null" }).outputSync();
  } catch {
    return fromFile(`/etc/${db}`, name);
  }
  // Exit 2: no such key. Any entry's name must be the one asked (getent passwd 0 would look a uid up).
  if (!out.success) return undefined;
  const fields = new TextDecoder().decode(out.stdout).split("\n")[0].split(":");
  const id = Number(fields[2]);
  return fields[0] === name && fields.length >= 3 && Number.isInteger(id) ? id : undefined;
}

/** An /etc/passwd-style file's id for `name`; unreadable or absent: undefined. */
function fromFile(file: string, name: string): number | undefined {
  let text = "";
  try {
    text = Deno.readTextFileSync(file);
  } catch {
    return undefined;
  }
  for (const line of text.split("\n")) {
    const fields = line.split(":");
    const id = Number(fields[2]);
    if (fields[0] === name && fields.length >= 3 && Number.isInteger(id)) return id;
  }
  return undefined;
}
