/**
 * Configurations of the real servers the tests and benchmarks run on
 * loopback (Debian's nginx and vsftpd), and the httpd/ftpd policies that
 * bind the paper's wrappers to them: one place, so the tests check the very
 * set-up the benchmark measures.
 *
 * @module
 */

export const NGINX = "/usr/sbin/nginx";
export const VSFTPD = "/usr/sbin/vsftpd";

/** An nginx site in `dir`: docroot www/, logs/, tmp/ (created by the caller), one worker, on 127.0.0.1:port. */
export interface NginxSite {
  dir: string;
  port: number;
  /** Directives added to the server block (locations). */
  server?: string;
  /** Directives added to the http block. */
  http?: string;
  workerConnections?: number;
  /** The listen socket's backlog, when a load generator opens many connections at once. */
  backlog?: number;
}

/** nginx.conf for a site: every path inside `dir`, nothing of the system's configuration. */
export function nginxConf(site: NginxSite): string {
  const d = site.dir;
  return `worker_processes 1;
pid ${d}/nginx.pid;
error_log ${d}/logs/error.log;
events { worker_connections ${site.workerConnections ?? 64}; }
http {
  access_log ${d}/logs/access.log;
  client_body_temp_path ${d}/tmp/body;
  proxy_temp_path ${d}/tmp/proxy;
  fastcgi_temp_path ${d}/tmp/fastcgi;
  uwsgi_temp_path ${d}/tmp/uwsgi;
  scgi_temp_path ${d}/tmp/scgi;
  ${site.http ?? ""}
  server {
    listen 127.0.0.1:${site.port}${site.backlog ? ` backlog=${site.backlog}` : ""};
    root ${d}/www;
    ${site.server ?? ""}
  }
}
`;
}

/** The command that runs nginx in the foreground on a site's nginx.conf. */
export function nginxCommand(dir: string): string[] {
  return [NGINX, "-p", `${dir}/`, "-e", `${dir}/logs/error.log`, "-c", `${dir}/nginx.conf`, "-g", "daemon off;"];
}

/** The httpd wrapper bound to nginx for a site (docs/wrappers.md). */
export function httpdPolicy(
  site: { dir: string; port: number },
  o: { name: string; response: "alert" | "deny"; ports?: string; upstreams?: string },
): string {
  return `version: 1
name: ${o.name}
wrappers:
  - name: httpd
    settings:
      docroot: ["${site.dir}/www"]
      read_dirs: ["${site.dir}/nginx.conf"]
      write_dirs: ["${site.dir}/logs", "${site.dir}/tmp", "${site.dir}/nginx.pid"]
      ports: ${o.ports ?? `[${site.port}]`}
      upstreams: ${o.upstreams ?? "[]"}
      response: ${o.response}
    activate:
      program: nginx
`;
}

/** An anonymous FTP site in `dir`: anon/ (the root), empty/ (secure_chroot_dir), log/, created by the caller. */
export interface FtpSite {
  dir: string;
  port: number;
  /** The passive ports, inclusive. */
  pasv: [number, number];
  /** Lines added to vsftpd.conf. */
  extra?: string;
}

/** vsftpd.conf for an anonymous, read-only, passive site on 127.0.0.1 (vsftpd needs root: it chroots sessions). */
export function vsftpdConf(site: FtpSite): string {
  const d = site.dir;
  return `listen=YES
listen_ipv6=NO
listen_address=127.0.0.1
listen_port=${site.port}
background=NO
anonymous_enable=YES
local_enable=NO
write_enable=NO
anon_root=${d}/anon
no_anon_password=YES
pasv_enable=YES
pasv_min_port=${site.pasv[0]}
pasv_max_port=${site.pasv[1]}
pasv_address=127.0.0.1
connect_from_port_20=NO
secure_chroot_dir=${d}/empty
xferlog_enable=YES
xferlog_file=${d}/log/xferlog
vsftpd_log_file=${d}/log/vsftpd.log
${site.extra ?? ""}
`;
}

/** The ftpd wrapper bound to vsftpd for a site (docs/wrappers.md). */
export function ftpdPolicy(site: FtpSite, o: { name: string; response: "alert" | "deny" }): string {
  return `version: 1
name: ${o.name}
wrappers:
  - name: ftpd
    settings:
      root: "${site.dir}/anon"
      config: "${site.dir}/vsftpd.conf"
      read_dirs: ["${site.dir}/empty"]
      write_dirs: ["${site.dir}/log"]
      ports: [${site.port}]
      pasv: "${site.pasv[0]}-${site.pasv[1]}"
      response: ${o.response}
    activate:
      program: vsftpd
`;
}
