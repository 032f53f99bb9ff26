// Opens argv[1] argv[2] times, one at a time, and counts the outcomes by
// errno: a test of records before answers tells the answers the host gave
// (a rule's errno) from the fail mode's (another errno) and from opens that
// ran after supervision ended (successes). Prints a "." per call (unbuffered,
// so a test sees when the calls stall), then "ok N EACCES N EPERM N other N".
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	long n = atol(argv[2]), ok = 0, eacces = 0, eperm = 0, other = 0;
	setvbuf(stdout, NULL, _IONBF, 0);
	for (long i = 0; i < n; i++) {
		int fd = open(argv[1], O_RDONLY);
		if (fd >= 0) {
			ok++;
			close(fd);
		} else if (errno == EACCES) {
			eacces++;
		} else if (errno == EPERM) {
			eperm++;
		} else {
			other++;
		}
		putchar('.');
	}
	printf("\nok %ld EACCES %ld EPERM %ld other %ld\n", ok, eacces, eperm, other);
	return 0;
}
