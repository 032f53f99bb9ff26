/**
 * The httpd wrapper (docs/wrappers.md, "httpd") on real attacks against a
 * real flawed web server: tests/progs/flawed_httpd.c on 127.0.0.1 and a
 * free port, sent raw requests over TCP.
 *
 *  - Path traversal: "GET /../../…/private/secret" reads a mode-0600 file
 *    outside the document root.
 *  - CGI path traversal (the IIS "..%c0%af../cmd.exe?/c+dir" attack):
 *    "GET /cgi-bin/%2e%2e/…/bin/sh?-c+COMMAND" runs /bin/sh -c COMMAND, which
 *    creates a marker file.
 *
 * Unwrapped, both succeed (the controls). Under a policy binding httpd to
 * flawed_httpd (its docroot, its port, its cgi-bin), both are alerted; the
 * shell never runs (execve is always denied); with response: deny the
 * secret is not served either. Benign GETs and a CGI program in cgi-bin,
 * under the same policy, raise no alert; one traversal after them in the
 * same run is alerted, so the wrapper was bound all along.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import type { HostEvent } from "../../host/events.ts";
import { exists, prog, reports } from "../helpers.ts";
import { freePort } from "../loopback.ts";
import { alertTexts, exchange, faultTexts, LoopbackServer, publicTempDir } from "../loopback_server.ts";

const HTTPD = prog("flawed_httpd");
const SECRET = "the private key\n";

interface Site {
  dir: string;
  port: number;
  secret: string;
}

/** dir/www (index.html, a.txt, cgi-bin/hello), dir/private/secret (0600), a port. */
async function site(): Promise<Site> {
  const dir = await publicTempDir("idwrap-httpd-");
  for (const sub of ["www", "www/cgi-bin", "private"]) {
    await Deno.mkdir(`${dir}/${sub}`);
    await Deno.chmod(`${dir}/${sub}`, 0o755);
  }
  await Deno.writeTextFile(`${dir}/www/index.html`, "<p>index</p>\n");
  await Deno.writeTextFile(`${dir}/www/a.txt`, "a\n");
  await Deno.writeTextFile(`${dir}/www/cgi-bin/hello`, '#!/bin/sh\necho "hello $1"\n');
  await Deno.chmod(`${dir}/www/cgi-bin/hello`, 0o755);
  const secret = `${dir}/private/secret`;
  await Deno.writeTextFile(secret, SECRET);
  await Deno.chmod(secret, 0o600);
  return { dir, port: freePort(), secret };
}

/** The httpd wrapper bound to flawed_httpd for a site. */
async function policy(s: Site, response: "alert" | "deny"): Promise<string> {
  const file = `${s.dir}/httpd-${response}.yaml`;
  await Deno.writeTextFile(
    file,
    `version: 1
name: flawed-httpd-${response}
wrappers:
  - name: httpd
    settings:
      docroot: ["${s.dir}/www"]
      cgi: ["${s.dir}/www/cgi-bin"]
      ports: [${s.port}]
      response: ${response}
    activate:
      program: flawed_httpd
`,
  );
  return file;
}

function start(s: Site, policyFile?: string): Promise<LoopbackServer> {
  return LoopbackServer.start([HTTPD, String(s.port), `${s.dir}/www`], s.port, policyFile);
}

/** One raw request; the whole response. */
function get(port: number, target: string): Promise<string> {
  return exchange(port, [`GET ${target} HTTP/1.0\r\nHost: localhost\r\n\r\n`]);
}

/** The response body (after the head). */
function body(response: string): string {
  const at = response.indexOf("\r\n\r\n");
  return at < 0 ? "" : response.slice(at + 4);
}

/** A traversal from the docroot up to "/" and down to an absolute path (plenty of "..": extra ones stay at "/"). */
function up(path: string): string {
  return `${"/..".repeat(12)}${path}`;
}

/** The CGI attack: a "program name" that climbs out of cgi-bin to /bin/sh, "-c" and a command as the query. */
function shellAttack(marker: string): string {
  return `/cgi-bin/${"%2e%2e/".repeat(12)}bin/sh?-c+echo%20pwned%20%3E${encodeURIComponent(marker)}`;
}

// Wrappers judge the file the kernel runs (its canonical path: /bin/sh is dash on Debian).
const ALERT_SHELL = `httpd: httpd: execve of ${Deno.realPathSync("/bin/sh")}: not a program this server may run`;
const alertRead = (path: string) => `httpd: httpd: open for reading of ${path}: outside the paths it may read`;

Deno.test("flawed_httpd unwrapped: the traversal serves a private file and the CGI traversal runs a shell", async () => {
  const s = await site();
  const marker = `${s.dir}/pwned`;
  const server = await start(s);
  let leaked: string, shell: string, normal: string;
  try {
    normal = await get(s.port, "/a.txt");
    leaked = await get(s.port, up(s.secret));
    shell = await get(s.port, shellAttack(marker));
  } finally {
    await server.stop();
  }
  assertEquals(body(normal), "a\n");
  assert(leaked.startsWith("HTTP/1.0 200 OK"), leaked);
  assertEquals(body(leaked), SECRET);
  assert(shell.startsWith("HTTP/1.0 200 OK"), shell);
  assertEquals(await Deno.readTextFile(marker), "pwned\n", "the injected shell command ran");
  await Deno.remove(s.dir, { recursive: true });
});

Deno.test("httpd wrapper: benign requests to flawed_httpd raise no alert (one traversal after them does)", async () => {
  const s = await site();
  const server = await start(s, await policy(s, "deny"));
  const got: string[] = [];
  let probe: string;
  let events: HostEvent[];
  try {
    for (let i = 0; i < 5; i++) {
      got.push(await get(s.port, "/"));
      got.push(await get(s.port, "/a.txt"));
      got.push(await get(s.port, "/nosuch.txt"));
      got.push(await get(s.port, "/cgi-bin/hello?world"));
    }
    // The control that the wrapper was bound and judging all along: the same run's one violation.
    probe = await get(s.port, up(s.secret));
  } finally {
    events = (await server.stop()).events;
  }
  assertEquals(alertTexts(events), [alertRead(s.secret)]);
  assertEquals(faultTexts(events), []);
  assert(probe.startsWith("HTTP/1.0 403"), probe);
  for (let i = 0; i < 20; i += 4) {
    assertEquals(body(got[i]), "<p>index</p>\n");
    assertEquals(body(got[i + 1]), "a\n");
    assert(got[i + 2].startsWith("HTTP/1.0 404"), got[i + 2]);
    assertEquals(body(got[i + 3]), "hello world\n");
  }
  await Deno.remove(s.dir, { recursive: true });
});

for (const response of ["alert", "deny"] as const) {
  Deno.test(`httpd wrapper (response ${response}): the traversal is alerted, the CGI shell is denied`, async () => {
    const s = await site();
    const marker = `${s.dir}/pwned`;
    const server = await start(s, await policy(s, response));
    let leaked: string, shell: string, normal: string;
    let events: HostEvent[];
    try {
      leaked = await get(s.port, up(s.secret));
      shell = await get(s.port, shellAttack(marker));
      normal = await get(s.port, "/a.txt");
    } finally {
      events = (await server.stop()).events;
    }
    assertEquals(alertTexts(events), [alertRead(s.secret), ALERT_SHELL]);
    for (const a of reports(events, "alert")) assertEquals(a.severity, 3);
    assertEquals(faultTexts(events), []);
    assert(!(await exists(marker)), "the injected shell command ran under the wrapper");
    assert(shell.includes("cgi: cannot run") && shell.includes("Permission denied"), shell);
    if (response === "alert") {
      assertEquals(body(leaked), SECRET, "response alert only reports");
    } else {
      assert(leaked.startsWith("HTTP/1.0 403"), leaked);
      assert(!leaked.includes(SECRET), leaked);
    }
    assertEquals(body(normal), "a\n", "the server still serves its docroot");
    await Deno.remove(s.dir, { recursive: true });
  });
}
