// Times N path calls of one kind (bench/paths_bench.ts); prints the loop's
// elapsed nanoseconds. DIR holds f (a file), l (a symbolic link to f).
//   path_calls open|open-link|stat|chmod|rename N DIR
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char f[512], l[512], g[512];
	struct stat st;
	struct timespec a, b;
	if (argc < 4)
		return 2;
	long n = atol(argv[2]);
	snprintf(f, sizeof(f), "%s/f", argv[3]);
	snprintf(l, sizeof(l), "%s/l", argv[3]);
	snprintf(g, sizeof(g), "%s/g", argv[3]);
	const char *call = argv[1];
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++) {
		int r = 0;
		if (!strcmp(call, "open") || !strcmp(call, "open-link")) {
			int fd = open(call[4] ? l : f, O_RDONLY);
			r = fd < 0 ? -1 : close(fd);
		} else if (!strcmp(call, "stat"))
			r = stat(f, &st);
		else if (!strcmp(call, "chmod"))
			r = chmod(f, i & 1 ? 0644 : 0640);
		else if (!strcmp(call, "rename"))
			r = i & 1 ? rename(g, f) : rename(f, g);
		else
			return 2;
		if (r < 0) {
			perror(call);
			return 1;
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("%lld\n", (long long)(b.tv_sec - a.tv_sec) * 1000000000LL + (b.tv_nsec - a.tv_nsec));
	return 0;
}
