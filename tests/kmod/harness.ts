/**
 * The kernel-module harness: runs a shell script inside Debian's own kernel,
 * booted under `qemu-system-x86_64` (software emulation, no KVM), with the
 * host's `/` mounted read-only at `/host` over virtio-9p, so that modules
 * built here (`/host/work/main/build/kmod/idwrap.ko`) load in the guest and
 * host programs (Deno, strace) run there through `chroot /host`.
 *
 * `tests/kmod/setup.sh` installs qemu, busybox-static and the kernel headers,
 * and extracts the kernel (vmlinuz and its modules) into `build/kmod/kernel/`
 * without installing it. {@link kernel} says whether it has run.
 *
 * The guest is a busybox initramfs built here for each run (a newc cpio
 * written in TypeScript, gzip-ed): its /init mounts proc, sysfs and devtmpfs,
 * insmods the virtio and 9p modules, mounts the host, makes the chroot usable
 * (the guest's /proc, /sys and /dev bound over /host's, tmpfs on /host/tmp,
 * /host/dev/shm, /host/run and the root user's Deno cache dir), runs the
 * script with `/bin/sh` (busybox), prints a sentinel with its exit status and
 * powers off.
 *
 * @module
 */
import { scratchDir } from "../temp.ts";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";

/** The repository root, with a trailing slash. */
export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
/** Where setup.sh extracted the kernel, and where the module is built. */
export const KMOD_BUILD = `${ROOT}build/kmod/`;
/** How to prepare the machine for these tests. */
export const SETUP_HINT = `sudo ${ROOT}tests/kmod/setup.sh`;

/**
 * The modules that bring up virtio-9p, in load order. One that a kernel does not build as a module (Debian's 6.12
 * builds virtio and virtio_pci in, and fscache into netfs) is not in its modules.order and is skipped.
 */
export const NINEP_MODULES = [
  "virtio_ring",
  "virtio",
  "virtio_pci_legacy_dev",
  "virtio_pci_modern_dev",
  "virtio_pci",
  "netfs",
  "fscache",
  "9pnet",
  "9pnet_virtio",
  "9p",
];

const BUSYBOX = "/bin/busybox";
const QEMU = "qemu-system-x86_64";

/** The guest kernel setup.sh extracted, and its headers. */
export interface Kernel {
  /** `uname -r` of the guest, e.g. 6.1.0-56-amd64. */
  release: string;
  /** The Debian package version, e.g. 6.1.192-2. */
  version: string;
  vmlinuz: string;
  /** lib/modules/<release> of the extracted package. */
  modules: string;
  /** The headers' build dir (from linux-headers-<release>), for kbuild. */
  headers: string;
  /** Where the module is built for this kernel (build/kmod/ for the default one). */
  out: string;
}

/**
 * The kernel directory: build/kmod/kernel/ (setup.sh's), or another one extracted the same way (vmlinuz, release,
 * version, lib/modules/<release>/) named by IDWRAP_KMOD_KERNEL, e.g. build/kmod/kernel-6.12/ (docs/kmod.md, "Kernels").
 */
function kernelDir(): string {
  const alt = Deno.env.get("IDWRAP_KMOD_KERNEL");
  return alt ? (alt.endsWith("/") ? alt : `${alt}/`) : `${KMOD_BUILD}kernel/`;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

async function which(cmd: string): Promise<boolean> {
  for (const dir of (Deno.env.get("PATH") ?? "/usr/bin:/bin").split(":")) {
    if (dir && await exists(`${dir}/${cmd}`)) return true;
  }
  return false;
}

/**
 * The extracted kernel and its headers, or why the harness cannot run
 * (setup.sh has not run, or not to the end).
 */
export async function kernel(): Promise<Kernel | { missing: string }> {
  const dir = kernelDir();
  let release: string, version: string;
  try {
    release = (await Deno.readTextFile(`${dir}release`)).trim();
    version = (await Deno.readTextFile(`${dir}version`)).trim();
  } catch {
    return { missing: `no kernel extracted in ${dir}` };
  }
  const k: Kernel = {
    release,
    version,
    vmlinuz: `${dir}vmlinuz`,
    modules: `${dir}lib/modules/${release}/`,
    headers: `/usr/src/linux-headers-${release}`,
    out: Deno.env.get("IDWRAP_KMOD_KERNEL") ? `${KMOD_BUILD}${release}/` : KMOD_BUILD,
  };
  if (!await exists(k.vmlinuz)) return { missing: `no ${k.vmlinuz}` };
  if (!await exists(`${k.modules}kernel`)) return { missing: `no ${k.modules}kernel` };
  if (!await exists(`${k.headers}/Makefile`)) return { missing: `no kernel headers in ${k.headers}` };
  if (!await exists(BUSYBOX)) return { missing: `no ${BUSYBOX} (busybox-static)` };
  if (!await which(QEMU)) return { missing: `no ${QEMU} (qemu-system-x86)` };
  if (!await which("make")) return { missing: "no make" };
  return k;
}

async function ready(): Promise<Kernel> {
  const k = await kernel();
  if ("missing" in k) throw new Error(`kmod harness: ${k.missing}; run ${SETUP_HINT}`);
  return k;
}

/**
 * Builds kmod/ (idwrap.ko) against the extracted kernel's Debian headers,
 * into build/kmod/, and returns the path of the .ko. `faultInject`: the
 * test-only build (`make IDWRAP_FAULT_INJECT=1`, kmod/idwrap_fault.c), into
 * build/kmod/fault/ (docs/kmod.md, "The fault-injection build").
 */
export async function buildModule(opts: { faultInject?: boolean } = {}): Promise<string> {
  const k = await ready();
  const dir = opts.faultInject ? `${k.out}fault/` : k.out;
  const knob = opts.faultInject ? ["IDWRAP_FAULT_INJECT=1"] : [];
  // Test files run in parallel and each builds: one make at a time in the shared build dir.
  const out = await new Deno.Command("flock", {
    args: [BUILD_LOCK, "make", "-s", "-C", `${ROOT}kmod`, `KDIR=${k.headers}`, `OUT=${dir.slice(0, -1)}`, ...knob],
    stdin: "null",
  }).output();
  const dec = new TextDecoder();
  if (!out.success) {
    throw new Error(`make -C kmod failed (${out.code}):\n${dec.decode(out.stdout)}${dec.decode(out.stderr)}`);
  }
  return `${dir}idwrap.ko`;
}

/** Held (flock(1)) while the module or the test programs are built. */
const BUILD_LOCK = `${KMOD_BUILD}.build.lock`;

/** Where {@link buildClients} puts the test programs. */
export const CLIENT_DIR = `${KMOD_BUILD}client/`;

/**
 * Builds the module's test programs with the host's gcc into
 * build/kmod/client/: `idwrapctl` (a supervisor speaking kmod/idwrap_uapi.h)
 * and `work` (the workloads). The guest runs them through `chroot /host`.
 */
export async function buildClients(): Promise<{ ctl: string; work: string }> {
  await Deno.mkdir(CLIENT_DIR, { recursive: true });
  const src = `${ROOT}tests/kmod/client/`;
  const builds: [string, string[]][] = [
    ["idwrapctl", ["-pthread", `-I${ROOT}kmod`, `${src}idwrapctl.c`]],
    ["work", ["-pthread", `${src}work.c`]],
  ];
  for (const [name, args] of builds) {
    // Built aside and renamed over the old one, under the build lock: a guest may be running the old one.
    const tmp = `${CLIENT_DIR}${name}.${Deno.pid}.tmp`;
    const gcc = ["-O2", "-Wall", "-Wextra", "-Werror", "-o", tmp, ...args];
    const script = 'out=$1; shift; gcc "$@" && mv -f "$0" "$out"';
    const out = await new Deno.Command("flock", {
      args: [BUILD_LOCK, "sh", "-c", script, tmp, `${CLIENT_DIR}${name}`, ...gcc],
      stdin: "null",
    }).output();
    if (!out.success) {
      throw new Error(`gcc ${name} failed:\n${new TextDecoder().decode(out.stderr)}`);
    }
  }
  return { ctl: `${CLIENT_DIR}idwrapctl`, work: `${CLIENT_DIR}work` };
}

// --- a newc cpio writer ------------------------------------------------------

type Entry =
  | { path: string; type: "dir"; mode?: number }
  | { path: string; type: "file"; data: Uint8Array; mode?: number }
  | { path: string; type: "symlink"; target: string }
  | { path: string; type: "chr"; major: number; minor: number; mode?: number };

const S_IFDIR = 0o040000, S_IFREG = 0o100000, S_IFLNK = 0o120000, S_IFCHR = 0o020000;

/** A newc ("070701") cpio archive of the entries, as the kernel unpacks an initramfs. */
export function cpioNewc(entries: Entry[]): Uint8Array {
  const enc = new TextEncoder();
  const parts: Uint8Array[] = [];
  let size = 0;
  const push = (b: Uint8Array) => {
    parts.push(b);
    size += b.length;
  };
  const pad = () => {
    if (size % 4) push(new Uint8Array(4 - size % 4));
  };
  const hex = (n: number) => n.toString(16).padStart(8, "0");
  let ino = 1;
  const put = (name: string, mode: number, data: Uint8Array, rdev: [number, number] = [0, 0]) => {
    const nameBytes = enc.encode(name + "\0");
    const fields = [ino++, mode, 0, 0, (mode & S_IFDIR) === S_IFDIR ? 2 : 1, 0, data.length, 0, 0, rdev[0], rdev[1]];
    push(enc.encode("070701" + fields.map(hex).join("") + hex(nameBytes.length) + hex(0)));
    push(nameBytes);
    pad();
    push(data);
    pad();
  };
  for (const e of entries) {
    const name = e.path.replace(/^\/+/, "");
    switch (e.type) {
      case "dir":
        put(name, S_IFDIR | (e.mode ?? 0o755), new Uint8Array());
        break;
      case "file":
        put(name, S_IFREG | (e.mode ?? 0o644), e.data);
        break;
      case "symlink":
        put(name, S_IFLNK | 0o777, enc.encode(e.target));
        break;
      case "chr":
        put(name, S_IFCHR | (e.mode ?? 0o600), new Uint8Array(), [e.major, e.minor]);
        break;
    }
  }
  put("TRAILER!!!", 0, new Uint8Array());
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

// --- the guest -------------------------------------------------------------

/** The guest's /init: brings up the host mount, runs /script.sh between sentinels, powers off. */
function initScript(nonce: string, modules: string[]): string {
  return `#!/bin/busybox sh
/bin/busybox --install -s
export PATH=/bin:/sbin:/usr/bin:/usr/sbin HOME=/root TERM=dumb
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mkdir -p /dev/shm /dev/pts && mount -t tmpfs -o mode=1777 tmpfs /dev/shm
mount -t tmpfs tmpfs /tmp
fail() { echo "@@INIT-FAILED ${nonce} $*@@"; poweroff -f; }
for m in ${modules.join(" ")}; do
  insmod /modules/$m.ko || fail "insmod $m"
done
mount -t 9p -o ro,trans=virtio,version=9p2000.L,msize=512000,cache=loose hostroot /host || fail "mount 9p"
# Make chroot /host usable: the guest's own proc, sys and dev, and writable
# scratch places over the read-only host root.
mount -o bind /proc /host/proc && mount -o bind /sys /host/sys && mount -o rbind /dev /host/dev || fail "bind mounts"
[ -e /host/proc/sys/kernel/osrelease ] && [ -e /host/sys/kernel ] || fail "proc/sys landed wrong (qid collision?)"
# The repository may live under one of the scratch places (a CI clone in /tmp): keep it visible.
mkdir -p /repo && mount -o bind /host${ROOT.replace(/\/$/, "")} /repo || fail "bind the repository"
mount -t tmpfs -o mode=1777 tmpfs /host/tmp || fail "tmpfs /host/tmp"
mount -t tmpfs tmpfs /host/run || fail "tmpfs /host/run"
mount -t tmpfs tmpfs /host/root || fail "tmpfs /host/root"
mkdir -p /host${ROOT.replace(/\/$/, "")} 2>/dev/null
mount -o bind /repo /host${ROOT.replace(/\/$/, "")} || fail "rebind the repository"
echo "@@BEGIN ${nonce}@@"
/bin/sh /script.sh </dev/null 2>&1
rc=$?
echo "@@END ${nonce} rc=$rc@@"
poweroff -f
`;
}

async function initramfs(k: Kernel, script: string, nonce: string): Promise<Uint8Array> {
  const entries: Entry[] = [];
  for (
    const d of ["bin", "sbin", "usr", "usr/bin", "usr/sbin", "proc", "sys", "dev", "tmp", "host", "root", "modules"]
  ) {
    entries.push({ path: d, type: "dir" });
  }
  // The kernel opens /dev/console for init before anything is mounted.
  entries.push({ path: "dev/console", type: "chr", major: 5, minor: 1 });
  entries.push({ path: "bin/busybox", type: "file", data: await Deno.readFile(BUSYBOX), mode: 0o755 });
  entries.push({ path: "bin/sh", type: "symlink", target: "busybox" });
  const enc = new TextEncoder();
  entries.push({ path: "script.sh", type: "file", data: enc.encode(script), mode: 0o755 });
  const wanted = new Set(NINEP_MODULES);
  const found = new Map<string, string>();
  const walk = async (dir: string) => {
    for await (const e of Deno.readDir(dir)) {
      const p = `${dir}/${e.name}`;
      const name = e.name.replace(/\.ko(\.xz)?$/, "");
      if (e.isDirectory) await walk(p);
      else if (name !== e.name && wanted.has(name)) found.set(name, p);
    }
  };
  await walk(`${k.modules}kernel`);
  // A module this kernel does not build as one (built in, or merged into another: 6.12's fscache is part of netfs).
  const order = await Deno.readTextFile(`${k.modules}modules.order`).catch(() => "");
  const isModule = (m: string) => new RegExp(`/${m}\\.ko$`, "m").test(order);
  const loaded: string[] = [];
  for (const m of NINEP_MODULES) {
    const p = found.get(m);
    if (!p && order && !isModule(m)) continue;
    if (!p) throw new Error(`kmod harness: ${m}.ko is not in ${k.modules} (re-run ${SETUP_HINT})`);
    // Debian 6.1 ships plain .ko files; 6.12 .ko.xz, which busybox's insmod cannot read: unpacked here.
    const data = p.endsWith(".xz")
      ? (await new Deno.Command("xz", { args: ["-dc", p], stdout: "piped" }).output()).stdout
      : await Deno.readFile(p);
    entries.push({ path: `modules/${m}.ko`, type: "file", data });
    loaded.push(m);
  }
  entries.push({ path: "init", type: "file", data: enc.encode(initScript(nonce, loaded)), mode: 0o755 });
  return gzipSync(cpioNewc(entries), { level: 1 });
}

/** What a run in the VM returned. */
export interface VmResult {
  /** What the script printed (stdout and stderr), with "\n" line ends. */
  output: string;
  /** The script's exit status. */
  code: number;
  /** Everything the guest printed on its serial console. */
  console: string;
  /** Milliseconds from starting qemu to its exit. */
  ms: number;
}

/**
 * Boots Debian's kernel under qemu and runs `script` there with busybox's
 * /bin/sh, the host's / read-only at /host (`chroot /host CMD` runs host
 * programs). Returns the script's output and exit status; throws if the
 * guest does not get there (setup missing, boot failure, timeout: qemu is
 * killed after `timeoutMs`, 90 s by default). `singleThreadTcg` runs both
 * vCPUs on one host thread (`-accel tcg,thread=single`): see docs/kmod.md
 * ("The stress boot") for why the stress boot needs it.
 */
export async function runInVm(
  script: string,
  options: { timeoutMs?: number; append?: string; singleThreadTcg?: boolean } = {},
): Promise<VmResult> {
  const k = await ready();
  const timeoutMs = options.timeoutMs ?? 90_000;
  const nonce = crypto.randomUUID().slice(0, 8);
  const dir = await scratchDir({ prefix: "idwrap-kmod-" });
  try {
    const initrd = `${dir}/initrd.gz`;
    await Deno.writeFile(initrd, await initramfs(k, script, nonce));
    const started = performance.now();
    const child = new Deno.Command(QEMU, {
      args: [
        "-nographic",
        "-no-reboot",
        "-m",
        "1024",
        "-smp",
        "2",
        "-cpu",
        "max",
        "-nic",
        "none",
        "-kernel",
        k.vmlinuz,
        "-initrd",
        initrd,
        "-append",
        `console=ttyS0 quiet panic=-1${options.append ? ` ${options.append}` : ""}`,
        "-virtfs",
        "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
        ...(options.singleThreadTcg ? ["-accel", "tcg,thread=single"] : []),
      ],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
    }, timeoutMs);
    const out = await child.output();
    clearTimeout(timer);
    const ms = Math.round(performance.now() - started);
    const dec = new TextDecoder();
    const serial = dec.decode(out.stdout).replace(/\r\n/g, "\n").replace(/\r/g, "");
    const failed = serial.match(new RegExp(`@@INIT-FAILED ${nonce} (.*)@@`));
    const begin = serial.indexOf(`@@BEGIN ${nonce}@@\n`);
    const end = serial.match(new RegExp(`@@END ${nonce} rc=(\\d+)@@`));
    if (failed || begin < 0 || !end) {
      const why = timedOut
        ? `timed out after ${timeoutMs} ms (qemu killed)`
        : failed
        ? `guest init failed: ${failed[1]}`
        : `qemu exited (${out.code}) without the end sentinel`;
      const tail = serial.split("\n").slice(-100).join("\n");
      // The whole log (a lockup's report starts well before its last 100 lines).
      const log = `${KMOD_BUILD}failed-boot-${nonce}.log`;
      await Deno.writeTextFile(log, serial).catch(() => {});
      throw new Error(
        `kmod harness: ${why} (whole serial log: ${log})\n--- qemu stderr ---\n${
          dec.decode(out.stderr)
        }--- serial (tail) ---\n${tail}`,
      );
    }
    const from = begin + `@@BEGIN ${nonce}@@\n`.length;
    return { output: serial.slice(from, end.index), code: Number(end[1]), console: serial, ms };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A boot's output by section. */
export type Sections = Map<string, string>;

/**
 * Splits a boot's output at its section lines (`@@S name`: what the guest scripts' `sec name` prints); a `fatal`
 * section (the guest script gave up) fails the boot with the whole output.
 */
export function guestSections(output: string): Sections {
  const sections: Sections = new Map();
  let name = "";
  for (const line of output.split("\n")) {
    const m = line.match(/^@@S (\S+)$/);
    if (m) {
      name = m[1];
      sections.set(name, "");
    } else if (name) sections.set(name, sections.get(name) + line + "\n");
  }
  if (sections.has("fatal")) throw new Error(`the guest failed: ${output}`);
  return sections;
}

/** Reads a section of a (lazily) booted VM's output, or fails naming the section it lacks. */
export function sectionReader(boot: () => Promise<Sections>): (name: string) => Promise<string> {
  return async (name) => {
    const s = (await boot()).get(name);
    if (s === undefined) throw new Error(`no section ${name} in the guest's output`);
    return s;
  };
}
