// A signal-heavy program: a 100 µs interval timer interrupts it constantly
// while it opens a file N times. Exits 0 when every open succeeded and the
// handler ran; prints the counts. With "norestart" the handler is installed
// without SA_RESTART (as GNU make's SIGCHLD handler and vsftpd's are), and
// opens failed with EINTR are counted apart.
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
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
	int n = argc > 2 ? atoi(argv[2]) : 2000, failed = 0, eintr = 0;

	if (argc < 2)
		return 2;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = tick;
	sa.sa_flags = argc > 3 && strcmp(argv[3], "norestart") == 0 ? 0 : SA_RESTART;
	sigaction(SIGALRM, &sa, NULL);
	setitimer(ITIMER_REAL, &every, NULL);
	for (int i = 0; i < n; i++) {
		int fd = open(argv[1], O_RDONLY);
		if (fd < 0 && errno == EINTR) {
			eintr++;
		} else if (fd < 0) {
			failed++;
			fprintf(stderr, "open: %s\n", strerror(errno));
		} else {
			close(fd);
		}
	}
	/* Stop the timer first: a slow terminal's write (a VM's serial console) would be interrupted too. */
	memset(&every, 0, sizeof(every));
	setitimer(ITIMER_REAL, &every, NULL);
	printf("opens %d failed %d eintr %d ticks %d\n", n, failed, eintr, (int)ticks);
	return failed || eintr || ticks == 0;
}
