/* The privilege recording's programs: "escalate" (a user's process asking for uid 0, gid 0 and every capability)
 * and "inject" (ptrace attach to a child, peek, detach: the first steps of injecting code into a process). */
#define _GNU_SOURCE
#include <linux/capability.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv) {
  if (argc > 1 && !strcmp(argv[1], "escalate")) {
    int u = setuid(0), g = setgid(0);
    struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3, .pid = 0};
    struct __user_cap_data_struct d[2] = {{~0u, ~0u, ~0u}, {~0u, ~0u, ~0u}};
    int c = syscall(SYS_capset, &h, d);
    printf("setuid=%d setgid=%d capset=%d\n", u, g, c);
    return 0;
  }
  if (argc > 1 && !strcmp(argv[1], "inject")) {
    pid_t child = fork();
    if (child == 0) {
      pause();
      _exit(0);
    }
    long a = ptrace(PTRACE_ATTACH, child, 0, 0);
    waitpid(child, 0, 0);
    long d = ptrace(PTRACE_DETACH, child, 0, 0);
    kill(child, SIGKILL);
    waitpid(child, 0, 0);
    printf("attach=%ld detach=%ld\n", a, d);
    return 0;
  }
  return 2;
}
