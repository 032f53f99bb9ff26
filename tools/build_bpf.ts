/**
 * Compiles the BPF programs: every `kmod/bpf/*.bpf.c` becomes `build/bpf/<name>.o`
 * (CO-RE: `clang -target bpf` against a `vmlinux.h` that `bpftool` generates from
 * the running kernel's BTF, `/sys/kernel/btf/vmlinux`, into `build/bpf/`). An object
 * is rebuilt only when its source or a header under kmod/bpf/ is newer; `vmlinux.h`
 * only when the kernel release changed. A missing tool is a {@linkcode BpfToolchainError}
 * naming the tool and its Debian package (tools/debian-deps.sh installs them).
 *
 * @module
 */

const root = new URL("../", import.meta.url).pathname;
const srcDir = `${root}kmod/bpf`;
/** Where the objects and the generated vmlinux.h go. */
export const BPF_BUILD_DIR = `${root}build/bpf`;
const BTF = "/sys/kernel/btf/vmlinux";

/** The tools the BPF build runs, with the Debian package of each. */
const TOOLS = [
  { tool: "clang", pkg: "clang", paths: ["/usr/bin/clang"] },
  { tool: "bpftool", pkg: "bpftool", paths: ["/usr/sbin/bpftool", "/usr/bin/bpftool"] },
] as const;

/** A tool, header or kernel feature the BPF build needs is missing. */
export class BpfToolchainError extends Error {
  override name = "BpfToolchainError";
}

/** The path of a tool: $CLANG/$BPFTOOL, a known path, or the PATH. */
function findTool(tool: string, paths: readonly string[]): string | undefined {
  const env = Deno.env.get(tool.toUpperCase());
  if (env) return env;
  for (const p of [...paths, ...(Deno.env.get("PATH") ?? "").split(":").map((d) => `${d}/${tool}`)]) {
    try {
      if (Deno.statSync(p).isFile) return p;
    } catch { /* next */ }
  }
  return undefined;
}

/** The toolchain's paths, or why it cannot be used. */
export function bpfToolchain(): { clang: string; bpftool: string } {
  const found: Record<string, string> = {};
  for (const { tool, pkg, paths } of TOOLS) {
    const p = findTool(tool, paths);
    if (!p) {
      throw new BpfToolchainError(
        `Cannot build the BPF programs: ${tool} is not installed (Debian package ${pkg}; ` +
          `sudo tools/debian-deps.sh --install installs it)`,
      );
    }
    found[tool] = p;
  }
  try {
    Deno.statSync("/usr/include/bpf/bpf_helpers.h");
  } catch {
    throw new BpfToolchainError(
      "Cannot build the BPF programs: /usr/include/bpf/bpf_helpers.h is missing (Debian package libbpf-dev; " +
        "sudo tools/debian-deps.sh --install installs it)",
    );
  }
  return { clang: found.clang, bpftool: found.bpftool };
}

function mtime(path: string): number {
  try {
    return Deno.statSync(path).mtime!.getTime();
  } catch {
    return -1;
  }
}

async function run(cmd: string, args: string[], what: string): Promise<Uint8Array> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  if (!out.success) throw new Error(`Cannot ${what}:\n${new TextDecoder().decode(out.stderr)}`);
  return out.stdout;
}

/** Writes build/bpf/vmlinux.h from the running kernel's BTF unless it was made for this kernel release. */
async function vmlinuxHeader(bpftool: string): Promise<string> {
  const header = `${BPF_BUILD_DIR}/vmlinux.h`;
  const stamp = `${header}.release`;
  // uname rather than Deno.osRelease() or /proc/sys: `deno task build` runs without --allow-sys or --allow-all.
  const release = new TextDecoder().decode(await run("uname", ["-r"], "read the kernel release")).trim();
  try {
    if (Deno.readTextFileSync(stamp) === release && mtime(header) > 0) return header;
  } catch { /* not made yet */ }
  // bpftool reads the BTF (Deno may not: `deno task build` has no access to /sys); its error says what is wrong.
  let text: Uint8Array;
  try {
    text = await run(bpftool, ["btf", "dump", "file", BTF, "format", "c"], `generate vmlinux.h from ${BTF}`);
  } catch (e) {
    throw new BpfToolchainError(
      `Cannot build the BPF programs: ${(e as Error).message.trim()} (a kernel without BTF has no ${BTF})`,
    );
  }
  Deno.writeFileSync(header, text);
  Deno.writeTextFileSync(stamp, release);
  return header;
}

/**
 * Builds every kmod/bpf/*.bpf.c that is out of date.
 *
 * @returns the objects rebuilt
 * @throws BpfToolchainError when clang, bpftool, libbpf's headers or the kernel's BTF are missing
 */
export async function buildBpf(): Promise<string[]> {
  const { clang, bpftool } = bpfToolchain();
  Deno.mkdirSync(BPF_BUILD_DIR, { recursive: true });
  const sources = [...Deno.readDirSync(srcDir)].map((e) => e.name);
  const headers = Math.max(
    ...sources.filter((n) => n.endsWith(".h")).map((n) => mtime(`${srcDir}/${n}`)),
    -1,
  );
  const header = await vmlinuxHeader(bpftool);
  const built: string[] = [];
  for (const name of sources.filter((n) => n.endsWith(".bpf.c"))) {
    const out = `${BPF_BUILD_DIR}/${name.slice(0, -".bpf.c".length)}.o`;
    if (mtime(out) >= Math.max(mtime(`${srcDir}/${name}`), headers, mtime(header))) continue;
    await run(clang, [
      "-g", // BTF for CO-RE and for the verifier's messages
      "-O2",
      "-Wall",
      "-target",
      "bpf",
      "-mcpu=v3", // atomics (xchg) for the lost counters
      "-D__TARGET_ARCH_x86",
      `-I${BPF_BUILD_DIR}`,
      "-c",
      `${srcDir}/${name}`,
      "-o",
      out,
    ], `compile kmod/bpf/${name}`);
    built.push(out);
  }
  return built;
}

if (import.meta.main) {
  const built = await buildBpf();
  console.log(`bpf: build/bpf/ (${built.length ? `rebuilt ${built.length}` : "up to date"})`);
}
