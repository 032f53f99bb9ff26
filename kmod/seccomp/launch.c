// SPDX-License-Identifier: GPL-2.0-only
/*
 * idwrap-launch - start a command under idwrap's seccomp user-notify filter.
 *
 * The host (the idwrap supervisor) spawns this program as:
 *
 *   idwrap-launch SOCKET FILTER_HEX -- COMMAND [ARG...]
 *
 * FILTER_HEX is the classic-BPF program built by host/sources/seccomp/filter.ts,
 * 8 bytes (struct sock_filter) per instruction, hex encoded.
 *
 * The hard part is handing the listener fd to the host without a window in
 * which the command runs unwatched, and without this program itself making a
 * notified call nobody can answer yet.  So the work is split over two threads:
 *
 *   - a worker thread installs the filter on itself only (no TSYNC), publishes
 *     the listener fd number through an atomic, spins (no system calls) until
 *     the host has taken the fd, then execvp()s the command.  execve from a
 *     non-leader thread kills the other threads, and the new program inherits
 *     the worker's filter, so the command never runs unfiltered;
 *   - the main thread, which is NOT filtered, tells the host "pid fd" over the
 *     Unix socket, waits until the host has copied the fd with pidfd_getfd(2),
 *     closes its own copy and releases the worker.
 *
 * With --landlock first (the hybrid source), the worker also puts itself in a
 * Landlock domain before the filter (host/sources/hybrid/landlock.ts): the
 * kernel then refuses the command's tree every ptrace access check on the
 * supervisor, whatever its capabilities.
 *
 * With the kernel module as the event source there is no filter to install:
 *
 *   idwrap-launch --no-filter SOCKET -- COMMAND [ARG...]
 *
 * says "watch PID" to the host, waits for "go" (by then the host has asked
 * the module to watch this pid, and children inherit the watch) and execs.
 *
 * Exit codes before the exec: 125 set-up failed, 126/127 as the shell's
 * (cannot execute / not found) when execvp fails.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
#define SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV (1UL << 5)
#endif

#define EXIT_SETUP 125

static struct sock_fprog prog;
static char **command;
static atomic_int listener = -1;	/* -1: not yet, -2: failed, else the fd */
static atomic_int go;			/* 1: the host holds the fd, exec */
static int landlock;			/* --landlock: a Landlock domain before the filter */
static const char *failed_step = "seccomp(SECCOMP_SET_MODE_FILTER)";

/* Landlock's ruleset attribute as of ABI 6 (older headers lack `scoped`). */
struct idw_landlock_attr {
	__u64 handled_access_fs, handled_access_net, scoped;
};
#define IDW_LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET 1ULL
#ifndef SYS_landlock_create_ruleset
#define SYS_landlock_create_ruleset 444
#define SYS_landlock_restrict_self 446
#endif

/*
 * A domain that scopes abstract unix sockets (Landlock ABI 6): the least it can handle — nothing of the file system
 * (a file right would refuse mounts) and no port. Any domain makes the kernel refuse a ptrace access check from
 * inside it on a task outside it (security/landlock/task.c), which is what the hybrid wants of it.
 */
static int enter_landlock(void)
{
	struct idw_landlock_attr attr = { .scoped = IDW_LANDLOCK_SCOPE_ABSTRACT_UNIX_SOCKET };
	long rs = syscall(SYS_landlock_create_ruleset, &attr, sizeof(attr), 0);
	long r;

	if (rs < 0)
		return -1;
	r = syscall(SYS_landlock_restrict_self, rs, 0);
	if (r < 0 && errno == EPERM && prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0)
		r = syscall(SYS_landlock_restrict_self, rs, 0);
	close((int)rs);
	return r < 0 ? -1 : 0;
}
static int install_errno;
static int killable_recv;

static void die(const char *what)
{
	fprintf(stderr, "idwrap-launch: %s: %s\n", what, strerror(errno));
	exit(EXIT_SETUP);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Decode FILTER_HEX into prog; the byte layout is struct sock_filter's. */
static void parse_filter(const char *hex)
{
	size_t len = strlen(hex), i;
	unsigned char *bytes;

	if (len == 0 || len % 16 != 0) {
		fprintf(stderr, "idwrap-launch: filter has %zu hex digits, expected a multiple of 16\n", len);
		exit(EXIT_SETUP);
	}
	bytes = malloc(len / 2);
	if (!bytes)
		die("malloc");
	for (i = 0; i < len / 2; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);

		if (hi < 0 || lo < 0) {
			fprintf(stderr, "idwrap-launch: filter has a non-hex digit at %zu\n", 2 * i);
			exit(EXIT_SETUP);
		}
		bytes[i] = (unsigned char)(hi << 4 | lo);
	}
	prog.len = (unsigned short)(len / 16);
	prog.filter = (struct sock_filter *)bytes;
}

static long install(unsigned long flags)
{
	return syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, flags, &prog);
}

static void *worker(void *unused)
{
	unsigned long flags = SECCOMP_FILTER_FLAG_NEW_LISTENER |
			      SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
	long fd;

	(void)unused;
	if (landlock && enter_landlock() < 0) {
		install_errno = errno;
		failed_step = "landlock_restrict_self";
		atomic_store(&listener, -2);
		return NULL;
	}
	fd = install(flags);
	if (fd < 0 && errno == EINVAL) {
		/* Kernels before 5.19 lack WAIT_KILLABLE_RECV. */
		flags &= ~SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV;
		fd = install(flags);
	}
	if (fd < 0 && errno == EACCES) {
		/* Without CAP_SYS_ADMIN the kernel wants no_new_privs first. */
		if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0)
			fd = install(flags);
	}
	if (fd < 0) {
		install_errno = errno;
		atomic_store(&listener, -2);
		return NULL;
	}
	killable_recv = !!(flags & SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV);
	atomic_store(&listener, (int)fd);

	/* Filtered from here on: wait without system calls. */
	while (!atomic_load(&go))
		__builtin_ia32_pause();

	execvp(command[0], command);
	fprintf(stderr, "idwrap-launch: cannot run %s: %s\n", command[0], strerror(errno));
	_exit(errno == ENOENT ? 127 : 126);
}

static int connect_host(const char *path)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int sock;

	if (strlen(path) >= sizeof(addr.sun_path)) {
		fprintf(stderr, "idwrap-launch: socket path too long: %s\n", path);
		exit(EXIT_SETUP);
	}
	strcpy(addr.sun_path, path);
	sock = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (sock < 0)
		die("socket");
	if (connect(sock, (struct sockaddr *)&addr, sizeof(addr)) < 0)
		die("connect to the idwrap host");
	return sock;
}

/* --no-filter: the kernel module watches this pid once the host says "go". */
static int launch_unfiltered(const char *socket_path, char **cmd)
{
	char msg[64], reply[256];
	ssize_t n;
	int sock = connect_host(socket_path);

	n = snprintf(msg, sizeof(msg), "watch %d\n", getpid());
	if (write(sock, msg, (size_t)n) != n)
		die("write to the idwrap host");
	n = read(sock, reply, sizeof(reply) - 1);
	if (n <= 0)
		die("read from the idwrap host");
	reply[n] = '\0';
	if (strncmp(reply, "go", 2) != 0) {
		fprintf(stderr, "idwrap-launch: host refused: %s", reply);
		return EXIT_SETUP;
	}
	close(sock);
	execvp(cmd[0], cmd);
	fprintf(stderr, "idwrap-launch: cannot run %s: %s\n", cmd[0], strerror(errno));
	return errno == ENOENT ? 127 : 126;
}

int main(int argc, char **argv)
{
	char msg[128], reply[256];
	pthread_t thread;
	ssize_t n;
	int sock, fd;

	if (argc >= 5 && strcmp(argv[1], "--no-filter") == 0 && strcmp(argv[3], "--") == 0)
		return launch_unfiltered(argv[2], &argv[4]);
	if (argc >= 6 && strcmp(argv[1], "--landlock") == 0) {
		landlock = 1;
		argc--;
		argv++;
	}
	if (argc < 5 || strcmp(argv[3], "--") != 0) {
		fprintf(stderr, "usage: idwrap-launch [--landlock] SOCKET FILTER_HEX -- COMMAND [ARG...]\n"
				"       idwrap-launch --no-filter SOCKET -- COMMAND [ARG...]\n");
		return EXIT_SETUP;
	}
	parse_filter(argv[2]);
	command = &argv[4];
	sock = connect_host(argv[1]);

	if (pthread_create(&thread, NULL, worker, NULL) != 0)
		die("pthread_create");
	while ((fd = atomic_load(&listener)) == -1)
		sched_yield();
	if (fd == -2) {
		errno = install_errno;
		n = snprintf(msg, sizeof(msg), "error %d\n", install_errno);
		(void)!write(sock, msg, (size_t)n);
		die(failed_step);
	}

	n = snprintf(msg, sizeof(msg), "listener %d %d %d\n", getpid(), fd, killable_recv);
	if (write(sock, msg, (size_t)n) != n)
		die("write to the idwrap host");
	n = read(sock, reply, sizeof(reply) - 1);
	if (n <= 0)
		die("read from the idwrap host");
	reply[n] = '\0';
	if (strncmp(reply, "go", 2) != 0) {
		fprintf(stderr, "idwrap-launch: host refused: %s", reply);
		return EXIT_SETUP;
	}
	close(fd);
	close(sock);
	atomic_store(&go, 1);
	pthread_join(thread, NULL);	/* execve in the worker ends this thread */
	return EXIT_SETUP;
}
