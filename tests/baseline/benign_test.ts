/**
 * The benign set of issue 8: everyday work run under policies/default.yaml
 * raises no alert (from the baseline wrapper or the policy's rules) and no
 * wrapper fault — while a canary at the end of each run shows both were
 * there and hooking, and the run's summary shows the baseline wrapper's hooks
 * ran on the workload's own calls (issue 19): at least once per exec the
 * trace shows and per open the workload is known to make. Everything works
 * in a temp dir (HOME points there too).
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert, throws as assertThrows } from "node:assert/strict";
import type { HostEvent } from "../../host/events.ts";
import { calls, reports, ROOT, type Traced, traced, writePolicy } from "../helpers.ts";
import { freePort } from "../loopback.ts";
import { NGINX, nginxCommand, nginxConf } from "../servers.ts";

const POLICY = `${ROOT}policies/default.yaml`;
const tmp = await scratchDir({ prefix: "idwrap-benign-" });
const home = `${tmp}/home`;
await Deno.mkdir(home, { recursive: true });

function which(program: string): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "/usr/bin:/bin").split(":")) {
    try {
      if (Deno.statSync(`${dir}/${program}`).isFile) return `${dir}/${program}`;
    } catch { /* next */ }
  }
  return undefined;
}

/** What a workload is known to do at least, whatever the versions of its programs. */
interface Floor {
  /** Programs it runs (execve calls that succeed), the canary's head included. */
  execs: number;
  /** Files it opens besides the programs' own loading (sources, outputs, its data). */
  opens: number;
}

/** How a benign workload runs. */
interface BenignOptions {
  cwd: string;
  /** What the workload is known to do at least: the baseline's hooks must have run that often. */
  floor: Floor;
  env?: Record<string, string>;
  /** Every notified call is in the events too (to check that the calls a rule examines were made). @default false */
  verbose?: boolean;
  /** @default policies/default.yaml */
  policy?: string;
}

/**
 * Runs a shell script under the default policy and checks it ran cleanly without alerts (but the canary's), and that
 * the baseline wrapper's hooks ran on the workload's calls.
 */
async function benign(script: string, options: BenignOptions): Promise<Traced> {
  const r = await runWorkload(script, options);
  assertQuiet(r);
  assertBaselineSaw(r, options.floor);
  return r;
}

/** Runs `script`, then the canary, under the policy. */
async function runWorkload(script: string, options: Omit<BenignOptions, "floor">): Promise<Traced> {
  const { cwd, verbose = false, policy = POLICY } = options;
  const env = {
    HOME: home,
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_AUTHOR_NAME: "t",
    GIT_AUTHOR_EMAIL: "t@example.invalid",
    GIT_COMMITTER_NAME: "t",
    GIT_COMMITTER_EMAIL: "t@example.invalid",
    ...options.env,
  };
  // The canary: once the workload is done, one read of /etc/shadow in the same run. Its alerts, and only its, prove
  // that the policy's rule and the baseline wrapper were there, hooking this tree's calls, while nothing else fired.
  // In the C locale head opens no locale files: its few calls (execve, ld.so.cache, libc, /etc/shadow) stay well
  // below any workload's floor, so the baseline's counts cannot be met by the canary alone.
  const withCanary = `(${script}) && LC_ALL=C head -c0 /etc/shadow`;
  const r = await traced("run", ["-p", policy, ...(verbose ? ["--verbose"] : [])], ["/bin/sh", "-c", withCanary], {
    cwd,
    env,
  });
  assertEquals(r.code, 0, `exit ${r.code}\n${r.stderr}`);
  return r;
}

/** Nothing fired but the canary, whose alerts (the rule's and the baseline's) did; no wrapper failed. */
function assertQuiet(r: Traced): void {
  const canary = (e: HostEvent) => e.program.exe === HEAD;
  const alerts = reports(r.events, "alert");
  const flagged = calls(r.events).filter((e) => e.alerts?.length);
  const others = [...alerts.filter((a) => !canary(a)), ...flagged.filter((e) => !canary(e))];
  assertEquals(others.map((e) => JSON.stringify(e)), []);
  assertEquals(alerts.map((a) => `${a.wrapper}: ${a.message}`), [
    `baseline: baseline.credential-read: /etc/shadow read by ${HEAD} (T1003.008)`,
  ]);
  assert(flagged.some((e) => e.alerts!.includes("credential-read")), "the policy's credential-read rule did not fire");
  assertEquals(reports(r.events, "fault").map((f) => f.message), []);
}

/**
 * The baseline wrapper saw the workload, not only the canary: its pre hook ran for every exec the trace shows (each
 * was an execve it takes) plus the opens the workload is known to make, its lifecycle hook at each of those execs, and
 * it answered nothing but allow, with the canary's one alert and no failure.
 */
function assertBaselineSaw(r: Traced, floor: Floor): void {
  const execs = r.events.filter((e) => e.kind === "exec").length;
  assert(execs >= floor.execs, `the trace shows ${execs} execs; the workload makes at least ${floor.execs}`);
  const hooks = r.summary?.hooks.find((h) => h.wrapper === "baseline");
  assert(hooks, `the run's summary has no hook counts for baseline: ${JSON.stringify(r.summary)}`);
  assert(
    hooks.pre >= execs + floor.opens,
    `baseline's pre hook ran ${hooks.pre} times; the workload made ${execs} execs and at least ${floor.opens} opens`,
  );
  assert(hooks.lifecycle >= execs, `baseline's lifecycle hook ran ${hooks.lifecycle} times for ${execs} execs`);
  assertEquals([hooks.verdicts, hooks.alerts, hooks.faults], [0, 1, 0], "non-allow verdicts, alerts, faults");
}

/** The canary's program, by the path the kernel runs. */
const HEAD = Deno.realPathSync("/usr/bin/head");

Deno.test("benign: make builds a small C project", async () => {
  const dir = `${tmp}/cproj`;
  await Deno.mkdir(dir);
  await Deno.writeTextFile(`${dir}/util.h`, "int add(int a, int b);\n");
  await Deno.writeTextFile(`${dir}/util.c`, '#include "util.h"\nint add(int a, int b) { return a + b; }\n');
  await Deno.writeTextFile(
    `${dir}/main.c`,
    '#include <stdio.h>\n#include "util.h"\nint main(void) { printf("%d\\n", add(1, 2)); return 0; }\n',
  );
  await Deno.writeTextFile(
    `${dir}/Makefile`,
    "CFLAGS = -O2 -Wall\nprog: main.o util.o\n\t$(CC) -o $@ main.o util.o\n%.o: %.c util.h\n\t$(CC) $(CFLAGS) -c $<\n" +
      "clean:\n\trm -f prog *.o\n",
  );
  // sh, make ×3, cc -c ×4, cc -o ×2, the clean's rm, head; make reads its Makefile ×3, the compiles their sources ×4.
  await benign("make -s && make -s clean && make -s", { cwd: dir, floor: { execs: 12, opens: 7 } });
  assert((await Deno.stat(`${dir}/prog`)).isFile);
});

Deno.test({
  name: "benign: git init, commit and clone of a local repository",
  ignore: which("git") === undefined, // git is not installed
  fn: async () => {
    const dir = `${tmp}/gitwork`;
    await Deno.mkdir(dir);
    await benign(
      "git init -q repo && cd repo && echo hello > README && git add README && git commit -q -m first && cd .. && " +
        "git clone -q repo clone && test -f clone/README",
      // sh, git ×4, head; git init writes HEAD, config and description, add reads README, clone opens the repository.
      { cwd: dir, floor: { execs: 6, opens: 5 } },
    );
  },
});

Deno.test({
  name: "benign: a python3 script reads and writes its own temp files",
  ignore: which("python3") === undefined, // python3 is not installed
  fn: async () => {
    const dir = `${tmp}/py`;
    await Deno.mkdir(dir);
    await Deno.writeTextFile(
      `${dir}/work.py`,
      [
        "import json, os, tempfile",
        "d = tempfile.mkdtemp(dir=os.getcwd())",
        "p = os.path.join(d, 'data.json')",
        "with open(p, 'w') as f: json.dump({'n': list(range(100))}, f)",
        "with open(p) as f: data = json.load(f)",
        "with open(p + '.txt', 'a') as f: f.write(str(sum(data['n'])))",
        "os.rename(p + '.txt', p + '.out')",
        "os.unlink(p)",
        "print(open(p + '.out').read())",
      ].join("\n") + "\n",
    );
    // sh, python3, head; work.py, data.json written and read, .txt appended, .out read.
    const r = await benign("python3 -B work.py", { cwd: dir, floor: { execs: 3, opens: 5 } });
    assertEquals(r.stdout, "4950\n");
  },
});

Deno.test("benign: tar czf of a home-like directory", async () => {
  const dir = `${tmp}/tarwork`;
  const h = `${dir}/alice`;
  await Deno.mkdir(`${h}/Documents`, { recursive: true });
  await Deno.mkdir(`${h}/.config/app`, { recursive: true });
  await Deno.writeTextFile(`${h}/Documents/notes.txt`, "notes\n".repeat(100));
  await Deno.writeTextFile(`${h}/.config/app/settings.ini`, "[a]\nb=1\n");
  await Deno.writeTextFile(`${h}/.profile`, "export A=1\n");
  // sh, tar ×2, head (tar's gzip not counted); the three files read, alice.tgz written and read, /dev/null.
  await benign("tar czf alice.tgz alice && tar tzf alice.tgz > /dev/null", { cwd: dir, floor: { execs: 4, opens: 6 } });
  assert((await Deno.stat(`${dir}/alice.tgz`)).size > 0);
});

Deno.test({
  name: "benign: a python3 web server serves files to curl",
  ignore: which("python3") === undefined || which("curl") === undefined, // python3 or curl is not installed
  fn: async () => {
    const dir = `${tmp}/web`;
    await Deno.mkdir(`${dir}/site`, { recursive: true });
    await Deno.writeTextFile(`${dir}/site/index.html`, "<h1>hello</h1>\n");
    const port = 20000 + Math.floor(Math.random() * 20000);
    const r = await benign(
      `python3 -m http.server --bind 127.0.0.1 ${port} --directory site >/dev/null 2>&1 & pid=$!; ` +
        `for i in $(seq 100); do curl -sf http://127.0.0.1:${port}/index.html && break; sleep 0.1; done; ` +
        "kill $pid; wait $pid || true",
      // sh, python3, seq, curl, head; the server opens index.html.
      { cwd: dir, floor: { execs: 5, opens: 1 } },
    );
    assertEquals(r.stdout, "<h1>hello</h1>\n");
  },
});

const HAVE_APT_LISTS = (() => {
  try {
    return [...Deno.readDirSync("/var/lib/apt/lists")].some((e) => e.name.includes("_Packages"));
  } catch {
    return false;
  }
})();

Deno.test({
  name: "benign: dpkg-deb builds a package, dpkg installs and removes it in a temp root, apt-get -s and apt-cache",
  // apt-get -s needs the package lists (apt-get update, as tools/debian-deps.sh runs).
  ignore: !["dpkg-deb", "dpkg", "apt-get", "apt-cache"].every((p) => which(p)) || !HAVE_APT_LISTS,
  fn: async () => {
    const dir = `${tmp}/apt`;
    await Deno.mkdir(dir);
    // Nothing of the machine's dpkg database is written: the package goes into root/, with its own admin
    // directory and log. apt-get -s only simulates (it rewrites apt's planner log, /var/log/apt/eipp.log.xz,
    // as every apt-get install does).
    const r = await benign(
      [
        "mkdir -p pkg/DEBIAN pkg/usr/share/idwrap-hello pkg/usr/bin root/var/lib/dpkg/info root/var/lib/dpkg/updates",
        "touch root/var/lib/dpkg/status",
        "printf 'Package: idwrap-hello\\nVersion: 1.0\\nArchitecture: all\\nMaintainer: t <t@example.invalid>\\n" +
        "Description: test\\n' > pkg/DEBIAN/control",
        "echo hello > pkg/usr/share/idwrap-hello/hello.txt",
        "printf '#!/bin/sh\\necho hello\\n' > pkg/usr/bin/idwrap-hello && chmod 755 pkg/usr/bin/idwrap-hello",
        "dpkg-deb --root-owner-group --build pkg hello.deb > /dev/null",
        "dpkg-deb --info hello.deb > /dev/null && dpkg-deb --contents hello.deb > /dev/null",
        'dpkg --root="$PWD/root" --log="$PWD/dpkg.log" --force-script-chrootless -i hello.deb > /dev/null',
        'dpkg --root="$PWD/root" -L idwrap-hello > /dev/null',
        "cat root/usr/share/idwrap-hello/hello.txt",
        'dpkg --root="$PWD/root" --log="$PWD/dpkg.log" --force-script-chrootless -r idwrap-hello > /dev/null',
        "test ! -e root/usr/share/idwrap-hello/hello.txt",
        "apt-cache policy dpkg > /dev/null",
        "apt-cache show dpkg > /dev/null",
        "apt-cache depends dpkg > /dev/null",
        "apt-get -s install --reinstall dpkg > /dev/null",
        "apt-get -s autoremove > /dev/null",
      ].join(" && "),
      // mkdir, touch, chmod, dpkg-deb ×3, dpkg ×3, cat, apt-cache ×3, apt-get ×2, sh, head; dpkg's status, the
      // control file, hello.txt written and read back, the package read by dpkg ×2.
      { cwd: dir, floor: { execs: 19, opens: 6 } },
    );
    assertEquals(r.stdout, "hello\n");
  },
});

Deno.test({
  name: "benign: nginx serves files to curl and proxies to a loopback upstream",
  ignore: !which("curl") || !which("python3") || !(() => {
    try {
      return Deno.statSync(NGINX).isFile;
    } catch {
      return false;
    }
  })(),
  fn: async () => {
    // Readable by nginx's workers (nobody): a public temp dir, not the 0700 one.
    const dir = await scratchDir({ prefix: "idwrap-benign-nginx-" });
    try {
      for (const sub of ["", "/www", "/www/sub", "/logs", "/tmp", "/up"]) {
        await Deno.mkdir(`${dir}${sub}`, { recursive: true });
        await Deno.chmod(`${dir}${sub}`, 0o755);
      }
      await Deno.writeTextFile(`${dir}/www/index.html`, "<p>index</p>\n");
      await Deno.writeTextFile(`${dir}/www/sub/b.txt`, "b\n");
      await Deno.writeTextFile(`${dir}/up/u.txt`, "upstream\n");
      const port = freePort();
      const up = freePort();
      await Deno.writeTextFile(
        `${dir}/nginx.conf`,
        nginxConf({ dir, port, server: `location /up/ { proxy_pass http://127.0.0.1:${up}/; }` }),
      );
      const base = `http://127.0.0.1:${port}`;
      const r = await benign(
        // The servers are stopped however the script ends: `idwrap run` serves a tree until its last process exits,
        // so a server left running by a failed curl would hold the run (and the suite) forever. Slow starts under
        // a loaded CI machine get up to 60 s; each request is bounded.
        `python3 -m http.server --bind 127.0.0.1 ${up} --directory up > /dev/null 2>&1 & u=$!; ` +
          `${nginxCommand(dir).slice(0, -1).join(" ")} 'daemon off;' & n=$!; ` +
          "trap 'kill $n $u 2> /dev/null; wait $n $u' EXIT; " +
          `for i in $(seq 600); do curl -sf -m 10 ${base}/up/u.txt > /dev/null && break; sleep 0.1; done; ` +
          `for i in 1 2 3 4 5; do curl -sf -m 30 ${base}/ ${base}/sub/b.txt ${base}/up/u.txt || exit 1; done`,
        // sh, python3, nginx, seq, curl ×6, head; nginx.conf, then per round index.html and b.txt, u.txt upstream.
        { cwd: dir, floor: { execs: 11, opens: 16 }, verbose: true },
      );
      assertEquals(r.stdout, "<p>index</p>\nb\nupstream\n".repeat(5));
      // nginx really served them (the access log), and connected to its upstream (5 proxied requests and the poll).
      const log = await Deno.readTextFile(`${dir}/logs/access.log`);
      assert(log.trim().split("\n").length >= 15, log);
      assert(calls(r.events).some((e) => e.syscall === "connect" && e.program.exe === NGINX), "nginx made no connect");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "benign: kubectl, the aws CLI and gcloud read their credentials in a home below /home",
  ignore: !which("kubectl") && !which("aws") && !which("gcloud"),
  fn: async () => {
    const h = `/home/idwrap-benign-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
    try {
      await Deno.mkdir(`${h}/.kube`, { recursive: true });
      await Deno.mkdir(`${h}/.aws`, { recursive: true });
      await Deno.writeTextFile(
        `${h}/.kube/config`,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1'}\n" +
          "contexts:\n- name: x\n  context: {cluster: c, user: u}\ncurrent-context: x\nusers:\n- name: u\n  user: {token: t}\n",
      );
      await Deno.writeTextFile(
        `${h}/.aws/credentials`,
        "[default]\naws_access_key_id = AKIAIDWRAPEXAMPLE\naws_secret_access_key = x\n",
      );
      const script = [
        which("kubectl") ? "kubectl config current-context" : "echo x",
        // aws is a Python program (the executable is python3): allowed by its script's name.
        which("aws") ? "aws configure list | grep -q shared-credentials-file" : "true",
        // gcloud runs python3 -S .../lib/gcloud.py, and creates and opens credentials.db and access_tokens.db.
        which("gcloud") ? "gcloud auth list > /dev/null 2>&1" : "true",
      ].join(" && ");
      const present = ["kubectl", "aws", "gcloud"].filter((cli) => which(cli)).length;
      // sh, each CLI present, head; each CLI opens its credentials (checked below).
      const floor = { execs: 2 + present, opens: present };
      const r = await benign(script, {
        cwd: tmp,
        floor,
        env: { HOME: h, AWS_EC2_METADATA_DISABLED: "true" },
        verbose: true,
      });
      assertEquals(r.stdout, "x\n");
      // The files were really opened by each CLI present (else the test would prove nothing).
      const opened = new Set(calls(r.events).map((e) => e.decoded.path));
      for (
        const [cli, file] of [["kubectl", ".kube/config"], ["aws", ".aws/credentials"], [
          "gcloud",
          ".config/gcloud/credentials.db",
        ]]
      ) {
        if (which(cli)) assert(opened.has(`${h}/${file}`), `${cli} did not open ${h}/${file}`);
      }
    } finally {
      await Deno.remove(h, { recursive: true });
    }
  },
});

Deno.test("benign controls: the hook counts fail a baseline bound only to the canary, or not loaded, though the canary alone would pass", async () => {
  const dir = `${tmp}/control`;
  await Deno.mkdir(`${dir}/alice`, { recursive: true });
  await Deno.writeTextFile(`${dir}/alice/notes.txt`, "notes\n");
  const script = "tar czf alice.tgz alice && tar tzf alice.tgz > /dev/null";
  const floor = { execs: 4, opens: 4 };
  const yaml = await Deno.readTextFile(POLICY);
  const entry = "  - name: baseline\n";
  assert(yaml.includes(entry), `${POLICY} no longer has the entry "${entry.trim()}"`);
  // The baseline activated for head only: it alerts on the canary, so the canary's checks pass, but it saw nothing else.
  const narrowed = await writePolicy(yaml.replace(entry, `${entry}    activate: { program: head }\n`));
  const onlyCanary = await runWorkload(script, { cwd: dir, policy: narrowed });
  assertQuiet(onlyCanary);
  assertThrows(() => assertBaselineSaw(onlyCanary, floor), /baseline's pre hook ran \d+ times/);
  // No baseline at all (its entry and everything after it cut): no counts to find.
  const without = await writePolicy(yaml.slice(0, yaml.indexOf("wrappers:")));
  const noBaseline = await runWorkload(script, { cwd: dir, policy: without });
  assertThrows(() => assertBaselineSaw(noBaseline, floor), /no hook counts for baseline/);
  // The control of the controls: the same workload under the default policy passes.
  assertBaselineSaw(await runWorkload(script, { cwd: dir }), floor);
});

Deno.test("cleanup", async () => {
  await Deno.remove(tmp, { recursive: true });
});
