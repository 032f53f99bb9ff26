// Opens a file by one of its aliases, to show a path rule holds on the
// object and not on the string (issue 13). Prints "read <first line>" or
// "errno <n>".
//   aliases path P            open(P)
//   aliases openat2 P         openat2(AT_FDCWD, P)
//   aliases at DIR NAME       openat(open(DIR, O_DIRECTORY), NAME)
//   aliases atpath DIR NAME   openat(open(DIR, O_PATH), NAME)
//   aliases devfd DIR NAME    open("/dev/fd/N/NAME"), N a directory fd of DIR
//   aliases procfd DIR NAME   open("/proc/self/fd/N/NAME")
//   aliases handle FILE       open_by_handle_at(name_to_handle_at(FILE))
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

static int report(int fd)
{
	char buf[256];
	if (fd < 0) {
		printf("errno %d\n", errno);
		return 1;
	}
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0) {
		printf("errno %d\n", errno);
		return 1;
	}
	buf[n] = 0;
	buf[strcspn(buf, "\n")] = 0;
	printf("read %s\n", buf);
	return 0;
}

int main(int argc, char **argv)
{
	char path[4096];
	if (argc < 3)
		return 2;
	const char *mode = argv[1];
	if (!strcmp(mode, "path"))
		return report(open(argv[2], O_RDONLY));
	if (!strcmp(mode, "openat2")) {
		struct open_how how = { .flags = O_RDONLY };
		return report(syscall(SYS_openat2, AT_FDCWD, argv[2], &how, sizeof(how)));
	}
	if (!strcmp(mode, "handle")) {
		struct file_handle *h = malloc(sizeof(*h) + MAX_HANDLE_SZ);
		int mnt;
		h->handle_bytes = MAX_HANDLE_SZ;
		if (name_to_handle_at(AT_FDCWD, argv[2], h, &mnt, 0) < 0) {
			printf("name_to_handle_at errno %d\n", errno);
			return 2;
		}
		int mfd = open("/", O_RDONLY | O_DIRECTORY);
		return report(syscall(SYS_open_by_handle_at, mfd, h, O_RDONLY));
	}
	if (argc < 4)
		return 2;
	int dir = open(argv[2], (!strcmp(mode, "atpath") ? O_PATH : O_RDONLY) | O_DIRECTORY);
	if (dir < 0) {
		printf("dir errno %d\n", errno);
		return 2;
	}
	if (!strcmp(mode, "at") || !strcmp(mode, "atpath"))
		return report(openat(dir, argv[3], O_RDONLY));
	snprintf(path, sizeof(path), "/%s/%d/%s", !strcmp(mode, "devfd") ? "dev/fd" : "proc/self/fd", dir, argv[3]);
	return report(open(path, O_RDONLY));
}
