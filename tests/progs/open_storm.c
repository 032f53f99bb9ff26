// Opens argv[1] in a tight loop, without sleeping, for argv[4] seconds, as a
// server retrying a failing accept() would. After the first success it writes
// its pid to argv[2]; at the end it writes how each open ended to argv[3]
// (opened up front: once the supervisor is gone no open may succeed):
// "ok N eperm N enosys N other N".
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	long ok = 0, eperm = 0, enosys = 0, other = 0;
	struct timespec start, now;
	char line[128];
	int result, n;

	if (argc < 5)
		return 2;
	result = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	clock_gettime(CLOCK_MONOTONIC, &start);
	do {
		int fd = open(argv[1], O_RDONLY);

		if (fd >= 0) {
			close(fd);
			if (ok++ == 0) {
				int pidfile = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);

				n = snprintf(line, sizeof(line), "%d\n", getpid());
				(void)!write(pidfile, line, (size_t)n);
				close(pidfile);
			}
		} else if (errno == EPERM) {
			eperm++;
		} else if (errno == ENOSYS) {
			enosys++;
		} else {
			other++;
		}
		clock_gettime(CLOCK_MONOTONIC, &now);
	} while ((now.tv_sec - start.tv_sec) + (now.tv_nsec - start.tv_nsec) / 1e9 < atof(argv[4]));
	n = snprintf(line, sizeof(line), "ok %ld eperm %ld enosys %ld other %ld\n", ok, eperm, enosys, other);
	(void)!write(result, line, (size_t)n);
	return 0;
}
