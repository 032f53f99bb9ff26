/**
 * An emulated open hands the caller the object it was decided on, or nothing (issue 17). The supervisor opens the
 * checked object again through its resolution's O_PATH fd, by number (/proc/thread-self/fd/N), then installs the
 * result in the caller (ADDFD). The attack: another thread of idwrap's process closes that number (a stray close of
 * a number it no longer owns) and its next open or socket reuses it, so the reopen yields one of idwrap's own files —
 * a pipe, /dev/null, another file — which the caller would get instead of the file (nginx: "is not a regular file").
 * The number is reused here on purpose, for each kind of object, thousands of times; the control (the number left
 * alone) shows the emulator goes on to ADDFD, which fails here on a listener that is no listener (EBADF): before the
 * identity check, every attack went there too, with the stray object.
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { type CallResult, Emulator, type OpenArgs } from "../../../host/sources/seccomp/emulate.ts";
import { CallerWorld, failed, type Resolved } from "../../../host/sources/seccomp/world.ts";
import { readTaskStatus } from "../../../host/wss/procfs.ts";
import { addressOf, libc, SYS } from "../../../host/unsafe/libc.ts";
import { ensureUser, existsSync } from "../../helpers.ts";
import { tempDir } from "../../temp.ts";
import { DONE, GO, IDLE, QUIT } from "./dup_racer.ts";

const EBADF = 9, EPERM = 1;
const O_RDONLY = 0, O_NONBLOCK = 0o4000, O_CLOEXEC = 0o2000000;
const AT_FDCWD = BigInt.asUintN(64, -100n);
const TRIES = 2000, SWAPS = 300, RACE_WAIT_NS = 20_000;
// At least RACES tries, and on (to RACES_MAX) until a swap has landed between the checks: how often one does depends
// on the machine's load (3 to 40 in 3,000 here).
const RACES = 3000, RACES_MAX = 30_000;
const SYS_DUP3 = 292n;
const SYS_PIPE2 = 293n, SYS_FCHMOD = 91n;

/** What takes the resolved fd's number once it is closed: each is an object idwrap itself holds. */
const STRAYS: Record<string, () => number> = {
  "a pipe": () => {
    const fds = new Int32Array(2);
    const bytes = new Uint8Array(fds.buffer);
    if (libc.symbols.syscall(SYS_PIPE2, addressOf(bytes), BigInt(O_CLOEXEC), 0n, 0n, 0n, 0n) < 0n) {
      throw new Error("pipe2 failed");
    }
    libc.symbols.close(fds[1]);
    libc.symbols.syscall(SYS_FCHMOD, BigInt(fds[0]), 0o666n, 0n, 0n, 0n, 0n); // an ordinary user may open it too
    return fds[0];
  },
  "/dev/null": () => openPlain("/dev/null"),
  "another regular file": () => openPlain("/etc/hostname"),
};

function openPlain(path: string, flags = O_RDONLY | O_CLOEXEC): number {
  return libc.symbols.open(new TextEncoder().encode(path + "\0"), flags, 0);
}

// No tree here: ADDFD on fd -1 fails (EBADF). Reaching it means the emulator would have installed the file.
const INSTALL = { id: 1n, listener: -1, send: true };

const OPEN: OpenArgs = { flags: O_RDONLY | O_NONBLOCK, mode: 0, resolve: 0n };

async function reopenScenario(uid: number): Promise<void> {
  await using w = await createWorld(uid);
  const { emulator, caller } = w;
  const file = `${w.checked}/watched.txt`;
  await Deno.writeTextFile(file, "watched\n");
  await Deno.chmod(file, 0o644);
  const regs = new BigUint64Array([AT_FDCWD, 0n, BigInt(OPEN.flags), 0n, 0n, 0n]);
  const resolve = (): Resolved => {
    const check = emulator.check(caller, "openat", regs, [file], OPEN);
    const r = check.resolved[0];
    assert(r && !failed(r) && r.fd >= 0, `resolved ${JSON.stringify(r)}`);
    return r as Resolved;
  };

  // Control: the resolution left alone reaches ADDFD.
  {
    const r = resolve();
    assertEquals(emulator.open(caller, r, OPEN, INSTALL), { errno: EBADF });
    libc.symbols.close(r.fd);
  }
  for (const [kind, stray] of Object.entries(STRAYS)) {
    let reused = 0;
    for (let i = 0; i < TRIES; i++) {
      const r = resolve();
      libc.symbols.close(r.fd); // the stray close
      const fd = stray(); // the lowest free number: r.fd, unless another thread took it first
      let got: CallResult;
      try {
        if (fd !== r.fd) continue;
        reused++;
        got = emulator.open(caller, r, OPEN, INSTALL);
      } finally {
        libc.symbols.close(fd);
      }
      assert("errno" in got && got.errno === EPERM && got.fault, `${kind}, try ${i}: ${JSON.stringify(got)}`);
      assert(got.fault.includes("is not the object checked"), got.fault);
    }
    assert(reused > TRIES / 2, `${kind}: the number was reused ${reused} times in ${TRIES}`);
  }
}

// O_CREAT of a missing name and O_TMPFILE: the object checked is a directory, held as an O_PATH fd and used as the
// dirfd of the creating openat. Its number closed and reused by another directory idwrap holds (a store's, another
// caller's parent) would create the caller's file there, outside what was decided on.

const O_WRONLY = 1, O_RDWR = 2, O_CREAT = 0o100, O_TMPFILE = 0o20200000, O_PATH = 0o10000000, O_DIRECTORY = 0o200000;
const CREATE: OpenArgs = { flags: O_CREAT | O_WRONLY | O_NONBLOCK, mode: 0o644, resolve: 0n };
const TMPFILE: OpenArgs = { flags: O_TMPFILE | O_RDWR | O_NONBLOCK, mode: 0o600, resolve: 0n };

/** What takes a directory fd's number once it is closed: other directories idwrap holds. */
const STRAY_DIRS: Record<string, (dir: string) => number> = {
  "an O_PATH directory fd": (dir) => openPlain(dir, O_PATH | O_DIRECTORY | O_CLOEXEC),
  "a directory opened for reading": (dir) => openPlain(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC),
};

/** A test's own world: a checked directory and a stray one (both writable by `uid`), removed at the end. */
async function createWorld(uid: number) {
  const dir = await tempDir({ prefix: "idwrap-identity-" });
  const root = dir.path;
  await Deno.chmod(root, 0o755);
  const checked = `${root}/checked`, stray = `${root}/stray`;
  for (const d of [checked, stray]) {
    await Deno.mkdir(d);
    await Deno.chmod(d, 0o777);
  }
  const emulator = new Emulator();
  const tid = Number(libc.symbols.syscall(SYS.gettid, 0n, 0n, 0n, 0n, 0n, 0n));
  const own = readTaskStatus(tid)!;
  const creds = uid === 0 ? own : { ...own, euid: uid, fsuid: uid, egid: uid, fsgid: uid, groups: [], capEff: 0n };
  return {
    root,
    checked,
    stray,
    emulator,
    caller: { tgid: Deno.pid, tid, creds },
    [Symbol.asyncDispose]: () => dir[Symbol.asyncDispose](),
  };
}

type World = Awaited<ReturnType<typeof createWorld>>;

async function createScenario(uid: number): Promise<void> {
  await using w = await createWorld(uid);
  const regs = new BigUint64Array([AT_FDCWD, 0n, BigInt(CREATE.flags), BigInt(CREATE.mode), 0n, 0n]);
  const resolve = (name: string): Resolved => {
    const r = w.emulator.check(w.caller, "openat", regs, [`${w.checked}/${name}`], CREATE).resolved[0];
    assert(r && !failed(r) && r.fd === -1 && r.parent >= 0, `resolved ${JSON.stringify(r)}`);
    return r as Resolved;
  };

  // Control: the parent left alone reaches ADDFD, and the file is created in the checked directory.
  {
    const r = resolve("control");
    assertEquals(w.emulator.open(w.caller, r, CREATE, INSTALL), { errno: EBADF });
    CallerWorld.release(r);
    assertEquals(Deno.lstatSync(`${w.checked}/control`).uid, uid);
  }
  reuseDirectoryNumber(w, CREATE, (n) => resolve(`new-${n}`), (r) => r.parent, (where, n) => {
    assert(!existsSync(`${w.stray}/new-${n}`), `${where}: created in the stray directory`);
    assert(!existsSync(`${w.checked}/new-${n}`), `${where}: created although refused`);
  });
}

async function tmpfileScenario(uid: number): Promise<void> {
  await using w = await createWorld(uid);
  const regs = new BigUint64Array([AT_FDCWD, 0n, BigInt(TMPFILE.flags), BigInt(TMPFILE.mode), 0n, 0n]);
  const resolve = (): Resolved => {
    const r = w.emulator.check(w.caller, "openat", regs, [w.checked], TMPFILE).resolved[0];
    assert(r && !failed(r) && r.fd >= 0, `resolved ${JSON.stringify(r)}`);
    return r as Resolved;
  };

  // Control: the directory left alone reaches ADDFD.
  {
    const r = resolve();
    assertEquals(w.emulator.open(w.caller, r, TMPFILE, INSTALL), { errno: EBADF });
    CallerWorld.release(r);
  }
  reuseDirectoryNumber(w, TMPFILE, resolve, (r) => r.fd);
}

/**
 * TRIES times for each kind of stray directory: a resolution (`resolve`, given a number unique in the scenario), the
 * stray close of the directory fd it holds (`held`), that number taken by the stray directory, the emulated open. It
 * must fail closed (EPERM, a fault); `left` checks first what it left (on the old code: the file, made in the stray
 * directory).
 */
function reuseDirectoryNumber(
  w: World,
  open: OpenArgs,
  resolve: (n: number) => Resolved,
  held: (r: Resolved) => number,
  left?: (where: string, n: number) => void,
): void {
  let n = 0;
  for (const [kind, stray] of Object.entries(STRAY_DIRS)) {
    let reused = 0;
    for (let i = 0; i < TRIES; i++, n++) {
      const r = resolve(n);
      const dirFd = held(r);
      libc.symbols.close(dirFd); // the stray close
      const fd = stray(w.stray);
      let got: CallResult;
      try {
        if (fd !== dirFd) continue;
        reused++;
        got = w.emulator.open(w.caller, r, open, INSTALL);
      } finally {
        libc.symbols.close(fd);
      }
      left?.(`${kind}, try ${i}`, n);
      assert("errno" in got && got.errno === EPERM && got.fault, `${kind}, try ${i}: ${JSON.stringify(got)}`);
      assert(got.fault.includes("is not the directory checked"), got.fault);
    }
    assert(reused > TRIES / 2, `${kind}: the number was reused ${reused} times in ${TRIES}`);
  }
}

/**
 * The same reuse during the open: another thread puts the stray directory at the parent's fd number once, after a
 * random while, as the emulator creates, RACES times or more. Some swaps land between the check before the openat and
 * the openat itself: the file is then made in the stray directory, and only the check after the openat stands between
 * it and the caller. Every open must end installed with its file in the checked directory, or refused (EPERM, a fault).
 */
async function racedCreateScenario(uid: number): Promise<void> {
  await using w = await createWorld(uid);
  const regs = new BigUint64Array([AT_FDCWD, 0n, BigInt(CREATE.flags), BigInt(CREATE.mode), 0n, 0n]);
  const r0 = w.emulator.check(w.caller, "openat", regs, [`${w.checked}/probe`], CREATE).resolved[0];
  assert(r0 && !failed(r0) && r0.fd === -1 && r0.parent >= 0, `resolved ${JSON.stringify(r0)}`);
  const [checkedFd, strayFd] = [w.checked, w.stray].map((d) => openPlain(d, O_PATH | O_DIRECTORY | O_CLOEXEC));
  const control = new SharedArrayBuffer(8);
  const ctl = new Int32Array(control);
  const racer = new Worker(new URL("./dup_racer.ts", import.meta.url).href, { type: "module" });
  const said = (): Promise<unknown> => new Promise((resolve) => racer.onmessage = (e) => resolve(e.data));
  const outcomes = { installed: 0, refusedBefore: 0, refusedAfter: 0, madeAstray: 0 };
  try {
    const started = said();
    racer.postMessage({ n: r0.parent, stray: strayFd, control });
    assertEquals(await started, "started");
    // Until every kind of landing was seen (a loaded machine can go thousands of tries without one of them).
    const allSeen = () => outcomes.madeAstray > 0 && outcomes.refusedBefore > 0 && outcomes.installed > 0;
    for (let i = 0; i < RACES || (!allSeen() && i < RACES_MAX); i++) {
      const name = `race-${i}`;
      ctl[1] = Math.floor(Math.random() * RACE_WAIT_NS);
      Atomics.store(ctl, 0, GO);
      Atomics.notify(ctl, 0);
      const got = w.emulator.open(w.caller, { ...r0, name, path: `${w.checked}/${name}` }, CREATE, INSTALL);
      while (Atomics.load(ctl, 0) !== DONE) Atomics.wait(ctl, 0, GO, 100);
      libc.symbols.syscall(SYS_DUP3, BigInt(checkedFd), BigInt(r0.parent), BigInt(O_CLOEXEC), 0n, 0n, 0n);
      Atomics.store(ctl, 0, IDLE);
      const inStray = existsSync(`${w.stray}/${name}`), inChecked = existsSync(`${w.checked}/${name}`);
      if (inStray) outcomes.madeAstray++;
      if ("errno" in got && got.errno === EBADF) {
        outcomes.installed++;
        assert(inChecked && !inStray, `try ${i}: installed, made in the ${inStray ? "stray" : "wrong"} directory`);
        continue;
      }
      assert("errno" in got && got.errno === EPERM && got.fault, `try ${i}: ${JSON.stringify(got)}`);
      if (got.fault.includes("nothing created")) outcomes.refusedBefore++;
      else outcomes.refusedAfter++;
    }
  } finally {
    const stopped = said();
    Atomics.store(ctl, 0, QUIT);
    Atomics.notify(ctl, 0);
    await stopped;
    racer.terminate();
    for (const fd of [checkedFd, strayFd]) libc.symbols.close(fd);
    CallerWorld.release(r0);
  }
  // The race is real: swaps landed before the first check, between the checks (a file made astray) and after.
  const { installed, refusedBefore, madeAstray } = outcomes;
  assert(installed > 0 && refusedBefore > 0 && madeAstray > 0, JSON.stringify(outcomes));
}

/**
 * A swapped parent: after the check, the caller renames the checked directory away and puts another directory (or a
 * symbolic link to one) at its path. The file is created in the directory checked, wherever it now is, never in the
 * one put in its place: the parent is held by its fd, not by its name. A guard: no code path re-resolves the name.
 */
async function swappedParentScenario(uid: number): Promise<void> {
  await using w = await createWorld(uid);
  const regs = new BigUint64Array([AT_FDCWD, 0n, BigInt(CREATE.flags), BigInt(CREATE.mode), 0n, 0n]);
  const sub = `${w.checked}/sub`, moved = `${w.checked}/moved`;
  for (let i = 0; i < SWAPS; i++) {
    await Deno.mkdir(sub);
    await Deno.chmod(sub, 0o777);
    const r = w.emulator.check(w.caller, "openat", regs, [`${sub}/f`], CREATE).resolved[0];
    assert(r && !failed(r) && r.fd === -1 && r.parent >= 0, `resolved ${JSON.stringify(r)}`);
    await Deno.rename(sub, moved);
    if (i % 2) await Deno.symlink(w.stray, sub);
    else await Deno.mkdir(sub, { mode: 0o777 });
    try {
      assertEquals(w.emulator.open(w.caller, r as Resolved, CREATE, INSTALL), { errno: EBADF });
    } finally {
      CallerWorld.release(r as Resolved);
    }
    assert(existsSync(`${moved}/f`), `try ${i}: not created in the directory checked`);
    assert(!existsSync(`${sub}/f`), `try ${i}: created in the directory swapped in`);
    await Deno.remove(sub, { recursive: true });
    await Deno.remove(moved, { recursive: true });
  }
}

/** Each attack and guard, as root and as an ordinary user. */
const CASES: [string, (uid: number) => Promise<void>][] = [
  [
    "an emulated open never hands over another object when the checked fd's number is reused",
    reopenScenario,
  ],
  [
    "an emulated O_CREAT never creates the file outside the checked directory when its fd's number is reused",
    createScenario,
  ],
  [
    "an emulated O_CREAT never installs a file made outside the checked directory when its fd's number is reused during the open",
    racedCreateScenario,
  ],
  [
    "an emulated O_TMPFILE never lands outside the checked directory when its fd's number is reused",
    tmpfileScenario,
  ],
  [
    "an emulated O_CREAT creates in the directory checked, not in one swapped in at its path",
    swappedParentScenario,
  ],
];

for (const [name, run] of CASES) {
  Deno.test(`${name} (root)`, () => run(0));
  Deno.test(`${name} (an ordinary user)`, async () => run(await ensureUser("idwrap-alice")));
}
