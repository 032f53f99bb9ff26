/**
 * `idwrap kmod build|load|unload|status`: the kernel module, for operators.
 *
 * @module
 */
import { log } from "../log.ts";
import type { Command } from "commander";
import { fileURLToPath } from "node:url";
import { moduleLoaded, probeKmod } from "../sources/kmod/source.ts";
import { EXIT_FAILED } from "./exit.ts";
import { packaged, VERSION } from "../version.ts";

const ROOT = fileURLToPath(new URL("../../", import.meta.url));
/** Where `make -C kmod` leaves the module. */
export const MODULE_PATH = `${ROOT}build/kmod/idwrap.ko`;

/** Exit code when the operation failed. */

async function sh(cmd: string, args: string[]): Promise<{ code: number; out: string }> {
  try {
    const r = await new Deno.Command(cmd, { args, stdin: "null" }).output();
    const dec = new TextDecoder();
    return { code: r.code, out: (dec.decode(r.stdout) + dec.decode(r.stderr)).trim() };
  } catch (e) {
    return { code: 127, out: `cannot run ${cmd}: ${(e as Error).message}` };
  }
}

function fail(message: string): never {
  log("error", message);
  Deno.exit(EXIT_FAILED);
}

/** The headers a build needs for the running kernel, and the package that has them. */
function headersHint(): string {
  const release = Deno.osRelease();
  return `install the kernel headers: apt-get install linux-headers-${release} (Debian: linux-headers-amd64 ` +
    `for the distribution kernel), or pass KDIR=/path/to/kernel/build`;
}

/** /proc/idwrap's "key value" lines. */
export function moduleStats(): Record<string, string> | undefined {
  try {
    const text = Deno.readTextFileSync("/proc/idwrap");
    return Object.fromEntries(
      text.split("\n").filter(Boolean).map((l) => {
        const i = l.search(/\s/);
        return i < 0 ? [l, ""] : [l.slice(0, i), l.slice(i).trim()];
      }),
    );
  } catch {
    return undefined;
  }
}

/** Adds the kmod command to the CLI. */
export function registerKmod(program: Command): void {
  const kmod = program.command("kmod").description("build, load, unload and inspect the idwrap kernel module");

  kmod.command("build")
    .description("build build/kmod/idwrap.ko (make -C kmod)")
    .option("--kdir <dir>", "the kernel build directory (default: the Makefile's choice)")
    .action(async (opts: { kdir?: string }) => {
      // The package's kmod/ is /usr/src/idwrap-<version>, DKMS's copy: make there would write beside it.
      if (packaged()) {
        fail(
          `from the package DKMS builds the module: dkms install idwrap/${VERSION} (${headersHint()}), then ` +
            "idwrap kmod load (docs/operations.md)",
        );
      }
      const r = await sh("make", ["-C", `${ROOT}kmod`, ...(opts.kdir ? [`KDIR=${opts.kdir}`] : [])]);
      if (r.code === 127) fail(`${r.out}; install make and gcc (apt-get install make gcc)`);
      if (r.code !== 0) {
        const noHeaders = /no single kernel build dir|No such file or directory.*Makefile|linux-headers/.test(r.out);
        fail(`building the module failed:\n${r.out}${noHeaders ? `\n${headersHint()}` : ""}`);
      }
      console.log(`built ${MODULE_PATH}`);
    });

  kmod.command("load")
    .description("insmod build/kmod/idwrap.ko (root)")
    .argument("[ko]", "the module file", MODULE_PATH)
    .action(async (ko: string) => {
      // From the package the module is DKMS's, in /lib/modules/<release>/updates/dkms: modprobe finds it.
      const viaModprobe = packaged() !== undefined && ko === MODULE_PATH;
      if (!viaModprobe) {
        try {
          Deno.statSync(ko);
        } catch {
          fail(`${ko} does not exist: run idwrap kmod build first`);
        }
      }
      if (moduleLoaded()) return console.log("idwrap is already loaded");
      const r = viaModprobe ? await sh("modprobe", ["idwrap"]) : await sh("insmod", [ko]);
      if (viaModprobe && /not found in directory/.test(r.out)) {
        fail(
          `DKMS has not installed idwrap for ${Deno.osRelease()}: dkms install idwrap/${VERSION} ` +
            `(${headersHint()})\n  modprobe said: ${r.out}`,
        );
      }
      if (r.code !== 0) {
        const why = /Invalid module format|Exec format error/.test(r.out)
          ? `the running kernel (${Deno.osRelease()}) refuses it: the module was built for another kernel ` +
            "(rebuild against this kernel's headers)"
          : /Operation not permitted/.test(r.out)
          ? "the kernel does not let this process load modules (not root, or module loading is locked down " +
            "or disabled in this kernel or container)"
          : /Function not implemented/.test(r.out)
          ? `the running kernel (${Deno.osRelease()}) cannot load modules at all (built without module support, ` +
            "or a sandbox that refuses init_module): use the seccomp source here, or run the module in a VM " +
            "(tests/kmod/harness.ts)"
          : /Key was rejected|Required key not available/.test(r.out)
          ? "the kernel accepts only signed modules (Secure Boot / module.sig_enforce): sign it or use DKMS"
          : r.code === 127
          ? "insmod is missing (apt-get install kmod)"
          : "insmod failed";
        fail(
          `cannot load ${viaModprobe ? "idwrap (modprobe)" : ko}: ${why}\n  ${
            viaModprobe ? "modprobe" : "insmod"
          } said: ${r.out}`,
        );
      }
      const p = probeKmod();
      console.log(`loaded idwrap: ${p.detail}`);
    });

  kmod.command("unload")
    .description("rmmod idwrap (root)")
    .action(async () => {
      if (!moduleLoaded()) return console.log("idwrap is not loaded");
      const r = await sh("rmmod", ["idwrap"]);
      if (r.code !== 0) fail(`cannot unload idwrap: ${r.out}`);
      console.log("unloaded idwrap");
    });

  kmod.command("status")
    .description("whether the module is loaded, its device, and its statistics (/proc/idwrap)")
    .option("--json", "print JSON")
    .action((opts: { json?: boolean }) => {
      let line: string | undefined;
      try {
        line = Deno.readTextFileSync("/proc/modules").split("\n").find((l) => l.startsWith("idwrap "));
      } catch { /* no /proc */ }
      const stats = moduleStats();
      const probe = line ? probeKmod() : undefined;
      const status = {
        loaded: line !== undefined,
        module: line ?? null,
        device: probe?.detail ?? null,
        stats: stats ?? null,
      };
      if (opts.json) return console.log(JSON.stringify(status));
      if (!line) {
        console.log(`idwrap is not loaded (build it with idwrap kmod build, load it with idwrap kmod load)`);
        Deno.exitCode = 3;
        return;
      }
      const [, size, refs, , state] = line.split(" ");
      console.log(`idwrap loaded: ${size} bytes, ${refs} references, ${state}`);
      console.log(`device: ${probe!.detail}`);
      if (stats) { for (const [k, v] of Object.entries(stats)) console.log(`  ${k.padEnd(18)} ${v}`); }
    });
}
