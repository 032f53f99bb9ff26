// SPDX-License-Identifier: GPL-2.0-only
/*
 * Kills one child while another child's SIGCHLD arrives, N times, with a
 * SIGCHLD handler installed WITHOUT SA_RESTART (as dash has): the shape of a
 * script's `kill $a $b`, whose first child dies while the second kill runs.
 * kill(2) never fails with EINTR natively; a notified kill waiting for its
 * supervisor can (docs/seccomp.md, "Signals and EINTR"), and a kill lost so
 * leaves the child running: the script's `wait` then never returns.
 * Prints "kills N missed M eintr E"; exits 0.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void on_child(int sig)
{
	(void)sig;
}

static pid_t idle_child(void)
{
	pid_t pid = fork();

	if (pid == 0) {
		pause();
		_exit(0);
	}
	return pid;
}

static void reap(pid_t pid)
{
	while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 1000, missed = 0, eintr = 0;
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_child;	/* no SA_RESTART */
	sigaction(SIGCHLD, &sa, NULL);
	for (int i = 0; i < rounds; i++) {
		pid_t target = idle_child(), first = idle_child();

		/* The first child's death sends SIGCHLD while the target's kill runs. */
		kill(first, SIGKILL);
		if (kill(target, SIGKILL) != 0) {
			missed++;
			if (errno == EINTR)
				eintr++;
			kill(target, SIGKILL);
		}
		reap(first);
		reap(target);
	}
	printf("kills %d missed %d eintr %d\n", rounds, missed, eintr);
	return 0;
}
