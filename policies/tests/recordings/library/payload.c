/* Code injected into a service (LD_PRELOAD standing in for a remote code execution), for the library's recordings
 * and tests/policy/library_live_test.ts. In a program whose executable is nginx it starts a shell the way a payload
 * does (execlp: a PATH search whose first tries fail), and connects to each PAYLOAD_CONNECT "ADDR:PORT". */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static void connect_to(const char *spec) {
  char host[64];
  int port;
  if (sscanf(spec, "%63[^:]:%d", host, &port) != 2) return;
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
  if (inet_pton(AF_INET, host, &a.sin_addr) != 1) return;
  int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  if (s < 0) return;
  connect(s, (struct sockaddr *)&a, sizeof a);
  close(s);
}

__attribute__((constructor)) static void payload(void) {
  char exe[256];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n < 0) return;
  exe[n] = 0;
  if (!strstr(exe, "nginx")) return;
  unsetenv("LD_PRELOAD");
  const char *shell = getenv("PAYLOAD_SHELL");
  if (shell) {
    pid_t c = fork();
    if (c == 0) {
      setenv("PATH", "/nonexistent-a:/nonexistent-b:/usr/bin:/bin", 1);
      execlp("sh", "sh", "-c", shell, (char *)0);
      _exit(127);
    }
    waitpid(c, 0, 0);
  }
  const char *targets = getenv("PAYLOAD_CONNECT");
  if (targets) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s", targets);
    for (char *t = strtok(buf, ","); t; t = strtok(0, ",")) connect_to(t);
  }
}
