/**
 * The action battery of issue 8: one small real program or shell one-liner
 * per baseline rule (after the falcosecurity event-generator actions), each
 * run under policies/default.yaml. Each must raise the rule's alert naming
 * the process and the file or call involved; where the rule denies by
 * default, the action must fail and leave no trace.
 *
 * Tests run as root on a shared machine: every action is harmless or acts
 * on temp files, the one /etc file is unique and removed, /etc/ld.so.preload
 * is never created (the wrapper denies it; the test checks and cleans up).
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { idwrap, prog, reports, ROOT, type Traced, traced, writePolicy } from "../helpers.ts";
import type { WrapperReport } from "../../host/events.ts";
import { parse as parseYaml } from "yaml";

const POLICY = `${ROOT}policies/default.yaml`;
const ACTIONS = prog("baseline_actions");
const tmp = await scratchDir({ prefix: "idwrap-baseline-" });
const home = `${tmp}/home`;
await Deno.mkdir(`${home}/.ssh`, { recursive: true });
await Deno.writeTextFile(`${home}/.ssh/id_rsa`, "-----BEGIN OPENSSH PRIVATE KEY-----\nfake\n");
await Deno.writeTextFile(`${home}/.bash_history`, "ls\n");
await Deno.copyFile("/bin/true", `${tmp}/dropped`);
await Deno.chmod(`${tmp}/dropped`, 0o755);
const unique = `idwrap-baseline-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
// A home the default home_dirs cover (/home/*), unique and removed at the end.
const cloudHome = `/home/${unique}`;
await Deno.mkdir(`${cloudHome}/.aws`, { recursive: true });
await Deno.mkdir(`${cloudHome}/.kube`, { recursive: true });
await Deno.writeTextFile(`${cloudHome}/.aws/credentials`, "[default]\naws_access_key_id = AKIAIDWRAPEXAMPLE\n");
await Deno.writeTextFile(`${cloudHome}/.kube/config`, "apiVersion: v1\nkind: Config\n");
// The service account token of a Kubernetes pod, created only where none exists (and then removed).
const SA_DIR = "/run/secrets/kubernetes.io/serviceaccount";
const createdSecrets = !(await exists("/run/secrets"));
if (createdSecrets) {
  await Deno.mkdir(SA_DIR, { recursive: true });
  await Deno.writeTextFile(`${SA_DIR}/token`, "eyJhbGciOiJSUzI1NiJ9.idwrap-test\n");
}
// The actions program installed as nginx (on inbound_only): its network calls are a server's.
await Deno.mkdir(`${tmp}/inbound`);
await Deno.copyFile(ACTIONS, `${tmp}/inbound/nginx`);
await Deno.chmod(`${tmp}/inbound/nginx`, 0o755);
const INBOUND = `${tmp}/inbound/nginx`;
// What this file made outside its temp dir goes even when a filter skips the "cleanup" test.
globalThis.addEventListener("unload", () => {
  for (const dir of [cloudHome, ...(createdSecrets ? ["/run/secrets"] : []), tmp]) {
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch { /* removed already */ }
  }
});

/** The real path of a program (merged /usr: /bin/sh runs as /usr/bin/dash). */
function exe(path: string): string {
  return Deno.realPathSync(path);
}

interface Case {
  name: string;
  /** The rule id, without "baseline.". */
  rule: string;
  command: string[];
  /** The executable the alert must name. */
  process: string;
  /** Text the alert must contain: the file, address or call involved. */
  detail: string;
  /** ATT&CK technique id in the alert. */
  technique: string;
  setup?: () => Promise<void>;
  /** Checks after the run (the action failed, no trace left). */
  check?: (r: Traced) => Promise<void> | void;
  cleanup?: () => Promise<void>;
  /** The source to pin (`--source`) where the property is one source's; else `auto` (IDWRAP_AUTO_SOURCE). */
  source?: "seccomp" | "hybrid";
}

const sh = exe("/bin/sh");

const CASES: Case[] = [
  {
    name: "head reads /etc/shadow",
    rule: "credential-read",
    command: ["/bin/sh", "-c", "head -c0 /etc/shadow"],
    process: exe("/usr/bin/head"),
    detail: "/etc/shadow read",
    technique: "T1003.008",
  },
  {
    name: "head reads shadow by a relative path (found by dev:ino)",
    rule: "credential-read",
    command: ["/bin/sh", "-c", "cd /etc && head -c0 shadow"],
    process: exe("/usr/bin/head"),
    detail: "/etc/shadow read",
    technique: "T1003.008",
  },
  {
    name: 'openat(fd of /etc, "shadow") (found by the directory\'s dev:ino)',
    rule: "credential-read",
    command: [ACTIONS, "shadow-at"],
    process: ACTIONS,
    detail: "/etc/shadow read",
    technique: "T1003.008",
  },
  {
    name: "cat reads an SSH private key",
    rule: "credential-read",
    command: ["/bin/cat", `${home}/.ssh/id_rsa`],
    process: exe("/bin/cat"),
    detail: `${home}/.ssh/id_rsa read`,
    technique: "T1552.004",
  },
  {
    name: "cat reads ~/.aws/credentials (a home below /home)",
    rule: "cloud-credential-read",
    command: ["/bin/cat", `${cloudHome}/.aws/credentials`],
    process: exe("/bin/cat"),
    detail: `${cloudHome}/.aws/credentials read`,
    technique: "T1552.001",
  },
  {
    name: "head reads ~/.kube/config by a relative path from ~/.kube (its directory checked by dev:ino)",
    rule: "cloud-credential-read",
    command: ["/bin/sh", "-c", `cd ${cloudHome}/.kube && head -c0 config`],
    process: exe("/usr/bin/head"),
    // The seccomp source hands wrappers the canonical path of the file (docs/seccomp.md, "Paths"): pinned, since under
    // IDWRAP_AUTO_SOURCE=bpf auto picks the hybrid, which reports a ring-observed open's path as the caller gave it.
    detail: `${cloudHome}/.kube/config read`,
    technique: "T1552.001",
    source: "seccomp",
  },
  {
    name: "head reads ~/.kube/config by a relative path on the hybrid: alerted, the path reported as given",
    rule: "cloud-credential-read",
    command: ["/bin/sh", "-c", `cd ${cloudHome}/.kube && head -c0 config`],
    process: exe("/usr/bin/head"),
    // A read-only open comes through the ring with the path the caller passed; the wrapper still checks the directory
    // by dev:ino, against the cwd when the record is served (exit is held, so the process is still there; a chdir made
    // in between — the ring's latency — would be seen instead). Not resolved to an absolute path.
    detail: "config (.kube/config) read",
    technique: "T1552.001",
    source: "hybrid",
  },
  {
    name: "a python script reads the pod's service account token",
    rule: "cloud-credential-read",
    command: ["/usr/bin/python3", "-c", `open("${SA_DIR}/token").read()`],
    process: exe("/usr/bin/python3"),
    detail: `${SA_DIR}/token read`,
    technique: "T1528",
  },
  {
    name: "an inbound-only program (nginx) connects a UDP socket to an outside address",
    rule: "inbound-only-connect",
    command: [INBOUND, "udp-connect", "198.51.100.7", "53"],
    process: INBOUND,
    detail: "outbound connect to 198.51.100.7:53",
    technique: "T1071",
  },
  {
    name: "an inbound-only program (nginx) connects to an IPv6 address",
    rule: "inbound-only-connect",
    command: [INBOUND, "udp-connect", "2001:db8::1", "443"],
    process: INBOUND,
    detail: "outbound connect to [2001:db8::1]:443",
    technique: "T1071",
  },
  {
    name: "an inbound-only program (nginx) sends a datagram to an outside address (sendto)",
    rule: "inbound-only-connect",
    command: [INBOUND, "udp-sendto", "198.51.100.7", "9"],
    process: INBOUND,
    detail: "outbound sendto 198.51.100.7:9",
    technique: "T1071",
  },
  {
    name: "a shell appends to authorized_keys",
    rule: "authorized-keys-write",
    command: ["/bin/sh", "-c", `echo 'ssh-ed25519 AAAA attacker' >> ${home}/.ssh/authorized_keys`],
    process: sh,
    detail: `${home}/.ssh/authorized_keys written`,
    technique: "T1098.004",
  },
  {
    name: "a shell writes /etc/ld.so.preload: denied, not created",
    rule: "preload-write",
    command: ["/bin/sh", "-c", "echo /tmp/evil.so > /etc/ld.so.preload"],
    process: sh,
    detail: "/etc/ld.so.preload written",
    technique: "T1574.006",
    setup: async () => {
      assert(!(await exists("/etc/ld.so.preload")), "/etc/ld.so.preload exists already: refusing to test");
    },
    check: async (r) => {
      assert(r.code !== 0, "the write succeeded");
      assert(!(await exists("/etc/ld.so.preload")), "/etc/ld.so.preload was created");
    },
    cleanup: async () => {
      // Only if this test created it (setup refused to run when it existed).
      await Deno.remove("/etc/ld.so.preload").catch(() => {});
    },
  },
  {
    name: "touch creates a file below /etc",
    rule: "system-write",
    command: ["/usr/bin/touch", `/etc/${unique}`],
    process: exe("/usr/bin/touch"),
    detail: `/etc/${unique} written`,
    technique: "T1543",
    cleanup: () => Deno.remove(`/etc/${unique}`).catch(() => {}),
  },
  {
    name: "touch creates a file in /etc by a relative path (found by walking up with ..)",
    rule: "system-write",
    command: ["/bin/sh", "-c", `cd /etc && touch ${unique}-rel`],
    process: exe("/usr/bin/touch"),
    detail: `/etc/${unique}-rel written`,
    technique: "T1543",
    cleanup: () => Deno.remove(`/etc/${unique}-rel`).catch(() => {}),
  },
  {
    name: "a relative write to ld.so.preload from /etc: denied, not created",
    rule: "preload-write",
    command: ["/bin/sh", "-c", "cd /etc && echo /tmp/evil.so > ld.so.preload"],
    process: sh,
    detail: "/etc/ld.so.preload written",
    technique: "T1574.006",
    setup: async () => {
      assert(!(await exists("/etc/ld.so.preload")), "/etc/ld.so.preload exists already: refusing to test");
    },
    check: async (r) => {
      assert(r.code !== 0, "the write succeeded");
      assert(!(await exists("/etc/ld.so.preload")), "/etc/ld.so.preload was created");
    },
    cleanup: async () => {
      await Deno.remove("/etc/ld.so.preload").catch(() => {});
    },
  },
  {
    name: "chmod u+s on a temp file",
    rule: "setuid-create",
    command: ["/bin/sh", "-c", `touch ${tmp}/suid && chmod u+s ${tmp}/suid`],
    process: exe("/bin/chmod"),
    detail: "set to mode 04",
    technique: "T1548.001",
  },
  {
    name: "open(O_CREAT) with mode 04755",
    rule: "setuid-create",
    command: [ACTIONS, "setuid-open", `${tmp}/suid-open`],
    process: ACTIONS,
    detail: `${tmp}/suid-open created with mode 04755`,
    technique: "T1548.001",
  },
  {
    name: "a program dropped in /tmp is executed",
    rule: "tmp-exec",
    command: ["/bin/sh", "-c", `${tmp}/dropped; true`],
    process: sh,
    detail: `${tmp}/dropped executed`,
    technique: "T1059",
  },
  {
    name: "a program in /tmp is executed by a relative path (seen after exec)",
    rule: "tmp-exec",
    command: ["/bin/sh", "-c", `cd ${tmp} && ./dropped`],
    process: `${tmp}/dropped`,
    detail: `${tmp}/dropped executed`,
    technique: "T1059",
  },
  {
    name: "a memfd is executed with execveat(AT_EMPTY_PATH)",
    rule: "memfd-exec",
    command: [ACTIONS, "memfd-exec"],
    process: ACTIONS,
    detail: "executed (execveat AT_EMPTY_PATH)",
    technique: "T1620",
  },
  {
    name: "a program that listens on a socket starts a shell in a child",
    rule: "service-shell",
    command: [ACTIONS, "serve-shell"],
    process: ACTIONS,
    detail: "/bin/sh started from a program serving the network",
    technique: "T1059.004",
  },
  {
    name: "a program named as a service (nginx) starts a shell",
    rule: "service-shell",
    command: [`${tmp}/nginx`, "-c", "true"],
    process: `${tmp}/nginx`,
    detail: "/bin/sh started from a service",
    technique: "T1059.004",
    // A copy of the shell named nginx: it re-executes /bin/sh for its command.
    setup: async () => {
      await Deno.writeTextFile(`${tmp}/nginx.c`, NGINX_C);
      const cc = await new Deno.Command("gcc", { args: ["-o", `${tmp}/nginx`, `${tmp}/nginx.c`] }).output();
      assert(cc.success, new TextDecoder().decode(cc.stderr));
    },
  },
  {
    name: "ptrace attaches to another process",
    rule: "process-injection",
    command: [ACTIONS, "ptrace"],
    process: ACTIONS,
    detail: "ptrace request 16 on pid",
    technique: "T1055",
  },
  {
    name: "process_vm_writev into another process",
    rule: "process-injection",
    command: [ACTIONS, "vm-writev"],
    process: ACTIONS,
    detail: "process_vm_writev into pid",
    technique: "T1055",
  },
  {
    name: "/proc/PID/mem of another process opened for writing",
    rule: "process-injection",
    command: [ACTIONS, "proc-mem"],
    process: ACTIONS,
    detail: "/mem opened for writing",
    technique: "T1055",
  },
  {
    name: "finit_module: denied with EPERM",
    rule: "module-load",
    command: [ACTIONS, "finit-module"],
    process: ACTIONS,
    detail: "finit_module called",
    technique: "T1547.006",
    check: (r) => assertEquals(r.stdout, "errno 1\n"),
  },
  {
    name: "bpf program load",
    rule: "bpf-load",
    command: [ACTIONS, "bpf"],
    process: ACTIONS,
    detail: "bpf command 5 called",
    technique: "T1014",
  },
  {
    name: "mount (of a filesystem type that does not exist)",
    rule: "mount",
    command: [ACTIONS, "mount", tmp],
    process: ACTIONS,
    detail: "mount of none (type idwrap-no-such-fs)",
    technique: "T1611",
  },
  {
    name: "unshare of the UTS namespace",
    rule: "namespace-change",
    command: [ACTIONS, "unshare"],
    process: ACTIONS,
    detail: "unshare(0x4000000) called",
    technique: "T1611",
  },
  {
    name: "kexec_file_load (of no file)",
    rule: "kexec-load",
    command: [ACTIONS, "kexec"],
    process: ACTIONS,
    detail: "kexec_file_load called",
    technique: "T1014",
  },
  {
    name: "a raw ICMP socket",
    rule: "raw-socket",
    command: [ACTIONS, "raw-socket"],
    process: ACTIONS,
    detail: "raw socket opened (domain 2)",
    technique: "T1040",
  },
  {
    name: "a packet socket",
    rule: "raw-socket",
    command: [ACTIONS, "packet-socket"],
    process: ACTIONS,
    detail: "packet socket opened",
    technique: "T1040",
  },
  {
    name: "truncate of a file under /var/log",
    rule: "log-tamper",
    command: ["/usr/bin/truncate", "-s", "0", `/var/log/${unique}.log`],
    process: exe("/usr/bin/truncate"),
    detail: `/var/log/${unique}.log truncated`,
    technique: "T1070.002",
    setup: () => Deno.writeTextFile(`/var/log/${unique}.log`, "line\n"),
    cleanup: () => Deno.remove(`/var/log/${unique}.log`).catch(() => {}),
  },
  {
    name: "rm of a log by a relative path from /var/log",
    rule: "log-tamper",
    command: ["/bin/sh", "-c", `cd /var/log && rm -f ${unique}-rel.log`],
    process: exe("/bin/rm"),
    detail: `/var/log/${unique}-rel.log deleted`,
    technique: "T1070.002",
    setup: () => Deno.writeTextFile(`/var/log/${unique}-rel.log`, "line\n"),
    cleanup: () => Deno.remove(`/var/log/${unique}-rel.log`).catch(() => {}),
  },
  {
    name: "rm of .bash_history",
    rule: "history-tamper",
    command: ["/bin/rm", "-f", `${home}/.bash_history`],
    process: exe("/bin/rm"),
    detail: `${home}/.bash_history deleted`,
    technique: "T1070.003",
  },
  {
    name: "a shell empties .bash_history with a redirect (O_TRUNC)",
    rule: "history-tamper",
    command: ["/bin/sh", "-c", `: > ${home}/.bash_history`],
    process: sh,
    detail: `${home}/.bash_history truncated`,
    technique: "T1070.003",
  },
  // The value written is the current one: were the deny to fail, nothing would change on this machine.
  ...["/proc/sys/kernel/core_pattern", "/proc/sys/kernel/poweroff_cmd"].map((file): Case => {
    const before = Deno.readTextFileSync(file);
    return {
      name: `a shell writes ${file} (denied: the kernel would run a helper outside supervision)`,
      rule: "kernel-helper-write",
      command: ["/bin/sh", "-c", `cat ${file} > ${file}`],
      process: sh,
      detail: `${file} written`,
      technique: "T1546",
      check: async (r) => {
        assert(r.stderr.includes("Operation not permitted") || r.stderr.includes("Permission denied"), r.stderr);
        assertEquals(await Deno.readTextFile(file), before);
      },
    };
  }),
  {
    name: "a second procfs mount does not rename core_pattern",
    rule: "kernel-helper-write",
    command: [
      "/usr/bin/unshare",
      "-m",
      "/bin/sh",
      "-c",
      `mkdir -p ${tmp}/proc2 && mount -t proc proc ${tmp}/proc2 && cat /proc/sys/kernel/core_pattern > ${tmp}/proc2/sys/kernel/core_pattern`,
    ],
    process: sh,
    detail: `${tmp}/proc2/sys/kernel/core_pattern written`,
    technique: "T1546",
  },
];

const NGINX_C = `#include <unistd.h>
int main(int argc, char **argv) { (void)argc; argv[0] = "sh"; execv("/bin/sh", argv); return 127; }
`;

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

function baselineAlerts(r: Traced): WrapperReport[] {
  return reports(r.events, "alert").filter((a) => a.wrapper === "baseline");
}

for (const c of CASES) {
  Deno.test(`baseline.${c.rule}: ${c.name}`, async () => {
    try {
      await c.setup?.();
      const source = c.source ? ["--source", c.source] : [];
      const r = await traced("run", ["-p", POLICY, ...source], c.command, { env: { HOME: home } });
      const alerts = baselineAlerts(r);
      assertEquals(reports(r.events, "fault").length, 0, JSON.stringify(reports(r.events, "fault")));
      const prefix = `baseline.${c.rule}: `;
      const hit = alerts.find((a) =>
        a.message.startsWith(prefix) && a.message.includes(c.detail) && a.message.endsWith(` (${c.technique})`)
      );
      assert(hit, `no ${prefix}alert with "${c.detail}"; alerts: ${JSON.stringify(alerts.map((a) => a.message))}`);
      assert(hit.message.includes(` by ${c.process} (`), `wrong process in "${hit.message}"`);
      assertEquals(hit.program.exe, c.process);
      await c.check?.(r);
    } finally {
      await c.cleanup?.();
    }
  });
}

Deno.test("every rule of the battery is in docs/rules.md", async () => {
  const doc = await Deno.readTextFile(`${ROOT}docs/rules.md`);
  for (const rule of new Set(CASES.map((c) => c.rule))) assert(doc.includes(`baseline.${rule}`), rule);
});

Deno.test("cleanup", async () => {
  await Deno.remove(tmp, { recursive: true });
  await Deno.remove(cloudHome, { recursive: true });
  if (createdSecrets) await Deno.remove("/run/secrets", { recursive: true });
});

// Tuning: each rule's response and lists are settings (docs/rules.md).

Deno.test("tuning: response.tmp-exec deny fails the exec; response.credential-read off silences the rule", async () => {
  const policy = await writePolicy(`
wrappers:
  - name: baseline
    settings: { response.tmp-exec: deny, response.credential-read: "off" }
`);
  // Its own dropped program (the battery's temp dir is gone by now): only an existing file counts as executed.
  const drop = await scratchDir({ dir: "/tmp", prefix: "idwrap-tuning-" });
  await Deno.writeTextFile(`${drop}/dropped`, "#!/bin/sh\necho ran\n");
  await Deno.chmod(`${drop}/dropped`, 0o755);
  const r = await traced("run", ["-p", policy], ["/bin/sh", "-c", `head -c0 /etc/shadow; ${drop}/dropped; echo rc=$?`]);
  await Deno.remove(drop, { recursive: true });
  const messages = baselineAlerts(r).map((a) => a.message);
  assert(!messages.some((m) => m.startsWith("baseline.credential-read:")), JSON.stringify(messages));
  assert(messages.some((m) => m.startsWith(`baseline.tmp-exec: ${drop}/dropped executed`)), JSON.stringify(messages));
  assert(/^rc=12[67]\n$/.test(r.stdout), `the exec ran or failed oddly: ${r.stdout} ${r.stderr}`);
  assert(r.stderr.includes("Operation not permitted"), r.stderr);
});

Deno.test("tuning: response.raw-socket kill kills the process at its socket call", async () => {
  const policy = await writePolicy(`
wrappers:
  - name: baseline
    settings: { response.raw-socket: kill }
`);
  const r = await traced("run", ["-p", policy], [ACTIONS, "raw-socket"]);
  assertEquals(r.code, 128 + 9);
  assertEquals(r.stdout, "");
  assert(baselineAlerts(r).some((a) => a.message.startsWith("baseline.raw-socket: raw socket opened")));
});

Deno.test("tuning: a list as comma-separated text replaces the default (credential_allow: head)", async () => {
  const policy = await writePolicy(`
wrappers:
  - name: baseline
    settings: { credential_allow: "sshd, head" }
`);
  const r = await traced("run", ["-p", policy], [
    "/bin/sh",
    "-c",
    "head -c0 /etc/shadow && cat /etc/shadow > /dev/null",
  ]);
  const messages = baselineAlerts(r).map((a) => a.message);
  assertEquals(messages, [`baseline.credential-read: /etc/shadow read by ${exe("/bin/cat")} (T1003.008)`]);
});

Deno.test("tuning: an unknown response is refused before the command runs (the wrapper's settings schema)", async () => {
  const policy = await writePolicy(`
wrappers:
  - name: baseline
    settings: { response.mount: block }
    fail: open
`);
  const r = await idwrap(["run", "-p", policy, "--", "/bin/true"]);
  assertEquals(r.code, 2, r.stderr);
  assert(
    r.stderr.includes(
      `${policy}:4: wrapper baseline, setting "response.mount": expected one of alert|deny|kill|off, got "block"`,
    ),
    r.stderr,
  );
});

// The new rules' settings: loopback, destinations, programs and scripts, homes.

/** The inbound-only-connect alerts of a run of the actions program installed as `name`. */
async function outbound(policy: string, name: string, args: string[]): Promise<string[]> {
  const dir = await scratchDir({ prefix: "idwrap-inbound-" });
  try {
    await Deno.copyFile(ACTIONS, `${dir}/${name}`);
    const r = await traced("run", ["-p", policy], [`${dir}/${name}`, ...args]);
    assertEquals(r.stdout.split("\n")[0].startsWith("errno") || r.stdout === "ok\n", true, r.stdout + r.stderr);
    assertEquals(reports(r.events, "fault"), []);
    return baselineAlerts(r).map((a) => a.message).filter((m) => m.startsWith("baseline.inbound-only-connect:"))
      .map((m) => m.replace(` by ${dir}/${name} (T1071)`, ""));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test("tuning: inbound-only programs may connect to loopback by default; inbound_only_allow_loopback: false flags it", async () => {
  const loopback = ["udp-connect", "127.0.0.1", "53", "::1", "53", "127.0.0.53", "53"];
  assertEquals(await outbound(POLICY, "nginx", loopback), []);
  // A program not on inbound_only may connect anywhere.
  assertEquals(await outbound(POLICY, "myclient", ["udp-connect", "198.51.100.7", "53"]), []);
  const strict = await writePolicy(`
wrappers:
  - name: baseline
    settings: { inbound_only_allow_loopback: false }
`);
  assertEquals(await outbound(strict, "nginx", loopback), [
    "baseline.inbound-only-connect: outbound connect to 127.0.0.1:53 from an inbound-only program",
    "baseline.inbound-only-connect: outbound connect to [::1]:53 from an inbound-only program",
    "baseline.inbound-only-connect: outbound connect to 127.0.0.53:53 from an inbound-only program",
  ]);
});

Deno.test("tuning: inbound_only_allow_destinations and inbound_only", async () => {
  const policy = await writePolicy(`
wrappers:
  - name: baseline
    settings:
      inbound_only: [nginx, myproxy]
      inbound_only_allow_destinations: ["198.51.100.7:53", "*:123", "203.0.113.*", "[2001:db8::1]:443"]
`);
  const args = [
    "udp-connect",
    ...["198.51.100.7", "53", "198.51.100.8", "123", "203.0.113.9", "80", "2001:db8::1", "443"],
    ...["198.51.100.7", "54", "2001:db8::1", "80"],
  ];
  const flagged = [
    "baseline.inbound-only-connect: outbound connect to 198.51.100.7:54 from an inbound-only program",
    "baseline.inbound-only-connect: outbound connect to [2001:db8::1]:80 from an inbound-only program",
  ];
  assertEquals(await outbound(policy, "nginx", args), flagged);
  assertEquals(await outbound(policy, "myproxy", args), flagged);
  assertEquals(await outbound(policy, "vsftpd", args), []); // the list replaced the default
});

Deno.test("tuning: cloud_credential_allow matches the script an interpreter runs; home_dirs says where ~ is", async () => {
  const dir = await scratchDir({ prefix: "idwrap-cloud-" });
  try {
    const h = `${dir}/svc`;
    await Deno.mkdir(`${h}/.aws`, { recursive: true });
    await Deno.writeTextFile(`${h}/.aws/credentials`, "[default]\n");
    // The same python script as "aws" (on the allow-list) and as "steal".
    const script = `#!/usr/bin/python3\nopen("${h}/.aws/credentials").read()\n`;
    for (const name of ["aws", "steal"]) {
      await Deno.writeTextFile(`${dir}/${name}`, script);
      await Deno.chmod(`${dir}/${name}`, 0o755);
    }
    const policy = await writePolicy(`
wrappers:
  - name: baseline
    settings: { home_dirs: [/root, "/home/*", "${dir}/*"] }
`);
    const cloud = async (p: string, command: string) => {
      const r = await traced("run", ["-p", p], ["/bin/sh", "-c", command]);
      assertEquals(r.code, 0, r.stderr);
      return baselineAlerts(r).map((a) => a.message).filter((m) => m.startsWith("baseline.cloud-credential-read:"));
    };
    const flagged = [
      `baseline.cloud-credential-read: ${h}/.aws/credentials read by ${exe("/usr/bin/python3")} (T1552.001)`,
    ];
    // Run by its "#!" line: the execve path is the script.
    assertEquals(await cloud(policy, `${dir}/aws`), []);
    assertEquals(await cloud(policy, `${dir}/steal`), flagged);
    // Given to the interpreter (gcloud's way: python3 -S .../gcloud.py), after flags without a value only.
    assertEquals(await cloud(policy, `/usr/bin/python3 -S ${dir}/aws`), []);
    assertEquals(await cloud(policy, `/usr/bin/python3 -Es ${dir}/steal`), flagged);
    // -c runs its own code, whatever argument follows.
    assertEquals(await cloud(policy, `/usr/bin/python3 -c 'exec(open("${dir}/steal").read())' ${dir}/aws`), flagged);
    // The default home_dirs (/root, /home/*) do not cover this home.
    assertEquals(await cloud(POLICY, `${dir}/steal`), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

for (const source of ["seccomp", "hybrid"] as const) {
  Deno.test(`cloud-credential-read: a relative path must name two fixed components of a pattern (${source})`, async () => {
    const h = `/home/idwrap-rel-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
    try {
      await Deno.mkdir(`${h}/.aws/sso/cache`, { recursive: true });
      await Deno.mkdir(`${h}/work/cache`, { recursive: true });
      await Deno.writeTextFile(`${h}/.aws/sso/cache/token.json`, "{}\n");
      await Deno.writeTextFile(`${h}/work/cache/data.json`, "{}\n");
      const r = await traced("run", ["-p", POLICY, "--source", source], [
        "/bin/sh",
        "-c",
        `cd ${h}/work && cat cache/data.json && cd cache && cat data.json && cd ${h}/.aws && cat sso/cache/token.json`,
      ]);
      assertEquals(r.code, 0, r.stderr);
      const messages = baselineAlerts(r).map((a) => a.message).filter((m) => m.startsWith("baseline.cloud-credential"));
      // Canonical on the seccomp source: the relative path arrives resolved. On the hybrid a read-only open comes
      // through the ring with the path as given (its directory still checked by dev:ino, see the battery's case).
      const shown = source === "seccomp" ? `${h}/.aws/sso/cache/token.json` : "sso/cache/token.json";
      assertEquals(messages, [`baseline.cloud-credential-read: ${shown} read by ${exe("/bin/cat")} (T1552.001)`]);
    } finally {
      await Deno.remove(h, { recursive: true });
    }
  });
}

Deno.test("the wrapper's built-in lists are the default policy's", async () => {
  // Each D_NAME constant in wrappers/baseline/settings.ts (a JSON array split over string literals) against the setting.
  const src = await Deno.readTextFile(`${ROOT}wrappers/baseline/settings.ts`);
  const policy = parseYaml(await Deno.readTextFile(POLICY));
  const settings = policy.wrappers.find((w: { name: string }) => w.name === "baseline").settings;
  const constants = [...src.matchAll(/^const D_([A-Z_]+) = ((?:'[^']*'(?:\s*\+\s*)?)+);/gm)];
  assert(constants.length >= 18, `only ${constants.length} list constants found`);
  for (const [, name, literals] of constants) {
    const key = name.toLowerCase();
    const builtIn = JSON.parse([...literals.matchAll(/'([^']*)'/g)].map((m) => m[1]).join(""));
    assertEquals(settings[key], builtIn, key);
  }
});
