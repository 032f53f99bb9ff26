/**
 * Records a SIEM can use, from real runs under seccomp: a baseline alert names its rule (so `audit query --wrapper
 * baseline.credential-read` finds it), its ATT&CK technique as fields, the host and agent, the process's whole argument
 * vector, and the container its cgroup names.
 *
 * @module
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { IDWRAP, idwrap, run } from "../helpers.ts";

type Rec = Record<string, unknown>;

const dir = await scratchDir({ prefix: "idwrap-records-" });
const store = `${dir}/store.kv`;
const env = { IDWRAP_STORE: store };

async function query(args: string[]): Promise<Rec[]> {
  const q = await idwrap(["audit", "query", "--json", "--store", store, ...args], { env });
  assertEquals(q.code, 0, q.stderr);
  return q.stdout.split("\n").filter(Boolean).map((l) => JSON.parse(l));
}

/** A cgroup (v2) named as Docker names a container's, for the test's processes; removed afterwards. */
async function dockerCgroup(): Promise<{ path: string; dir: string; id: string; remove: () => Promise<void> }> {
  const root = (await Deno.stat("/sys/fs/cgroup/unified").then(() => true, () => false))
    ? "/sys/fs/cgroup/unified" // hybrid: the v2 hierarchy
    : "/sys/fs/cgroup";
  const id = [...crypto.getRandomValues(new Uint8Array(32))].map((b) => b.toString(16).padStart(2, "0")).join("");
  const parent = `idwrap-test-${Deno.pid}`;
  const path = `/${parent}/docker-${id}.scope`;
  await Deno.mkdir(`${root}${path}`, { recursive: true });
  return {
    path,
    dir: `${root}${path}`,
    id,
    remove: async () => {
      await Deno.remove(`${root}${path}`).catch(() => {});
      await Deno.remove(`${root}/${parent}`).catch(() => {});
    },
  };
}

Deno.test("a baseline alert from a real run carries its rule, technique, host, agent, argv and container", async () => {
  const cg = await dockerCgroup();
  try {
    // The shell moves itself into the container's cgroup, then becomes idwrap: the wrapped tree inherits it.
    const r = await run("/bin/sh", [
      "-c",
      `echo $$ > ${cg.dir}/cgroup.procs && exec "$0" run --source seccomp -- /bin/sh -c 'head -c0 /etc/shadow'`,
      IDWRAP,
    ], { env });
    assertEquals(r.code, 0, r.stderr);
    assert(r.stderr.includes("baseline.credential-read"), r.stderr);

    const found = await query(["--wrapper", "baseline.credential-read"]);
    assertEquals(found.length, 1, JSON.stringify(found));
    const a = found[0];
    assertEquals(a["rule.name"], "baseline.credential-read");
    assertEquals(a["rule.id"], "baseline.credential-read");
    assertEquals(a["rule.ruleset"], "baseline");
    assertEquals(a["idwrap.wrapper"], "baseline");
    assertEquals(a["event.kind"], "alert");
    assertEquals(a["event.category"], ["intrusion_detection", "file"]);
    assertEquals(a["threat.framework"], "MITRE ATT&CK");
    assertEquals(a["threat.technique.id"], "T1003");
    assertEquals(a["threat.technique.name"], "OS Credential Dumping");
    assertEquals(a["threat.technique.subtechnique.id"], "T1003.008");
    assertEquals(a["threat.technique.subtechnique.name"], "/etc/passwd and /etc/shadow");
    // The whole argument vector of the process that read the file, not argv[0] alone.
    assertEquals(a["process.args"], ["head", "-c0", "/etc/shadow"]);
    assertEquals(a["process.args_count"], 3);
    assertEquals(a["process.name"], "head");
    assertEquals(a["host.name"], Deno.hostname());
    assertEquals(a["host.id"], (await Deno.readTextFile("/etc/machine-id")).trim());
    assertEquals(a["agent.type"], "idwrap");
    assert(/^[0-9a-f-]{36}$/.test(String(a["agent.id"])), String(a["agent.id"]));
    assertEquals(a["idwrap.cgroup"], cg.path);
    assertEquals(a["container.id"], cg.id);
    assertEquals(a["container.runtime"], "docker");

    // The wrapper's name still finds its reports; lifecycle records carry the argv too.
    assert((await query(["--wrapper", "baseline"])).some((x) => x["rule.name"] === "baseline.credential-read"));
    const execs = (await query(["--queue", "lifecycle"])).filter((x) => x["event.action"] === "exec");
    assert(execs.some((x) => JSON.stringify(x["process.args"]) === '["/bin/sh","-c","head -c0 /etc/shadow"]'));

    // The agent id is kept in the store: the next run's records have the same one.
    const again = await idwrap(["run", "--source", "seccomp", "--", "/bin/sh", "-c", "head -c0 /etc/shadow"], { env });
    assertEquals(again.code, 0, again.stderr);
    const both = await query(["--wrapper", "baseline.credential-read"]);
    assertEquals(both.length, 2);
    assertEquals(both[1]["agent.id"], a["agent.id"]);
    // Outside the container's cgroup: no container id.
    assertEquals(both[1]["container.id"], undefined);
  } finally {
    await cg.remove();
  }
});

Deno.test("a huge argument vector is kept bounded: 64 arguments, 1 Ki characters each, 8 Ki in all", async () => {
  const store2 = `${dir}/big.kv`;
  const long = Array.from({ length: 100 }, (_, i) => `${i}-${"x".repeat(2000)}`);
  const r = await run(IDWRAP, [
    "run",
    "--source",
    "seccomp",
    "--",
    "/bin/sh",
    "-c",
    'exec head -c0 /etc/shadow "$@" 2>/dev/null; true',
    "sh",
    ...long,
  ], { env: { IDWRAP_STORE: store2 } });
  assert(r.stderr.includes("baseline.credential-read"), r.stderr.slice(-2000));
  const q = await idwrap(["audit", "query", "--json", "--store", store2, "--wrapper", "baseline.credential-read"], {
    env: { IDWRAP_STORE: store2 },
  });
  const a = JSON.parse(q.stdout.split("\n")[0]) as Rec;
  const args = a["process.args"] as string[];
  assertEquals(a["process.args_count"], 103);
  assertEquals(args.slice(0, 3), ["head", "-c0", "/etc/shadow"]);
  assert(args.length < 64 && args.every((x) => x.length <= 1025), `${args.length} arguments`);
  assert(args.join("").length <= 8192 + 1025, `${args.join("").length} characters`);
  assertEquals(args[3], `0-${"x".repeat(1022)}…`);
});
