/*
 * baseline_actions: one suspicious action per subcommand, for the baseline
 * wrapper's battery (tests/baseline/battery_test.ts). Modelled on the
 * falcosecurity event-generator actions; every action is harmless (it
 * fails, or undoes itself, or acts only on its own child or temp files).
 * Prints "ok" or "errno N" for the action's main call; exits 0.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/if_ether.h>

static volatile long target_word = 1;

static int report(long r) {
  if (r < 0) printf("errno %d\n", errno);
  else printf("ok\n");
  return 0;
}

static pid_t idle_child(void) {
  pid_t c = fork();
  if (c == 0) {
    for (;;) pause();
  }
  return c;
}

static void reap(pid_t c) {
  kill(c, SIGKILL);
  waitpid(c, NULL, 0);
}

int main(int argc, char **argv) {
  if (argc < 2) return 2;
  const char *a = argv[1];
  if (!strcmp(a, "setuid-open") && argc > 2) { /* open(O_CREAT) with mode 04755 */
    int fd = open(argv[2], O_WRONLY | O_CREAT | O_EXCL, 04755);
    if (fd >= 0) close(fd);
    return report(fd);
  }
  if (!strcmp(a, "shadow-at")) { /* read /etc/shadow relative to a directory fd */
    int dir = open("/etc", O_RDONLY | O_DIRECTORY);
    int fd = openat(dir, "shadow", O_RDONLY);
    if (fd >= 0) close(fd);
    return report(fd);
  }
  if (!strcmp(a, "memfd-exec")) { /* copy /bin/true into a memfd and fexecve it */
    int fd = memfd_create("payload", MFD_CLOEXEC);
    int in = open("/bin/true", O_RDONLY);
    char buf[65536];
    ssize_t n;
    while ((n = read(in, buf, sizeof buf)) > 0) write(fd, buf, n);
    close(in);
    char *args[] = {"payload", NULL};
    char *env[] = {NULL};
    syscall(SYS_execveat, fd, "", args, env, AT_EMPTY_PATH);
    return report(-1);
  }
  if (!strcmp(a, "serve-shell")) { /* listen on a socket, then a child runs a shell */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bind(s, (struct sockaddr *)&sa, sizeof sa);
    if (listen(s, 1) < 0) return report(-1);
    pid_t c = fork();
    if (c == 0) {
      execl("/bin/sh", "sh", "-c", "true", (char *)NULL);
      _exit(127);
    }
    int st;
    waitpid(c, &st, 0);
    close(s);
    return report(0);
  }
  if (!strcmp(a, "ptrace")) { /* attach to a child, detach */
    pid_t c = idle_child();
    long r = ptrace(PTRACE_ATTACH, c, 0, 0);
    if (r == 0) {
      waitpid(c, NULL, 0);
      ptrace(PTRACE_DETACH, c, 0, 0);
    }
    reap(c);
    return report(r);
  }
  if (!strcmp(a, "vm-writev")) { /* write one word into a child's memory */
    pid_t c = idle_child();
    long v = 2;
    struct iovec local = {&v, sizeof v}, remote = {(void *)&target_word, sizeof v};
    long r = process_vm_writev(c, &local, 1, &remote, 1, 0);
    reap(c);
    return report(r);
  }
  if (!strcmp(a, "proc-mem")) { /* open a child's /proc/PID/mem for writing */
    pid_t c = idle_child();
    char p[64];
    snprintf(p, sizeof p, "/proc/%d/mem", c);
    int fd = open(p, O_WRONLY);
    if (fd >= 0) close(fd);
    reap(c);
    return report(fd);
  }
  if (!strcmp(a, "finit-module")) { /* /dev/null is no module: fails anyway */
    int fd = open("/dev/null", O_RDONLY);
    return report(syscall(SYS_finit_module, fd, "", 0));
  }
  if (!strcmp(a, "bpf")) { /* BPF_PROG_LOAD with an empty attr: EINVAL */
    char attr[128];
    memset(attr, 0, sizeof attr);
    return report(syscall(SYS_bpf, 5, attr, sizeof attr));
  }
  if (!strcmp(a, "mount") && argc > 2) { /* an unknown filesystem type: ENODEV */
    return report(mount("none", argv[2], "idwrap-no-such-fs", 0, NULL));
  }
  if (!strcmp(a, "unshare")) { /* a new UTS namespace, for this process only */
    return report(unshare(CLONE_NEWUTS));
  }
  if (!strcmp(a, "kexec")) { /* kexec_file_load of no file: EBADF */
    return report(syscall(SYS_kexec_file_load, -1, -1, 1UL, "", 0UL));
  }
  if (!strcmp(a, "raw-socket")) {
    int s = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);
    if (s >= 0) close(s);
    return report(s);
  }
  if (!strcmp(a, "packet-socket")) {
    int s = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    if (s >= 0) close(s);
    return report(s);
  }
  if ((!strcmp(a, "udp-connect") || !strcmp(a, "udp-sendto")) && argc > 3) {
    /* connect a UDP socket (no packet leaves: it only sets the peer) or send one datagram, to each HOST PORT */
    long r = 0;
    for (int i = 2; i + 1 < argc; i += 2) {
      struct sockaddr_storage ss;
      memset(&ss, 0, sizeof ss);
      socklen_t len;
      struct sockaddr_in *in4 = (struct sockaddr_in *)&ss;
      struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
      if (inet_pton(AF_INET, argv[i], &in4->sin_addr) == 1) {
        in4->sin_family = AF_INET;
        in4->sin_port = htons(atoi(argv[i + 1]));
        len = sizeof *in4;
      } else if (inet_pton(AF_INET6, argv[i], &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(atoi(argv[i + 1]));
        len = sizeof *in6;
      } else {
        return 2;
      }
      int s = socket(ss.ss_family, SOCK_DGRAM, 0);
      if (!strcmp(a, "udp-connect")) r = connect(s, (struct sockaddr *)&ss, len);
      else r = sendto(s, "x", 1, 0, (struct sockaddr *)&ss, len);
      close(s);
    }
    return report(r);
  }
  return 2;
}
