// Opens argv[1] argv[2] times as fast as it can: a burst of notified calls.
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	int n = atoi(argv[2]);
	for (int i = 0; i < n; i++) {
		int fd = open(argv[1], O_RDONLY);
		if (fd >= 0)
			close(fd);
	}
	return 0;
}
