// Asks for an io_uring: must be refused (EPERM) under idwrap.
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(void)
{
	unsigned char params[120];

	memset(params, 0, sizeof(params));
	long fd = syscall(SYS_io_uring_setup, 8, params);
	if (fd >= 0) {
		printf("io_uring_setup ok\n");
		return 0;
	}
	printf("io_uring_setup errno %d\n", errno);
	return 1;
}
