// Reaches a process's /proc entries through another procfs mount than /proc
// (red-team finding F1): root with CAP_SYS_ADMIN in a private mount namespace
// mounts a second procfs, or bind-mounts /proc/PID, and opens PID's mem there.
//
//   procmount proc|bind|bind-mem DIR PID|parent
//     proc      mount procfs at DIR, open DIR/PID/mem
//     bind      bind-mount /proc/PID at DIR, open DIR/mem
//     bind-mem  bind-mount /proc/PID/mem on the file DIR/mem, open it
//
// Prints "mount: 0|ERRNO" and "mem: 0|ERRNO" (0: opened O_RDWR), then, when
// opened, "pread: N" (a byte read at PID's first mapping). Exit 0, 2 on usage.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

static const char *err(int rc)
{
	static char buf[32];
	if (rc >= 0) return "0";
	snprintf(buf, sizeof(buf), "%s", strerrorname_np(errno) ? strerrorname_np(errno) : "?");
	return buf;
}

int main(int argc, char **argv)
{
	if (argc != 4) return 2;
	const char *how = argv[1], *dir = argv[2];
	pid_t pid = strcmp(argv[3], "parent") ? atoi(argv[3]) : getppid();
	char src[64], path[512], maps[512];
	int rc;

	if (unshare(CLONE_NEWNS) < 0) printf("unshare: %s\n", err(-1));
	mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
	mkdir(dir, 0700);
	if (!strcmp(how, "proc")) {
		rc = mount("proc", dir, "proc", 0, NULL);
		snprintf(path, sizeof(path), "%s/%d/mem", dir, pid);
		snprintf(maps, sizeof(maps), "%s/%d/maps", dir, pid);
	} else if (!strcmp(how, "bind")) {
		snprintf(src, sizeof(src), "/proc/%d", pid);
		rc = mount(src, dir, NULL, MS_BIND, NULL);
		snprintf(path, sizeof(path), "%s/mem", dir);
		snprintf(maps, sizeof(maps), "%s/maps", dir);
	} else if (!strcmp(how, "bind-mem")) {
		snprintf(src, sizeof(src), "/proc/%d/mem", pid);
		snprintf(path, sizeof(path), "%s/mem", dir);
		close(open(path, O_CREAT | O_WRONLY, 0600));
		rc = mount(src, path, NULL, MS_BIND, NULL);
		snprintf(maps, sizeof(maps), "/proc/%d/maps", pid);
	} else {
		return 2;
	}
	printf("mount: %s\n", err(rc));
	int fd = open(path, O_RDWR);
	printf("mem: %s\n", err(fd));
	if (fd >= 0) {
		unsigned long addr = 0;
		FILE *f = fopen(maps, "r");
		if (f) {
			if (fscanf(f, "%lx", &addr) != 1) addr = 0;
			fclose(f);
		}
		unsigned char b;
		printf("pread: %zd\n", pread(fd, &b, 1, addr));
	}
	return 0;
}
