/**
 * The fingerd wrapper (docs/wrappers.md, "fingerd") on a real attack
 * against a real flawed finger daemon: tests/progs/flawed_fingerd.c, which
 * reads its query with gets() into a 512-byte buffer and execs the finger
 * program (here tests/progs/finger_stub.c) with the query's words, on
 * 127.0.0.1 and a free port.
 *
 * The exploit, sent as one query: "-c echo${IFS}pwned>MARKER", a NUL, filler
 * to 512 bytes, then "/bin/sh". gets() copies it all (NULs included) and
 * overruns the buffer into the program path beside it, so the daemon execs
 * /bin/sh -c 'echo${IFS}pwned>MARKER' instead of finger: the shell creates
 * the marker file. This is the 1988 worm's bug (gets() into fingerd's
 * 512-byte buffer) and its goal (a shell run by the daemon), reached by
 * overwriting the adjacent exec path rather than the return address (the
 * worm's VAX shellcode): see docs/wrappers.md for what is and is not shown.
 *
 * Unwrapped, the shell runs (the control). Under a policy binding fingerd to
 * flawed_fingerd (its port, its finger program), the execve of /bin/sh is
 * alerted and denied with EACCES whatever the response, and no marker
 * appears. Benign queries under the same policy raise no alert (each an
 * execve of the finger program, which the wrapper allows); the exploit sent
 * after them in the same run is alerted, so the wrapper was bound all along.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import type { HostEvent } from "../../host/events.ts";
import { exists, prog, reports } from "../helpers.ts";
import { freePort } from "../loopback.ts";
import { alertTexts, exchange, faultTexts, LoopbackServer, publicTempDir } from "./loopback_server.ts";

const FINGERD = prog("flawed_fingerd");
const FINGER = prog("finger_stub");
const LINE = 512; // struct query's line[]
const ALERT_SHELL = "fingerd: fingerd: execve of /bin/sh: not a program this server may run";

/** The overflowing query: argv words, NUL, filler to LINE bytes, the program path to exec, CR LF. */
function exploit(marker: string): Uint8Array {
  const words = new TextEncoder().encode(`-c echo\${IFS}pwned>${marker}`);
  assert(words.length < LINE && !/\s/.test(marker), marker);
  const query = new Uint8Array(LINE).fill(0x78); // 'x'
  query.set(words);
  query[words.length] = 0; // the word parser stops here; gets() does not
  return new Uint8Array([...query, ...new TextEncoder().encode("/bin/sh\0\r\n")]);
}

interface Site {
  dir: string;
  port: number;
}

async function site(): Promise<Site> {
  return { dir: await publicTempDir("idwrap-fingerd-"), port: freePort() };
}

/** The fingerd wrapper bound to flawed_fingerd for a site. */
async function policy(s: Site, response: "alert" | "deny"): Promise<string> {
  const file = `${s.dir}/fingerd-${response}.yaml`;
  await Deno.writeTextFile(
    file,
    `version: 1
name: flawed-fingerd-${response}
wrappers:
  - name: fingerd
    settings:
      finger: "${FINGER}"
      ports: [${s.port}]
      response: ${response}
    activate:
      program: flawed_fingerd
`,
  );
  return file;
}

function start(s: Site, policyFile?: string, flags: string[] = []): Promise<LoopbackServer> {
  return LoopbackServer.start([FINGERD, String(s.port), FINGER], s.port, policyFile, flags);
}

/** The marker appears (the shell ran) within a second, or not. */
async function appears(path: string): Promise<boolean> {
  for (let i = 0; i < 20; i++) {
    if (await exists(path)) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

Deno.test("flawed_fingerd unwrapped: a normal query runs finger, the overflowing query runs a shell", async () => {
  const s = await site();
  const marker = `${s.dir}/pwned`;
  const server = await start(s);
  let normal: string, attacked: string;
  try {
    normal = await exchange(s.port, ["root\r\n"]);
    attacked = await exchange(s.port, [exploit(marker)]);
  } finally {
    await server.stop();
  }
  assert(normal.startsWith("Login: root\t"), normal);
  assertEquals(attacked, "", "the shell's echo went to the marker");
  assert(await appears(marker), "the shell did not run");
  assertEquals(await Deno.readTextFile(marker), "pwned\n");
  await Deno.remove(s.dir, { recursive: true });
});

Deno.test("fingerd wrapper: benign queries to flawed_fingerd raise no alert (the exploit after them does)", async () => {
  const s = await site();
  const server = await start(s, await policy(s, "deny"));
  const got: string[] = [];
  let probe: string;
  let events: HostEvent[];
  try {
    for (let i = 0; i < 5; i++) {
      got.push(await exchange(s.port, ["root\r\n"]));
      got.push(await exchange(s.port, ["/W root\r\n"]));
      got.push(await exchange(s.port, ["\r\n"]));
      got.push(await exchange(s.port, ["nosuchuser\r\n"]));
    }
    // The control that the wrapper was bound and judging all along: the same run's one violation.
    probe = await exchange(s.port, [exploit(`${s.dir}/pwned`)]);
  } finally {
    events = (await server.stop()).events;
  }
  assertEquals(alertTexts(events), [ALERT_SHELL]);
  assertEquals(probe, "fingerd: cannot run /bin/sh: Permission denied\r\n");
  assertEquals(faultTexts(events), []);
  for (let i = 0; i < got.length; i += 4) {
    assert(got[i].startsWith("Login: root\t"), got[i]);
    assert(got[i + 1].startsWith("Login: root\t"), got[i + 1]);
    assertEquals(got[i + 2], "No one logged on.\r\n");
    assertEquals(got[i + 3], "finger: nosuchuser: no such user.\r\n");
  }
  await Deno.remove(s.dir, { recursive: true });
});

for (const response of ["alert", "deny"] as const) {
  Deno.test(`fingerd wrapper (response ${response}): the overflow's execve of /bin/sh is denied`, async () => {
    const s = await site();
    const marker = `${s.dir}/pwned`;
    const server = await start(s, await policy(s, response));
    let attacked: string, normal: string;
    let events: HostEvent[];
    try {
      attacked = await exchange(s.port, [exploit(marker)]);
      normal = await exchange(s.port, ["root\r\n"]);
    } finally {
      events = (await server.stop()).events;
    }
    assertEquals(alertTexts(events), [ALERT_SHELL]);
    assertEquals(reports(events, "alert")[0].severity, 3);
    assertEquals(faultTexts(events), []);
    assertEquals(attacked, "fingerd: cannot run /bin/sh: Permission denied\r\n");
    assert(!(await appears(marker)), "the shell ran under the wrapper");
    assert(normal.startsWith("Login: root\t"), "the daemon still answers");
    await Deno.remove(s.dir, { recursive: true });
  });
}
