/**
 * MITRE ATT&CK techniques as ECS `threat.*` fields. Wrappers name the technique at the end of an alert's message
 * (`… (T1003.008)`, docs/rules.md); the record carries it as fields a SIEM can filter on.
 *
 * @module
 */

/** Names of the techniques idwrap's wrappers report (ATT&CK Enterprise); others keep their id alone. */
const NAMES: Record<string, string> = {
  "T1003": "OS Credential Dumping",
  "T1003.008": "/etc/passwd and /etc/shadow",
  "T1014": "Rootkit",
  "T1036": "Masquerading",
  "T1036.005": "Match Legitimate Name or Location",
  "T1040": "Network Sniffing",
  "T1055": "Process Injection",
  "T1059": "Command and Scripting Interpreter",
  "T1059.004": "Unix Shell",
  "T1070": "Indicator Removal",
  "T1070.002": "Clear Linux or Mac System Logs",
  "T1070.003": "Clear Command History",
  "T1071": "Application Layer Protocol",
  "T1098": "Account Manipulation",
  "T1098.004": "SSH Authorized Keys",
  "T1528": "Steal Application Access Token",
  "T1543": "Create or Modify System Process",
  "T1546": "Event Triggered Execution",
  "T1547": "Boot or Logon Autostart Execution",
  "T1547.006": "Kernel Modules and Extensions",
  "T1548": "Abuse Elevation Control Mechanism",
  "T1548.001": "Setuid and Setgid",
  "T1552": "Unsecured Credentials",
  "T1552.001": "Credentials In Files",
  "T1552.004": "Private Keys",
  "T1574": "Hijack Execution Flow",
  "T1574.006": "Dynamic Linker Hijacking",
  "T1611": "Escape to Host",
  "T1620": "Reflective Code Loading",
};

/** The ECS threat fields of a technique id (`T1003` or `T1003.008`). */
export interface ThreatFields {
  "threat.framework": "MITRE ATT&CK";
  "threat.technique.id": string;
  "threat.technique.name"?: string;
  "threat.technique.reference": string;
  "threat.technique.subtechnique.id"?: string;
  "threat.technique.subtechnique.name"?: string;
  "threat.technique.subtechnique.reference"?: string;
}

const REFERENCE = "https://attack.mitre.org/techniques/";

/** The technique an alert's message names at its end (`… (T1003.008)`), if it names one. */
export function techniqueOf(message: string): string | undefined {
  return /\((T\d{4}(?:\.\d{3})?)\)\s*$/.exec(message)?.[1];
}

/** ECS fields for a technique id: the technique, and the sub-technique where the id names one (as ECS splits them). */
export function threatFields(id: string): ThreatFields {
  const [technique, sub] = id.split(".");
  const out: ThreatFields = {
    "threat.framework": "MITRE ATT&CK",
    "threat.technique.id": technique,
    "threat.technique.reference": `${REFERENCE}${technique}/`,
  };
  if (NAMES[technique]) out["threat.technique.name"] = NAMES[technique];
  if (sub !== undefined) {
    out["threat.technique.subtechnique.id"] = id;
    if (NAMES[id]) out["threat.technique.subtechnique.name"] = NAMES[id];
    out["threat.technique.subtechnique.reference"] = `${REFERENCE}${technique}/${sub}/`;
  }
  return out;
}
