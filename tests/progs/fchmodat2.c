// fchmodat2 PATH MODE: chmod by the raw fchmodat2(2) call (Linux 6.6, number
// 452), which glibc does not wrap before 2.39. Prints "fchmodat2: 0" or the
// errno's name.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	long rc;

	if (argc < 3)
		return 2;
	rc = syscall(452, AT_FDCWD, argv[1], strtol(argv[2], NULL, 8), 0);
	printf("fchmodat2: %s\n", rc == 0 ? "0" : strerrorname_np(errno));
	return 0;
}
