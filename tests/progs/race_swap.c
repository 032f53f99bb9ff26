// A directory or symlink swapped under a decided name after the decision (issue 13, kmod item 1). The main
// thread calls FAMILY on a harmless name while a racer thread watches it: as soon as the call sleeps in the
// module's wait for a verdict (its /proc wchan says idw_wait_verdict: the name was copied and is being
// decided), the racer swaps the filesystem with one renameat2(RENAME_EXCHANGE), so the same bytes now lead to
// the protected file, and swaps back when the call has returned. Every other try is not swapped (the allowed
// call must still work). A "win" is the call acting on the protected file; each win is undone through an fd
// or with calls the test policy does not decide. Prints
// "tries N swapped S ok K refused R wins W"; exits 1 if the protected file was ever reached.
//   race_swap FAMILY DIR ROUNDS
// DIR holds x/ (a directory: x/a is the harmless file), l -> prot (symlink), prot/a (the protected file),
// f -> DIR/x/a and g -> DIR/prot/a (symlinks, for the *-link families, which swap f and g: a final symlink).
// FAMILY: unlink rename chmod truncate mkdir open creat chmod-link open-link exec
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

enum { IDLE, ARMED, POLLING, DONE };
static atomic_int state = IDLE, stop;
static sem_t armed, done, idle;	// the racer sleeps between tries
static int swapped;
static char dir[400], name[512], swap_a[512], swap_b[512];
static int wchan_fd = -1;

static int exchange(void)
{
	return syscall(SYS_renameat2, AT_FDCWD, swap_a, AT_FDCWD, swap_b, 2 /* RENAME_EXCHANGE */);
}

// Whether the watched call sleeps in the module's wait for a verdict.
static int waiting(int fd)
{
	char buf[128];
	ssize_t n = pread(fd, buf, sizeof(buf) - 1, 0);

	if (n <= 0)
		return 0;
	buf[n] = 0;
	return strstr(buf, "idw_wait_verdict") != NULL;
}

static void *racer(void *unused)
{
	(void)unused;
	for (;;) {
		sem_wait(&armed);
		if (atomic_load(&stop))
			return NULL;
		int saw = 0;
		atomic_store(&state, POLLING);	// the call starts only now: the racer is awake and watching
		while (atomic_load(&state) == POLLING)
			if (waiting(wchan_fd)) {
				saw = exchange() == 0;
				break;
			}
		swapped += saw;
		sem_wait(&done);
		if (saw && exchange() < 0)
			perror("swap back");
		atomic_store(&state, IDLE);
		sem_post(&idle);
	}
}

static char *at(const char *rel)
{
	char *p;

	if (asprintf(&p, "%s/%s", dir, rel) < 0)
		exit(2);
	return p;
}

// A regular file by a call the test policy does not decide.
static void mkfile(const char *p)
{
	if (mknodat(AT_FDCWD, p, S_IFREG | 0644, 0) < 0 && errno != EEXIST)
		perror(p);
}

static int exists(const char *p)
{
	struct stat st;

	return fstatat(AT_FDCWD, p, &st, AT_SYMLINK_NOFOLLOW) == 0;
}

// One exec try: a child execs the name; the parent is the racer. 1: the protected program ran.
static int exec_try(int swap, int *ok, int *refused)
{
	int go[2], status;
	char path[64];

	if (pipe(go) < 0)
		return 0;
	pid_t pid = fork();
	if (pid == 0) {
		char c;
		close(go[1]);
		if (read(go[0], &c, 1) != 1)
			_exit(126);
		char *args[] = { name, NULL };
		execv(name, args);
		_exit(errno == EACCES ? 125 : 127);
	}
	close(go[0]);
	snprintf(path, sizeof(path), "/proc/%d/wchan", pid);
	int fd = open(path, O_RDONLY);
	if (write(go[1], "g", 1) != 1)
		perror("go");
	close(go[1]);
	int saw = 0;
	if (swap && fd >= 0)
		while (waitpid(pid, &status, WNOHANG) == 0)
			if (waiting(fd)) {
				saw = exchange() == 0;
				break;
			}
	if (!saw || waitpid(pid, &status, 0) < 0)
		waitpid(pid, &status, 0);
	if (saw && exchange() < 0)
		perror("swap back");
	swapped += saw;
	if (fd >= 0)
		close(fd);
	int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	*ok += code == 1;	// the harmless program (false) ran
	*refused += code == 125;
	return code == 0;	// pwned ran
}

int main(int argc, char **argv)
{
	if (argc < 4)
		return 2;
	const char *fam = argv[1];
	snprintf(dir, sizeof(dir), "%s", argv[2]);
	int rounds = atoi(argv[3]), wins = 0, ok = 0, refused = 0;
	int link = strstr(fam, "-link") != NULL;
	const char *prot = at("prot/a"), *newname = at("x/n"), *protnew = at("prot/n"), *aside = at("aside");
	snprintf(name, sizeof(name), "%s", link ? at("f") : at("x/a"));
	snprintf(swap_a, sizeof(swap_a), "%s", link ? at("f") : at("x"));
	snprintf(swap_b, sizeof(swap_b), "%s", link ? at("g") : at("l"));
	struct stat st0, st;
	// Puts the protected file back without naming it (the families that change it; an exec's must not be open).
	int keep = -1;
	if (!strcmp(fam, "unlink") || !strncmp(fam, "chmod", 5) || !strcmp(fam, "truncate")) {
		keep = open(prot, O_RDWR);
		if (keep < 0 || fstat(keep, &st0) < 0) {
			perror(prot);
			return 2;
		}
	}
	char wchan[64];
	snprintf(wchan, sizeof(wchan), "/proc/self/task/%d/wchan", (int)gettid());
	wchan_fd = open(wchan, O_RDONLY);
	if (wchan_fd < 0) {
		perror(wchan);
		return 2;
	}
	pthread_t t;
	sem_init(&armed, 0, 0);
	sem_init(&done, 0, 0);
	sem_init(&idle, 0, 0);
	pthread_create(&t, NULL, racer, NULL);
	for (int i = 0; i < rounds; i++) {
		int swap = i % 2, r = 0, win = 0;
		char buf[16] = "";

		if (!strcmp(fam, "exec")) {
			wins += exec_try(swap, &ok, &refused);
			continue;
		}
		if (!strcmp(fam, "unlink") || !strcmp(fam, "rename"))
			mkfile(name);
		if (swap) {
			atomic_store(&state, ARMED);
			sem_post(&armed);
			while (atomic_load(&state) != POLLING)
				sched_yield();
		}
		if (!strcmp(fam, "unlink")) {
			r = syscall(SYS_unlink, name);
		} else if (!strcmp(fam, "rename")) {
			r = syscall(SYS_rename, name, aside);
		} else if (!strncmp(fam, "chmod", 5)) {
			r = syscall(SYS_chmod, name, 0600);
		} else if (!strcmp(fam, "truncate")) {
			r = syscall(SYS_truncate, name, 1);
		} else if (!strcmp(fam, "mkdir")) {
			r = syscall(SYS_mkdir, newname, 0755);
		} else if (!strncmp(fam, "open", 4)) {
			r = syscall(SYS_openat, AT_FDCWD, name, O_RDONLY);
			if (r >= 0) {
				if (read(r, buf, sizeof(buf) - 1) < 0)
					buf[0] = 0;
				close(r);
			}
		} else if (!strcmp(fam, "creat")) {
			r = syscall(SYS_openat, AT_FDCWD, newname, O_CREAT | O_WRONLY, 0644);
			if (r >= 0)
				close(r);
		} else {
			fprintf(stderr, "unknown family %s\n", fam);
			return 2;
		}
		int err = r < 0 ? errno : 0;
		if (swap) {
			atomic_store(&state, DONE);
			sem_post(&done);
			sem_wait(&idle);
		}
		ok += r >= 0;
		refused += err == EACCES;
		// Did it reach the protected file? Put it back.
		if (!strcmp(fam, "unlink") || !strcmp(fam, "rename")) {
			if ((win = !exists(prot))) {
				if (!strcmp(fam, "rename"))
					renameat(AT_FDCWD, aside, AT_FDCWD, prot);
				else if (linkat(keep, "", AT_FDCWD, prot, AT_EMPTY_PATH) < 0)
					mkfile(prot);
			}
			unlinkat(AT_FDCWD, aside, 0);
		} else if (!strncmp(fam, "chmod", 5)) {
			fstat(keep, &st);
			if ((win = (st.st_mode & 0777) == 0600))
				fchmod(keep, st0.st_mode & 07777);
		} else if (!strcmp(fam, "truncate")) {
			fstat(keep, &st);
			if ((win = st.st_size == 1) && pwrite(keep, "SECRET\n", 7, 0) < 0)
				perror("pwrite");
		} else if (!strcmp(fam, "mkdir") || !strcmp(fam, "creat")) {
			int flag = !strcmp(fam, "mkdir") ? AT_REMOVEDIR : 0;
			if ((win = exists(protnew)))
				unlinkat(AT_FDCWD, protnew, flag);
			unlinkat(AT_FDCWD, newname, flag);
		} else {
			win = !strncmp(buf, "SECRET", 6);
		}
		wins += win;
	}
	atomic_store(&stop, 1);
	sem_post(&armed);
	pthread_join(t, NULL);
	printf("tries %d swapped %d ok %d refused %d wins %d\n", rounds, swapped, ok, refused, wins);
	return wins ? 1 : 0;
}
