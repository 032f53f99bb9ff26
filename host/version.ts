/** idwrap's version: the CLI's `--version`, the audit records' `agent.version`, the .deb's and kmod/dkms.conf's. */
export const VERSION = "0.2.0";

/** What tools/package.ts writes beside main.ts in a packaged install (/usr/lib/idwrap/packaged.json). */
export interface Packaged {
  version: string;
  /** The package format: "deb". */
  format: string;
}

/** The packaged install this code runs from, or undefined in a source checkout (no packaged.json beside main.ts). */
export function packaged(): Packaged | undefined {
  try {
    return JSON.parse(Deno.readTextFileSync(new URL("../packaged.json", import.meta.url)));
  } catch {
    return undefined;
  }
}
