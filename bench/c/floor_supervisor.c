// SPDX-License-Identifier: GPL-2.0-only
/*
 * floor_supervisor [--no-sync] LOOP N - the fastest user-notify supervisor we
 * know how to write, as the floor idwrap's is measured against.
 *
 * Shaped after the kernel's samples/seccomp/user-trap.c: fork; the child
 * installs a filter that notifies only getppid, hands the listener to the
 * parent over a socketpair (sendmsg is not notified) and execs `LOOP N
 * notified`, whose stdout is ours.  The parent answers every notification
 * with SECCOMP_USER_NOTIF_FLAG_CONTINUE until POLLHUP says the child is gone,
 * then exits with the child's status.  On stderr it says whether the kernel
 * took SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP: "sync_wake_up 1" or "0".
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* Linux 6.6; older uapi headers lack them. */
#ifndef SECCOMP_IOCTL_NOTIF_SET_FLAGS
#define SECCOMP_IOCTL_NOTIF_SET_FLAGS _IOW('!', 4, __u64)
#endif
#ifndef SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP
#define SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP (1UL << 0)
#endif

static void die(const char *what)
{
	fprintf(stderr, "floor_supervisor: %s: %s\n", what, strerror(errno));
	exit(125);
}

/* In the child: filter ourselves, return the listener fd. */
static int install_filter(void)
{
	struct sock_filter code[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_getppid, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_USER_NOTIF),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { .len = sizeof(code) / sizeof(code[0]), .filter = code };
	long fd;

	/* Unprivileged filters need no_new_privs. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		die("prctl(PR_SET_NO_NEW_PRIVS)");
	fd = syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_NEW_LISTENER, &prog);
	if (fd < 0)
		die("seccomp(SECCOMP_SET_MODE_FILTER)");
	return (int)fd;
}

static void send_fd(int sock, int fd)
{
	char buf[CMSG_SPACE(sizeof(int))] = { 0 }, byte = 0;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = buf, .msg_controllen = sizeof(buf) };
	struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);

	cmsg->cmsg_level = SOL_SOCKET;
	cmsg->cmsg_type = SCM_RIGHTS;
	cmsg->cmsg_len = CMSG_LEN(sizeof(int));
	memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));
	if (sendmsg(sock, &msg, 0) < 0)
		die("sendmsg");
}

static int recv_fd(int sock)
{
	char buf[CMSG_SPACE(sizeof(int))] = { 0 }, byte;
	struct iovec iov = { .iov_base = &byte, .iov_len = 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1, .msg_control = buf, .msg_controllen = sizeof(buf) };
	struct cmsghdr *cmsg;
	int fd;

	if (recvmsg(sock, &msg, 0) <= 0)
		die("recvmsg (did the child fail to install the filter?)");
	cmsg = CMSG_FIRSTHDR(&msg);
	if (!cmsg || cmsg->cmsg_type != SCM_RIGHTS)
		die("recvmsg: no fd");
	memcpy(&fd, CMSG_DATA(cmsg), sizeof(int));
	return fd;
}

static void serve(int listener)
{
	struct seccomp_notif req;
	struct seccomp_notif_resp resp;
	struct pollfd pfd = { .fd = listener, .events = POLLIN };

	for (;;) {
		/* poll first: POLLHUP is how we learn no task uses the filter any more. */
		if (poll(&pfd, 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			die("poll");
		}
		if (!(pfd.revents & POLLIN))
			return;
		memset(&req, 0, sizeof(req));	/* NOTIF_RECV wants it zeroed */
		if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0) {
			if (errno == ENOENT || errno == EINTR)
				continue;
			die("SECCOMP_IOCTL_NOTIF_RECV");
		}
		resp = (struct seccomp_notif_resp){ .id = req.id, .flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE };
		/* ENOENT: the caller died or was signalled meanwhile. */
		if (ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp) < 0 && errno != ENOENT)
			die("SECCOMP_IOCTL_NOTIF_SEND");
	}
}

int main(int argc, char **argv)
{
	int sync = 1, sv[2], listener, status, accepted = 0;
	pid_t child;

	if (argc > 1 && strcmp(argv[1], "--no-sync") == 0) {
		sync = 0;
		argv++, argc--;
	}
	if (argc != 3) {
		fprintf(stderr, "usage: floor_supervisor [--no-sync] LOOP N\n");
		return 2;
	}
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		die("socketpair");
	child = fork();
	if (child < 0)
		die("fork");
	if (child == 0) {
		char *args[] = { argv[1], argv[2], "notified", NULL };

		close(sv[0]);
		listener = install_filter();
		send_fd(sv[1], listener);
		close(listener);
		execv(args[0], args);
		fprintf(stderr, "floor_supervisor: cannot run %s: %s\n", args[0], strerror(errno));
		_exit(127);
	}
	close(sv[1]);
	listener = recv_fd(sv[0]);
	close(sv[0]);
	/*
	 * Linux 6.6+: wake the supervisor on the caller's CPU.  The flags are the
	 * ioctl argument itself, not a pointer to them (seccomp_unotify(2)).
	 */
	if (sync)
		accepted = ioctl(listener, SECCOMP_IOCTL_NOTIF_SET_FLAGS, SECCOMP_USER_NOTIF_FD_SYNC_WAKE_UP) == 0;
	fprintf(stderr, "sync_wake_up %d\n", accepted);
	serve(listener);
	if (waitpid(child, &status, 0) < 0)
		die("waitpid");
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}
