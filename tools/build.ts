/**
 * `deno task build`: compiles idwrap-launch, idwrap-holder, the test programs, the
 * AssemblyScript wrappers and the BPF programs into build/. Each is rebuilt only when its source is newer.
 *
 * @module
 */
import { holderPath, launcherPath } from "../host/sources/launcher.ts";
import { buildWrappers } from "./build_wrappers.ts";
import { BpfToolchainError, buildBpf } from "./build_bpf.ts";

const root = new URL("../", import.meta.url).pathname;

/** Compiles one C file unless the binary is newer. */
export async function compileC(source: string, output: string, extra: string[] = []): Promise<void> {
  const src = Deno.statSync(source).mtime!.getTime();
  try {
    if (Deno.statSync(output).mtime!.getTime() >= src) return;
  } catch { /* not built yet */ }
  const out = await new Deno.Command(Deno.env.get("CC") ?? "cc", {
    args: ["-O2", "-Wall", "-o", output, source, "-lpthread", ...extra],
  }).output();
  if (!out.success) throw new Error(`Cannot compile ${source}:\n${new TextDecoder().decode(out.stderr)}`);
}

if (import.meta.main) {
  console.log(`launcher: ${await launcherPath()}`);
  console.log(`holder: ${await holderPath()}`);
  await Deno.mkdir(`${root}build/tests`, { recursive: true });
  for (const entry of Deno.readDirSync(`${root}tests/progs`)) {
    if (!entry.name.endsWith(".c")) continue;
    await compileC(`${root}tests/progs/${entry.name}`, `${root}build/tests/${entry.name.slice(0, -2)}`);
  }
  console.log("test programs: build/tests/");
  const wrappers = await buildWrappers();
  console.log(`wrappers: build/wrappers/ (${wrappers.length ? `rebuilt ${wrappers.length}` : "up to date"})`);
  // Without clang/bpftool the rest still builds (the seccomp source needs neither); the bpf source and its tests
  // then fail with the same message.
  try {
    const bpf = await buildBpf();
    console.log(`bpf: build/bpf/ (${bpf.length ? `rebuilt ${bpf.length}` : "up to date"})`);
  } catch (e) {
    if (!(e instanceof BpfToolchainError)) throw e;
    console.error(`bpf: not built: ${e.message}`);
  }
}
