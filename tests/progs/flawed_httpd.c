/*
 * flawed_httpd: a small HTTP/1.0 server with two deliberate flaws, the
 * target of tests/attacks/httpd_test.ts (the httpd wrapper, docs/wrappers.md).
 *
 *   flawed_httpd PORT DOCROOT
 *
 * It listens on 127.0.0.1:PORT and serves one connection at a time, one
 * request per connection ("Connection: close"):
 *
 *   GET /path              the file DOCROOT/path (after %XX decoding), 200 / 403 / 404
 *   GET /cgi-bin/NAME?A+B  runs DOCROOT/cgi-bin/NAME with the arguments A, B (CGI/1.1's
 *                          ISINDEX query: split at '+', each part %XX-decoded), its output
 *                          the response body
 *
 * FLAW 1 (path traversal): the decoded path is appended to DOCROOT and opened
 * as it is. Nothing removes "..", so "GET /../../../etc/shadow" (or
 * "/%2e%2e/...") reads any file the server can read.
 *
 * FLAW 2 (CGI path traversal, the IIS "/scripts/..%c0%af../cmd.exe?/c+dir"
 * attack of 2000): NAME is not checked either, so
 * "GET /cgi-bin/../../../../bin/sh?-c+COMMAND" runs /bin/sh -c COMMAND: the
 * query parameter reaches a shell. A CGI program whose name is a plain file
 * in DOCROOT/cgi-bin is the valid use.
 */
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fcntl.h>

#define MAX_ARGS 16

static void say(int fd, const char *text) {
  size_t len = strlen(text);
  while (len > 0) {
    ssize_t n = write(fd, text, len);
    if (n <= 0) return;
    text += n;
    len -= (size_t)n;
  }
}

static int hex(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

/* Decodes %XX in place. */
static void decode(char *s) {
  char *d = s;
  for (; *s; s++) {
    if (*s == '%' && hex(s[1]) >= 0 && hex(s[2]) >= 0) {
      *d++ = (char)(hex(s[1]) * 16 + hex(s[2]));
      s += 2;
    } else {
      *d++ = *s;
    }
  }
  *d = '\0';
}

static void serve_file(int conn, const char *docroot, const char *path) {
  char full[4096];
  if (strcmp(path, "/") == 0) path = "/index.html";
  /* FLAW 1: no check for ".." in path (see the top comment). */
  snprintf(full, sizeof full, "%s%s", docroot, path);
  int fd = open(full, O_RDONLY);
  if (fd < 0) {
    say(conn, errno == ENOENT ? "HTTP/1.0 404 Not Found\r\n\r\nnot found\n"
                              : "HTTP/1.0 403 Forbidden\r\n\r\nforbidden\n");
    return;
  }
  say(conn, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n");
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) {
    if (write(conn, buf, (size_t)n) != n) break;
  }
  close(fd);
}

static void run_cgi(int conn, const char *docroot, char *name_and_query) {
  char program[4096];
  char *argv[MAX_ARGS + 2];
  int argc = 0;
  char *query = strchr(name_and_query, '?');
  if (query) *query++ = '\0';
  decode(name_and_query);
  /* FLAW 2: NAME may contain "..": the program can be any file (see the top comment). */
  snprintf(program, sizeof program, "%s/cgi-bin/%s", docroot, name_and_query);
  argv[argc++] = name_and_query;
  while (query && *query && argc <= MAX_ARGS) {
    char *plus = strchr(query, '+');
    if (plus) *plus++ = '\0';
    decode(query);
    argv[argc++] = query;
    query = plus;
  }
  argv[argc] = NULL;
  say(conn, "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n");
  pid_t pid = fork();
  if (pid == 0) {
    dup2(conn, 1);
    dup2(conn, 2);
    execv(program, argv);
    dprintf(1, "cgi: cannot run %s: %s\n", program, strerror(errno));
    _exit(127);
  }
  if (pid > 0) waitpid(pid, NULL, 0);
}

static void handle(int conn, const char *docroot) {
  char req[8192];
  size_t got = 0;
  /* Read the request head (the request line is all it uses). */
  while (got < sizeof req - 1) {
    ssize_t n = read(conn, req + got, sizeof req - 1 - got);
    if (n <= 0) break;
    got += (size_t)n;
    req[got] = '\0';
    if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n")) break;
  }
  req[got] = '\0';
  char method[16], target[4096];
  if (sscanf(req, "%15s %4095s", method, target) != 2 || strcmp(method, "GET") != 0 || target[0] != '/') {
    if (got > 0) say(conn, "HTTP/1.0 400 Bad Request\r\n\r\nbad request\n");
    return;
  }
  if (strncmp(target, "/cgi-bin/", 9) == 0) {
    run_cgi(conn, docroot, target + 9);
    return;
  }
  char *query = strchr(target, '?');
  if (query) *query = '\0';
  decode(target);
  serve_file(conn, docroot, target);
}

int main(int argc, char **argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: flawed_httpd PORT DOCROOT\n");
    return 2;
  }
  signal(SIGPIPE, SIG_IGN);
  int s = socket(AF_INET, SOCK_STREAM, 0);
  int one = 1;
  setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 16) != 0) {
    perror("flawed_httpd: bind");
    return 1;
  }
  for (;;) {
    int conn = accept(s, NULL, NULL);
    if (conn < 0) continue;
    handle(conn, argv[2]);
    close(conn);
  }
}
