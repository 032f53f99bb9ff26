/* Sends one request line on the daemon's control socket and prints the answer line.
   ctl_passed SOCKET REQUEST direct: this process connects (the control).
   ctl_passed SOCKET REQUEST:        a child connects, passes the socket over SCM_RIGHTS and exits (reaped) before
                                      the request is sent: SO_PEERCRED then names a pid that no longer runs. */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>

static int connect_to(const char *path) {
  int s = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un a = {.sun_family = AF_UNIX};
  strncpy(a.sun_path, path, sizeof a.sun_path - 1);
  if (connect(s, (struct sockaddr *)&a, sizeof a)) { perror("connect"); return -1; }
  return s;
}

static int send_fd(int via, int fd) {
  char c = 'x', buf[CMSG_SPACE(sizeof(int))] = {0};
  struct iovec io = {&c, 1};
  struct msghdr m = {.msg_iov = &io, .msg_iovlen = 1, .msg_control = buf, .msg_controllen = sizeof buf};
  struct cmsghdr *h = CMSG_FIRSTHDR(&m);
  h->cmsg_level = SOL_SOCKET; h->cmsg_type = SCM_RIGHTS; h->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(h), &fd, sizeof fd);
  return sendmsg(via, &m, 0) < 0 ? -1 : 0;
}

static int recv_fd(int via) {
  char c, buf[CMSG_SPACE(sizeof(int))];
  struct iovec io = {&c, 1};
  struct msghdr m = {.msg_iov = &io, .msg_iovlen = 1, .msg_control = buf, .msg_controllen = sizeof buf};
  if (recvmsg(via, &m, 0) <= 0 || !CMSG_FIRSTHDR(&m)) return -1;
  int fd;
  memcpy(&fd, CMSG_DATA(CMSG_FIRSTHDR(&m)), sizeof fd);
  return fd;
}

int main(int argc, char **argv) {
  if (argc < 3) { fprintf(stderr, "usage: ctl_passed SOCKET REQUEST [direct]\n"); return 2; }
  int c;
  if (argc > 3) {
    if ((c = connect_to(argv[1])) < 0) return 1;
  } else {
    int sp[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sp)) { perror("socketpair"); return 1; }
    pid_t k = fork();
    if (k == 0) {
      int s = connect_to(argv[1]);
      _exit(s < 0 || send_fd(sp[1], s) ? 1 : 0);
    }
    c = recv_fd(sp[0]);
    waitpid(k, 0, 0);
    if (c < 0) { fprintf(stderr, "no socket passed\n"); return 1; }
  }
  dprintf(c, "%s\n", argv[2]);
  char buf[8192];
  int n;
  while ((n = read(c, buf, sizeof buf - 1)) > 0) {
    buf[n] = 0;
    fputs(buf, stdout);
    if (strchr(buf, '\n')) break;
  }
  return 0;
}
