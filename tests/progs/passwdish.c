// passwdish: a set-uid-root-style password changer, after the password
// program of the paper's section 3.1, with the classic passwd/chfn flaw.
//
//   passwdish [FILE] NEWPASS      (FILE defaults to $PASSWDISH_FILE)
//
// It changes the password field (the 2nd) of the entry whose uid is the
// invoker's real uid (getuid(): the program runs with effective uid 0, as a
// set-uid-root program does) in a passwd-format FILE, and stores NEWPASS
// there as given (as `chpasswd -e` stores an already-encrypted password).
//
// THE BUG: NEWPASS is never checked for ':' or '\n'. A "password" such as
// "x:0:0:r:/root:/bin/sh\nz" rewrites the invoker's uid, gid, home and
// shell fields (and adds an entry), which is what passwd must never allow.
//
// The file is edited in place: read it, build the new content, lseek to 0,
// write() it in one call (writev() with PASSWDISH_WRITEV=1), ftruncate to
// the new length. If the write fails
// the file is left as it was (nothing is truncated).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>

static char buf[1 << 16];
static char out[1 << 17];

int main(int argc, char **argv) {
  const char *file = getenv("PASSWDISH_FILE");
  const char *pass;
  if (argc == 3) {
    file = argv[1];
    pass = argv[2];
  } else if (argc == 2 && file) {
    pass = argv[1];
  } else {
    fprintf(stderr, "usage: passwdish [FILE] NEWPASS (or PASSWDISH_FILE=FILE)\n");
    return 2;
  }
  uid_t me = getuid();
  int fd = open(file, O_RDWR);
  if (fd < 0) {
    perror(file);
    return 1;
  }
  ssize_t n = 0, r;
  while ((r = read(fd, buf + n, sizeof buf - 1 - n)) > 0) n += r;
  if (r < 0) {
    perror("read");
    return 1;
  }
  buf[n] = 0;
  size_t o = 0;
  int found = 0;
  for (char *line = buf; *line;) {
    char *end = strchr(line, '\n');
    size_t len = end ? (size_t)(end - line) : strlen(line);
    // Fields: name:pw:uid:gid:gecos:home:shell
    char *c1 = memchr(line, ':', len);
    char *c2 = c1 ? memchr(c1 + 1, ':', len - (c1 + 1 - line)) : NULL;
    if (!found && c2 && (uid_t)strtoul(c2 + 1, NULL, 10) == me) {
      found = 1;
      size_t head = (size_t)(c1 + 1 - line), tail = len - (size_t)(c2 - line);
      size_t plen = strlen(pass);
      if (o + head + plen + tail + 1 > sizeof out) {
        fprintf(stderr, "passwdish: too long\n");
        return 1;
      }
      memcpy(out + o, line, head), o += head;
      memcpy(out + o, pass, plen), o += plen; // no check for ':' or '\n'
      memcpy(out + o, c2, tail), o += tail;
    } else {
      if (o + len + 1 > sizeof out) return 1;
      memcpy(out + o, line, len), o += len;
    }
    if (end) out[o++] = '\n';
    line = end ? end + 1 : line + len;
  }
  if (!found) {
    fprintf(stderr, "passwdish: no entry for uid %u\n", (unsigned)me);
    return 1;
  }
  if (lseek(fd, 0, SEEK_SET) < 0) {
    perror("lseek");
    return 1;
  }
  // PASSWDISH_WRITEV=1: the same bytes through writev(2).
  struct iovec iov = {out, o};
  ssize_t w = getenv("PASSWDISH_WRITEV") ? writev(fd, &iov, 1) : write(fd, out, o);
  if (w != (ssize_t)o) {
    fprintf(stderr, "passwdish: cannot write %s: %s\n", file, w < 0 ? strerror(errno) : "short write");
    return 1;
  }
  if (ftruncate(fd, (off_t)o) < 0) {
    perror("ftruncate");
    return 1;
  }
  close(fd);
  printf("passwdish: password changed for uid %u\n", (unsigned)me);
  return 0;
}
