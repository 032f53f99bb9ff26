/**
 * The server specification wrappers (docs/wrappers.md: httpd, ftpd,
 * fingerd) on real servers: Debian's nginx and vsftpd, started here under
 * `./idwrap run` on 127.0.0.1 and a free high port, with temporary
 * configurations, document roots, logs and pid files (no default path of
 * the packages is written), fetched a bounded number of times with fetch()
 * and curl; and tests/progs/fingerish.c, a finger-like server. A server
 * whose package is not installed is skipped, saying so; vsftpd needs root
 * (it chroots anonymous sessions). vsftpd runs with its own seccomp sandbox
 * (the default): its filter stacks on idwrap's, and the calls it allows
 * still reach the wrapper.
 *
 * The execve clauses are checked with a small program compiled here that
 * behaves like a compromised server (it reads /etc/passwd, then runs
 * /bin/sh), installed under the server's name so the policies bind to it.
 */
import { scratchDir, scratchFile } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { exists, IDWRAP, parseJsonLines, prog, reports, ROOT, run } from "../helpers.ts";
import { freePort, freeRange } from "../loopback.ts";
import { ftpdPolicy, httpdPolicy, NGINX, nginxCommand, nginxConf, VSFTPD, vsftpdConf } from "../servers.ts";
import { alertTexts, faultTexts, LoopbackServer, publicTempDir } from "../loopback_server.ts";

/** What /bin/sh is: wrappers see the canonical path of what runs (docs/seccomp.md, "Paths"). */
const SH_REAL = Deno.realPathSync("/bin/sh");

const IS_ROOT = Deno.uid() === 0;
const CURL = "/usr/bin/curl";

const HAVE_NGINX = await exists(NGINX);
const HAVE_VSFTPD = await exists(VSFTPD);
const HAVE_CURL = await exists(CURL);
if (!HAVE_NGINX) console.log("servers_test: nginx tests skipped: /usr/sbin/nginx is missing (Debian package nginx)");
if (!HAVE_VSFTPD || !HAVE_CURL || !IS_ROOT) {
  console.log(
    "servers_test: vsftpd tests skipped: " +
      (!HAVE_VSFTPD
        ? "/usr/sbin/vsftpd is missing (Debian package vsftpd)"
        : !HAVE_CURL
        ? "/usr/bin/curl is missing (Debian package curl)"
        : "vsftpd needs root (it chroots anonymous sessions)"),
  );
}

// ---------------------------------------------------------------------------------------------- nginx (httpd)

interface NginxSite {
  dir: string;
  port: number;
  conf: string;
  policy: string;
}

/** A temp nginx site: docroot www/ with files, logs/, tmp/, a config, and a policy binding httpd to it. */
async function nginxSite(
  response: "alert" | "deny",
  extraLocation = "",
  settings: { ports?: string; upstreams?: string } = {},
): Promise<NginxSite> {
  const dir = await publicTempDir("idwrap-nginx-");
  for (const sub of ["www", "www/sub", "logs", "tmp"]) {
    await Deno.mkdir(`${dir}/${sub}`);
    await Deno.chmod(`${dir}/${sub}`, 0o755);
  }
  await Deno.writeTextFile(`${dir}/www/index.html`, "<p>index</p>\n");
  await Deno.writeTextFile(`${dir}/www/a.txt`, "a\n");
  await Deno.writeTextFile(`${dir}/www/sub/b.txt`, "b\n");
  const port = freePort();
  const conf = `${dir}/nginx.conf`;
  await Deno.writeTextFile(conf, nginxConf({ dir, port, server: extraLocation }));
  const policy = `${dir}/httpd.yaml`;
  await Deno.writeTextFile(policy, httpdPolicy({ dir, port }, { name: "httpd-test", response, ...settings }));
  return { dir, port, conf, policy };
}

function startNginx(site: NginxSite): Promise<LoopbackServer> {
  return LoopbackServer.start(nginxCommand(site.dir), site.port, site.policy);
}

async function get(port: number, path: string): Promise<[number, string]> {
  const r = await fetch(`http://127.0.0.1:${port}${path}`);
  return [r.status, await r.text()];
}

Deno.test({
  name: "httpd: nginx serves its docroot for 30 requests under the policy with no alert",
  ignore: !HAVE_NGINX,
  async fn() {
    const site = await nginxSite("alert");
    const server = await startNginx(site);
    const got: [number, string][] = [];
    try {
      for (let i = 0; i < 10; i++) {
        got.push(await get(site.port, "/"));
        got.push(await get(site.port, "/a.txt"));
        got.push(await get(site.port, "/sub/b.txt"));
      }
    } finally {
      const r = await server.stop();
      assertEquals(alertTexts(r.events), []);
      assertEquals(faultTexts(r.events), []);
      assertEquals(r.code, 0, r.stderr);
    }
    for (let i = 0; i < 30; i += 3) {
      assertEquals(got[i], [200, "<p>index</p>\n"]);
      assertEquals(got[i + 1], [200, "a\n"]);
      assertEquals(got[i + 2], [200, "b\n"]);
    }
    const log = await Deno.readTextFile(`${site.dir}/logs/access.log`);
    assertEquals(log.trim().split("\n").length, 30);
    await Deno.remove(site.dir, { recursive: true });
  },
});

for (const response of ["alert", "deny"] as const) {
  Deno.test({
    name: `httpd: a location aliased to /etc/ reads outside the docroot: alert (response ${response})`,
    ignore: !HAVE_NGINX,
    async fn() {
      const site = await nginxSite(response, "location /leak/ { alias /etc/; }");
      const hostname = await Deno.readTextFile("/etc/hostname");
      const server = await startNginx(site);
      let leaked: [number, string];
      let normal: [number, string];
      try {
        leaked = await get(site.port, "/leak/hostname");
        normal = await get(site.port, "/a.txt");
      } finally {
        const r = await server.stop();
        const alerts = alertTexts(r.events);
        assertEquals(alerts, ["httpd: httpd: open for reading of /etc/hostname: outside the paths it may read"]);
        assertEquals(reports(r.events, "alert")[0].severity, 3);
        assertEquals(faultTexts(r.events), []);
      }
      assertEquals(normal, [200, "a\n"]);
      if (response === "alert") assertEquals(leaked, [200, hostname]);
      else assertEquals(leaked[0], 403, "the denied open (EACCES) is nginx's 403");
      await Deno.remove(site.dir, { recursive: true });
    },
  });
}

Deno.test({
  name: "httpd: a listen port not in `ports` and a proxy_pass to an unlisted upstream are alerted",
  ignore: !HAVE_NGINX,
  async fn() {
    const upstreamPort = freePort();
    const upstream = Deno.serve({ hostname: "127.0.0.1", port: upstreamPort, onListen() {} }, () => new Response("up"));
    const location = `location /up/ { proxy_pass http://127.0.0.1:${upstreamPort}/; }`;
    try {
      // ports: only 1 (not the one nginx listens on); no upstreams.
      const site = await nginxSite("alert", location, { ports: "[1]" });
      const server = await startNginx(site);
      let proxied: [number, string];
      try {
        proxied = await get(site.port, "/up/x");
      } finally {
        const r = await server.stop();
        assertEquals(alertTexts(r.events), [
          `httpd: httpd: bind to inet:127.0.0.1:${site.port}: port ${site.port} is not one it serves`,
          `httpd: httpd: connect to inet:127.0.0.1:${upstreamPort}: not an allowed upstream`,
        ]);
      }
      assertEquals(proxied, [200, "up"]);
      await Deno.remove(site.dir, { recursive: true });

      // The same upstream listed: no alert.
      const listed = await nginxSite("deny", location, { upstreams: `["127.0.0.1:${upstreamPort}"]` });
      const server2 = await startNginx(listed);
      try {
        proxied = await get(listed.port, "/up/x");
      } finally {
        const r = await server2.stop();
        assertEquals(alertTexts(r.events), []);
      }
      assertEquals(proxied, [200, "up"]);
      await Deno.remove(listed.dir, { recursive: true });
    } finally {
      await upstream.shutdown();
    }
  },
});

// ---------------------------------------------------------------------------------------------- vsftpd (ftpd)

interface FtpSite {
  dir: string;
  port: number;
  conf: string;
  policy: string;
}

/** A temp anonymous FTP site: anon/ (root-owned, 0755), empty/ (secure_chroot_dir), log/, config, policy. */
async function ftpSite(response: "alert" | "deny", extraConf = ""): Promise<FtpSite> {
  const dir = await publicTempDir("idwrap-vsftpd-");
  for (const sub of ["anon", "anon/sub", "empty", "log"]) {
    await Deno.mkdir(`${dir}/${sub}`);
    await Deno.chmod(`${dir}/${sub}`, 0o755);
  }
  await Deno.writeTextFile(`${dir}/anon/pub.txt`, "public\n");
  await Deno.writeTextFile(`${dir}/anon/sub/c.txt`, "c\n");
  const port = freePort();
  const conf = `${dir}/vsftpd.conf`;
  const site = { dir, port, pasv: freeRange(20), extra: extraConf };
  await Deno.writeTextFile(conf, vsftpdConf(site));
  const policy = `${dir}/ftpd.yaml`;
  await Deno.writeTextFile(policy, ftpdPolicy(site, { name: "ftpd-test", response }));
  return { dir, port, conf, policy };
}

async function curl(url: string): Promise<[number, string]> {
  const r = await run(CURL, ["-s", "-S", "--max-time", "10", url]);
  return [r.code, r.stdout];
}

Deno.test({
  name: "ftpd: vsftpd serves 20 anonymous fetches and listings under the policy with no alert",
  ignore: !HAVE_VSFTPD || !HAVE_CURL || !IS_ROOT,
  async fn() {
    const site = await ftpSite("alert");
    const server = await LoopbackServer.start([VSFTPD, site.conf], site.port, site.policy);
    const got: [number, string][] = [];
    try {
      for (let i = 0; i < 5; i++) {
        got.push(await curl(`ftp://127.0.0.1:${site.port}/pub.txt`));
        got.push(await curl(`ftp://127.0.0.1:${site.port}/sub/c.txt`));
        got.push(await curl(`ftp://127.0.0.1:${site.port}/sub/../pub.txt`));
        got.push(await curl(`ftp://127.0.0.1:${site.port}/sub/`));
      }
    } finally {
      const r = await server.stop();
      assertEquals(alertTexts(r.events), []);
      assertEquals(faultTexts(r.events), []);
    }
    for (let i = 0; i < 20; i += 4) {
      assertEquals(got[i], [0, "public\n"]);
      assertEquals(got[i + 1], [0, "c\n"]);
      assertEquals(got[i + 2], [0, "public\n"]);
      assertEquals(got[i + 3][0], 0);
      assert(got[i + 3][1].includes("c.txt"), got[i + 3][1]);
    }
    await Deno.remove(site.dir, { recursive: true });
  },
});

for (const response of ["alert", "deny"] as const) {
  Deno.test({
    name: `ftpd: a banner_file outside the anonymous root is read: alert (response ${response})`,
    ignore: !HAVE_VSFTPD || !HAVE_CURL || !IS_ROOT,
    async fn() {
      const site = await ftpSite(response, "banner_file=/etc/hostname");
      const server = await LoopbackServer.start([VSFTPD, site.conf], site.port, site.policy);
      let got: [number, string];
      try {
        got = await curl(`ftp://127.0.0.1:${site.port}/pub.txt`);
      } finally {
        const r = await server.stop();
        const alerts = alertTexts(r.events);
        // vsftpd reads the banner in every session: the readiness probe's and curl's.
        assert(alerts.length >= 1, "no alert");
        for (const a of alerts) {
          assertEquals(a, "ftpd: ftpd: open for reading of /etc/hostname: outside the paths it may read");
        }
        assertEquals(faultTexts(r.events), []);
      }
      // Denied (EACCES), vsftpd answers "500 OOPS: cannot open banner" instead of 220: curl's error 8.
      assertEquals(got, response === "alert" ? [0, "public\n"] : [8, ""]);
      await Deno.remove(site.dir, { recursive: true });
    },
  });
}

// ---------------------------------------------------------------------------------------------- fingerd

Deno.test("fingerd: fingerish answers a normal query with no alert, and refuses a crafted one", async () => {
  const script = `printf '%s\\r\\n' "$1" | exec ${prog("fingerish")}`;
  const normal = await runUnder(`${ROOT}policies/fingerd.yaml`, ["/bin/sh", "-c", script, "sh", "root"]);
  assertEquals(normal.code, 0, normal.stderr);
  assert(normal.stdout.startsWith("Login: root\t"), normal.stdout);
  assertEquals(alertTexts(normal.events), []);
  assertEquals(faultTexts(normal.events), []);
  for (const bad of ["root;/bin/sh", "/W root", "root@localhost", "-l", "x".repeat(200)]) {
    const r = await runUnder(`${ROOT}policies/fingerd.yaml`, ["/bin/sh", "-c", script, "sh", bad]);
    assertEquals([r.code, r.stdout], [1, "finger: bad request\n"], bad);
    assertEquals(alertTexts(r.events), []);
  }
});

/** Runs a command under a policy with `./idwrap run --json`, collecting the events. */
async function runUnder(policy: string, command: string[]) {
  const out = await scratchFile({ prefix: "idwrap-servers-", suffix: ".jsonl" });
  try {
    const r = await run(IDWRAP, ["run", "--json", "-o", out, "-p", policy, "--", ...command]);
    return { ...r, events: parseJsonLines(await Deno.readTextFile(out)) };
  } finally {
    await Deno.remove(out);
  }
}

const FINGER_USER = "idwrap-finger";

Deno.test({
  name: "fingerd: a world-readable ~/.plan is read; one that links to a private file is a violation",
  ignore: !IS_ROOT,
  async fn() {
    const base = await publicTempDir("idwrap-homes-");
    const home = `${base}/${FINGER_USER}`;
    await Deno.mkdir(home);
    await Deno.chmod(home, 0o755);
    const add = await run("useradd", [
      "--system",
      "--no-create-home",
      "--home-dir",
      home,
      "--shell",
      "/usr/sbin/nologin",
      FINGER_USER,
    ]);
    assertEquals(add.code, 0, add.stderr);
    try {
      const secret = `${base}/secret`;
      await Deno.writeTextFile(secret, "top secret\n");
      await Deno.chmod(secret, 0o600);
      const policyFor = async (response: string) => {
        const p = `${base}/fingerd-${response}.yaml`;
        await Deno.writeTextFile(
          p,
          `version: 1\nwrappers:\n  - name: fingerd\n    settings: { homes: ["${base}"], response: ${response} }\n` +
            `    activate: { program: fingerish }\n`,
        );
        return p;
      };
      const query = ["/bin/sh", "-c", `echo ${FINGER_USER} | exec ${prog("fingerish")}`];

      await Deno.writeTextFile(`${home}/.plan`, "world-readable plan\n");
      await Deno.chmod(`${home}/.plan`, 0o644);
      const ok = await runUnder(await policyFor("deny"), query);
      assert(ok.stdout.includes("Plan:\nworld-readable plan\n"), ok.stdout);
      assertEquals(alertTexts(ok.events), []);

      await Deno.remove(`${home}/.plan`);
      await Deno.symlink(secret, `${home}/.plan`);
      // The wrapper sees the file the link leads to (the canonical path): a file outside what fingerd may read.
      const expected = `fingerd: fingerd: open for reading of ${secret}: outside the paths it may read`;
      const alerted = await runUnder(await policyFor("alert"), query);
      assert(alerted.stdout.includes("top secret"), "response alert only reports");
      assertEquals(alertTexts(alerted.events), [expected]);
      const denied = await runUnder(await policyFor("deny"), query);
      assert(denied.stdout.includes("Plan: Permission denied"), denied.stdout);
      assert(!denied.stdout.includes("top secret"), denied.stdout);
      assertEquals(alertTexts(denied.events), [expected]);
    } finally {
      await run("userdel", [FINGER_USER]);
      await Deno.remove(base, { recursive: true });
    }
  },
});

// ---------------------------------------------------------------------------------------------- compromised servers

const COMPROMISED = `
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv) {
  if (argc > 1 && strcmp(argv[1], "done") == 0) { puts("re-exec ok"); return 0; }
  if (argc > 1 && strcmp(argv[1], "self") == 0) {
    char self[4096];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n < 0) return 4;
    self[n] = 0;
    execl(self, argv[0], "done", (char *)0);
    printf("execve: %s\\n", strerror(errno));
    return 3;
  }
  if (argc > 2 && strcmp(argv[1], "write") == 0) {
    int fd = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) { printf("open: %s\\n", strerror(errno)); return 3; }
    puts("wrote");
    return 0;
  }
  FILE *f = fopen("/etc/passwd", "r");
  if (f == NULL) return 4;
  char line[512];
  if (fgets(line, sizeof line, f) == NULL) return 4;
  fclose(f);
  fflush(stdout);
  execl("/bin/sh", "sh", "-c", "echo pwned", (char *)0);
  printf("execve: %s\\n", strerror(errno));
  return 3;
}
`;

const binDir = await scratchDir({ prefix: "idwrap-compromised-" });
await Deno.writeTextFile(`${binDir}/compromised.c`, COMPROMISED);
const cc = await run(Deno.env.get("CC") ?? "cc", ["-O2", "-o", `${binDir}/fingerd`, `${binDir}/compromised.c`]);
if (cc.code !== 0) throw new Error(`cannot compile the compromised server: ${cc.stderr}`);
for (const name of ["nginx", "vsftpd"]) await Deno.copyFile(`${binDir}/fingerd`, `${binDir}/${name}`);
await Deno.chmod(binDir, 0o755);

for (const [name, policy] of [["fingerd", "fingerd"], ["nginx", "httpd"], ["vsftpd", "ftpd"]] as const) {
  Deno.test(`${policy}: a compromised ${name} that runs /bin/sh is denied (EACCES) and alerted`, async () => {
    const r = await runUnder(`${ROOT}policies/${policy}.yaml`, [`${binDir}/${name}`]);
    assertEquals([r.code, r.stdout], [3, "execve: Permission denied\n"]);
    assertEquals(alertTexts(r.events), [
      `${policy}: ${policy}: execve of ${SH_REAL}: not a program this server may run`,
    ]);
    assertEquals(reports(r.events, "alert")[0].severity, 3);
  });
}

Deno.test("httpd: the master's re-exec of its own binary is allowed", async () => {
  const r = await runUnder(`${ROOT}policies/httpd.yaml`, [`${binDir}/nginx`, "self"]);
  assertEquals([r.code, r.stdout], [0, "re-exec ok\n"]);
  assertEquals(alertTexts(r.events), []);
});

Deno.test("fingerd: a compromised fingerd that writes a file is alerted (response alert) and denied (deny)", async () => {
  const dir = await scratchDir({ prefix: "idwrap-fingerd-write-" });
  const target = `${dir}/dropped`;
  const alerted = await runUnder(`${ROOT}policies/fingerd.yaml`, [`${binDir}/fingerd`, "write", target]);
  assertEquals(alerted.stdout, "wrote\n");
  const message = `fingerd: fingerd: open for writing of ${target}: this server never writes files`;
  assertEquals(alertTexts(alerted.events), [message]);
  await Deno.remove(target);
  const policy = `${dir}/deny.yaml`;
  await Deno.writeTextFile(
    policy,
    "version: 1\nwrappers:\n  - name: fingerd\n    settings: { response: deny }\n    activate: { program: fingerd }\n",
  );
  const denied = await runUnder(policy, [`${binDir}/fingerd`, "write", target]);
  assertEquals(denied.stdout, "open: Permission denied\n");
  assertEquals(alertTexts(denied.events), [message]);
  assert(!(await exists(target)));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("the server policies are valid", async () => {
  const r = await run(IDWRAP, [
    "policy",
    "check",
    `${ROOT}policies/httpd.yaml`,
    `${ROOT}policies/ftpd.yaml`,
    `${ROOT}policies/fingerd.yaml`,
  ]);
  assertEquals(r.code, 0, r.stdout + r.stderr);
});
