/**
 * tests/temp.ts removes what it makes: a scratch directory when the test file (a module) ends, failed or not, and a
 * block's directory when the block ends. The control: Deno.makeTempDir's own directory, made beside them in the same
 * child, stays.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { existsSync, ROOT, run } from "./helpers.ts";
import { tempDir } from "./temp.ts";

const DENO = `${ROOT}node_modules/.bin/deno`;

/** Runs a script in a child Deno that prints the paths it made, one a line; returns them after it ended. */
async function madeBy(script: string): Promise<{ code: number; paths: string[] }> {
  await using dir = await tempDir({ prefix: "idwrap-temp-test-" });
  const file = `${dir.path}/child.ts`;
  await Deno.writeTextFile(file, `import * as temp from "${ROOT}tests/temp.ts";\n${script}`);
  const out = await new Deno.Command(DENO, { args: ["run", "--allow-all", file], stdout: "piped", stderr: "piped" })
    .output();
  return { code: out.code, paths: new TextDecoder().decode(out.stdout).trim().split("\n").filter((l) => l) };
}

Deno.test("scratch paths are removed when the module ends, also through Deno.exit(); a plain temp dir stays", async () => {
  for (const end of ["", "Deno.exit(3);"]) {
    const { code, paths } = await madeBy(`
      const control = await Deno.makeTempDir({ prefix: "idwrap-temp-control-" });
      const dir = await temp.scratchDir({ prefix: "idwrap-temp-scratch-" });
      await Deno.writeTextFile(dir + "/f", "x");
      const unnamed = temp.scratchDirSync();
      const file = await temp.scratchFile();
      console.log([control, dir, unnamed, file].join("\\n"));
      ${end}
    `);
    assertEquals(code, end ? 3 : 0);
    assertEquals(paths.length, 4);
    const [control, ...scratch] = paths;
    try {
      assert(existsSync(control), `the control ${control} was removed too`);
      for (const p of scratch) assert(!existsSync(p), `${p} was left behind (${end || "a normal end"})`);
      assert(scratch.slice(2).every((p) => p.includes("/idwrap-tmp-")), `unnamed ones: ${scratch.slice(2)}`);
    } finally {
      await Deno.remove(control, { recursive: true });
    }
  }
});

Deno.test("tempDir() is removed when its block ends", async () => {
  let path = "";
  {
    await using dir = await tempDir({ prefix: "idwrap-temp-block-" });
    path = dir.path;
    await Deno.mkdir(`${path}/sub`);
    assert(existsSync(`${path}/sub`));
  }
  assert(!existsSync(path), `${path} outlived its block`);
});

Deno.test("a scratch directory with a filesystem still mounted in it is left in place, the mounted files untouched", async () => {
  const { code, paths } = await madeBy(`
    const dir = await temp.scratchDir({ prefix: "idwrap-temp-mounted-" });
    await Deno.mkdir(dir + "/m");
    const mount = await new Deno.Command("mount", { args: ["-t", "tmpfs", "-o", "size=64k", "tmpfs", dir + "/m"] })
      .output();
    if (!mount.success) Deno.exit(9);
    await Deno.writeTextFile(dir + "/m/keep", "x");
    console.log(dir);
  `);
  assertEquals(code, 0, "the child could not mount a tmpfs");
  const [dir] = paths;
  try {
    assert(existsSync(`${dir}/m/keep`), `the file in the mounted tmpfs was removed`);
  } finally {
    assertEquals((await run("umount", [`${dir}/m`])).code, 0);
    await Deno.remove(dir, { recursive: true });
  }
});
