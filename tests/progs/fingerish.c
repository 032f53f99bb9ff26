/*
 * fingerish: a tiny finger server for the fingerd wrapper's tests
 * (docs/wrappers.md, "fingerd"). Like fingerd run from inetd, it reads one
 * request from stdin, a user name ending in CRLF or LF, and answers on
 * stdout with the user's password entry and ~/.plan.
 *
 * It has one code path and no options: the request is read with a bounded
 * fgets, and it is answered only if it is a plain user name (1-32 of
 * [A-Za-z0-9._-], not starting with '-' or '.'); anything else — "/W",
 * "user@host" forwarding, an empty line, an overlong line — gets
 * "finger: bad request". Nothing from the request reaches a format string,
 * a shell or a path other than through getpwnam's answer. The plan is
 * opened read-only, O_NOFOLLOW is not used on purpose (a real fingerd
 * follows a ~/.plan symlink: that is what the wrapper must judge).
 */
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MAX_NAME 32

static int valid_name(const char *s) {
  size_t n = strlen(s);
  if (n == 0 || n > MAX_NAME || s[0] == '-' || s[0] == '.') return 0;
  for (size_t i = 0; i < n; i++) {
    char c = s[i];
    int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
             c == '-';
    if (!ok) return 0;
  }
  return 1;
}

static void print_file(const char *dir, const char *name, const char *label) {
  char path[4096];
  if (snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path) return;
  int fd = open(path, O_RDONLY);
  if (fd < 0) {
    if (errno == ENOENT) printf("No %s.\n", label);
    else printf("%s: %s\n", label, strerror(errno));
    return;
  }
  printf("%s:\n", label);
  fflush(stdout);
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) {
    if (write(STDOUT_FILENO, buf, (size_t)n) != n) break;
  }
  close(fd);
}

int main(void) {
  char line[MAX_NAME + 3]; /* name, CR, LF, NUL */
  if (fgets(line, sizeof line, stdin) == NULL) {
    puts("finger: bad request");
    return 1;
  }
  size_t n = strlen(line);
  if (n == 0 || line[n - 1] != '\n') { /* overlong or unterminated */
    puts("finger: bad request");
    return 1;
  }
  line[--n] = '\0';
  if (n > 0 && line[n - 1] == '\r') line[--n] = '\0';
  if (!valid_name(line)) {
    puts("finger: bad request");
    return 1;
  }
  struct passwd *pw = getpwnam(line);
  if (pw == NULL) {
    printf("finger: %s: no such user.\n", line);
    return 1;
  }
  printf("Login: %s\tName: %s\nDirectory: %s\tShell: %s\n", pw->pw_name, pw->pw_gecos, pw->pw_dir, pw->pw_shell);
  print_file(pw->pw_dir, ".project", "Project");
  print_file(pw->pw_dir, ".plan", "Plan");
  return 0;
}
