/**
 * The rules library on real programs under `idwrap run` (seccomp): a shell started by code injected into a real
 * nginx, a write below /etc, a network tool (nc) connecting and running a program for its peer — each alerted once,
 * as root and as an ordinary user where it applies, beside an admin's own shell, reads and writes that raise
 * nothing. Each test's control runs the same script without idwrap and shows the attack does what it says. A copy
 * of a library file with a rule made a deny (docs/policy.md, "The rules library") stops the write.
 */
import { scratchDir } from "../temp.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import type { HostEvent } from "../../host/events.ts";
import { exists, ROOT, run, traced } from "../helpers.ts";
import { NGINX } from "../servers.ts";

const LIBRARY = `${ROOT}policies/library`;
const PAYLOAD_C = `${ROOT}policies/tests/recordings/library/payload.c`;
const NOBODY = "setpriv --reuid=65534 --regid=65534 --clear-groups";

const hasTools = (() => {
  try {
    return Deno.statSync(NGINX).isFile && Deno.statSync("/usr/bin/cc").isFile &&
      Deno.statSync("/usr/bin/busybox").isFile;
  } catch {
    return false;
  }
})();

/** Every rule alert of the run: the rule, the event it is on, the program, and the event's ATT&CK ids. */
function fired(events: HostEvent[]): { id: string; on: string; exe: string; uid: number; attack?: string[] }[] {
  return events.flatMap((e) => {
    const ids = "alerts" in e ? e.alerts ?? [] : [];
    const on = e.kind === "syscall" ? `${e.syscall}:${e.decoded?.path ?? ""}` : e.kind;
    const attack = "attack" in e ? e.attack : undefined;
    return ids.map((id) => ({ id, on, exe: e.program.exe, uid: e.program.uid, ...(attack ? { attack } : {}) }));
  });
}

/** A public temp dir (readable by nobody) with the payload built and busybox copied in as nc. */
async function workdir(): Promise<string> {
  const dir = await scratchDir({ prefix: "idwrap-library-live-" });
  await Deno.chmod(dir, 0o755);
  const cc = await run("/usr/bin/cc", ["-shared", "-fPIC", "-o", `${dir}/payload.so`, PAYLOAD_C]);
  assertEquals(cc.code, 0, cc.stderr);
  await Deno.copyFile("/usr/bin/busybox", `${dir}/nc`);
  await Deno.chmod(`${dir}/nc`, 0o755);
  return dir;
}

Deno.test({
  name:
    "library live: a shell started by code in nginx is alerted once, as root and as a user; an admin's shell is not",
  ignore: !hasTools,
  fn: async () => {
    const dir = await workdir();
    try {
      await Deno.mkdir(`${dir}/out`, { mode: 0o777 });
      await Deno.chmod(`${dir}/out`, 0o777);
      const inject = (who: string) =>
        `PAYLOAD_SHELL='echo ran > ${dir}/out/${who}' LD_PRELOAD=${dir}/payload.so /usr/sbin/nginx -v 2>/dev/null`;
      const script = `${inject("root")}; ${NOBODY} sh -c "${inject("user")}"; bash -c 'cat ${dir}/out/root'`;
      // Control: the payload's shell runs, for root and the user.
      const bare = await run("/bin/sh", ["-c", script]);
      assertEquals([bare.code, bare.stdout], [0, "ran\n"], bare.stderr);
      assert(await exists(`${dir}/out/user`));
      await Deno.remove(`${dir}/out/root`);
      await Deno.remove(`${dir}/out/user`);

      const r = await traced("run", ["-p", `${LIBRARY}/execution.yaml`], ["/bin/sh", "-c", script]);
      assertEquals([r.code, r.stdout], [0, "ran\n"], r.stderr);
      assertEquals(fired(r.events), [
        { id: "lib-shell-from-service", on: "exec", exe: "/usr/bin/dash", uid: 0, attack: ["T1059.004"] },
        { id: "lib-shell-from-service", on: "exec", exe: "/usr/bin/dash", uid: 65534, attack: ["T1059.004"] },
      ]);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "library live: a write below /etc is alerted once, a read is not; made a deny in a copy, the write fails",
  ignore: !hasTools,
  fn: async () => {
    const target = `/etc/idwrap-library-live-${Deno.pid}`;
    const script = `echo x > ${target} && echo wrote; cat /etc/hostname > /dev/null; rm -f ${target}`;
    try {
      // Control: the write happens.
      const bare = await run("/bin/sh", ["-c", `${script.replace(`; rm -f ${target}`, "")}; test -e ${target}`]);
      assertEquals([bare.code, bare.stdout], [0, "wrote\n"], bare.stderr);
      await Deno.remove(target);

      const r = await traced("run", ["-p", `${LIBRARY}/system-files.yaml`], ["/bin/sh", "-c", script]);
      assertEquals([r.code, r.stdout], [0, "wrote\n"], r.stderr);
      assertEquals(fired(r.events), [
        { id: "lib-write-below-etc", on: `openat:${target}`, exe: "/usr/bin/dash", uid: 0, attack: ["T1098"] },
      ]);

      // The site's copy with the rule made a deny (docs/policy.md): the write is refused, the read still runs.
      const copy = await scratchDir({ prefix: "idwrap-library-deny-" });
      try {
        const original = await Deno.readTextFile(`${LIBRARY}/system-files.yaml`);
        const deny = original.replace(
          "  - id: lib-write-below-etc\n",
          "  - id: lib-write-below-etc\n    action: deny\n    errno: EACCES\n",
        );
        assert(deny !== original);
        await Deno.writeTextFile(`${copy}/system-files.yaml`, deny);
        const d = await traced("run", ["-p", `${copy}/system-files.yaml`], [
          "/bin/sh",
          "-c",
          `${script}; cat /etc/hostname`,
        ]);
        assert(/Permission denied/.test(d.stderr), d.stderr);
        assertEquals(d.stdout, await Deno.readTextFile("/etc/hostname"));
        assert(!await exists(target), "the write below /etc happened");
        const denied = d.events.flatMap((e) =>
          e.kind === "syscall" && e.verdict?.startsWith("deny") ? [`${e.verdict} ${e.decoded?.path}`] : []
        );
        assertEquals(denied, [`deny EACCES ${target}`]);
        assertEquals(d.summary?.denied, 1);
      } finally {
        await Deno.remove(copy, { recursive: true });
      }
    } finally {
      await Deno.remove(target).catch(() => {});
    }
  },
});

Deno.test({
  name:
    "library live: nc (a busybox copy) connecting out and nc -e are alerted, as root and as a user; busybox true is not",
  ignore: !hasTools,
  fn: async () => {
    const dir = await workdir();
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (listener.addr as Deno.NetAddr).port;
    let accepted = 0;
    const serving = (async () => {
      for await (const conn of listener) {
        accepted++;
        conn.close();
      }
    })();
    try {
      const nc = `${dir}/nc -w 2 127.0.0.1 ${port} < /dev/null`;
      const ncExec = `${dir}/nc 127.0.0.1 ${port} -e /bin/true < /dev/null`;
      const script = `${nc}; ${NOBODY} ${nc}; ${ncExec}; busybox true`;
      // Control: each nc reaches the listener.
      const bare = await run("/bin/sh", ["-c", script]);
      assertEquals(bare.code, 0, bare.stderr);
      assertEquals(accepted, 3);

      const r = await traced("run", ["-p", `${LIBRARY}/execution.yaml`], ["/bin/sh", "-c", script]);
      assertEquals(r.code, 0, r.stderr);
      assertEquals(accepted, 6);
      const exe = `${dir}/nc`;
      assertEquals(fired(r.events), [
        { id: "lib-network-tool", on: "exec", exe, uid: 0, attack: ["T1095"] },
        { id: "lib-network-tool", on: "exec", exe, uid: 65534, attack: ["T1095"] },
        { id: "lib-network-tool", on: "exec", exe, uid: 0, attack: ["T1095", "T1059"] },
        { id: "lib-netcat-remote-exec", on: "exec", exe, uid: 0, attack: ["T1095", "T1059"] },
      ]);
    } finally {
      listener.close();
      await serving.catch(() => {});
      await Deno.remove(dir, { recursive: true });
    }
  },
});
