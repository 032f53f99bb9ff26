// Opens argv[1] every 10 ms. After the first success it writes its pid to
// argv[2]; on the first failure it writes "errno N" to argv[3] (opened up
// front: once the supervisor is gone no open can succeed) and exits 3.
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	char line[64];
	int ready = 0, result;

	if (argc < 4)
		return 2;
	result = open(argv[3], O_WRONLY | O_CREAT | O_TRUNC, 0644);
	for (int i = 0; i < 6000; i++) {
		int fd = open(argv[1], O_RDONLY);
		if (fd < 0) {
			int n = snprintf(line, sizeof(line), "errno %d\n", errno);
			(void)!write(result, line, (size_t)n);
			return 3;
		}
		close(fd);
		if (!ready) {
			int pidfile = open(argv[2], O_WRONLY | O_CREAT | O_TRUNC, 0644);
			int n = snprintf(line, sizeof(line), "%d\n", getpid());
			(void)!write(pidfile, line, (size_t)n);
			close(pidfile);
			ready = 1;
		}
		usleep(10000);
	}
	return 0;
}
