/**
 * Opening /dev/idwrap: the device, its ABI check, and why it cannot be
 * used, as a typed error with a stable code.
 *
 * @module
 */
import { E } from "../../errno.ts";
import { O_CLOEXEC, O_NONBLOCK, O_RDWR } from "../../unsafe/layouts.ts";
import { errno, libc, openPath } from "../../unsafe/libc.ts";

/** The device's path. */
export const DEVICE = "/dev/idwrap";
import { ABI_VERSION, IOC } from "./uapi.ts";

/** Why the device cannot be used, as a stable code callers branch on (never the message text). */
export type DeviceErrorCode = "absent" | "busy" | "denied" | "abi-mismatch" | "failed";

/** Why the device cannot be used: a stable `code`, and words for doctor and `--source auto`. */
export class DeviceError extends Error {
  constructor(readonly code: DeviceErrorCode, message: string, readonly errno?: number) {
    super(message);
    this.name = "DeviceError";
  }
}

/**
 * Opens the device and checks its ABI.
 *
 * @throws DeviceError saying why not (absent, busy, not root, another ABI)
 */
export function openDevice(path = DEVICE): number {
  const fd = openPath(path, O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) {
    const e = -fd;
    if (e === E.ENOENT) {
      throw new DeviceError("absent", `${path} does not exist (the idwrap module is not loaded: idwrap kmod load)`, e);
    }
    if (e === E.EBUSY) {
      throw new DeviceError("busy", `${path} is in use by another idwrap (the module serves one opener at a time)`, e);
    }
    if (e === E.EACCES || e === E.EPERM) throw new DeviceError("denied", `${path} needs root or CAP_SYS_ADMIN`, e);
    throw new DeviceError("failed", `cannot open ${path}: errno ${e}`, e);
  }
  const abi = libc.symbols.ioctl_value(fd, IOC.VERSION, 0n);
  if (abi !== ABI_VERSION) {
    const e = errno();
    libc.symbols.close(fd);
    if (abi < 0) throw new DeviceError("failed", `IDWRAP_IOC_VERSION failed on ${path}: errno ${e}`, e);
    throw new DeviceError("abi-mismatch", `${path} speaks ABI ${abi}; this idwrap speaks ${ABI_VERSION}`);
  }
  return fd;
}

/**
 * Why `fd` is not an open idwrap device this idwrap can speak to, if it is not: it must be a character device named
 * /dev/idwrap (or `path`) and answer IDWRAP_IOC_VERSION with this host's ABI. For a device handed over (a daemon's
 * restart keeps it open across its exec, host/daemon/reexec.ts): the module's session, its watched processes and
 * waiting calls, goes on in whoever holds it.
 */
export function notTheDevice(fd: number, path = DEVICE): string | undefined {
  let target: string;
  try {
    target = Deno.readLinkSync(`/proc/self/fd/${fd}`);
  } catch {
    return "not open";
  }
  if (target !== path) return `it is ${target}, not ${path}`;
  const abi = libc.symbols.ioctl_value(fd, IOC.VERSION, 0n);
  if (abi < 0) return `IDWRAP_IOC_VERSION failed: errno ${errno()}`;
  if (abi !== ABI_VERSION) return `it speaks ABI ${abi}; this idwrap speaks ${ABI_VERSION}`;
  return undefined;
}
