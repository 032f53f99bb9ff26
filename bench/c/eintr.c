// SPDX-License-Identifier: GPL-2.0-only
/*
 * eintr N notified - N raw getppid calls under a 100 us interval timer whose
 * handler lacks SA_RESTART (as GNU make's SIGCHLD handler and vsftpd's do),
 * counting the calls that failed with EINTR.  getppid never fails natively:
 * every EINTR is the event source's (a notified call interrupted before the
 * supervisor read it, docs/seccomp.md "Signals and EINTR").  The "notified"
 * argument is what floor_supervisor passes; it is ignored.
 *
 * Prints "calls N eintr E signals S" on stdout, or to OUTFILE when given
 * (under idwrap stdout is the terminal's).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <unistd.h>

static volatile sig_atomic_t signals;

static void tick(int sig)
{
	(void)sig;
	signals++;
}

int main(int argc, char **argv)
{
	struct itimerval every = { { 0, 100 }, { 0, 100 } };
	struct sigaction sa;
	long n, eintr = 0;
	FILE *out = stdout;

	if (argc < 3) {
		fprintf(stderr, "usage: eintr N notified [OUTFILE]\n");
		return 2;
	}
	n = atol(argv[1]);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = tick; /* no SA_RESTART */
	sigaction(SIGALRM, &sa, NULL);
	setitimer(ITIMER_REAL, &every, NULL);
	for (long i = 0; i < n; i++)
		if (syscall(SYS_getppid) < 0 && errno == EINTR)
			eintr++;
	memset(&every, 0, sizeof(every));
	setitimer(ITIMER_REAL, &every, NULL);
	if (argc > 3 && !(out = fopen(argv[3], "w")))
		return 1;
	fprintf(out, "calls %ld eintr %ld signals %d\n", n, eintr, (int)signals);
	return 0;
}
