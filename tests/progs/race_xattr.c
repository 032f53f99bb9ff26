// Watson-style race on an xattr name (issue 13, kmod item 2): a thread flips the name between an allowed and a
// denied one (same length) while the main thread calls setxattr on FILE. A "win" is the denied attribute set;
// each is removed again. Prints "calls N wins W"; exits 1 on a win.
//   race_xattr FILE ALLOWED DENIED ROUNDS
// Also: race_xattr openat2 PATH — one openat2 of PATH: "openat2 fd" or "openat2 refused: ERR".
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>

static char name[256], allowed[256], denied[256];
static atomic_int stop;

static void *flip(void *unused)
{
	(void)unused;
	while (!atomic_load(&stop)) {
		memcpy(name, denied, strlen(denied));
		memcpy(name, allowed, strlen(allowed));
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "openat2")) {
		struct open_how how = { .flags = O_RDONLY };
		long fd = syscall(SYS_openat2, AT_FDCWD, argv[2], &how, sizeof(how));
		if (fd >= 0)
			printf("openat2 fd\n");
		else
			printf("openat2 refused: %s\n", strerror(errno));
		return 0;
	}
	if (argc < 5 || strlen(argv[2]) != strlen(argv[3]))
		return 2;
	const char *file = argv[1];
	strcpy(allowed, argv[2]);
	strcpy(denied, argv[3]);
	strcpy(name, allowed);
	int rounds = atoi(argv[4]), ok = 0, wins = 0;
	char v[8];
	pthread_t t;
	pthread_create(&t, NULL, flip, NULL);
	for (int i = 0; i < rounds; i++) {
		ok += setxattr(file, name, "v", 1, 0) == 0;
		if (getxattr(file, denied, v, sizeof(v)) >= 0) {
			wins++;
			removexattr(file, denied);
		}
	}
	atomic_store(&stop, 1);
	pthread_join(t, NULL);
	printf("calls %d wins %d\n", ok, wins);
	return wins ? 1 : 0;
}
