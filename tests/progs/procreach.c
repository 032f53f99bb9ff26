// Ways into another process through what the kernel guards with its ptrace access check (issue 13, kmod): its /proc
// magic links, mem, environ, map_files/, ptrace, process_vm_readv, pidfd_getfd. Root in a wrapped tree aims them at
// idwrap (tests/sources/kmod/ptrace_guard_vm_test.ts); a decoy process outside the tree is the control.
//   procreach ATTACK PID [FILE]
//   fd PID FILE       open /proc/PID/fd/N for every N; "fd ok N" when one is FILE (same device and inode)
//   root PID FILE     open /proc/PID/root/FILE (FILE absolute)
//   cwd PID           readlink /proc/PID/cwd, then open /proc/PID/cwd as a directory
//   mem PID           open /proc/PID/mem, read a byte at the first readable mapping (0x400000 if maps is refused)
//   environ PID       open and read /proc/PID/environ
//   map_files PID     open the first entry of /proc/PID/map_files/
//   dirfd PID FILE    openat(open("/proc/PID"), "fd/N") for every N; ok when one is FILE
//   symlink PID FILE  a symlink to /proc/PID/fd/N for every N, opened; ok when one is FILE
//   vmread PID        process_vm_readv of a byte, as mem
//   ptrace PID        PTRACE_ATTACH, wait for the stop, PTRACE_DETACH
//   getfd PID FILE    pidfd_open(PID), pidfd_getfd of fds 0..1023; ok when one is FILE
//   sendpidfd PID SOCK   (outside the tree) serve a pidfd of PID over SCM_RIGHTS on the unix socket SOCK, once
//   getfd-recv SOCK FILE receive a pidfd from SOCK, pidfd_getfd of fds 0..1023; ok when one is FILE
// Each attack prints "ATTACK ok DETAIL" when it reached the process, else "ATTACK refused: ERR" (ERR: the last errno).
// Exit 0 always, except 2 for bad usage or a failed setup.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

static struct stat want;
static const char *attack;

static int refused(int err)
{
	printf("%s refused: %s\n", attack, strerror(err));
	return 0;
}

/* Whether @fd is FILE; closes it. */
static int is_want(int fd)
{
	struct stat st;
	int same = fstat(fd, &st) == 0 && st.st_dev == want.st_dev && st.st_ino == want.st_ino;

	close(fd);
	return same;
}

/* The fd numbers of /proc/PID/fd (listing needs no ptrace access; opening each does). */
static int fd_numbers(int pid, int *out, int max)
{
	char path[64];
	struct dirent *e;
	int n = 0;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/fd", pid);
	d = opendir(path);
	if (!d)
		return -errno;
	while ((e = readdir(d)) && n < max)
		if (e->d_name[0] != '.')
			out[n++] = atoi(e->d_name);
	closedir(d);
	return n;
}

/* An address of PID to read: the start of its first readable mapping, else 0x400000. */
static unsigned long readable_addr(int pid)
{
	char path[64], line[512];
	unsigned long lo = 0x400000, a, b;
	char perm[8];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/maps", pid);
	f = fopen(path, "r");
	if (!f)
		return lo;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "%lx-%lx %7s", &a, &b, perm) == 3 && perm[0] == 'r') {
			lo = a;
			break;
		}
	fclose(f);
	return lo;
}

static int by_fds(int pid, const char *how)
{
	int fds[1024], n = fd_numbers(pid, fds, 1024), err = ENOENT, i, dfd = -1;
	char path[PATH_MAX], link[128];

	if (n < 0)
		return refused(-n);
	if (!strcmp(how, "dirfd")) {
		snprintf(path, sizeof(path), "/proc/%d", pid);
		dfd = open(path, O_RDONLY | O_DIRECTORY);
		if (dfd < 0)
			return refused(errno);
	}
	for (i = 0; i < n; i++) {
		int fd;

		snprintf(path, sizeof(path), "/proc/%d/fd/%d", pid, fds[i]);
		if (dfd >= 0) {
			snprintf(path, sizeof(path), "fd/%d", fds[i]);
			fd = openat(dfd, path, O_RDONLY);
		} else if (!strcmp(how, "symlink")) {
			snprintf(link, sizeof(link), "/tmp/procreach-%d-%d", getpid(), fds[i]);
			unlink(link);
			if (symlink(path, link) < 0)
				return refused(errno);
			fd = open(link, O_RDONLY);
			unlink(link);
		} else {
			fd = open(path, O_RDONLY);
		}
		if (fd < 0) {
			err = errno;
			continue;
		}
		if (is_want(fd)) {
			printf("%s ok %d\n", attack, fds[i]);
			return 0;
		}
	}
	return refused(err);
}

static int getfd_from(int pidfd)
{
	int err = EBADF, i;

	for (i = 0; i < 1024; i++) {
		int fd = syscall(SYS_pidfd_getfd, pidfd, i, 0);

		if (fd < 0) {
			if (errno != EBADF)
				err = errno;
			continue;
		}
		if (is_want(fd)) {
			printf("%s ok %d\n", attack, i);
			return 0;
		}
	}
	return refused(err);
}

static int unix_socket(const char *sock, struct sockaddr_un *a)
{
	int s = socket(AF_UNIX, SOCK_STREAM, 0);

	memset(a, 0, sizeof(*a));
	a->sun_family = AF_UNIX;
	strncpy(a->sun_path, sock, sizeof(a->sun_path) - 1);
	return s;
}

static int send_pidfd(int pid, const char *sock)
{
	struct sockaddr_un a;
	int s = unix_socket(sock, &a), c, pidfd = syscall(SYS_pidfd_open, pid, 0);
	char byte = 'p', cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { &byte, 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm = CMSG_FIRSTHDR(&m);

	unlink(sock);
	if (pidfd < 0 || s < 0 || bind(s, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s, 1) < 0) {
		perror("sendpidfd setup");
		return 2;
	}
	printf("serving\n");
	c = accept(s, NULL, NULL);
	if (c < 0) {
		perror("accept");
		return 2;
	}
	cm->cmsg_level = SOL_SOCKET;
	cm->cmsg_type = SCM_RIGHTS;
	cm->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cm), &pidfd, sizeof(int));
	if (sendmsg(c, &m, 0) < 0) {
		perror("sendmsg");
		return 2;
	}
	return 0;
}

static int recv_pidfd(const char *sock)
{
	struct sockaddr_un a;
	int s = unix_socket(sock, &a), tries, pidfd = -1;
	char byte, cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { &byte, 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm;

	for (tries = 0; connect(s, (struct sockaddr *)&a, sizeof(a)) < 0; tries++) {
		if (tries == 100) {
			perror("connect");
			return -1;
		}
		usleep(100000);
	}
	if (recvmsg(s, &m, 0) < 1 || !(cm = CMSG_FIRSTHDR(&m)) || cm->cmsg_type != SCM_RIGHTS) {
		perror("recvmsg");
		return -1;
	}
	memcpy(&pidfd, CMSG_DATA(cm), sizeof(int));
	return pidfd;
}

int main(int argc, char **argv)
{
	char path[PATH_MAX], buf[256];
	int pid, fd;

	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc < 3)
		goto usage;
	attack = argv[1];
	if (!strcmp(attack, "getfd-recv")) {
		if (argc < 4 || stat(argv[3], &want) < 0)
			goto usage;
		fd = recv_pidfd(argv[2]);
		return fd < 0 ? 2 : getfd_from(fd);
	}
	pid = atoi(argv[2]);
	if (!strcmp(attack, "sendpidfd"))
		return argc < 4 ? 2 : send_pidfd(pid, argv[3]);
	if (!strcmp(attack, "fd") || !strcmp(attack, "root") || !strcmp(attack, "dirfd") ||
	    !strcmp(attack, "symlink") || !strcmp(attack, "getfd"))
		if (argc < 4 || stat(argv[3], &want) < 0)
			goto usage;

	if (!strcmp(attack, "fd") || !strcmp(attack, "dirfd") || !strcmp(attack, "symlink"))
		return by_fds(pid, attack);
	if (!strcmp(attack, "root")) {
		snprintf(path, sizeof(path), "/proc/%d/root%s", pid, argv[3]);
		fd = open(path, O_RDONLY);
		if (fd < 0)
			return refused(errno);
		printf("root %s\n", is_want(fd) ? "ok" : "opened another file");
		return 0;
	}
	if (!strcmp(attack, "cwd")) {
		ssize_t n;

		snprintf(path, sizeof(path), "/proc/%d/cwd", pid);
		n = readlink(path, buf, sizeof(buf) - 1);
		if (n < 0)
			return refused(errno);
		buf[n] = 0;
		fd = open(path, O_RDONLY | O_DIRECTORY);
		if (fd < 0)
			return refused(errno);
		close(fd);
		printf("cwd ok %s\n", buf);
		return 0;
	}
	if (!strcmp(attack, "mem") || !strcmp(attack, "environ")) {
		unsigned long at = strcmp(attack, "mem") ? 0 : readable_addr(pid);

		snprintf(path, sizeof(path), "/proc/%d/%s", pid, attack);
		fd = open(path, O_RDONLY);
		if (fd < 0)
			return refused(errno);
		if (pread(fd, buf, 1, at) != 1)
			return refused(errno);
		printf("%s ok 0x%lx\n", attack, at);
		return 0;
	}
	if (!strcmp(attack, "map_files")) {
		struct dirent *e;
		DIR *d;
		int err = ENOENT;

		snprintf(path, sizeof(path), "/proc/%d/map_files", pid);
		d = opendir(path);
		if (!d)
			return refused(errno);
		errno = 0;
		while ((e = readdir(d))) {
			if (e->d_name[0] == '.')
				continue;
			snprintf(path, sizeof(path), "/proc/%d/map_files/%s", pid, e->d_name);
			fd = open(path, O_RDONLY);
			if (fd >= 0) {
				close(fd);
				printf("map_files ok %s\n", e->d_name);
				return 0;
			}
			err = errno;
		}
		if (errno)
			err = errno; // readdir's
		return refused(err);
	}
	if (!strcmp(attack, "vmread")) {
		struct iovec local = { buf, 1 }, remote = { (void *)readable_addr(pid), 1 };

		if (syscall(SYS_process_vm_readv, pid, &local, 1, &remote, 1, 0) != 1)
			return refused(errno);
		printf("vmread ok %p\n", remote.iov_base);
		return 0;
	}
	if (!strcmp(attack, "ptrace")) {
		int status;

		if (ptrace(PTRACE_ATTACH, pid, 0, 0) < 0)
			return refused(errno);
		waitpid(pid, &status, __WALL);
		ptrace(PTRACE_DETACH, pid, 0, 0);
		printf("ptrace ok\n");
		return 0;
	}
	if (!strcmp(attack, "getfd")) {
		int pidfd = syscall(SYS_pidfd_open, pid, 0);

		if (pidfd < 0)
			return refused(errno);
		return getfd_from(pidfd);
	}
usage:
	fprintf(stderr, "usage: procreach ATTACK PID [FILE] (see the source)\n");
	return 2;
}
