/**
 * ftpd: a specification of an anonymous FTP server's valid operations (Ko
 * et al., USENIX Security 2000, section 3.1, which lists an ftpd among its
 * specification-based wrappers), written for Debian's vsftpd:
 *
 *  - opens for reading only under the anonymous root (`root`), its
 *    configuration, and the system files a process reads at start
 *    (DEFAULT_READ, plus `read_dirs`);
 *  - writes, creates, removes, renames, links, chmods or chowns files only
 *    under /var/log, /run and /var/run, plus `write_dirs` (an upload
 *    directory, say);
 *  - executes no program (vsftpd lists directories itself): every execve,
 *    a shell first, is denied with EACCES, whatever `response` says;
 *  - binds only its control port (`ports`, default 21), port 20 (active
 *    data connections) and the passive range (`pasv`, "LO-HI"); connects
 *    only to the name service sockets, and to any inet address only when
 *    `active: true` (active-mode data connections go to the client).
 *
 * Every violation raises a high alert (severity 3); `response: deny` also
 * fails the call with EACCES. vsftpd resolves relative paths from the
 * directory it chdir()ed to and chroots anonymous sessions: the engine
 * follows chdir and chroot in each process, and a process whose working
 * directory it has not seen change is taken to be in the anonymous root.
 *
 * Settings (lists as JSON lists or comma lists):
 *   root        the anonymous root (default /srv/ftp)
 *   config      the configuration file (default /etc/vsftpd.conf)
 *   read_dirs   more paths it may read
 *   write_dirs  more directories it may write
 *   ports       control ports (default 21)
 *   pasv        passive port ranges, "LO-HI" (default none)
 *   active      "true" to allow active-mode connects (default false)
 *   response    alert (default) or deny
 */
import { declared, log, LOG_ERROR, settingOr } from "../sdk/index";
import { addPorts, listSetting, normalize, normalizeAll, Spec } from "../httpd/spec";

export { idwrap_abi_version } from "../sdk/index";

const DEFAULT_READ: string[] = [
  "/etc/vsftpd", "/etc/ftpusers", "/etc/vsftpd.userlist", "/etc/vsftpd.chroot_list", "/etc/pam.d", "/etc/security",
  "/etc/shells", "/etc/hosts.allow", "/etc/hosts.deny", "/etc/ssl", "/usr/lib/ssl", "/usr/lib", "/lib", "/lib64",
  "/usr/lib64", "/etc/ld.so.cache", "/etc/ld.so.preload", "/etc/localtime", "/usr/share/zoneinfo", "/etc/passwd",
  "/etc/group", "/etc/nsswitch.conf", "/etc/hosts", "/etc/host.conf", "/etc/resolv.conf", "/etc/gai.conf",
  "/etc/krb5.conf", "/etc/gss", "/proc/sys/kernel", "/proc/self", "/dev/null", "/dev/urandom", "/run/systemd/userdb",
  "/var/run/vsftpd", "/run/vsftpd",
];
const DEFAULT_WRITE: string[] = ["/var/log", "/run", "/var/run", "/dev/null"];
const NSS_CONNECT: string[] = ["unix:/run/nscd/socket", "unix:/var/run/nscd/socket", "unix:/run/systemd/userdb"];

let spec = new Spec("ftpd", "/srv/ftp");

export function idwrap_declare(): i32 {
  Spec.declare();
  return declared();
}

export function idwrap_init(): i32 {
  const root = normalize(settingOr("root", "/srv/ftp"));
  spec = new Spec("ftpd", root);
  spec.read = normalizeAll(
    DEFAULT_READ.concat([root, settingOr("config", "/etc/vsftpd.conf")]).concat(listSetting("read_dirs", [])),
  );
  spec.write = normalizeAll(DEFAULT_WRITE.concat(listSetting("write_dirs", [])));
  spec.chmodDirs = spec.write;
  if (!addPorts(spec, listSetting("ports", ["21"]).concat(["20"]).concat(listSetting("pasv", [])))) {
    log(LOG_ERROR, "ftpd: bad ports or pasv setting (numbers or LO-HI ranges)");
    return 1;
  }
  spec.connects = NSS_CONNECT;
  if (settingOr("active", "false").trim() == "true") {
    spec.connects = spec.connects.concat(["*"]);
  }
  spec.execSelf = false;
  spec.response = Spec.responseSetting(0);
  return 0;
}

export function idwrap_on_syscall(): i32 {
  return spec.onSyscall();
}
