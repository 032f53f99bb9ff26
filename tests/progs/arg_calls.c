// Makes one kind of call N times and prints how many succeeded and the last
// errno, for the filter-predicate tests (tests/sources/seccomp/predicates_test.ts):
//   arg_calls read PATH N      openat(PATH, O_RDONLY)
//   arg_calls write PATH N     openat(PATH, O_WRONLY)
//   arg_calls highwrite PATH N openat(PATH, O_WRONLY) with garbage in the flags register's high 32 bits (the kernel
//                              reads an int: still a write-open)
//   arg_calls inet N           connect(AF_INET 127.0.0.1:9) on a fresh socket
//   arg_calls unix PATH N      connect(AF_UNIX PATH) on a fresh socket
//   arg_calls signal SIG N     tgkill(self, SIG), SIG ignored
//   arg_calls highsignal SIG N the same with garbage in the signal register's high 32 bits
// Output: "<kind> ok K errno E" (E: the last failure's errno, 0 if none).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

static const unsigned long HIGH = 0x5a5a5a5aUL << 32;

static long open_one(const char *kind, const char *path)
{
	if (!strcmp(kind, "read"))
		return syscall(SYS_openat, AT_FDCWD, path, (unsigned long)O_RDONLY);
	if (!strcmp(kind, "write"))
		return syscall(SYS_openat, AT_FDCWD, path, (unsigned long)O_WRONLY);
	return syscall(SYS_openat, AT_FDCWD, path, HIGH | O_WRONLY);
}

static long connect_one(const char *kind, const char *path)
{
	int s = socket(!strcmp(kind, "inet") ? AF_INET : AF_UNIX, SOCK_STREAM, 0);
	if (s < 0)
		return -1;
	long r;
	if (!strcmp(kind, "inet")) {
		struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(9) };
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		r = connect(s, (struct sockaddr *)&a, sizeof(a));
	} else {
		struct sockaddr_un a = { .sun_family = AF_UNIX };
		strncpy(a.sun_path, path, sizeof(a.sun_path) - 1);
		r = connect(s, (struct sockaddr *)&a, sizeof(a));
	}
	int saved = errno;
	close(s);
	errno = saved;
	return r;
}

int main(int argc, char **argv)
{
	if (argc < 3)
		return 2;
	const char *kind = argv[1];
	int inet = !strcmp(kind, "inet");
	const char *arg = inet ? "" : argv[2];
	int n = atoi(argv[inet ? 2 : 3]);
	int ok = 0, err = 0;
	int sig = 0;
	if (strstr(kind, "signal")) {
		sig = atoi(arg);
		signal(sig, SIG_IGN);
	}
	for (int i = 0; i < n; i++) {
		long r;
		if (!strcmp(kind, "read") || !strcmp(kind, "write") || !strcmp(kind, "highwrite")) {
			r = open_one(kind, arg);
			if (r >= 0)
				close((int)r);
		} else if (inet || !strcmp(kind, "unix")) {
			r = connect_one(kind, arg);
		} else if (!strcmp(kind, "signal")) {
			r = syscall(SYS_tgkill, getpid(), gettid(), (unsigned long)sig);
		} else if (!strcmp(kind, "highsignal")) {
			r = syscall(SYS_tgkill, getpid(), gettid(), HIGH | (unsigned long)sig);
		} else {
			return 2;
		}
		if (r >= 0)
			ok++;
		else
			err = errno;
	}
	printf("%s ok %d errno %d\n", kind, ok, err);
	return 0;
}
