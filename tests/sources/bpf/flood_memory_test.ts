/**
 * A ring flood must not grow the host (red team rt8 F7): one thread of the tree calling an observed getppid in a loop
 * made idwrap take a whole 32 MiB ring at once and decode it into JS objects — 1.3 GB of memory on the bpf source,
 * ~1 GB on the hybrid. The ring is now read a bounded batch at a time; what the host cannot keep up with waits in the
 * ring, and what does not fit there is counted and reported (never silent).
 */
import { ok as assert } from "node:assert/strict";
import { compileC } from "../../../tools/build.ts";
import { IDWRAP, ROOT, writePolicy } from "../../helpers.ts";

const FLOOD = `${ROOT}build/tests/getppid_loop`;
await Deno.mkdir(`${ROOT}build/tests`, { recursive: true });
await compileC(`${ROOT}tests/sources/bpf/fixtures/getppid_loop.c`, FLOOD);

/** The largest resident size (KiB) of `pid` while it runs, sampled every 200 ms. */
async function peakRss(pid: number, done: Promise<unknown>): Promise<number> {
  let peak = 0, finished = false;
  done.finally(() => finished = true);
  while (!finished) {
    try {
      const kb = Number(/VmRSS:\s+(\d+)/.exec(await Deno.readTextFile(`/proc/${pid}/status`))?.[1] ?? 0);
      peak = Math.max(peak, kb);
    } catch { /* gone */ }
    await new Promise((r) => setTimeout(r, 200));
  }
  return peak;
}

for (const source of ["bpf", "hybrid"]) {
  Deno.test(`${source}: a flood of observed calls is read in bounded batches: idwrap stays under 600 MB, losses reported`, async () => {
    const policy = await writePolicy("version: 2\nname: flood\nobserve: [getppid]\n");
    const child = new Deno.Command(IDWRAP, {
      args: ["run", "--source", source, "-o", "/dev/null", "-p", policy, "--", FLOOD, "15000000"],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const out = child.output();
    // idwrap is a shell script that execs deno: the child's pid is the host's.
    const peak = await peakRss(child.pid, out);
    const r = await out;
    const stderr = new TextDecoder().decode(r.stderr);
    assert(r.code === 0, stderr.slice(-2000));
    // The flood outruns the host here: the programs drop what the ring cannot hold, and the summary says how many.
    assert(/records lost|calls notified/.test(stderr), stderr.slice(-2000));
    assert(peak > 0 && peak < 600 * 1024, `idwrap peaked at ${Math.round(peak / 1024)} MB (${source})`);
  });
}
