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
import { failed, type Resolved } from "../../../host/sources/seccomp/world.ts";
import { readTaskStatus } from "../../../host/wss/procfs.ts";
import { addressOf, libc, SYS } from "../../../host/unsafe/libc.ts";
import { ensureUser } from "../../helpers.ts";

const EBADF = 9, EPERM = 1;
const O_RDONLY = 0, O_NONBLOCK = 0o4000, O_CLOEXEC = 0o2000000;
const AT_FDCWD = BigInt.asUintN(64, -100n);
const TRIES = 2000;
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

function openPlain(path: string): number {
  return libc.symbols.open(new TextEncoder().encode(path + "\0"), O_RDONLY | O_CLOEXEC, 0);
}

const OPEN: OpenArgs = { flags: O_RDONLY | O_NONBLOCK, mode: 0, resolve: 0n };

async function scenario(uid: number): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "idwrap-identity-" });
  await Deno.chmod(dir, 0o755);
  const file = `${dir}/watched.txt`;
  await Deno.writeTextFile(file, "watched\n");
  await Deno.chmod(file, 0o644);
  const emulator = new Emulator();
  const tid = Number(libc.symbols.syscall(SYS.gettid, 0n, 0n, 0n, 0n, 0n, 0n));
  const own = readTaskStatus(tid)!;
  const creds = uid === 0 ? own : { ...own, euid: uid, fsuid: uid, egid: uid, fsgid: uid, groups: [], capEff: 0n };
  const caller = { tgid: Deno.pid, tid, creds };
  const regs = new BigUint64Array([AT_FDCWD, 0n, BigInt(OPEN.flags), 0n, 0n, 0n]);
  // No tree here: ADDFD on fd -1 fails (EBADF). Reaching it means the emulator would have installed the file.
  const install = { id: 1n, listener: -1, send: true };
  const resolve = (): Resolved => {
    const check = emulator.check(caller, "openat", regs, [file], OPEN);
    const r = check.resolved[0];
    assert(r && !failed(r) && r.fd >= 0, `resolved ${JSON.stringify(r)}`);
    return r as Resolved;
  };

  // Control: the resolution left alone reaches ADDFD.
  {
    const r = resolve();
    assertEquals(emulator.open(caller, r, OPEN, install), { errno: EBADF });
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
        got = emulator.open(caller, r, OPEN, install);
      } finally {
        libc.symbols.close(fd);
      }
      assert("errno" in got && got.errno === EPERM && got.fault, `${kind}, try ${i}: ${JSON.stringify(got)}`);
      assert(got.fault.includes("is not the object checked"), got.fault);
    }
    assert(reused > TRIES / 2, `${kind}: the number was reused ${reused} times in ${TRIES}`);
  }
  await Deno.remove(dir, { recursive: true });
}

Deno.test("an emulated open never hands over another object when the checked fd's number is reused (root)", () =>
  scenario(0));

Deno.test("an emulated open never hands over another object when the checked fd's number is reused (an ordinary user)", async () =>
  scenario(await ensureUser("idwrap-alice")));
