/**
 * The configurations a workload runs under (bare, idwrap under policies,
 * strace -f, Linux audit), what every workload is given, and the command line
 * of each.
 *
 * @module
 */
import type { AuditPeer } from "./audit.ts";
import { IDWRAP } from "./paths.ts";

/** How a workload's subject (the build's make, a server) is run. */
export type ConfigKind = "bare" | "idwrap" | "strace" | "audit";

export interface Config {
  id: string;
  label: string;
  kind: ConfigKind;
  /** For idwrap: the policy files. */
  policies?: string[];
  /** The paper's row this one corresponds to, if any. */
  paperRow?: string;
  /** seq in record mode (its database grows; not a detection row). */
  record?: boolean;
  /** For idwrap: run this idwrap instead of the checkout's (--compare). */
  idwrap?: string;
  /** For idwrap: `--source` for this row (--sources), instead of the workload's. */
  source?: string;
  /** For idwrap: the store (IDWRAP_STORE) of this row's source, where its seq database is trained. */
  store?: string;
}

/** What every workload is given. */
export interface WorkloadOptions {
  work: string;
  rounds: number;
  env: Record<string, string>;
  audit?: AuditPeer;
  auditDir: string;
  auditUnavailable?: string;
  /** Passed to every `idwrap run` (--source). */
  idwrapArgs: string[];
  /** No new round starts past it (after two rounds). */
  deadline: number;
  /** At most this many record + detect-check pairs to train seq. */
  trainingRounds: number;
  /** Another idwrap (an older checkout's) whose rows run beside this one's, for a before/after in one run. */
  compare?: string;
  /** More event sources whose rows run beside the default's in the same rounds (--sources). */
  sources?: string[];
}

/**
 * The configurations to measure: with `compare`, each idwrap row twice, the second run by the other idwrap
 * (rotated in the same rounds, so both see the same machine).
 */
export function withCompared(configs: Config[], compare?: string): Config[] {
  if (!compare) return configs;
  return configs.flatMap((c) =>
    c.kind === "idwrap" && !c.record
      ? [c, { ...c, id: `${c.id}Compared`, label: `${c.label} [${compare}]`, idwrap: compare, paperRow: undefined }]
      : [c]
  );
}

/**
 * Rows that can run on each extra source: the bpf source only observes (a policy that denies or kills is refused
 * before the command runs: docs/bpf.md), so only the WSS-only and seq rows run there.
 */
const SOURCE_ROWS: Record<string, (c: Config) => boolean> = {
  bpf: (c) => c.id === "wss" || c.id === "seq",
};

/**
 * The configurations to measure: with `sources`, each idwrap row a source can run again under `--source S`, in the
 * same rounds (so every source sees the same machine).
 */
export function withSources(configs: Config[], sources: string[] = [], storeBase?: string): Config[] {
  const extra = sources.flatMap((source) =>
    configs
      .filter((c) => c.kind === "idwrap" && !c.record && !c.idwrap && (SOURCE_ROWS[source]?.(c) ?? true))
      .map((c) => sourced(c, source, storeBase))
  );
  return [...configs, ...extra];
}

/**
 * A configuration run under another event source, with that source's own store: seq's database is trained under the
 * source that detects with it (seccomp's EINTR window changes what a program does, so a database recorded there
 * misses behaviour the eBPF ring sees, and the reverse).
 */
export function sourced(c: Config, source: string, storeBase?: string): Config {
  return {
    ...c,
    id: `${c.id}@${source}`,
    label: `${c.label} [${source}]`,
    source,
    store: storeBase ? `${storeBase}.${source}` : undefined,
    paperRow: undefined,
  };
}

/** The loginuid the audit configuration gives the subject, so a rule can select its tree (auid=…). */
export const AUDIT_AUID = 3133700;

/**
 * The command line that runs `command` under a configuration. idwrap writes its report
 * (text) to `report`; strace writes its trace to /dev/null; the audit configuration sets
 * the tree's loginuid (the rule is added by the audit peer).
 */
export function wrapCommand(config: Config, command: string[], report: string, idwrapArgs: string[] = []): string[] {
  switch (config.kind) {
    case "bare":
      return command;
    case "idwrap":
      return [
        ...(config.store ? ["env", `IDWRAP_STORE=${config.store}`] : []),
        config.idwrap ?? IDWRAP,
        "run",
        ...(config.source ? ["--source", config.source] : idwrapArgs),
        "-o",
        report,
        ...(config.policies ?? []).flatMap((p) => ["-p", p]),
        "--",
        ...command,
      ];
    case "strace":
      return ["strace", "-f", "-qq", "-o", "/dev/null", "--", ...command];
    case "audit":
      return ["/bin/sh", "-c", `echo ${AUDIT_AUID} > /proc/self/loginuid && exec "$@"`, "sh", ...command];
  }
}
