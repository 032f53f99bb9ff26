/**
 * baseline's list settings, their built-in defaults (the default policy
 * repeats them; tests/baseline/battery_test.ts checks that the two agree)
 * and their loading at init.
 */
import { log, LOG_ERROR, setting } from "../sdk/index";
import { listSetting } from "./lists";

const D_CREDENTIAL_ALLOW = '["sshd","sshd-session","sudo","su","login","passwd","chpasswd","chage","unix_chkpwd",' +
  '"useradd","userdel","usermod","groupadd","groupdel","groupmod","gpasswd","newusers","pwck","grpck","vipw",' +
  '"vigr","ssh","ssh-add","ssh-agent","ssh-keygen","scp","sftp","systemd","cron","polkitd"]';
const D_CREDENTIAL_PATHS = '["/etc/shadow","/etc/gshadow","/etc/shadow-","/etc/gshadow-"]';
const D_PACKAGE_MANAGERS = '["dpkg","dpkg-deb","dpkg-divert","dpkg-trigger","dpkg-statoverride","apt","apt-get",' +
  '"aptitude","unattended-upgrade","rpm","rpmdb","yum","dnf","dnf-3","microdnf","zypper","apk","pacman",' +
  '"update-alternatives","ldconfig","ldconfig.real"]';
const D_SYSTEM_DIRS = '["/etc","/boot","/usr/bin","/usr/sbin","/bin","/sbin","/lib*"]';
const D_TMP_DIRS = '["/tmp","/dev/shm","/var/tmp"]';
const D_SERVICES = '["nginx","apache2","httpd","lighttpd","php-fpm*","mysqld","mariadbd","postgres",' +
  '"redis-server","mongod","named","vsftpd","proftpd","memcached"]';
const D_SERVICE_SHELL_ALLOW = '["sshd","sshd-session","login","systemd","cron","sudo","su","tmux*","screen"]';
const D_SHELLS = '["sh","bash","dash","zsh","ksh","ksh93","mksh","csh","tcsh","fish","ash","busybox",' +
  '"python*","perl*","ruby*","php*","node","nodejs","lua*","tclsh*"]';
const D_PTRACE_ALLOW = '["/usr/bin/gdb","/usr/bin/strace","/usr/bin/ltrace","/usr/bin/lldb*","/usr/bin/perf*"]';
const D_KERNEL_ALLOW = '["modprobe","insmod","rmmod","kmod","systemd","systemd-udevd","udevadm","mount",' +
  '"umount","fusermount","fusermount3"]';
const D_RAW_SOCKET_ALLOW = '["ping","ping4","ping6","arping","traceroute*","dhclient","dhcpcd","NetworkManager",' +
  '"systemd-networkd"]';
const D_LOG_DIRS = '["/var/log"]';
const D_LOG_ALLOW = '["logrotate","rsyslogd","syslog-ng","systemd-journald","journalctl","savelog","apt","apt-get",' +
  '"aptitude","unattended-upgrade"]';
const D_CLOUD_CREDENTIAL_PATHS = '["~/.aws/credentials","~/.aws/sso/cache/**","~/.aws/cli/cache/**",' +
  '"~/.config/gcloud/credentials.db","~/.config/gcloud/access_tokens.db",' +
  '"~/.config/gcloud/application_default_credentials.json","~/.config/gcloud/legacy_credentials/**",' +
  '"~/.azure/accessTokens.json","~/.azure/msal_token_cache.json","~/.azure/msal_token_cache.bin",' +
  '"~/.azure/service_principal_entries.json","~/.azure/service_principal_entries.bin","~/.kube/config",' +
  '"/var/run/secrets/kubernetes.io/serviceaccount/token","/run/secrets/kubernetes.io/serviceaccount/token",' +
  '"/etc/kubernetes/admin.conf","/etc/kubernetes/super-admin.conf","/etc/kubernetes/pki/**/*.key"]';
const D_CLOUD_CREDENTIAL_ALLOW = '["aws","aws_completer","aws-iam-authenticator","eksctl","gcloud","gsutil","bq",' +
  '"gcloud.py","gsutil.py","bq.py","docker-credential-gcloud","gke-gcloud-auth-plugin","az","azure.cli",' +
  '"kubectl","kubelet","kubeadm","kube-apiserver","kube-controller-manager","kube-scheduler","kube-proxy",' +
  '"kubelogin","helm","k9s","k3s","minikube","kind","terraform","terraform-provider-*"]';
const D_HOME_DIRS = '["/root","/home/*"]';
const D_INBOUND_ONLY = '["nginx","apache2","httpd","lighttpd","vsftpd","proftpd","memcached"]';
const D_HISTORY_FILES = '[".bash_history",".zsh_history",".sh_history",".history",".ash_history",' +
  '".python_history",".mysql_history",".psql_history"]';

export let credentialAllow: string[] = [];
export let credentialPaths: string[] = [];
export let packageManagers: string[] = [];
export let systemDirs: string[] = [];
export let tmpDirs: string[] = [];
export let tmpExecAllow: string[] = [];
export let services: string[] = [];
export let serviceShellAllow: string[] = [];
export let shells: string[] = [];
export let ptraceAllow: string[] = [];
export let kernelAllow: string[] = [];
export let rawSocketAllow: string[] = [];
export let logDirs: string[] = [];
export let logAllow: string[] = [];
export let historyFiles: string[] = [];
export let cloudPaths: string[] = [];
export let cloudAllow: string[] = [];
export let homeDirs: string[] = [];
export let inboundOnly: string[] = [];
export let inboundAllowLoopback = true;
export let inboundAllowDestinations: string[] = [];

/** Reads the list settings (defaults above); false, after logging why, if one is invalid. */
export function loadSettings(): bool {
  credentialAllow = listSetting("credential_allow", D_CREDENTIAL_ALLOW);
  credentialPaths = listSetting("credential_paths", D_CREDENTIAL_PATHS);
  packageManagers = listSetting("package_managers", D_PACKAGE_MANAGERS);
  systemDirs = listSetting("system_dirs", D_SYSTEM_DIRS);
  tmpDirs = listSetting("tmp_dirs", D_TMP_DIRS);
  tmpExecAllow = listSetting("tmp_exec_allow", "[]");
  services = listSetting("services", D_SERVICES);
  serviceShellAllow = listSetting("service_shell_allow", D_SERVICE_SHELL_ALLOW);
  shells = listSetting("shells", D_SHELLS);
  ptraceAllow = listSetting("ptrace_allow", D_PTRACE_ALLOW);
  kernelAllow = listSetting("kernel_allow", D_KERNEL_ALLOW);
  rawSocketAllow = listSetting("raw_socket_allow", D_RAW_SOCKET_ALLOW);
  logDirs = listSetting("log_dirs", D_LOG_DIRS);
  logAllow = listSetting("log_allow", D_LOG_ALLOW);
  historyFiles = listSetting("history_files", D_HISTORY_FILES);
  cloudPaths = listSetting("cloud_credential_paths", D_CLOUD_CREDENTIAL_PATHS);
  cloudAllow = listSetting("cloud_credential_allow", D_CLOUD_CREDENTIAL_ALLOW);
  homeDirs = listSetting("home_dirs", D_HOME_DIRS);
  inboundOnly = listSetting("inbound_only", D_INBOUND_ONLY);
  inboundAllowDestinations = listSetting("inbound_only_allow_destinations", "[]");
  const lb = setting("inbound_only_allow_loopback");
  if (lb !== null) {
    const t = lb.trim();
    if (t == "true") inboundAllowLoopback = true;
    else if (t == "false") inboundAllowLoopback = false;
    else {
      log(LOG_ERROR, "baseline: inbound_only_allow_loopback must be true or false, got " + t);
      return false;
    }
  }
  return true;
}
