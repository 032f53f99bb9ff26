/**
 * The benign set of issue 8: everyday work run under policies/default.yaml
 * raises no alert (from the baseline wrapper or the policy's rules) and no
 * wrapper fault. Everything works in a temp dir (HOME points there too).
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { calls, reports, ROOT, type Traced, traced } from "../helpers.ts";

const POLICY = `${ROOT}policies/default.yaml`;
const tmp = await Deno.makeTempDir({ prefix: "idwrap-benign-" });
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

/** Runs a shell script under the default policy and checks it ran cleanly without alerts. */
async function benign(script: string, cwd: string): Promise<Traced> {
  const env = {
    HOME: home,
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    GIT_CONFIG_NOSYSTEM: "1",
    GIT_AUTHOR_NAME: "t",
    GIT_AUTHOR_EMAIL: "t@example.invalid",
    GIT_COMMITTER_NAME: "t",
    GIT_COMMITTER_EMAIL: "t@example.invalid",
  };
  const r = await traced("run", ["-p", POLICY], ["/bin/sh", "-c", script], { cwd, env });
  assertEquals(r.code, 0, `exit ${r.code}\n${r.stderr}`);
  const alerts = reports(r.events, "alert").map((a) => `${a.wrapper}: ${a.message}`);
  const ruleAlerts = calls(r.events).filter((e) => e.alerts?.length).map((e) => `${e.syscall} ${e.alerts}`);
  assertEquals([...alerts, ...ruleAlerts], []);
  assertEquals(reports(r.events, "fault").map((f) => f.message), []);
  return r;
}

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
  await benign("make -s && make -s clean && make -s", dir);
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
      dir,
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
    const r = await benign("python3 -B work.py", dir);
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
  await benign("tar czf alice.tgz alice && tar tzf alice.tgz > /dev/null", dir);
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
      dir,
    );
    assertEquals(r.stdout, "<h1>hello</h1>\n");
  },
});

Deno.test("cleanup", async () => {
  await Deno.remove(tmp, { recursive: true });
});
