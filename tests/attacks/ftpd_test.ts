/**
 * The ftpd wrapper (docs/wrappers.md, "ftpd") on real attacks against a
 * real flawed FTP server: tests/progs/flawed_ftpd.c on 127.0.0.1, a free
 * control port and a free passive port, driven by a small FTP client here.
 *
 *  - Path traversal in RETR: "RETR ../../…/private/secret" sends a mode-0600
 *    file outside the anonymous root over the data connection.
 *  - SITE EXEC: "SITE EXEC echo pwned >MARKER" runs /bin/sh -c, which
 *    creates the marker file.
 *
 * Unwrapped, both succeed (the controls). Under a policy binding ftpd to
 * flawed_ftpd (its root, control and passive ports), both are alerted; the
 * shell never runs (execve is always denied); with response: deny the
 * secret is not sent either. Benign sessions under the same policy raise no
 * alert; one traversal after them in the same run is alerted, so the wrapper
 * was bound all along.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import type { HostEvent } from "../../host/events.ts";
import { exists, prog, reports } from "../helpers.ts";
import { freePort } from "../loopback.ts";
import { alertTexts, faultTexts, LoopbackServer, publicTempDir } from "../loopback_server.ts";

const FTPD = prog("flawed_ftpd");
const SECRET = "the private key\n";

/** A control connection: commands, multi-line replies, passive transfers. */
class FtpClient {
  private buffered = "";
  private constructor(private conn: Deno.Conn) {}

  /** Connects and reads the 220 greeting. */
  static async open(port: number): Promise<FtpClient> {
    const c = new FtpClient(await Deno.connect({ hostname: "127.0.0.1", port }));
    const greeting = await c.reply();
    assert(greeting.startsWith("220 "), greeting);
    return c;
  }

  private async line(): Promise<string> {
    for (;;) {
      const at = this.buffered.indexOf("\n");
      if (at >= 0) {
        const l = this.buffered.slice(0, at + 1);
        this.buffered = this.buffered.slice(at + 1);
        return l;
      }
      const buf = new Uint8Array(4096);
      const n = await this.conn.read(buf);
      if (n === null) throw new Error(`control connection closed after ${JSON.stringify(this.buffered)}`);
      this.buffered += new TextDecoder().decode(buf.slice(0, n));
    }
  }

  /** One reply: lines until "NNN text" (a "NNN-" line opens a multi-line one; anything between is kept). */
  async reply(): Promise<string> {
    let text = "";
    for (;;) {
      const l = await this.line();
      text += l;
      if (/^\d{3} /.test(l)) return text;
    }
  }

  async cmd(command: string): Promise<string> {
    await this.conn.write(new TextEncoder().encode(`${command}\r\n`));
    return await this.reply();
  }

  /** PASV, connect, the command (RETR, LIST); its replies and what came over the data connection. */
  async transfer(command: string): Promise<{ replies: string; data: string }> {
    const pasv = await this.cmd("PASV");
    const m = pasv.match(/\((\d+),(\d+),(\d+),(\d+),(\d+),(\d+)\)/);
    assert(m, pasv);
    const data = await Deno.connect({ hostname: "127.0.0.1", port: Number(m[5]) * 256 + Number(m[6]) });
    let replies = await this.cmd(command);
    const chunks: number[] = [];
    const buf = new Uint8Array(4096);
    for (;;) {
      const n = await data.read(buf);
      if (n === null) break;
      chunks.push(...buf.slice(0, n));
    }
    data.close();
    if (replies.startsWith("150 ")) replies += await this.reply();
    return { replies, data: new TextDecoder().decode(new Uint8Array(chunks)) };
  }

  async quit(): Promise<void> {
    await this.cmd("QUIT");
    this.conn.close();
  }
}

interface Site {
  dir: string;
  port: number;
  pasv: number;
  secret: string;
}

/** dir/anon (pub.txt, sub/c.txt), dir/private/secret (0600), a control and a passive port. */
async function site(): Promise<Site> {
  const dir = await publicTempDir("idwrap-ftpd-");
  for (const sub of ["anon", "anon/sub", "private"]) {
    await Deno.mkdir(`${dir}/${sub}`);
    await Deno.chmod(`${dir}/${sub}`, 0o755);
  }
  await Deno.writeTextFile(`${dir}/anon/pub.txt`, "public\n");
  await Deno.writeTextFile(`${dir}/anon/sub/c.txt`, "c\n");
  const secret = `${dir}/private/secret`;
  await Deno.writeTextFile(secret, SECRET);
  await Deno.chmod(secret, 0o600);
  let pasv = freePort();
  const port = freePort();
  while (pasv === port) pasv = freePort();
  return { dir, port, pasv, secret };
}

/** The ftpd wrapper bound to flawed_ftpd for a site. */
async function policy(s: Site, response: "alert" | "deny"): Promise<string> {
  const file = `${s.dir}/ftpd-${response}.yaml`;
  await Deno.writeTextFile(
    file,
    `version: 1
name: flawed-ftpd-${response}
wrappers:
  - name: ftpd
    settings:
      root: "${s.dir}/anon"
      ports: [${s.port}]
      pasv: "${s.pasv}-${s.pasv}"
      response: ${response}
    activate:
      program: flawed_ftpd
`,
  );
  return file;
}

function start(s: Site, policyFile?: string, flags: string[] = []): Promise<LoopbackServer> {
  return LoopbackServer.start([FTPD, String(s.port), String(s.pasv), `${s.dir}/anon`], s.port, policyFile, flags);
}

/** The traversal: from the anonymous root up to "/" and down to an absolute path. */
function up(path: string): string {
  return `${"../".repeat(12)}${path.slice(1)}`;
}

interface Attack {
  leaked: { replies: string; data: string };
  exec: string;
  normal: { replies: string; data: string };
}

/** One session: the traversal, SITE EXEC, then a normal fetch. */
async function attack(s: Site, marker: string): Promise<Attack> {
  const c = await FtpClient.open(s.port);
  assert((await c.cmd("USER anonymous")).startsWith("331 "));
  assert((await c.cmd("PASS guest@")).startsWith("230 "));
  const leaked = await c.transfer(`RETR ${up(s.secret)}`);
  const exec = await c.cmd(`SITE EXEC echo pwned >${marker}`);
  const normal = await c.transfer("RETR pub.txt");
  await c.quit();
  return { leaked, exec, normal };
}

Deno.test("flawed_ftpd unwrapped: RETR with ../ sends a private file and SITE EXEC runs a shell", async () => {
  const s = await site();
  const marker = `${s.dir}/pwned`;
  const server = await start(s);
  let got: Attack;
  try {
    got = await attack(s, marker);
  } finally {
    await server.stop();
  }
  assertEquals(got.leaked, { replies: "150 Opening data connection.\r\n226 Transfer complete.\r\n", data: SECRET });
  assertEquals(got.exec, "200-Output follows.\r\n200 Exit status 0.\r\n");
  assertEquals(await Deno.readTextFile(marker), "pwned\n", "the SITE EXEC shell ran");
  assertEquals(got.normal.data, "public\n");
  await Deno.remove(s.dir, { recursive: true });
});

Deno.test("ftpd wrapper: benign sessions on flawed_ftpd raise no alert (one traversal after them does)", async () => {
  const s = await site();
  const server = await start(s, await policy(s, "deny"));
  const got: string[] = [];
  let probe: { replies: string; data: string };
  let events: HostEvent[];
  try {
    for (let i = 0; i < 3; i++) {
      const c = await FtpClient.open(s.port);
      await c.cmd("USER anonymous");
      await c.cmd("PASS guest@");
      got.push(await c.cmd("SYST"));
      got.push(await c.cmd("PWD"));
      got.push(await c.cmd("TYPE I"));
      got.push((await c.transfer("LIST")).data);
      got.push((await c.transfer("RETR pub.txt")).data);
      got.push((await c.transfer("RETR /sub/c.txt")).data);
      got.push((await c.transfer("RETR sub/../pub.txt")).data);
      got.push((await c.transfer("RETR nosuch.txt")).replies);
      await c.quit();
    }
    // The control that the wrapper was bound and judging all along: the same run's one violation.
    const c = await FtpClient.open(s.port);
    await c.cmd("USER anonymous");
    await c.cmd("PASS guest@");
    probe = await c.transfer(`RETR ${up(s.secret)}`);
    await c.quit();
  } finally {
    events = (await server.stop()).events;
  }
  assertEquals(alertTexts(events), [`ftpd: ftpd: open for reading of ${s.secret}: outside the paths it may read`]);
  assertEquals(faultTexts(events), []);
  assertEquals(probe, { replies: "550 Permission denied.\r\n", data: "" });
  for (let i = 0; i < got.length; i += 8) {
    // The listing comes in readdir order.
    assertEquals(got[i + 3].split("\r\n").sort(), ["", "pub.txt", "sub"]);
    assertEquals([...got.slice(i, i + 3), ...got.slice(i + 4, i + 8)], [
      "215 UNIX Type: L8\r\n",
      '257 "/"\r\n',
      "200 Type set.\r\n",
      "public\n",
      "c\n",
      "public\n",
      "550 No such file or directory.\r\n",
    ]);
  }
  await Deno.remove(s.dir, { recursive: true });
});

for (const response of ["alert", "deny"] as const) {
  Deno.test(`ftpd wrapper (response ${response}): the RETR traversal is alerted, SITE EXEC's shell denied`, async () => {
    const s = await site();
    const marker = `${s.dir}/pwned`;
    const server = await start(s, await policy(s, response));
    let got: Attack;
    let events: HostEvent[];
    try {
      got = await attack(s, marker);
    } finally {
      events = (await server.stop()).events;
    }
    assertEquals(alertTexts(events), [
      `ftpd: ftpd: open for reading of ${s.secret}: outside the paths it may read`,
      // The file the kernel runs, by its canonical path (/bin/sh is dash on Debian).
      `ftpd: ftpd: execve of ${Deno.realPathSync("/bin/sh")}: not a program this server may run`,
    ]);
    for (const a of reports(events, "alert")) assertEquals(a.severity, 3);
    assertEquals(faultTexts(events), []);
    assert(!(await exists(marker)), "the SITE EXEC shell ran under the wrapper");
    assertEquals(got.exec, "200-Output follows.\r\nsh: Permission denied\r\n200 Exit status 127.\r\n");
    if (response === "alert") {
      assertEquals(got.leaked.data, SECRET, "response alert only reports");
    } else {
      assertEquals(got.leaked, { replies: "550 Permission denied.\r\n", data: "" });
    }
    assertEquals(got.normal.data, "public\n", "the server still serves its root");
    await Deno.remove(s.dir, { recursive: true });
  });
}
