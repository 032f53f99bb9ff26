// SPDX-License-Identifier: GPL-2.0-only
/*
 * work: tiny workloads for the module's tests, one per subcommand.
 *   work unlink PATH              unlinkat(PATH), then prints "survived"
 *   work kill-self                kill(getpid(), SIGKILL) with a raw syscall; prints
 *                                 "alive" and whether %rsi still holds 9 afterwards
 *   work open PATH                openat(PATH): prints the result, errno and the time it took
 *   work race OK BAD N            a thread swaps one buffer between OK and BAD while
 *                                 the main thread opens it N times and reads the file
 *   work int80                    i386 getpid and mkdir("/tmp/int80") through int $0x80
 *   work uring                    io_uring_setup(1)
 *   work loop N getppid|close     N calls, prints ns per call
 *   work writes N                 N write()s of 64 bytes to /dev/null
 *   work hammer PROCS THREADS MS  openat/close/getppid in PROCS x THREADS for MS ms
 *   work forkexec                 fork; the child drops the pages of its execve path
 *                                 and argv strings (read-only data) and execs
 *                                 /bin/true from-rodata: the kernel sees them absent
 *   work execbig N                N times: fork, drop the path's page, execve /bin/true
 *                                 with 60 KiB of argv; prints how many exited 0
 *   work dirrace OK BAD N         a thread dup2()s directory OK, then BAD, onto fd 10 while
 *                                 the main thread opens "f" relative to fd 10 N times
 *   work threads-exit N T         N times: fork a child with T threads asleep that calls
 *                                 exit_group, so they all exit together; prints each child
 *   work opens PATH N             N openat(PATH): how many were denied, how many opened
 *   work uring-exec PROG          io_uring_setup, then exec PROG uring-use FD (ring kept)
 *   work uring-use FD             io_uring_enter and io_uring_register on a ring it got
 *   work forkopen PATH            fork; the child, then the parent, open PATH and print
 *                                 what they read (and how the child ended)
 *   work openrel DIR NAME         chdir(DIR), open NAME (relative), print what it read
 *   work faultopens MS T          T threads open /tmp/public for MS ms, its string's page
 *                                 dropped before each call (the copy faults at sys_enter)
 *   work rmmod-spin NAME MS       delete_module(NAME) again and again until it unloads
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static long long now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static char race_buf[64];
static volatile int race_stop;
static const char *race_ok, *race_bad;

static void *swapper(void *arg)
{
	(void)arg;
	while (!race_stop) {
		strcpy(race_buf, race_bad);
		strcpy(race_buf, race_ok);
	}
	return NULL;
}

static int dir_ok, dir_bad;

static void *dir_swapper(void *arg)
{
	(void)arg;
	while (!race_stop) {
		dup2(dir_bad, 10);
		dup2(dir_ok, 10);
	}
	return NULL;
}

static void *sleeper(void *arg)
{
	(void)arg;
	for (;;)
		pause();
	return NULL;
}

static volatile int hammer_stop;

static void *hammer_thread(void *arg)
{
	long n = 0;

	(void)arg;
	while (!hammer_stop) {
		int fd = open("/etc/hostname", O_RDONLY);
		if (fd >= 0)
			close(fd);
		syscall(SYS_getppid);
		n++;
	}
	return (void *)n;
}

/* faultopens: opens a path whose page was just dropped (a file-backed
 * rodata page), so the sys_enter copy faults and idwrap_pre() copies it. */
static const char faultopen_path[] = "/tmp/public";
static volatile int faultopen_stop;

static void *faultopen_thread(void *arg)
{
	unsigned long pg = sysconf(_SC_PAGESIZE);
	void *page = (void *)((unsigned long)faultopen_path & ~(pg - 1));
	long n = 0;

	(void)arg;
	while (!faultopen_stop) {
		madvise(page, pg, MADV_DONTNEED);
		int fd = open(faultopen_path, O_RDONLY);
		if (fd >= 0)
			close(fd);
		n++;
	}
	return (void *)n;
}

/* One open, reported as "<who> fd= errno= data=" (the first line read). */
static void open_report(const char *who, const char *path)
{
	int fd = openat(AT_FDCWD, path, O_RDONLY);
	int e = errno;
	char data[64] = "";

	if (fd >= 0) {
		ssize_t n = read(fd, data, sizeof(data) - 1);
		data[n > 0 ? n : 0] = 0;
		data[strcspn(data, "\n")] = 0;
		close(fd);
	}
	printf("%s fd=%d errno=%s data=%s\n", who, fd, fd < 0 ? strerror(e) : "-", data);
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	const char *cmd = argv[1];

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!strcmp(cmd, "unlink")) {
		int r = unlinkat(AT_FDCWD, argv[2], 0);
		printf("survived unlink=%d\n", r);
	} else if (!strcmp(cmd, "kill-self")) {
		long ret, rsi = SIGKILL;
		__asm__ volatile("syscall"
				 : "=a"(ret), "+S"(rsi)
				 : "0"((long)SYS_kill), "D"((long)getpid())
				 : "rcx", "r11", "memory");
		printf("alive ret=%ld rsi-after=%ld\n", ret, rsi);
	} else if (!strcmp(cmd, "open")) {
		long long t = now_ns();
		int fd = openat(AT_FDCWD, argv[2], O_RDONLY);
		int e = errno;
		char data[64] = "";
		if (fd >= 0) {
			ssize_t n = read(fd, data, sizeof(data) - 1);
			data[n > 0 ? n : 0] = 0;
			data[strcspn(data, "\n")] = 0;
		}
		printf("open fd=%d errno=%s ms=%lld data=%s\n", fd, fd < 0 ? strerror(e) : "-",
		       (now_ns() - t) / 1000000, data);
	} else if (!strcmp(cmd, "race")) {
		pthread_t th;
		long n = atol(argv[4]), ok = 0, denied = 0, leaked = 0, other = 0;

		race_ok = argv[2];
		race_bad = argv[3];
		strcpy(race_buf, race_ok);
		pthread_create(&th, NULL, swapper, NULL);
		for (long i = 0; i < n; i++) {
			int fd = openat(AT_FDCWD, race_buf, O_RDONLY);
			char data[32] = "";
			if (fd < 0) {
				if (errno == EACCES)
					denied++;
				else
					other++;
				continue;
			}
			if (read(fd, data, sizeof(data) - 1) > 0 && !strncmp(data, "SECRET", 6))
				leaked++;
			else
				ok++;
			close(fd);
		}
		race_stop = 1;
		pthread_join(th, NULL);
		printf("race opens=%ld ok=%ld denied=%ld leaked=%ld other=%ld\n", n, ok, denied,
		       leaked, other);
	} else if (!strcmp(cmd, "dirrace")) {
		pthread_t th;
		long n = atol(argv[4]), ok = 0, denied = 0, leaked = 0, other = 0;

		dir_ok = open(argv[2], O_RDONLY | O_DIRECTORY);
		dir_bad = open(argv[3], O_RDONLY | O_DIRECTORY);
		dup2(dir_ok, 10);
		pthread_create(&th, NULL, dir_swapper, NULL);
		for (long i = 0; i < n; i++) {
			int fd = openat(10, "f", O_RDONLY);
			char data[32] = "";
			if (fd < 0) {
				if (errno == EACCES)
					denied++;
				else
					other++;
				continue;
			}
			if (read(fd, data, sizeof(data) - 1) > 0 && !strncmp(data, "SECRET", 6))
				leaked++;
			else
				ok++;
			close(fd);
		}
		race_stop = 1;
		pthread_join(th, NULL);
		printf("dirrace opens=%ld ok=%ld denied=%ld leaked=%ld other=%ld\n", n, ok, denied,
		       leaked, other);
	} else if (!strcmp(cmd, "int80")) {
		long r1, r2;
		static const char dir[] = "/tmp/int80";
		__asm__ volatile("int $0x80" : "=a"(r1) : "0"(20L) : "memory");
		__asm__ volatile("int $0x80" : "=a"(r2) : "0"(39L), "b"(dir), "c"(0755L) : "memory");
		struct stat st;
		printf("int80 getpid=%ld mkdir=%ld exists=%d\n", r1, r2, stat(dir, &st) == 0);
	} else if (!strcmp(cmd, "uring")) {
		char params[120] = { 0 };
		long r = syscall(SYS_io_uring_setup, 1, params);
		printf("uring ret=%ld errno=%s\n", r, r < 0 ? strerror(errno) : "-");
	} else if (!strcmp(cmd, "loop")) {
		long n = atol(argv[2]);
		int nr = !strcmp(argv[3], "close") ? SYS_close : SYS_getppid;
		long long t = now_ns();
		for (long i = 0; i < n; i++)
			syscall(nr, -1);
		printf("loop %s n=%ld ns-per-call=%lld\n", argv[3], n, (now_ns() - t) / n);
	} else if (!strcmp(cmd, "writes")) {
		long n = atol(argv[2]);
		char b[64];
		int fd = open("/dev/null", O_WRONLY);
		memset(b, 'w', sizeof(b));
		for (long i = 0; i < n; i++)
			if (write(fd, b, sizeof(b)) != sizeof(b))
				return 1;
		printf("writes done n=%ld\n", n);
	} else if (!strcmp(cmd, "forkexec")) {
		static const char path[] = "/bin/true", a0[] = "true", a1[] = "from-rodata";
		char *const av[] = { (char *)a0, (char *)a1, NULL };
		extern char **environ;
		pid_t pid = fork();
		int st = -1;

		if (pid == 0) {
			const char *strs[] = { path, a0, a1 };
			unsigned long pg = sysconf(_SC_PAGESIZE);
			for (int i = 0; i < 3; i++)
				madvise((void *)((unsigned long)strs[i] & ~(pg - 1)), pg, MADV_DONTNEED);
			syscall(SYS_execve, path, av, environ);
			_exit(127);
		}
		waitpid(pid, &st, 0);
		printf("forkexec status=%d\n", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
	} else if (!strcmp(cmd, "execbig")) {
		static const char path[] = "/bin/true";
		static char arg[60][1024];
		char *av[62];
		extern char **environ;
		long n = atol(argv[2]), ok = 0;
		unsigned long pg = sysconf(_SC_PAGESIZE);

		av[0] = (char *)"true";
		for (int i = 0; i < 60; i++) {
			memset(arg[i], 'a' + i % 26, sizeof(arg[i]) - 1);
			av[i + 1] = arg[i];
		}
		av[61] = NULL;
		for (long i = 0; i < n; i++) {
			pid_t pid = fork();
			int st = -1;

			if (pid == 0) {
				/* The path faults in the copy: the copy sleeps between sizing and argv. */
				madvise((void *)((unsigned long)path & ~(pg - 1)), pg, MADV_DONTNEED);
				syscall(SYS_execve, path, av, environ);
				_exit(127);
			}
			waitpid(pid, &st, 0);
			ok += WIFEXITED(st) && WEXITSTATUS(st) == 0;
		}
		printf("execbig n=%ld ok=%ld\n", n, ok);
	} else if (!strcmp(cmd, "threads-exit")) {
		int n = atoi(argv[2]), threads = atoi(argv[3]);

		for (int i = 0; i < n; i++) {
			pid_t pid = fork();
			int st = -1;

			if (pid == 0) {
				pthread_t th;

				for (int t = 0; t < threads; t++)
					pthread_create(&th, NULL, sleeper, NULL);
				usleep(20000);
				syscall(SYS_exit_group, 0);
			}
			waitpid(pid, &st, 0);
			printf("TE-CHILD pid=%d status=%d\n", pid, st);
		}
	} else if (!strcmp(cmd, "opens")) {
		long n = atol(argv[3]), denied = 0, opened = 0, other = 0;

		for (long i = 0; i < n; i++) {
			int fd = openat(AT_FDCWD, argv[2], O_RDONLY);
			if (fd >= 0) {
				opened++;
				close(fd);
			} else if (errno == EACCES) {
				denied++;
			} else {
				other++;
			}
		}
		printf("opens n=%ld denied=%ld opened=%ld other=%ld\n", n, denied, opened, other);
	} else if (!strcmp(cmd, "uring-exec")) {
		char params[120] = { 0 }, fdarg[24];
		long fd = syscall(SYS_io_uring_setup, 1, params);

		if (fd < 0) {
			printf("uring-exec setup errno=%s\n", strerror(errno));
			return 1;
		}
		fcntl(fd, F_SETFD, 0);	/* kept across exec */
		snprintf(fdarg, sizeof(fdarg), "%ld", fd);
		execl(argv[2], argv[2], "uring-use", fdarg, (char *)NULL);
		return 127;
	} else if (!strcmp(cmd, "uring-use")) {
		int fd = atoi(argv[2]);
		char probe[1024] = { 0 };
		long e = syscall(SYS_io_uring_enter, fd, 0, 0, 0, NULL, 0);
		int ee = errno;
		long r = syscall(SYS_io_uring_register, fd, 8 /* IORING_REGISTER_PROBE */, probe, 4);
		printf("uring-use enter=%ld (%s) register=%ld (%s)\n", e, e < 0 ? strerror(ee) : "-", r,
		       r < 0 ? strerror(errno) : "-");
	} else if (!strcmp(cmd, "hammer")) {
		int procs = atoi(argv[2]), threads = atoi(argv[3]), ms = atoi(argv[4]);
		for (int p = 0; p < procs; p++) {
			if (fork())
				continue;
			pthread_t th[64];
			long total = 0;
			for (int t = 0; t < threads; t++)
				pthread_create(&th[t], NULL, hammer_thread, NULL);
			usleep(ms * 1000);
			hammer_stop = 1;
			for (int t = 0; t < threads; t++) {
				void *r;
				pthread_join(th[t], &r);
				total += (long)r;
			}
			printf("hammer proc %d calls=%ld\n", p, total);
			_exit(0);
		}
		int st, n = 0;
		while (wait(&st) > 0)
			n++;
		printf("hammer done procs=%d\n", n);
	} else if (!strcmp(cmd, "forkopen")) {
		/* A child forked by a watched process opens @path: it must be watched too. */
		pid_t pid = fork();
		int st = 0;

		if (pid == 0) {
			open_report("forkopen child", argv[2]);
			_exit(0);
		}
		waitpid(pid, &st, 0);
		if (WIFSIGNALED(st))
			printf("forkopen child-killed sig=%d\n", WTERMSIG(st));
		else
			printf("forkopen child-exit status=%d\n", WEXITSTATUS(st));
		open_report("forkopen parent", argv[2]);
	} else if (!strcmp(cmd, "openrel")) {
		/* A relative open from @dir (the emulated open joins it to the cwd). */
		if (chdir(argv[2]))
			return 1;
		open_report("openrel", argv[3]);
	} else if (!strcmp(cmd, "faultopens")) {
		int ms = atoi(argv[2]), threads = atoi(argv[3]);
		pthread_t th[64];
		long total = 0;

		for (int t = 0; t < threads; t++)
			pthread_create(&th[t], NULL, faultopen_thread, NULL);
		usleep(ms * 1000);
		faultopen_stop = 1;
		for (int t = 0; t < threads; t++) {
			void *r;
			pthread_join(th[t], &r);
			total += (long)r;
		}
		printf("faultopens done calls=%ld\n", total);
	} else if (!strcmp(cmd, "rmmod-spin")) {
		/* delete_module() again at once until it goes: unloads the moment the last holder leaves. */
		long long t = now_ns(), limit = atoll(argv[3]) * 1000000LL;
		long tries = 0;

		for (;;) {
			tries++;
			if (!syscall(SYS_delete_module, argv[2], O_NONBLOCK)) {
				printf("rmmod-spin ok tries=%ld ms=%lld\n", tries, (now_ns() - t) / 1000000);
				break;
			}
			if (errno != EAGAIN && errno != EBUSY) {
				printf("rmmod-spin failed errno=%s\n", strerror(errno));
				return 1;
			}
			if (now_ns() - t > limit) {
				printf("rmmod-spin timeout tries=%ld\n", tries);
				return 1;
			}
		}
	} else {
		return 2;
	}
	return 0;
}
