/**
 * Issue 16's done-when: the nginx policy of docs/policy.md ("restrict a
 * service") on a real nginx. nginx may write only under its log dir (and its
 * pid file and temp dir), every program nginx starts raises one alert, an admin's
 * shell in the same run is untouched. The attacker is code running inside
 * nginx's master (an LD_PRELOAD payload standing in for a remote code
 * execution): it writes into the docroot, and starts a shell the way a
 * payload does (execlp: a PATH search whose first tries fail).
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import type { HostEvent } from "../../host/events.ts";
import { exists, run, traced, writePolicy } from "../helpers.ts";
import { freePort } from "../loopback.ts";
import { NGINX, nginxCommand, nginxConf } from "../servers.ts";

const PAYLOAD_C = `#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

/* Runs once, in nginx's master, before its main: what an attacker's code in nginx would do. */
__attribute__((constructor)) static void payload(void) {
  char exe[256];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  const char *dir = getenv("PAYLOAD_DIR");
  if (n < 0 || !dir) return;
  exe[n] = 0;
  if (!strstr(exe, "nginx")) return;
  unsetenv("LD_PRELOAD");
  char p[512];
  snprintf(p, sizeof p, "%s/www/evil.txt", dir);
  int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  int evil = fd >= 0 ? 0 : errno;
  if (fd >= 0) close(fd);
  snprintf(p, sizeof p, "%s/www/index.html", dir);
  fd = open(p, O_RDONLY);
  int rd = fd >= 0 ? 0 : errno;
  if (fd >= 0) close(fd);
  pid_t c = fork();
  if (c == 0) {
    setenv("PATH", "/nonexistent-a:/nonexistent-b:/usr/bin:/bin", 1);
    execlp("sh", "sh", "-c", "exit 7", (char *)0);
    _exit(127);
  }
  int st = 0;
  waitpid(c, &st, 0);
  /* A program that is no shell (rt6 F7: dd, env sh -c): outside the write rule's scope, but an exec by nginx. */
  pid_t e = fork();
  if (e == 0) {
    execl("/usr/bin/env", "env", "true", (char *)0);
    _exit(127);
  }
  waitpid(e, 0, 0);
  snprintf(p, sizeof p, "%s/logs/payload.txt", dir);
  fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  dprintf(fd, "evil=%d read=%d shell=%d\\n", evil, rd, WIFEXITED(st) ? WEXITSTATUS(st) : -1);
  close(fd);
}
`;

/** The policy as docs/policy.md writes it ("Restrict a service"), with the site's directory for /var/log/nginx. */
function nginxPolicy(dir: string): string {
  return `version: 2
name: nginx
lists:
  nginx_writable: ["${dir}/logs/**", "${dir}/tmp/**", "${dir}/nginx.pid"]
rules:
  - id: nginx-write-outside-logs
    syscalls: [open, openat, openat2, creat]
    scope: { program: ${NGINX} }
    flags: write
    not: { path: $nginx_writable }
    action: deny
    errno: EACCES
  - id: nginx-exec
    syscalls: "%exec"
    scope: { program: ${NGINX} }
    attack: T1059
    tags: [exec, service]
`;
}

const hasNginx = (() => {
  try {
    return Deno.statSync(NGINX).isFile && Deno.statSync("/usr/bin/cc").isFile;
  } catch {
    return false;
  }
})();

/** Alerted rule ids, with the event kind and program that raised each. */
function alerts(events: HostEvent[]): { id: string; kind: string; exe: string }[] {
  return events.flatMap((e) => {
    const ids = "alerts" in e ? e.alerts ?? [] : [];
    return ids.map((id) => ({
      id,
      kind: e.kind === "syscall" ? `${e.syscall}/${e.phase}` : e.kind,
      exe: e.program.exe,
    }));
  });
}

Deno.test({
  name: "nginx policy: writes outside its logs denied, every exec by nginx alerted once, an admin's shell untouched",
  ignore: !hasNginx,
  fn: async () => {
    // Readable by nginx's workers (nobody): a public temp dir.
    const dir = await scratchDir({ prefix: "idwrap-nginx-scope-" });
    try {
      for (const sub of ["", "/www", "/logs", "/tmp"]) {
        await Deno.mkdir(`${dir}${sub}`, { recursive: true });
        await Deno.chmod(`${dir}${sub}`, 0o755);
      }
      await Deno.writeTextFile(`${dir}/www/index.html`, "<p>index</p>\n");
      await Deno.writeTextFile(`${dir}/payload.c`, PAYLOAD_C);
      const cc = await run("/usr/bin/cc", ["-shared", "-fPIC", "-o", `${dir}/payload.so`, `${dir}/payload.c`]);
      assertEquals(cc.code, 0, cc.stderr);
      const port = freePort();
      await Deno.writeTextFile(`${dir}/nginx.conf`, nginxConf({ dir, port }));
      const policy = await writePolicy(nginxPolicy(dir));
      const nginx = nginxCommand(dir).slice(0, -1).join(" ");
      // nginx with the payload, one request, then the admin's own shell work: a write outside nginx's logs, a bash.
      const script = `PAYLOAD_DIR=${dir} LD_PRELOAD=${dir}/payload.so ${nginx} 'daemon off;' & n=$!; ` +
        "trap 'kill $n 2> /dev/null; wait $n' EXIT; " +
        `for i in $(seq 300); do curl -sf -m 10 http://127.0.0.1:${port}/ && break; sleep 0.1; done; ` +
        `echo admin > ${dir}/www/admin.txt && bash -c 'cat ${dir}/www/admin.txt'`;

      // Control: unwrapped, the payload writes into the docroot and its shell runs.
      const bare = await run("/bin/sh", ["-c", script], { cwd: dir, timeoutMs: 120_000 });
      assertEquals(bare.code, 0, bare.stderr);
      assertEquals(bare.stdout, "<p>index</p>\nadmin\n");
      assertEquals(await Deno.readTextFile(`${dir}/logs/payload.txt`), "evil=0 read=0 shell=7\n");
      assert(await exists(`${dir}/www/evil.txt`));
      await Deno.remove(`${dir}/www/evil.txt`);
      await Deno.remove(`${dir}/www/admin.txt`);
      await Deno.remove(`${dir}/logs/payload.txt`);

      const r = await traced("run", ["-p", policy], ["/bin/sh", "-c", script], { cwd: dir, timeoutMs: 120_000 });
      assertEquals(r.code, 0, `exit ${r.code}\n${r.stderr}`);
      // nginx served; the admin wrote outside nginx's logs and ran bash, untouched.
      assertEquals(r.stdout, "<p>index</p>\nadmin\n");
      // The payload's write into the docroot was refused (EACCES = 13); its read and its shell ran.
      assertEquals(await Deno.readTextFile(`${dir}/logs/payload.txt`), "evil=13 read=0 shell=7\n");
      assert(!await exists(`${dir}/www/evil.txt`), "nginx wrote outside its logs");
      const fired = alerts(r.events);
      if (Deno.env.get("PLANG_DEBUG")) console.log(JSON.stringify(fired), r.events.length);
      // One deny of the docroot write, by nginx.
      const denies = fired.filter((a) => a.id === "nginx-write-outside-logs");
      assertEquals(denies.length, 1, JSON.stringify(fired));
      assertEquals(denies[0].exe, NGINX);
      // The shell: three execve tries (two fail ENOENT in the PATH search), one alert, at the exec that ran; and the
      // exec of env, no shell, alerted too (a rule on shells' paths would miss it).
      const execs = fired.filter((a) => a.id === "nginx-exec");
      assertEquals(execs, [
        { id: "nginx-exec", kind: "exec", exe: "/usr/bin/dash" },
        { id: "nginx-exec", kind: "exec", exe: "/usr/bin/env" },
      ], JSON.stringify(fired));
      const exec = r.events.find((e) => e.kind === "exec" && e.alerts?.includes("nginx-exec"));
      assertEquals(exec && "attack" in exec ? [exec.attack, exec.tags] : undefined, [["T1059"], ["exec", "service"]]);
      // Nothing fired for the admin's shell, bash or their writes.
      assertEquals(fired.filter((a) => a.exe !== NGINX && a.kind !== "exec"), []);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
