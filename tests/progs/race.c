// TOCTOU attacker: a thread flips the path buffer between an allowed and a
// denied file while the main thread opens it. Exits 1 if the denied file's
// content was ever read, 0 otherwise. Prints how many opens succeeded.
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char path[512];
static char allowed[512], denied[512];
static atomic_int stop;

static void *flip(void *unused)
{
	(void)unused;
	while (!atomic_load(&stop)) {
		strcpy(path, denied);
		strcpy(path, allowed);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	pthread_t t;
	int rounds = argc > 3 ? atoi(argv[3]) : 2000, opened = 0, leaked = 0;
	char buf[64];

	if (argc < 3)
		return 2;
	strcpy(allowed, argv[1]);
	strcpy(denied, argv[2]);
	strcpy(path, allowed);
	pthread_create(&t, NULL, flip, NULL);
	for (int i = 0; i < rounds; i++) {
		int fd = open(path, O_RDONLY);
		if (fd < 0)
			continue;
		opened++;
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		if (n > 0) {
			buf[n] = 0;
			if (strstr(buf, "SECRET"))
				leaked++;
		}
		close(fd);
	}
	atomic_store(&stop, 1);
	pthread_join(t, NULL);
	printf("opened %d leaked %d\n", opened, leaked);
	return leaked ? 1 : 0;
}
