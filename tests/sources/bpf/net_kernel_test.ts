/**
 * Network deny rules decided in the kernel (kmod/bpf/net.bpf.c; docs/bpf.md, "Decisions in the kernel"), on this
 * machine's real kernel, against a real program (tests/progs/net_attack.c). Each attack has its control in the same
 * test: what the same program does unwrapped, or under the seccomp path alone (IDWRAP_KERNEL_NET=0: the code before
 * the kernel's programs), so that the test can fail. idwrap runs as root (loading BPF needs it here); the attacker
 * runs as root and as an ordinary user.
 */
import { scratchDir } from "../../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import type { AuditRecord } from "../../../host/audit/record.ts";
import { compileKernelNet } from "../../../host/policy/net_kernel.ts";
import { loadPolicy } from "../../../host/policy/policy.ts";
import { KernelNet } from "../../../host/sources/bpf/net.ts";
import { cgroup2Mount } from "../../../host/sources/bpf/probe.ts";
import { compileC } from "../../../tools/build.ts";
import { ensureUser, IDWRAP, idwrapAsUser, ROOT, run, writePolicy } from "../../helpers.ts";

const ATTACK = `${ROOT}build/tests/net_attack`;
await Deno.mkdir(`${ROOT}build/tests`, { recursive: true });
await compileC(`${ROOT}tests/progs/net_attack.c`, ATTACK);

/**
 * Ports on loopback: OK is allowed, DENY (and DENY2) are what the rule denies. Below the ephemeral range (32768–60999):
 * a client elsewhere on the machine never holds one as its source port, which made the receiver's bind fail
 * (EADDRINUSE) under load.
 */
const OK = 29234, DENY = 29235, DENY2 = 29236;

const POLICY = await writePolicy(`version: 2
name: c2-ports
rules:
  - id: no-c2-port
    syscalls: [connect, sendto, sendmsg, sendmmsg]
    action: deny
    family: [inet, inet6]
    port: [${DENY}, ${DENY2}]
    attack: T1071
    tags: [network]
`);

/** A store of its own, so its audit records are this test's. */
async function freshStore(): Promise<string> {
  return `${await scratchDir({ prefix: "idwrap-net-store-" })}/store.kv`;
}

/** `idwrap run --source SOURCE -p POLICY -- command`, with the kernel's programs or (kernel false) without. */
function wrapped(
  source: string,
  command: string[],
  options: { kernel?: boolean; store?: string; policy?: string } = {},
) {
  return run(IDWRAP, ["run", "--source", source, "-p", options.policy ?? POLICY, "--", ...command], {
    env: {
      ...(options.kernel === false ? { IDWRAP_KERNEL_NET: "0" } : {}),
      ...(options.store ? { IDWRAP_STORE: options.store } : {}),
    },
  });
}

/** The alerts queue of a store. */
async function alerts(store: string): Promise<AuditRecord[]> {
  const q = await run(IDWRAP, ["audit", "query", "--json", "--store", store, "--queue", "alerts"]);
  assertEquals(q.code, 0, q.stderr);
  return q.stdout.split("\n").filter((l) => l.trim()).map((l) => JSON.parse(l));
}

function raceCounts(stdout: string): { tries: number; wins: number; denied: number; ok: number } {
  const m = stdout.match(/tries (\d+) wins (\d+) denied (\d+) ok (\d+)/);
  assert(m, `no race result in:\n${stdout}`);
  return { tries: Number(m[1]), wins: Number(m[2]), denied: Number(m[3]), ok: Number(m[4]) };
}

const ALICE = await ensureUser("idwrap-alice");
/** The attack as an ordinary user inside the wrapped tree. */
const asAlice = (
  args: string[],
) => ["setpriv", `--reuid=${ALICE}`, `--regid=${ALICE}`, "--clear-groups", ATTACK, ...args];

for (const who of ["root", "an ordinary user"] as const) {
  const command = (args: string[]) => who === "root" ? [ATTACK, ...args] : asAlice(args);

  Deno.test(`net in the kernel (${who}): a thread that flips the port between the seccomp check and the kernel's copy never reaches the denied port`, async () => {
    const TRIES = "3000";
    // Control: the seccomp path alone reads the address before the kernel copies it, and the race wins there.
    let controlWins = 0;
    for (let i = 0; i < 6 && controlWins === 0; i++) {
      const r = await wrapped("seccomp", command(["race", String(OK), String(DENY), TRIES]), { kernel: false });
      assertEquals(r.code, 0, r.stderr.slice(-2000));
      controlWins += raceCounts(r.stdout).wins;
    }
    assert(controlWins > 0, "the race never won against the seccomp path alone: the test cannot show anything");
    // The kernel decides on its own copy: zero wins, on seccomp and on the hybrid.
    let tries = 0, kernelDenials = 0;
    for (const source of ["seccomp", "seccomp", "hybrid", "bpf"]) {
      const store = await freshStore();
      const r = await wrapped(source, command(["race", String(OK), String(DENY), TRIES]), { store });
      assertEquals(r.code, 0, r.stderr.slice(-2000));
      const c = raceCounts(r.stdout);
      assertEquals(c.wins, 0, `${source}: ${c.wins} connects reached port ${DENY}`);
      // Without a seccomp round trip (bpf) the flipper's last write is nearly always the one the kernel copies.
      assert(c.denied > 0 && (c.ok > 0 || source === "bpf"), `${source}: the flipper did not flip: ${r.stdout}`);
      tries += c.tries;
      kernelDenials += (await alerts(store)).filter((a) => a["idwrap.reason"]?.includes("in the kernel")).length;
    }
    assertEquals(tries, 12000);
    // The programs did deny some (the ones seccomp let through): they are the ones that close the race.
    assert(kernelDenials > 0, "no denial came from the kernel: the race was not exercised");
  });

  Deno.test(`net in the kernel (${who}): sendto, sendmsg and sendmmsg with a denied address, and connects, are denied and reported`, async () => {
    const modes = ["connect", "connect6", "udpconnect", "sendto", "sendmsg", "sendmmsg"];
    for (const mode of modes) {
      // Control: unwrapped, each reaches the port.
      const bare = await run(command([mode, String(DENY)])[0], command([mode, String(DENY)]).slice(1));
      assert(bare.stdout.startsWith(`${mode} ok`), `${mode} unwrapped: ${bare.stdout}${bare.stderr}`);
    }
    // Control: the seccomp path alone never examines sendmsg and sendmmsg's address (msg_name).
    for (const mode of ["sendmsg", "sendmmsg"]) {
      const r = await wrapped("seccomp", command([mode, String(DENY)]), { kernel: false });
      assertEquals(r.stdout, `${mode} ok received\n`, r.stderr.slice(-2000));
    }
    for (const source of ["seccomp", "hybrid", "bpf"]) {
      const store = await freshStore();
      for (const mode of modes) {
        const r = await wrapped(source, command([mode, String(DENY)]), { store });
        assertEquals(r.code, 0, r.stderr.slice(-2000));
        assertEquals(r.stdout, `${mode} errno 1\n`, `${source}: ${r.stderr.slice(-2000)}`);
      }
      // Reported as the seccomp path reports a rule's denial: the rule, its technique, the address, the verdict.
      const kernel = (await alerts(store)).filter((a) => a["idwrap.reason"]?.includes("in the kernel"));
      // sendmsg and sendmmsg never reach the seccomp path's rule: their denials are the kernel's (the others were
      // denied on seccomp before the kernel saw them).
      // On bpf nothing else judges them: every denial is the kernel's (sendto's too, reported as a sendmsg).
      const sends = kernel.filter((a) => a["idwrap.syscall.name"] === "sendmsg");
      assertEquals(sends.length, source === "bpf" ? 3 : 2, `${source}: ${JSON.stringify(kernel, null, 1)}`);
      if (source === "bpf") assertEquals(kernel.length, modes.length);
      for (const a of sends) {
        assertEquals(a["rule.id"], "no-c2-port");
        assertEquals(a["idwrap.verdict"], "deny EPERM");
        assertEquals(a["idwrap.syscall.addr"], `inet:127.0.0.1:${DENY}`);
        assertEquals(a["destination.port"], DENY);
        assertEquals(a["threat.technique.id"], "T1071");
        assertEquals(a["process.name"], "net_attack");
        if (a["process.executable"] !== undefined) assertEquals(a["process.executable"], ATTACK);
        assertEquals(a["user.id"], who === "root" ? "0" : String(ALICE));
      }
    }
  });

  Deno.test(`net in the kernel (${who}): an IPv4 address rule holds for an AF_INET6 socket to the v4-mapped address (TCP, TFO, MPTCP, UDP; rt8 F1)`, async () => {
    const policy = await writePolicy(`version: 2
name: c2-address
rules:
  - id: no-c2-address
    syscalls: [connect, sendto, sendmsg, sendmmsg]
    action: deny
    family: [inet]
    address: ["127.0.0.1"]
`);
    for (const mode of ["connect6", "tfo6", "mptcp6", "sendto6"]) {
      // Control: unwrapped, each reaches 127.0.0.1 through ::ffff:127.0.0.1.
      const bare = await run(command([mode, String(OK)])[0], command([mode, String(OK)]).slice(1));
      assert(bare.stdout.startsWith(`${mode} ok`), `${mode} unwrapped: ${bare.stdout}${bare.stderr}`);
      for (const source of ["seccomp", "hybrid", "bpf"]) {
        const r = await wrapped(source, command([mode, String(OK)]), { policy });
        assertEquals(r.stdout, `${mode} errno 1\n`, `${source} ${mode}: ${r.stderr.slice(-2000)}`);
      }
      // The kernel's programs alone (the seccomp path cannot see the address here: bpf has no other judge) and the
      // seccomp path alone each deny it.
      const alone = await wrapped("seccomp", command([mode, String(OK)]), { policy, kernel: false });
      assertEquals(alone.stdout, `${mode} errno 1\n`, `seccomp without the kernel's programs ${mode}`);
    }
  });

  Deno.test(`net in the kernel (${who}): a socket made outside the tree, inherited or received over SCM_RIGHTS, is judged when the tree uses it (rt8 F2)`, async () => {
    // Control: unwrapped, the inherited socket and the received one reach the denied port.
    const bare = await run(ATTACK, ["mkfd", ATTACK, "sendfd", String(DENY)]);
    assertEquals(bare.stdout, "sendfd ok received\n", bare.stderr);
    const path = `${await scratchDir({ prefix: "idwrap-net-scm-" })}/s`;
    await Deno.chmod(path.replace(/\/s$/, ""), 0o777);
    const serve = () => {
      const p = new Deno.Command(ATTACK, { args: ["scm-serve", path], stdout: "piped", stderr: "piped" }).spawn();
      return p;
    };
    const ready = async () => {
      for (let i = 0; i < 100; i++) {
        try {
          await Deno.stat(path);
          return;
        } catch { /* not yet */ }
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error(`scm-serve never listened on ${path}`);
    };
    let server = serve();
    await ready();
    const bareScm = await run(ATTACK, ["scm-sendto", path, String(DENY)]);
    assertEquals(bareScm.stdout, "scm-sendto ok received\n", bareScm.stderr);
    await server.output();
    for (const source of ["bpf", "hybrid", "seccomp"]) {
      const inherited = await run(ATTACK, [
        "mkfd",
        IDWRAP,
        "run",
        "--source",
        source,
        "-p",
        POLICY,
        "--",
        ...command(["sendfd", String(DENY)]),
      ]);
      assertEquals(inherited.stdout, "sendfd errno 1\n", `${source} inherited: ${inherited.stderr.slice(-2000)}`);
      server = serve();
      await ready();
      const received = await wrapped(source, command(["scm-sendto", path, String(DENY)]));
      assertEquals(received.stdout, "scm-sendto errno 1\n", `${source} SCM_RIGHTS: ${received.stderr.slice(-2000)}`);
      await server.output();
    }
  });

  Deno.test(`net in the kernel (${who}): allowed traffic still flows (an allowed port, a loopback exception)`, async () => {
    for (const source of ["seccomp", "hybrid", "bpf"]) {
      for (const mode of ["connect", "connect6", "udpconnect", "sendto", "sendmsg", "sendmmsg"]) {
        const r = await wrapped(source, command([mode, String(OK)]));
        assert(r.stdout.startsWith(`${mode} ok`), `${source} ${mode} to an allowed port: ${r.stdout}${r.stderr}`);
      }
    }
    // Every address out but loopback: 127.* is the exception, 198.51.100.7 (TEST-NET-2) is denied.
    const policy = await writePolicy(`version: 2
name: loopback-only
rules:
  - id: only-loopback-out
    syscalls: [connect, sendto, sendmsg, sendmmsg]
    action: deny
    family: [inet, inet6]
    not: [{ address: ["127.*", "::1"] }]
`);
    const bare = await run(ATTACK, ["sendmsg", "4444", "198.51.100.7"]);
    assertEquals(bare.stdout, "sendmsg ok\n", bare.stderr);
    for (const source of ["seccomp", "hybrid", "bpf"]) {
      const out = await wrapped(source, command(["sendmsg", "4444", "198.51.100.7"]), { policy });
      assertEquals(out.stdout, "sendmsg errno 1\n", out.stderr.slice(-2000));
      const lo = await wrapped(source, command(["sendmsg", String(DENY)]), { policy });
      assertEquals(lo.stdout, "sendmsg ok received\n", lo.stderr.slice(-2000));
    }
  });
}

Deno.test("net in the kernel: a process outside the watched tree is not judged while a tree is", async () => {
  const inside = new Deno.Command(IDWRAP, {
    args: ["run", "--source", "seccomp", "-p", POLICY, "--", "sh", "-c", `${ATTACK} sendmsg ${DENY}; sleep 2`],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  try {
    await new Promise((r) => setTimeout(r, 1000));
    const outside = await run(ATTACK, ["sendmsg", String(DENY2)]);
    assertEquals(outside.stdout, "sendmsg ok received\n", outside.stderr);
  } finally {
    const out = await inside.output();
    assertEquals(new TextDecoder().decode(out.stdout), "sendmsg errno 1\n");
  }
});

Deno.test("net in the kernel: a socket made in the tree and handed to an unwatched process is not judged there (rt8 F3)", async () => {
  const path = `${await scratchDir({ prefix: "idwrap-net-scm-" })}/s`;
  for (const source of ["bpf", "hybrid"]) {
    const store = await freshStore();
    const inside = new Deno.Command(IDWRAP, {
      args: ["run", "--source", source, "-p", POLICY, "--", ATTACK, "scm-serve", path],
      env: { IDWRAP_STORE: store },
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    try {
      let up = false;
      for (let i = 0; i < 200 && !up; i++) {
        up = await Deno.stat(path).then(() => true, () => false);
        if (!up) await new Promise((r) => setTimeout(r, 50));
      }
      assert(up, `${source}: scm-serve never listened`);
      // The outside process uses the tree's socket: the policy is not its own, and the port must be reached.
      const outside = await run(ATTACK, ["scm-sendto", path, String(DENY)]);
      assertEquals(outside.stdout, "scm-sendto ok received\n", `${source}: ${outside.stderr}`);
    } finally {
      const out = await inside.output();
      assertEquals(out.code, 0, new TextDecoder().decode(out.stderr).slice(-2000));
    }
    assertEquals((await alerts(store)).filter((a) => a["idwrap.reason"]?.includes("in the kernel")), [], source);
  }
});

Deno.test("net in the kernel: root in the tree cannot make a raw inet socket (SOCK_RAW) while deny rules are in the kernel (rt8 F4)", async () => {
  // Control: unwrapped, root's hand-made datagram reaches the denied port.
  const bare = await run(ATTACK, ["rawudp", String(DENY)]);
  assertEquals(bare.stdout, "rawudp ok received\n", bare.stderr);
  assertEquals((await run(ATTACK, ["packet"])).stdout, "packet ok\n");
  for (const source of ["bpf", "hybrid", "seccomp"]) {
    const store = await freshStore();
    const raw = await wrapped(source, [ATTACK, "rawudp", String(DENY)], { store });
    assertEquals(raw.stdout, "rawudp socket errno 1\n", `${source}: ${raw.stderr.slice(-2000)}`);
    // Not refused: the cgroup hook runs for inet and inet6 sockets only (docs/bpf.md, "What it does not").
    const packet = await wrapped(source, [ATTACK, "packet"], { store });
    assertEquals(packet.stdout, "packet ok\n", `${source}: ${packet.stderr.slice(-2000)}`);
    const refused = (await alerts(store)).filter((a) => a["idwrap.reason"]?.includes("cgroup/sock_create"));
    assertEquals(refused.length, 1, `${source}: ${JSON.stringify(refused)}`);
  }
  // Without network deny rules in the kernel, raw sockets are not refused.
  const noDeny = await writePolicy(`version: 2
name: alert-only
rules:
  - { id: watch-port, syscalls: [connect, sendto], family: [inet], port: [${DENY}] }
`);
  const free = await wrapped("bpf", [ATTACK, "rawudp", String(OK)], { policy: noDeny });
  assertEquals(free.stdout, "rawudp ok received\n", free.stderr.slice(-2000));
});

Deno.test("net in the kernel: the cgroup of an idwrap that was SIGKILLed is removed at the next run (rt8 M1)", async () => {
  const root = cgroup2Mount();
  assert(root, "no cgroup v2 mount");
  // A dead pid: a child that has exited and been reaped.
  const child = new Deno.Command("true").spawn();
  const dead = child.pid;
  await child.status;
  const stale = `${root}/idwrap-net-${dead}-1`;
  await Deno.mkdir(stale);
  try {
    const r = await wrapped("bpf", [ATTACK, "sendto", String(DENY)]);
    assertEquals(r.stdout, "sendto errno 1\n", r.stderr.slice(-2000));
    assert(!(await Deno.stat(stale).then(() => true, () => false)), `${stale} is still there`);
  } finally {
    await Deno.remove(stale).catch(() => {});
  }
});

Deno.test("net in the kernel: a kill rule kills the sender in the call (bpf_send_signal from the program) and reports it", async () => {
  const policy = await writePolicy(`version: 2
name: kill-c2
rules:
  - id: kill-c2-port
    syscalls: [sendto, sendmsg, sendmmsg]
    action: kill
    port: [${DENY}]
`);
  const store = await freshStore();
  const r = await run(IDWRAP, [
    "run",
    "--source",
    "seccomp",
    "-p",
    policy,
    "--",
    "sh",
    "-c",
    `${ATTACK} sendmsg ${DENY}; echo after`,
  ], { env: { IDWRAP_STORE: store } });
  // Killed in the call (bpf_send_signal from the program, allowed here): it never printed the call's result.
  assertEquals(r.stdout, "after\n", r.stderr.slice(-2000));
  const a = (await alerts(store)).filter((x) => x["rule.id"] === "kill-c2-port");
  assertEquals(a.map((x) => x["idwrap.verdict"]), ["kill"]);
  // The seccomp source's exit record does not carry the signal: the shell says it (dash: "Killed").
  assert(/^Killed$/m.test(r.stderr), `the process was not killed:\n${r.stderr.slice(-2000)}`);
});

Deno.test("net in the kernel: an io_uring connect (IORING_OP_CONNECT) to a denied port is denied by the programs", async () => {
  // The seccomp and hybrid sources refuse io_uring_setup: the tree never gets a ring there.
  const refused = await wrapped("seccomp", [ATTACK, "iouring", String(DENY)]);
  assertEquals(refused.stdout, "iouring setup errno 1\n", refused.stderr.slice(-2000));
  // The bpf source reports io_uring and lets it run: the ring's connect is the kernel's to deny.
  for (const [port, want] of [[DENY, "iouring errno 1\n"], [OK, "iouring ok\n"]] as const) {
    const r = await wrapped("bpf", [ATTACK, "iouring", String(port)]);
    assertEquals(r.stdout, want, r.stderr.slice(-2000));
  }
  // The programs themselves judge a connect the ring makes (a process may get a ring where nothing refuses it: the bpf
  // source, a socket's owner outside seccomp): a tree in the programs' cgroup, without any filter.
  const plan = compileKernelNet([loadPolicy(POLICY)]);
  const net = KernelNet.open(plan);
  try {
    const bare = await run(ATTACK, ["iouring", String(DENY)]);
    assertEquals(bare.stdout, "iouring ok\n", bare.stderr);
    const script = `echo $$ > ${net.cgroup}/cgroup.procs && exec ${ATTACK} iouring ${DENY}`;
    const inCgroup = await run("sh", ["-c", script]);
    assertEquals(inCgroup.stdout, "iouring errno 1\n", inCgroup.stderr);
    const allowed = await run("sh", ["-c", `echo $$ > ${net.cgroup}/cgroup.procs && exec ${ATTACK} iouring ${OK}`]);
    assertEquals(allowed.stdout, "iouring ok\n", allowed.stderr);
    const denials = net.take();
    assertEquals(denials.map((d) => [d.hook, d.addr, d.rules]), [["connect", `inet:127.0.0.1:${DENY}`, [0]]]);
  } finally {
    net.close();
  }
});

Deno.test("idwrap doctor says whether runs get the kernel's network decisions, and why not for an ordinary user", async () => {
  const r = await run(IDWRAP, ["doctor", "--json"]);
  const checks = JSON.parse(r.stdout) as { feature: string; ok: boolean; detail: string; consequence: string }[];
  const net = checks.find((c) => c.feature === "network rules in the kernel");
  assertEquals(net?.ok, true, JSON.stringify(net));
  assert(
    /connect4, connect6, sendmsg4, sendmsg6 and sock_create load and attach at the cgroup v2 root/.test(net!.detail),
    net!.detail,
  );
  assert(/seccomp and hybrid/.test(net!.consequence), net!.consequence);
  const home = await scratchDir({ prefix: "idwrap-net-doctor-" });
  await Deno.chmod(home, 0o755);
  const user = await idwrapAsUser(ALICE, `${home}/u`, ["doctor", "--json"]);
  const theirs = (JSON.parse(user.stdout) as typeof checks).find((c) => c.feature === "network rules in the kernel");
  assertEquals(theirs?.ok, false, user.stdout);
  assert(/lacks CAP_BPF/.test(theirs!.detail), theirs!.detail);
  assert(/judged on seccomp only/.test(theirs!.consequence), theirs!.consequence);
});

Deno.test("--source bpf takes network deny rules the kernel decides whole, and still refuses any other deny", async () => {
  const ok = await wrapped("bpf", [ATTACK, "sendmsg", String(DENY)]);
  assertEquals([ok.code, ok.stdout], [0, "sendmsg errno 1\n"], ok.stderr.slice(-2000));
  // Without the kernel's programs the bpf source cannot deny at all: refused before anything runs, as before.
  const off = await wrapped("bpf", [ATTACK, "sendmsg", String(DENY)], { kernel: false });
  assertEquals([off.code, off.stdout], [2, ""], off.stderr);
  assert(off.stderr.includes('rule "no-c2-port" (action deny)'), off.stderr);
  // A rule that also denies a call the programs never see (a file open) is not the kernel's whole: refused.
  const mixed = await writePolicy(`version: 2
name: mixed
rules:
  - { id: c2-or-file, syscalls: [connect, openat], action: deny, port: [${DENY}] }
`);
  const refused = await wrapped("bpf", [ATTACK, "connect", String(DENY)], { policy: mixed });
  assertEquals(refused.code, 2, refused.stderr);
  assert(refused.stderr.includes('rule "c2-or-file" (action deny) on connect, openat'), refused.stderr);
});
