// Reads a file (argv[1], default /etc/shadow) and says whether it could: "READ n" or "DENIED errno".
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
int main(int argc, char **argv)
{
	int fd = open(argc > 1 ? argv[1] : "/etc/shadow", O_RDONLY);
	if (fd < 0) { printf("DENIED %s\n", strerror(errno)); return 1; }
	char b[8]; int n = read(fd, b, sizeof b);
	printf("READ %d\n", n);
	return 0;
}
