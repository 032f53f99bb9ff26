/**
 * The policy files every server workload writes besides its own wrapper's:
 * seq bound to the server's program (detect and record), and an empty
 * policy (the WSS alone).
 *
 * @module
 */
import { join } from "node:path";

/** Paths of the policies {@link writeSharedPolicies} wrote. */
export interface SharedPolicies {
  seq: string;
  seqRecord: string;
  empty: string;
}

/** Writes `<prefix>-seq-detect.yaml`, `<prefix>-seq-record.yaml` and `<prefix>-empty.yaml` into `work`. */
export function writeSharedPolicies(work: string, prefix: string, program: string): SharedPolicies {
  const seq = (mode: string) => {
    const p = join(work, `${prefix}-seq-${mode}.yaml`);
    Deno.writeTextFileSync(
      p,
      `version: 1\nname: bench-seq-${mode}\nwrappers:\n  - name: seq\n    settings: { mode: ${mode} }\n` +
        `    activate: { program: ${program} }\n`,
    );
    return p;
  };
  const empty = join(work, `${prefix}-empty.yaml`);
  Deno.writeTextFileSync(empty, "version: 1\nname: bench-empty\n");
  return { seq: seq("detect"), seqRecord: seq("record"), empty };
}
