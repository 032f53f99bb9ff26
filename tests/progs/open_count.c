// Opens argv[1] argv[2] times as fast as it can (an alert flood when a rule
// alerts on the path). Every 1000 opens it prints "progress N" (N opens that
// succeeded so far), and at the end the total, so a test knows how many calls
// were answered before it acts.
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	long n = atol(argv[2]), ok = 0;
	for (long i = 0; i < n; i++) {
		int fd = open(argv[1], O_RDONLY);
		if (fd >= 0) {
			ok++;
			close(fd);
		}
		if ((i + 1) % 1000 == 0) {
			printf("progress %ld\n", ok);
			fflush(stdout);
		}
	}
	printf("%ld\n", ok);
	fflush(stdout);
	return 0;
}
