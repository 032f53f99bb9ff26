// Signals through a file's owner (issue 13, kmod item 3): makes TARGET the owner of a socket's SIGIO, by METHOD,
// with SIGKILL as the signal (F_SETSIG), then makes the socket readable so the kernel sends it. A negative TARGET is
// a process group. Prints "armed METHOD" once the owner is set (or "refused: ERR"), then "sent".
//   sigio_owner METHOD TARGET
//   METHOD: setown setown_ex fiosetown siocspgrp
// Also: sigio_owner tiocsti — types a character into a new pty made its controlling tty (a terminal's input is run
// by whatever reads it next); prints "tiocsti ok" or "tiocsti refused: ERR".
//       sigio_owner peerpidfd — getsockopt(SO_PEERPIDFD) on a socketpair: "peerpidfd ok" or "... refused: ERR".
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

static int tiocsti(void)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY);
	if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0) {
		perror("pty");
		return 2;
	}
	pid_t pid = fork();
	if (pid == 0) {
		setsid();
		int s = open(ptsname(m), O_RDWR); // the first tty a session leader opens becomes its controlling tty
		if (s < 0 || ioctl(s, TIOCSCTTY, 0) < 0) {
			perror("ctty");
			_exit(2);
		}
		char c = 'x';
		if (ioctl(s, TIOCSTI, &c) == 0)
			printf("tiocsti ok\n");
		else
			printf("tiocsti refused: %s\n", strerror(errno));
		_exit(0);
	}
	int status;
	waitpid(pid, &status, 0);
	return 0;
}

int main(int argc, char **argv)
{
	int sv[2];

	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc >= 2 && !strcmp(argv[1], "tiocsti"))
		return tiocsti();
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0) {
		perror("socketpair");
		return 2;
	}
	if (argc >= 2 && !strcmp(argv[1], "peerpidfd")) {
		int fd;
		socklen_t len = sizeof(fd);
		if (getsockopt(sv[0], SOL_SOCKET, 77 /* SO_PEERPIDFD */, &fd, &len) == 0)
			printf("peerpidfd ok\n");
		else
			printf("peerpidfd refused: %s\n", strerror(errno));
		return 0;
	}
	if (argc < 3)
		return 2;
	const char *how = argv[1];
	int target = atoi(argv[2]), r;
	if (!strcmp(how, "setown")) {
		r = fcntl(sv[0], F_SETOWN, target);
	} else if (!strcmp(how, "setown_ex")) {
		struct f_owner_ex ex = { target < 0 ? F_OWNER_PGRP : F_OWNER_PID, abs(target) };
		r = fcntl(sv[0], F_SETOWN_EX, &ex);
	} else if (!strcmp(how, "fiosetown")) {
		r = ioctl(sv[0], FIOSETOWN, &target);
	} else if (!strcmp(how, "siocspgrp")) {
		r = ioctl(sv[0], SIOCSPGRP, &target);
	} else {
		fprintf(stderr, "unknown method %s\n", how);
		return 2;
	}
	if (r < 0 || fcntl(sv[0], F_SETSIG, SIGKILL) < 0 ||
	    fcntl(sv[0], F_SETFL, fcntl(sv[0], F_GETFL) | O_ASYNC) < 0) {
		printf("refused: %s\n", strerror(errno));
		return 0;
	}
	printf("armed %s\n", how);
	if (write(sv[1], "x", 1) != 1)
		perror("write");
	usleep(200000);
	printf("sent\n");
	return 0;
}
