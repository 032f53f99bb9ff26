// Opens argv[1] every 20 ms for argv[3] seconds, appending "ok" or "errno N"
// per attempt to argv[2] (opened up front), so a test can see when a policy
// change reaches a running process.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char line[32];
	struct timespec start, now;

	if (argc < 4)
		return 2;
	int out = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0644);
	double seconds = atof(argv[3]);
	clock_gettime(CLOCK_MONOTONIC, &start);
	do {
		int fd = open(argv[1], O_RDONLY);
		int n = fd >= 0 ? snprintf(line, sizeof(line), "ok\n") : snprintf(line, sizeof(line), "errno %d\n", errno);
		if (fd >= 0)
			close(fd);
		(void)!write(out, line, (size_t)n);
		usleep(20000);
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while ((now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9 < seconds);
	return 0;
}
