/**
 * baseline's declarations follow its settings (issue 16, item 5): a call whose rules are all set to alert or off is
 * declared observe-only (PRE), one with a rule set to deny or kill is declared DENY; so the hybrid source holds fewer
 * of the default policy's calls on seccomp, and a settings change moves calls between the two transports.
 *
 * @module
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { DECLARE_DENY, DECLARE_PRE, DECLARE_WRITES } from "../../host/runtime/abi.ts";
import { v8Engine } from "../../host/runtime/engine.ts";
import { loadPolicyWrappers } from "../../host/runtime/load.ts";
import { loadPolicy, type Policy } from "../../host/policy/policy.ts";
import { HYBRID_CAPABILITIES } from "../../host/sources/capabilities.ts";
import { hybridPlan } from "../../host/sources/hybrid/hybrid_run.ts";
import { syscallName, syscallNumber } from "../../host/syscalls/mod.ts";
import { ROOT } from "../helpers.ts";

/** The default policy with its baseline's settings changed. */
function defaultWith(settings: Record<string, string>): Policy {
  const p = loadPolicy(`${ROOT}policies/default.yaml`);
  const baseline = p.wrappers.find((w) => w.name === "baseline")!;
  const given = { ...baseline.origin!.settings };
  for (const [k, v] of Object.entries(settings)) given[k] = { value: v, line: 0 };
  return {
    ...p,
    wrappers: [{
      ...baseline,
      settings: { ...baseline.settings, ...settings },
      origin: { ...baseline.origin!, settings: given },
    }],
  };
}

const ALL_DENY = Object.fromEntries(
  Object.keys(loadPolicy(`${ROOT}policies/default.yaml`).wrappers[0].origin!.settings)
    .filter((k) => k.startsWith("response.")).map((k) => [k, "deny"]),
);

async function declared(policy: Policy): Promise<Map<number, number>> {
  const [w] = await loadPolicyWrappers([policy], v8Engine, HYBRID_CAPABILITIES);
  return w.declarations.syscalls;
}

const nr = (name: string) => syscallNumber(name)!;
const flagsOf = (d: Map<number, number>, names: string[]) => names.map((n) => [n, d.get(nr(n))]);

Deno.test("baseline declares DENY only the calls whose rules may deny or kill", async () => {
  const d = await declared(defaultWith({}));
  // Default responses: preload-write, module-load, kernel-helper-write deny (file calls, module loads); the rest alert.
  const held = ["rename", "unlink", "fchmod", "ftruncate", "init_module", "finit_module"];
  // The opens: only the credential rules fire on an open that does not write, and they alert: DENY | WRITES (ABI 1.5).
  const opens = ["open", "openat", "openat2", "creat"];
  assertEquals(flagsOf(d, opens), opens.map((n) => [n, DECLARE_PRE | DECLARE_DENY | DECLARE_WRITES]));
  const observed = [
    "execve",
    "execveat",
    "socket",
    "listen",
    "accept4",
    "ptrace",
    "bpf",
    "mount",
    "unshare",
    "connect",
  ];
  assertEquals(flagsOf(d, held), held.map((n) => [n, DECLARE_PRE | DECLARE_DENY]));
  assertEquals(flagsOf(d, observed), observed.map((n) => [n, DECLARE_PRE]));
  assertEquals(d.size, 42); // every call it examined before: none dropped

  // A setting moves a call: tmp-exec to deny holds execve; the file rules off and alert, the files are observed.
  const exec = await declared(defaultWith({ "response.tmp-exec": "deny" }));
  assertEquals(exec.get(nr("execve")), DECLARE_PRE | DECLARE_DENY);
  const files = await declared(
    defaultWith({ "response.preload-write": "off", "response.kernel-helper-write": "alert" }),
  );
  assertEquals(files.get(nr("openat")), DECLARE_PRE);
  // A credential read set to deny may stop a read-only open: every open may be denied again (no WRITES).
  const cred = await declared(defaultWith({ "response.credential-read": "deny" }));
  assertEquals(cred.get(nr("openat")), DECLARE_PRE | DECLARE_DENY);
  assertEquals(files.get(nr("init_module")), DECLARE_PRE | DECLARE_DENY);
  // The control: every rule at deny holds every call but listen and accept, which no rule judges.
  const all = await declared(defaultWith(ALL_DENY));
  const observedAll = [...all].filter(([, f]) => f !== (DECLARE_PRE | DECLARE_DENY)).map(([n]) => syscallName(n));
  assertEquals(observedAll.sort(), ["accept", "accept4", "listen"]);
  assertEquals(all.size, 42);
  // on_alert: deny (or kill) makes its alerts denials on the calls it may deny: every call it examines is held again.
  const respond = await declared({
    ...defaultWith({}),
    wrappers: [{ ...defaultWith({}).wrappers[0], onAlert: "deny" }],
  });
  assertEquals(flagsOf(respond, observed), observed.map((n) => [n, DECLARE_PRE | DECLARE_DENY]));
  // ... the opens too, read-only ones included (WRITES dropped).
  assertEquals(flagsOf(respond, opens), opens.map((n) => [n, DECLARE_PRE | DECLARE_DENY]));
});

Deno.test("the hybrid source holds fewer of the default policy's calls on seccomp; a settings change holds more", async () => {
  const notified = async (policy: Policy) =>
    hybridPlan([policy], await loadPolicyWrappers([policy], v8Engine, HYBRID_CAPABILITIES), true).notify;
  const dflt = await notified(defaultWith({}));
  const deny = await notified(defaultWith(ALL_DENY));
  const raw = await notified(defaultWith({ "response.raw-socket": "kill" }));
  const moved = [...deny].filter((n) => !dflt.has(n)).map(syscallName).sort();
  assert(dflt.size < deny.size, `default ${dflt.size}, all deny ${deny.size}`);
  // execve stays notified whatever baseline declares (the activation criteria are re-decided at each exec).
  for (const n of ["socket", "ptrace", "mount", "unshare", "bpf", "connect"]) {
    assert(moved.includes(n), `${n} is not moved to the ring by default: ${moved.join(", ")}`);
  }
  assert(!dflt.has(nr("socket")) && raw.has(nr("socket")), "response.raw-socket: kill does not hold socket");
  assert([...dflt].every((n) => deny.has(n)), "the default notifies a call all-deny does not");
});
