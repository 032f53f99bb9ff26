/**
 * Where the table benchmark finds the checkout, its idwrap and the default policy.
 *
 * @module
 */
import { join } from "node:path";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("../..", import.meta.url));
export const IDWRAP = join(ROOT, "idwrap");
/** The policy `idwrap run` applies without --policy (issue 8's default policy). */
export const DEFAULT_POLICY = join(ROOT, "policies", "default.yaml");
