// Watson-style race on execve (issue 13, item 3): in each of TRIES children
// a thread flips the path between a harmless and a denied program while the
// child execs it. Each run of the denied program prints "PWNED" (pwned.c).
//   race_exec ALLOWED DENIED TRIES
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static char path[512];
static char allowed[512], denied[512];
static atomic_int started;

static void *flip(void *unused)
{
	(void)unused;
	atomic_store(&started, 1);
	for (;;) {
		strcpy(path, denied);
		strcpy(path, allowed);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc < 4)
		return 2;
	strcpy(allowed, argv[1]);
	strcpy(denied, argv[2]);
	int tries = atoi(argv[3]), ran = 0;
	for (int i = 0; i < tries; i++) {
		fflush(stdout);
		pid_t pid = fork();
		if (pid == 0) {
			pthread_t t;
			strcpy(path, allowed);
			pthread_create(&t, NULL, flip, NULL);
			while (!atomic_load(&started))
				;
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
