/*
 * flawed_fingerd: a finger daemon in the manner of 4.3BSD's (the one the
 * 1988 Internet worm broke into), the target of tests/attacks/fingerd_test.ts
 * (the fingerd wrapper, docs/wrappers.md).
 *
 *   flawed_fingerd PORT FINGER
 *
 * It listens on 127.0.0.1:PORT (standalone, where 4.3BSD's ran from inetd)
 * and, for each connection, forks a child with the socket as its stdin,
 * stdout and stderr, which reads the one-line query with gets(), splits it
 * into words ("/W" becomes "-l") and runs the finger program FINGER
 * (normally /usr/bin/finger) with them in a grandchild, copying its output
 * to the socket with LF made CR LF, as 4.3BSD's fingerd did; then the child
 * returns from answer() and exits.
 *
 * THE FLAW (deliberate): gets() into a 512-byte buffer, as in 4.3BSD. There
 * the buffer was a local of main and the worm's 536-byte query overwrote
 * main's return address with the address of code it had sent in the same
 * query. The tests exploit it two ways:
 *
 *  - a query of 512 bytes followed by "/bin/sh" overflows into the next
 *    field of struct query, the path of the program the daemon execs, so it
 *    execs /bin/sh with the query's words as arguments ("-c COMMAND"). Being
 *    a field of one struct, the overwrite does not depend on how the
 *    compiler lays out locals and stays inside the struct, where no stack
 *    canary sees it; no address is needed, so ASLR and PIE do not matter;
 *  - a longer query runs on over answer()'s saved return address, as the
 *    worm's did, and answer() returns into code sent in the query. That
 *    needs 1988's machine: a copy built with an executable stack and no
 *    stack protector, run without ASLR (tests/attacks/fingerd_test.ts).
 *
 * ac is set after gets() (as 4.3BSD set its word count), so the longer
 * query's overwrite of the locals above the struct does not matter.
 */
#include <errno.h>
#include <ctype.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

char *gets(char *s); /* gone from C11's <stdio.h>, still in glibc: this program is about its use */

#define MAX_WORDS 16

struct query {
  char line[512];   /* the query, read with gets(): THE FLAW */
  char program[64]; /* the program that answers it */
};

/* Answers the query on stdin with finger's output on stdout, as 4.3BSD's did: through a pipe, LF made CR LF. */
static int answer(const char *finger) {
  struct query q;
  char *av[MAX_WORDS + 2];
  int ac, p[2], c, status = 0;
  snprintf(q.program, sizeof q.program, "%s", finger);
  q.line[0] = '\0';
  if (gets(q.line) == NULL) return 0;
  av[0] = "finger";
  ac = 1;
  char *sp = q.line;
  while (ac <= MAX_WORDS) {
    while (isspace((unsigned char)*sp)) sp++;
    if (!*sp) break;
    if (sp[0] == '/' && (sp[1] == 'W' || sp[1] == 'w')) {
      sp += 2;
      av[ac++] = "-l";
      continue;
    }
    av[ac++] = sp;
    while (*sp && !isspace((unsigned char)*sp)) sp++;
    if (*sp) *sp++ = '\0';
  }
  av[ac] = NULL;
  if (pipe(p) < 0) return 1;
  pid_t pid = fork();
  if (pid == 0) {
    close(p[0]);
    dup2(p[1], 1);
    dup2(p[1], 2);
    close(p[1]);
    execv(q.program, av);
    printf("fingerd: cannot run %s: %s\n", q.program, strerror(errno));
    fflush(stdout);
    _exit(1);
  }
  close(p[1]);
  FILE *fp = fdopen(p[0], "r");
  while ((c = getc(fp)) != EOF) {
    if (c == '\n') putchar('\r');
    putchar(c);
  }
  fclose(fp);
  fflush(stdout);
  waitpid(pid, &status, 0);
  return status;
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: flawed_fingerd PORT FINGER\n");
    return 2;
  }
  signal(SIGCHLD, SIG_IGN); /* no zombies */
  int s = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 16) != 0) {
    perror("flawed_fingerd: bind");
    return 1;
  }
  for (;;) {
    int conn = accept(s, NULL, NULL);
    if (conn < 0) continue;
    if (fork() == 0) {
      close(s);
      dup2(conn, 0);
      dup2(conn, 1);
      dup2(conn, 2);
      close(conn);
      signal(SIGCHLD, SIG_DFL);
      _exit(answer(argv[2]) == 0 ? 0 : 1);
    }
    close(conn);
  }
}
