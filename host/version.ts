/** idwrap's version: the CLI's `--version` and the audit records' `agent.version`. */
export const VERSION = "0.2.0";
