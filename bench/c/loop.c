// SPDX-License-Identifier: GPL-2.0-only
/*
 * loop N MODE [OUTFILE] - make N raw system calls and report the elapsed ns.
 *
 * MODE "notified" calls getppid (in the benchmark's notified set), "plain"
 * calls getuid (never notified), "write" writes 4 KiB to /dev/null (a call
 * with a buffer argument).  Raw syscall(2) so no libc caching hides the
 * kernel entry.  The number goes to OUTFILE when given, since under idwrap
 * stdout is the terminal's, not the benchmark's; otherwise to stdout.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define WARM_UP 1000

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);	/* vDSO: no system call */
	return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	long long n, i, start, elapsed;
	long nr, a0 = 0, a1 = 0, a2 = 0;
	static char buf[4096];
	FILE *out = stdout;

	if (argc < 3 || argc > 4 ||
	    (strcmp(argv[2], "notified") && strcmp(argv[2], "plain") && strcmp(argv[2], "write"))) {
		fprintf(stderr, "usage: loop N notified|plain|write [OUTFILE]\n");
		return 2;
	}
	n = atoll(argv[1]);
	nr = strcmp(argv[2], "notified") == 0 ? SYS_getppid : SYS_getuid;
	if (strcmp(argv[2], "write") == 0) {
		nr = SYS_write;
		a0 = open("/dev/null", O_WRONLY);
		a1 = (long)buf;
		a2 = sizeof(buf);
	}

	/* Warm caches, the branch predictor and (under idwrap) the supervisor's JIT. */
	for (i = 0; i < WARM_UP; i++)
		syscall(nr, a0, a1, a2);
	start = now_ns();
	for (i = 0; i < n; i++)
		syscall(nr, a0, a1, a2);
	elapsed = now_ns() - start;

	if (argc == 4 && !(out = fopen(argv[3], "w"))) {
		perror(argv[3]);
		return 1;
	}
	fprintf(out, "%lld\n", elapsed);
	return fclose(out) == 0 ? 0 : 1;
}
