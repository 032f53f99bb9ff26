/**
 * The evaluation data: ADFA-LD's development part (unpacked from
 * <repo>/../shared/datasets/adfa-dev.tar.xz into build/datasets/) and the
 * UNM sendmail and lpr traces, as lists of traces with their labels.
 *
 * @module
 */
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { readTraces, type Trace } from "../../host/seq/replay.ts";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const DATASETS = `${ROOT}../shared/datasets`;
const ADFA_DIR = `${ROOT}build/datasets/adfa-dev`;

/** A labelled trace: `group` is "train", "normal" or the attack class. */
export interface Labelled extends Trace {
  group: string;
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of Deno.readDirSync(dir)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...filesUnder(p));
    else if (e.isFile && e.name.endsWith(".txt")) out.push(p);
  }
  return out.sort();
}

/** Unpacks adfa-dev once (build/datasets/adfa-dev) and returns its directory. */
export async function adfaDir(): Promise<string> {
  if (existsSync(`${ADFA_DIR}/train`)) return ADFA_DIR;
  const archive = `${DATASETS}/adfa-dev.tar.xz`;
  if (!existsSync(archive)) throw new Error(`Cannot find the ADFA-LD development part at ${archive}`);
  await Deno.mkdir(`${ROOT}build/datasets`, { recursive: true });
  const r = await new Deno.Command("tar", { args: ["-xJf", archive, "-C", `${ROOT}build/datasets`] }).output();
  if (!r.success) throw new Error(`Cannot unpack ${archive}: ${new TextDecoder().decode(r.stderr)}`);
  return ADFA_DIR;
}

/** ADFA-dev: train/ (group "train"), dev-normal/ ("normal"), dev-attack/<Class>_<run>/ (group Class). */
export async function adfa(): Promise<{ train: Labelled[]; normal: Labelled[]; attack: Labelled[] }> {
  const dir = await adfaDir();
  const load = async (sub: string, group: (f: string) => string) =>
    (await readTraces(filesUnder(`${dir}/${sub}`), "adfa")).map((t) => ({ ...t, group: group(t.id) }));
  return {
    train: await load("train", () => "train"),
    normal: await load("dev-normal", () => "normal"),
    attack: await load("dev-attack", (f) => /dev-attack\/([A-Za-z]+(?:_[A-Za-z]+)?)_\d+\//.exec(f)?.[1] ?? "attack"),
  };
}

/** A UNM data set split as the papers (and tests/seq/unm_test.ts) split it. */
export interface UnmSplit {
  program: string;
  train: Trace[];
  heldOut: Trace[];
  /** Per intrusion file, its processes. */
  intrusions: { file: string; traces: Trace[] }[];
}

/** UNM sendmail: train on bounce*, plus, queue; hold out sendmail.log.int; ten intrusion files. */
export async function unmSendmail(): Promise<UnmSplit> {
  const dir = `${DATASETS}/unm/sendmail`;
  const normals = [...Deno.readDirSync(`${dir}/normal`)].map((e) => `${dir}/normal/${e.name}`).sort();
  const heldOut = normals.filter((f) => f.endsWith("/sendmail.log.int"));
  const intrusions = [...Deno.readDirSync(`${dir}/intrusion`)].map((e) => `${dir}/intrusion/${e.name}`).sort();
  return {
    program: "sendmail",
    train: await readTraces(normals.filter((f) => !heldOut.includes(f)), "unm"),
    heldOut: await readTraces(heldOut, "unm"),
    intrusions: await Promise.all(
      intrusions.map(async (f) => ({ file: f.split("/").pop()!, traces: await readTraces([f], "unm") })),
    ),
  };
}

/** UNM lpr: train on lpr-normal-10, hold out lpr-normal-11; the exploit file. */
export async function unmLpr(): Promise<UnmSplit> {
  const dir = `${DATASETS}/unm/lpr`;
  const f = `${dir}/intrusion/exploit-unm.int`;
  return {
    program: "lpr",
    train: await readTraces([`${dir}/normal/lpr-normal-10.txt`], "unm"),
    heldOut: await readTraces([`${dir}/normal/lpr-normal-11.txt`], "unm"),
    intrusions: [{ file: "exploit-unm.int", traces: await readTraces([f], "unm") }],
  };
}
