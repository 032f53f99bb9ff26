/*
 * finger_stub: the finger program flawed_fingerd runs to answer a query in
 * tests/attacks/fingerd_test.ts (Debian has no /usr/bin/finger by default).
 * For each user name in argv it prints the password entry, as finger does;
 * "-l" (from a "/W" query) is accepted and ignored.
 */
#include <pwd.h>
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv) {
  int users = 0;
  for (int i = 1; i < argc; i++) {
    if (strcmp(argv[i], "-l") == 0) continue;
    users++;
    struct passwd *pw = getpwnam(argv[i]);
    if (pw == NULL) {
      printf("finger: %s: no such user.\n", argv[i]);
      continue;
    }
    printf("Login: %s\tName: %s\nDirectory: %s\tShell: %s\n", pw->pw_name, pw->pw_gecos, pw->pw_dir,
           pw->pw_shell);
  }
  if (users == 0) printf("No one logged on.\n");
  return 0;
}
