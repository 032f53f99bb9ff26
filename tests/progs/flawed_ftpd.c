/*
 * flawed_ftpd: a small anonymous FTP server with two deliberate flaws, the
 * target of tests/attacks/ftpd_test.ts (the ftpd wrapper, docs/wrappers.md).
 *
 *   flawed_ftpd PORT PASV_PORT ROOT
 *
 * It chdir()s to ROOT, listens on 127.0.0.1:PORT and serves one session at
 * a time: USER, PASS (anything), SYST, TYPE, PWD, NOOP, PASV (a listening
 * data socket on 127.0.0.1:PASV_PORT), LIST, RETR, SITE EXEC, QUIT.
 *
 * FLAW 1 (path traversal in RETR): the file name is opened relative to
 * ROOT, after a leading "/" is dropped, and nothing removes "..":
 * "RETR ../../etc/shadow" sends any file the server can read.
 *
 * FLAW 2 (SITE EXEC): "SITE EXEC COMMAND" runs /bin/sh -c COMMAND with its
 * output on the control connection. wu-ftpd's SITE EXEC ran programs from
 * ~ftp/bin only, and its bugs let a client out of that directory; here the
 * restriction is missing altogether, as in the servers that shipped the
 * command enabled for "maintenance".
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static void reply(int fd, const char *text) {
  size_t len = strlen(text);
  while (len > 0) {
    ssize_t n = write(fd, text, len);
    if (n <= 0) return;
    text += n;
    len -= (size_t)n;
  }
}

/* One line from the control connection without CR LF; -1 when it closes. */
static int read_line(int fd, char *buf, size_t size) {
  size_t n = 0;
  char c;
  for (;;) {
    ssize_t r = read(fd, &c, 1);
    if (r <= 0) return n == 0 ? -1 : (int)n;
    if (c == '\n') break;
    if (n + 1 < size) buf[n++] = c;
  }
  if (n > 0 && buf[n - 1] == '\r') n--;
  buf[n] = '\0';
  return (int)n;
}

static int listen_on(int port) {
  int s = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 4) != 0) {
    close(s);
    return -1;
  }
  return s;
}

/* The data connection of the last PASV, or -1 with a 425 reply. */
static int data_conn(int ctl, int *pasv) {
  if (*pasv < 0) {
    reply(ctl, "425 Use PASV first.\r\n");
    return -1;
  }
  int d = accept(*pasv, NULL, NULL);
  close(*pasv);
  *pasv = -1;
  if (d < 0) reply(ctl, "425 No data connection.\r\n");
  return d;
}

static void retr(int ctl, int *pasv, const char *name) {
  int d = data_conn(ctl, pasv);
  if (d < 0) return;
  while (*name == '/') name++;
  /* FLAW 1: name may climb out of ROOT with ".." (see the top comment). */
  int fd = open(name[0] ? name : ".", O_RDONLY);
  if (fd < 0) {
    char text[256];
    snprintf(text, sizeof text, "550 %s.\r\n", strerror(errno));
    reply(ctl, text);
    close(d);
    return;
  }
  reply(ctl, "150 Opening data connection.\r\n");
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) {
    if (write(d, buf, (size_t)n) != n) break;
  }
  close(fd);
  close(d);
  reply(ctl, "226 Transfer complete.\r\n");
}

static void list(int ctl, int *pasv) {
  int d = data_conn(ctl, pasv);
  if (d < 0) return;
  DIR *dir = opendir(".");
  if (dir == NULL) {
    reply(ctl, "550 Cannot list.\r\n");
    close(d);
    return;
  }
  reply(ctl, "150 Here comes the listing.\r\n");
  struct dirent *e;
  while ((e = readdir(dir)) != NULL) {
    if (e->d_name[0] == '.') continue;
    reply(d, e->d_name);
    reply(d, "\r\n");
  }
  closedir(dir);
  close(d);
  reply(ctl, "226 Directory send OK.\r\n");
}

static void site_exec(int ctl, const char *command) {
  reply(ctl, "200-Output follows.\r\n");
  pid_t pid = fork();
  if (pid == 0) {
    dup2(ctl, 1);
    dup2(ctl, 2);
    /* FLAW 2: the client's text goes to a shell (see the top comment). */
    execl("/bin/sh", "sh", "-c", command, (char *)NULL);
    dprintf(1, "sh: %s\r\n", strerror(errno));
    _exit(127);
  }
  int status = 0;
  if (pid > 0) waitpid(pid, &status, 0);
  char text[64];
  snprintf(text, sizeof text, "200 Exit status %d.\r\n", WIFEXITED(status) ? WEXITSTATUS(status) : -1);
  reply(ctl, text);
}

static void session(int ctl, int pasv_port) {
  char line[1024];
  int pasv = -1;
  reply(ctl, "220 flawed_ftpd ready.\r\n");
  while (read_line(ctl, line, sizeof line) >= 0) {
    char *arg = strchr(line, ' ');
    if (arg) *arg++ = '\0';
    else arg = line + strlen(line);
    if (!strcasecmp(line, "USER")) reply(ctl, "331 Any password will do.\r\n");
    else if (!strcasecmp(line, "PASS")) reply(ctl, "230 Login successful.\r\n");
    else if (!strcasecmp(line, "SYST")) reply(ctl, "215 UNIX Type: L8\r\n");
    else if (!strcasecmp(line, "TYPE")) reply(ctl, "200 Type set.\r\n");
    else if (!strcasecmp(line, "PWD")) reply(ctl, "257 \"/\"\r\n");
    else if (!strcasecmp(line, "NOOP")) reply(ctl, "200 NOOP ok.\r\n");
    else if (!strcasecmp(line, "PASV")) {
      if (pasv >= 0) close(pasv);
      pasv = listen_on(pasv_port);
      if (pasv < 0) {
        reply(ctl, "425 Cannot open passive connection.\r\n");
        continue;
      }
      char text[128];
      snprintf(text, sizeof text, "227 Entering Passive Mode (127,0,0,1,%d,%d).\r\n", pasv_port >> 8, pasv_port & 255);
      reply(ctl, text);
    } else if (!strcasecmp(line, "RETR")) retr(ctl, &pasv, arg);
    else if (!strcasecmp(line, "LIST")) list(ctl, &pasv);
    else if (!strcasecmp(line, "SITE") && !strncasecmp(arg, "EXEC ", 5)) site_exec(ctl, arg + 5);
    else if (!strcasecmp(line, "QUIT")) {
      reply(ctl, "221 Goodbye.\r\n");
      break;
    } else reply(ctl, "502 Command not implemented.\r\n");
  }
  if (pasv >= 0) close(pasv);
}

int main(int argc, char **argv) {
  if (argc != 4) {
    fprintf(stderr, "usage: flawed_ftpd PORT PASV_PORT ROOT\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  if (chdir(argv[3]) != 0) {
    perror("flawed_ftpd: chdir");
    return 1;
  }
  int s = listen_on(atoi(argv[1]));
  if (s < 0) {
    perror("flawed_ftpd: bind");
    return 1;
  }
  for (;;) {
    int ctl = accept(s, NULL, NULL);
    if (ctl < 0) continue;
    session(ctl, atoi(argv[2]));
    close(ctl);
  }
}
