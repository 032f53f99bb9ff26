// Four threads, each opening its own file: per-thread order must be kept.
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <unistd.h>

static const char *dir;

static void *run(void *arg)
{
	char path[512];
	long i = (long)arg;

	for (int round = 0; round < 3; round++) {
		snprintf(path, sizeof(path), "%s/thread-%ld-%d", dir, i, round);
		int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		if (fd >= 0)
			close(fd);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t t[4];

	dir = argc > 1 ? argv[1] : "/tmp";
	for (long i = 0; i < 4; i++)
		pthread_create(&t[i], NULL, run, (void *)i);
	for (int i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	return 0;
}
