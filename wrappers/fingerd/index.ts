/**
 * fingerd: a specification of the finger daemon's valid operations (Ko et
 * al., USENIX Security 2000, section 3.1, which lists a fingerd among its
 * specification-based wrappers). fingerd answers one query: it reads the
 * password and group files, the login records, and the queried users'
 * ~/.plan and ~/.project, and writes its answer to the socket it was
 * started on. So, for a wrapped process:
 *
 *  - opens for reading only the system files a process reads at start and
 *    fingerd's own (DEFAULT_READ: /etc/passwd, /etc/group, utmp, wtmp,
 *    lastlog, libraries, locale; plus `read_dirs`), and files named .plan,
 *    .project or .pgpkey under the home directories (`homes`) — and those
 *    only when world-readable: the pre hook wr_stats the path (following
 *    symbolic links, as the open will), so a ~/.plan that is a symbolic
 *    link to /etc/shadow is a violation;
 *  - never writes a file: every open for writing, create, remove, rename,
 *    link, truncate, chmod or chown is a violation;
 *  - executes nothing but the finger program (`finger`, default
 *    /usr/bin/finger), which BSD's and netkit's fingerd exec to answer
 *    every query: any other execve (the classic fingerd attack runs
 *    /bin/sh) is denied with EACCES;
 *  - binds no socket (inetd hands it one), unless `ports` lists the port of
 *    a standalone daemon; connects only to the name service sockets.
 *
 * Every violation raises a high alert (severity 3); `response: deny` also
 * fails the call with EACCES (execve is always denied).
 *
 * Settings (lists as JSON lists or comma lists):
 *   homes       directories holding the users' homes (default /home, /root)
 *   read_dirs   more paths it may read
 *   finger      the finger program it may execute (default /usr/bin/finger)
 *   ports       ports a standalone daemon may bind (default none)
 *   response    alert (default) or deny
 */
import {
  allow,
  declared,
  Event,
  log,
  LOG_ERROR,
  S_IROTH,
  settingOr,
  SYS_creat,
  SYS_open,
  SYS_openat,
  SYS_openat2,
  wrStat,
} from "../sdk/index";
import { addPorts, listSetting, normalize, normalizeAll, Spec, underAny, writesFile } from "../httpd/spec";

export { idwrap_abi_version } from "../sdk/index";

const DEFAULT_READ: string[] = [
  "/etc/passwd", "/etc/group", "/var/run/utmp", "/run/utmp", "/var/log/wtmp", "/var/log/lastlog", "/var/log/btmp",
  "/usr/lib", "/lib", "/lib64", "/usr/lib64", "/etc/ld.so.cache", "/etc/ld.so.preload", "/etc/localtime",
  "/usr/share/zoneinfo", "/etc/nsswitch.conf", "/etc/hosts", "/etc/host.conf", "/etc/resolv.conf", "/etc/gai.conf",
  "/usr/lib/locale", "/usr/share/locale", "/etc/locale.alias", "/usr/share/locale/locale.alias", "/proc/sys/kernel",
  "/dev/null", "/run/systemd/userdb",
];
const NSS_CONNECT: string[] = ["unix:/run/nscd/socket", "unix:/var/run/nscd/socket", "unix:/run/systemd/userdb"];
const USER_FILES: string[] = [".plan", ".project", ".pgpkey"];

let spec = new Spec("fingerd", "/");
let homes: string[] = new Array<string>(0);

export function idwrap_declare(): i32 {
  Spec.declare();
  return declared();
}

export function idwrap_init(): i32 {
  spec = new Spec("fingerd", "/");
  spec.read = normalizeAll(DEFAULT_READ.concat(listSetting("read_dirs", [])));
  homes = normalizeAll(listSetting("homes", ["/home", "/root"]));
  spec.write = new Array<string>(0);
  spec.chmodDirs = new Array<string>(0);
  spec.mayWrite = false;
  const ports = listSetting("ports", []);
  spec.mayBind = ports.length > 0;
  if (!addPorts(spec, ports)) {
    log(LOG_ERROR, "fingerd: bad ports setting (numbers or LO-HI ranges)");
    return 1;
  }
  spec.connects = NSS_CONNECT;
  spec.execs = [normalize(settingOr("finger", "/usr/bin/finger"))];
  spec.execSelf = false;
  spec.response = Spec.responseSetting(0);
  return 0;
}

/** A read of a user's .plan, .project or .pgpkey: valid only when it is world-readable. Null: not such a file. */
function userFile(nr: i32): i32 {
  const raw = Event.path();
  if (raw === null) return -1;
  const flags = Event.flagsText();
  if (nr == SYS_creat || writesFile(flags)) return -1;
  const p = spec.resolve(raw, nr == SYS_open ? -1 : 0);
  if (p === null) return -1;
  const slash = p.lastIndexOf("/");
  if (!USER_FILES.includes(p.substring(slash + 1)) || !underAny(p, homes)) return -1;
  const s = wrStat(p);
  if (s === null) return allow(); // missing: the open fails by itself
  if ((s.mode & S_IROTH) != 0) return allow();
  return spec.violation(
    "open for reading of " + p + " (mode 0" + (s.mode & 0o7777).toString(8) + ", owner uid " + s.uid.toString() +
      "): a user file that is not world-readable",
  );
}

export function idwrap_on_syscall(): i32 {
  const nr = Event.syscall();
  if (nr == SYS_open || nr == SYS_openat || nr == SYS_openat2) {
    const v = userFile(nr);
    if (v >= 0) return v;
  }
  return spec.onSyscall();
}
