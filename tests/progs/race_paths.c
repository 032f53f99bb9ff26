// Watson-style race on path calls (issue 13, item 3): a thread flips the
// path buffer between a harmless and a protected name while the main thread
// calls CALL on it. A "win" is the call acting on the protected file; after
// each win the file is put back (through an fd, not by path). Prints
// "calls N wins W"; exits 1 if the protected file was ever reached.
//   race_paths CALL ALLOWED DENIED ROUNDS
//   CALL: unlink rename chmod chown truncate utimensat link
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char path[512];
static char allowed[512], denied[512], aside[600];
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

static void make(const char *p)
{
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd >= 0) {
		if (write(fd, "SECRET\n", 7) < 0)
			perror("write");
		close(fd);
	}
}

int main(int argc, char **argv)
{
	if (argc < 5)
		return 2;
	const char *call = argv[1];
	strcpy(allowed, argv[2]);
	strcpy(denied, argv[3]);
	snprintf(aside, sizeof(aside), "%s.aside", argv[2]);
	int rounds = atoi(argv[4]), wins = 0, ok = 0;
	struct stat st0, st;
	make(allowed);
	int keep = open(denied, O_RDWR); // puts the protected file back without naming it
	if (keep < 0 || fstat(keep, &st0) < 0) {
		perror(denied);
		return 2;
	}
	strcpy(path, allowed);
	pthread_t t;
	pthread_create(&t, NULL, flip, NULL);
	for (int i = 0; i < rounds; i++) {
		if (!strcmp(call, "unlink")) {
			make(allowed);
			ok += unlink(path) == 0;
			if (stat(denied, &st) < 0) {
				wins++;
				if (linkat(keep, "", AT_FDCWD, denied, AT_EMPTY_PATH) < 0)
					make(denied);
			}
		} else if (!strcmp(call, "rename")) {
			make(allowed);
			ok += rename(path, aside) == 0;
			if (stat(denied, &st) < 0) {
				wins++;
				rename(aside, denied);
			}
		} else if (!strcmp(call, "chmod")) {
			ok += chmod(path, 0600) == 0;
			fstat(keep, &st);
			if ((st.st_mode & 0777) == 0600) {
				wins++;
				fchmod(keep, st0.st_mode & 07777);
			}
		} else if (!strcmp(call, "chown")) {
			ok += chown(path, 4242, 4242) == 0;
			fstat(keep, &st);
			if (st.st_uid == 4242) {
				wins++;
				fchown(keep, st0.st_uid, st0.st_gid);
			}
		} else if (!strcmp(call, "truncate")) {
			ok += truncate(path, 1) == 0;
			fstat(keep, &st);
			if (st.st_size == 1) {
				wins++;
				if (pwrite(keep, "SECRET\n", 7, 0) < 0)
					perror("pwrite");
			}
		} else if (!strcmp(call, "utimensat")) {
			struct timespec ts[2] = { { 1, 0 }, { 1, 0 } };
			ok += utimensat(AT_FDCWD, path, ts, 0) == 0;
			fstat(keep, &st);
			if (st.st_mtim.tv_sec == 1) {
				wins++;
				futimens(keep, NULL);
			}
		} else if (!strcmp(call, "link")) {
			unlink(aside);
			ok += link(path, aside) == 0;
			if (stat(aside, &st) == 0 && st.st_ino == st0.st_ino)
				wins++;
		} else {
			fprintf(stderr, "unknown call %s\n", call);
			return 2;
		}
	}
	atomic_store(&stop, 1);
	pthread_join(t, NULL);
	unlink(aside);
	printf("calls %d wins %d\n", ok, wins);
	return wins ? 1 : 0;
}
