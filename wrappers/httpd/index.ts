/**
 * httpd: a specification of a web server's valid operations (Ko et al.,
 * USENIX Security 2000, section 3.1, which lists an httpd among its
 * specification-based wrappers), written for Debian's nginx:
 *
 *  - opens for reading only under the document roots (`docroot`), its
 *    configuration, log, state, run and library paths, and the few system
 *    files a process reads at start (DEFAULT_READ, plus `read_dirs`);
 *  - opens for writing, and creates, removes, renames, links or truncates
 *    files, only under its log, state and run directories (DEFAULT_WRITE,
 *    plus `write_dirs`); chmod/chown only there too;
 *  - executes nothing but itself (the master's binary upgrade re-exec) and
 *    the programs in its CGI directories (`cgi`, judged after "." and ".."
 *    are removed, so "cgi-bin/../../bin/sh" is /bin/sh): any other execve
 *    is denied with EACCES, whatever `response` says;
 *  - binds only the configured `ports`; connects only to the name service
 *    sockets and the configured `upstreams`.
 *
 * Every violation raises a high alert (severity 3). With `response: deny`
 * the offending call also fails with EACCES (an nginx request for such a
 * file gets 403); the default, `alert`, only reports.
 *
 * Settings (lists as JSON lists or comma lists):
 *   docroot     document roots (default /var/www, /usr/share/nginx/html)
 *   read_dirs   more paths it may read
 *   write_dirs  more directories it may write (temp paths, a pid file's dir)
 *   ports       ports it may bind, "8000-8100" for a range (default 80, 443)
 *   upstreams   "127.0.0.1:9000" or "unix:/run/php" it may connect to
 *   cgi         directories whose programs it may execute (default none)
 *   response    alert (default) or deny
 */
import { declared, log, LOG_ERROR } from "../sdk/index";
import { addPorts, listSetting, normalizeAll, Spec } from "./spec";

export { idwrap_abi_version } from "../sdk/index";

const DEFAULT_READ: string[] = [
  "/etc/nginx", "/usr/share/nginx", "/etc/ssl", "/usr/lib/ssl", "/usr/lib", "/lib", "/lib64", "/usr/lib64",
  "/etc/ld.so.cache", "/etc/ld.so.preload", "/etc/localtime", "/usr/share/zoneinfo", "/etc/passwd", "/etc/group",
  "/etc/nsswitch.conf", "/etc/hosts", "/etc/host.conf", "/etc/resolv.conf", "/etc/gai.conf", "/etc/mime.types",
  "/proc/sys/kernel", "/sys/devices/system/cpu", "/proc/self", "/dev/null", "/dev/urandom", "/dev/random",
  "/run/systemd/userdb",
];
const DEFAULT_WRITE: string[] = ["/var/log/nginx", "/var/lib/nginx", "/run", "/var/run", "/dev/null"];
const DEFAULT_DOCROOT: string[] = ["/var/www", "/usr/share/nginx/html"];
const DEFAULT_CONNECT: string[] = ["unix:/run/nscd/socket", "unix:/var/run/nscd/socket", "unix:/run/systemd/userdb"];
const DEFAULT_PORTS: string[] = ["80", "443"];

let spec = new Spec("httpd", "/");

export function idwrap_declare(): i32 {
  Spec.declare();
  return declared();
}

export function idwrap_init(): i32 {
  spec = new Spec("httpd", "/");
  const docroots = listSetting("docroot", DEFAULT_DOCROOT);
  spec.read = normalizeAll(DEFAULT_READ.concat(docroots).concat(listSetting("read_dirs", [])));
  spec.write = normalizeAll(DEFAULT_WRITE.concat(listSetting("write_dirs", [])));
  spec.chmodDirs = spec.write;
  if (!addPorts(spec, listSetting("ports", DEFAULT_PORTS))) {
    log(LOG_ERROR, "httpd: bad ports setting (numbers or LO-HI ranges)");
    return 1;
  }
  spec.connects = DEFAULT_CONNECT.concat(listSetting("upstreams", []));
  spec.execSelf = true;
  spec.execs = ["/usr/sbin/nginx"];
  spec.execDirs = normalizeAll(listSetting("cgi", []));
  spec.response = Spec.responseSetting(0);
  return 0;
}

export function idwrap_on_syscall(): i32 {
  return spec.onSyscall();
}
