// Aims a file's I/O signal at a process by racing the owner the guard reads
// (issue 13, item 4): F_SETSIG picks the signal the kernel sends the file's
// owner when I/O is possible, then, thousands of times, F_SETOWN_EX is called
// with a struct whose pid changes from 0 (no owner: what the
// guard may read) and the target (what the kernel may read after it): a
// second thread writes the target a delay after each call starts, the delay
// sweeping 0..200 us, the window between the guard's read and the kernel's. A
// byte through an O_ASYNC pipe then signals whatever owner landed.
//
//   sigio_race PID|parent TRIES SIGNAL [MAX_DELAY_US]
//
// MAX_DELAY_US (200) bounds the delay; 0: no race, the struct names PID
// from the start (the unwrapped control: the signal itself reaches PID).
//
// Prints "setsig: 0|ERRNO" (F_SETSIG of SIGNAL), then "owner-wins: N" (tries
// whose owner landed on PID), "refused: N" (tries the F_SETOWN_EX failed) and
// "done". Exit 0; 2 on bad usage.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct f_owner_ex owner = { .type = F_OWNER_PID, .pid = 0 };
static atomic_int go, stop;
static pid_t target;
static long max_delay_ns = 200000;

static long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/* On each "go", waits a delay that sweeps the checker's window (0..MAX_DELAY_US), then writes the target's pid. */
static void *flipper(void *arg)
{
	(void)arg;
	unsigned seed = 1;
	while (!atomic_load(&stop)) {
		if (!atomic_load(&go)) continue;
		long until = now_ns() + rand_r(&seed) % max_delay_ns;
		while (now_ns() < until) { }
		*(volatile pid_t *)&owner.pid = target;
		atomic_store(&go, 0);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc != 4 && argc != 5) return 2;
	if (argc == 5) max_delay_ns = atol(argv[4]) * 1000;
	target = strcmp(argv[1], "parent") ? atoi(argv[1]) : getppid();
	int tries = atoi(argv[2]), sig = atoi(argv[3]);
	int p[2];
	if (pipe(p) < 0) return 2;
	int rc = fcntl(p[0], F_SETSIG, sig);
	printf("setsig: %s\n", rc < 0 ? strerrorname_np(errno) : "0");
	fflush(stdout);
	fcntl(p[0], F_SETFL, O_ASYNC | O_NONBLOCK);
	pthread_t t;
	pthread_create(&t, NULL, flipper, NULL);
	int wins = 0, refused = 0;
	for (int i = 0; i < tries; i++) {
		*(volatile pid_t *)&owner.pid = max_delay_ns ? 0 : target;
		atomic_store(&go, max_delay_ns != 0);
		rc = fcntl(p[0], F_SETOWN_EX, &owner);
		while (atomic_load(&go)) { }
		if (rc < 0) {
			refused++;
			continue;
		}
		struct f_owner_ex now;
		if (fcntl(p[0], F_GETOWN_EX, &now) == 0 && now.pid == target) {
			wins++;
			char b = 0;
			if (write(p[1], &b, 1) == 1 && read(p[0], &b, 1) < 0) { /* the byte is gone either way */ }
		}
		fcntl(p[0], F_SETOWN, 0);
	}
	atomic_store(&stop, 1);
	pthread_join(t, NULL);
	printf("owner-wins: %d\nrefused: %d\ndone\n", wins, refused);
	return 0;
}
