// binmailish: a back-end mailer with the 4.2BSD binmail flaw (the paper's
// section 4, after STAT's example; CERT-era /bin/mail).
//
//   binmailish SPOOLDIR RECIPIENT < message     (SPOOLDIR defaults to $MAILSPOOL)
//
// It runs as root (the privileged delivery agent), appends the message to
// SPOOLDIR/RECIPIENT and, if that mailbox is not owned by the recipient,
// gives it to the recipient: fchown(recipient) — and keeps the mailbox's
// mode as it found it.
//
// THE BUG: the mode it keeps may have S_ISUID. 4.2BSD's chown left the
// set-uid bit of the file alone; Linux's chown(2) clears it, so binmailish
// restores the mode it found after the chown (fchmod), which has the same
// effect: a mailbox an attacker created with mode 04777 becomes a set-uid
// root file once mail is delivered to root. (Write bytes into it as the
// attacker before, and it is a set-uid root program.)
#define _GNU_SOURCE
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char msg[1 << 16];

int main(int argc, char **argv) {
  const char *spool = argc == 3 ? argv[1] : getenv("MAILSPOOL");
  const char *rcpt = argc == 3 ? argv[2] : argc == 2 ? argv[1] : NULL;
  if (!spool || !rcpt || strchr(rcpt, '/')) {
    fprintf(stderr, "usage: binmailish SPOOLDIR RECIPIENT < message\n");
    return 2;
  }
  struct passwd *pw = getpwnam(rcpt);
  if (!pw) {
    fprintf(stderr, "binmailish: no such user %s\n", rcpt);
    return 1;
  }
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", spool, rcpt);
  int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0600);
  if (fd < 0) {
    perror(path);
    return 1;
  }
  struct stat st;
  if (fstat(fd, &st) < 0) {
    perror("fstat");
    return 1;
  }
  size_t n = fread(msg, 1, sizeof msg - 1, stdin);
  char head[256];
  int hl = snprintf(head, sizeof head, "From binmailish %ld\n", (long)time(NULL));
  if (write(fd, head, (size_t)hl) != hl || write(fd, msg, n) != (ssize_t)n || write(fd, "\n", 1) != 1) {
    perror("write");
    return 1;
  }
  if (st.st_uid != pw->pw_uid) {
    // Give the mailbox to its owner, keeping its mode (the flaw: S_ISUID too).
    if (fchown(fd, pw->pw_uid, pw->pw_gid) < 0) perror("binmailish: fchown");
    else if (fchmod(fd, st.st_mode & 07777) < 0) perror("binmailish: fchmod");
  }
  close(fd);
  printf("binmailish: delivered %zu bytes to %s\n", n, path);
  return 0;
}
