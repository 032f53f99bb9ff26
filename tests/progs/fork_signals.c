// Forks N children while SIGCHLD and a 100 µs timer interrupt it, with
// handlers installed WITHOUT SA_RESTART, as dash does. The kernel always
// restarts an interrupted fork(); a notified fork waiting for its supervisor
// would return EINTR instead. Prints the counts; exits 0 if no fork failed.
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t ticks;

static void tick(int sig)
{
	(void)sig;
	ticks++;
}

int main(int argc, char **argv)
{
	struct sigaction sa;
	struct itimerval every = { { 0, 100 }, { 0, 100 } };
	int n = argc > 1 ? atoi(argv[1]) : 2000, failed = 0, eintr = 0;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = tick; /* no SA_RESTART */
	sigaction(SIGALRM, &sa, NULL);
	sigaction(SIGCHLD, &sa, NULL);
	setitimer(ITIMER_REAL, &every, NULL);
	for (int i = 0; i < n; i++) {
		pid_t pid = fork();

		if (pid == 0)
			_exit(0);
		if (pid < 0) {
			failed++;
			eintr += errno == EINTR;
			continue;
		}
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	printf("forks %d failed %d eintr %d ticks %d\n", n, failed, eintr, (int)ticks);
	return failed ? 1 : 0;
}
