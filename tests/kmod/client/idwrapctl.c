// SPDX-License-Identifier: GPL-2.0-only
/*
 * idwrapctl: a small supervisor for /dev/idwrap, for the module's tests.
 * Opens the device, configures it, watches a command it starts (or, with
 * --all, sees every process), prints every record as one line and answers
 * waiting records with the policy given on the command line:
 *
 *   idwrapctl [options] [-- command args...]
 *     --observe NAME     pre and post records       --pre NAME / --post NAME
 *     --decide NAME      the call waits; allowed unless a rule below says otherwise
 *     --deny NAME[:PATH]:ERRNO   --kill NAME[:PATH]   --rewrite NAME:ARG:VALUE
 *     --redirect NAME:PATH:NEWPATH   (REWRITE of an emulated open)
 *     --deny-dir NAME:DIR:ERRNO   deny a relative open from DIR: the record's path2, or
 *                        without one the dirfd's /proc/PID/fd link read when deciding
 *     --hold NAME:PATH   never answer that call (it waits for the timeout or close)
 *     --post-kill NAME   POST_DECIDE, answered with KILL
 *     --all --exec-sync --activate PATH   (EXEC verdict WATCH for that program)
 *     --timeout MS --fail allow|deny|kill --fail-errno N --ring BYTES
 *     --no-answer        never answer      --stall MS   stop reading for MS after the first record
 *     --quiet            count, do not print     --exits N   stop after N EXIT records of watched processes
 *     --seconds S        stop after S seconds
 *     --selftest         check the device's refusals (bad config, malformed verdicts) and exit
 *     --flip config|interest   a thread changes the session while calls run: data_max
 *                        4096 <-> 65536 (config), or getppid's PRE_DECIDE on and off
 *                        (interest), as fast as it can; prints FLIPS N at the end
 * NAME may be a comma-separated list.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "idwrap_uapi.h"

#define X(n) { #n, SYS_##n },
static const struct { const char *name; int nr; } names[] = {
	X(read) X(write) X(open) X(close) X(openat) X(creat) X(getppid) X(kill)
	X(unlink) X(unlinkat) X(execve) X(exit_group) X(io_uring_setup) X(mkdir)
	X(mkdirat) X(connect) X(getpid) X(newfstatat) X(fstat) X(mmap) X(pread64)
	X(clone) X(clone3) X(fork) X(rename) X(renameat2) X(openat2) X(nanosleep)
	X(io_uring_enter) X(io_uring_register)
};

static int nr_of(const char *s)
{
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (!strcmp(names[i].name, s))
			return names[i].nr;
	fprintf(stderr, "idwrapctl: unknown syscall %s\n", s);
	exit(2);
}

static const char *name_of(unsigned nr)
{
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if ((unsigned)names[i].nr == nr)
			return names[i].name;
	return NULL;
}

static int errno_of(const char *s)
{
	static const struct { const char *n; int e; } e[] = {
		{ "EPERM", EPERM }, { "EACCES", EACCES }, { "ENOENT", ENOENT },
		{ "EROFS", EROFS }, { "EIO", EIO },
	};
	for (size_t i = 0; i < sizeof(e) / sizeof(e[0]); i++)
		if (!strcmp(e[i].n, s))
			return e[i].e;
	return atoi(s);
}

#define HOLD	(-1)

struct rule {
	int nr, action, err, arg, dir;
	unsigned long long value;
	char path[256], newpath[256];
};

static struct rule rules[64];
static int nrules;
static struct idwrap_interest interest;
static const char *activate[8];
static int nactivate;
static int quiet, no_answer;
static long counts[8];

static void each_name(char *list, int bits)
{
	for (char *s = strtok(list, ","); s; s = strtok(NULL, ","))
		interest.mask[nr_of(s)] |= bits;
}

static void add_rule(char *spec, int action)
{
	struct rule *r = &rules[nrules++];
	char *f[4] = { 0 };
	int n = 0;

	for (char *s = strsep(&spec, ":"); s && n < 4; s = strsep(&spec, ":"))
		f[n++] = s;
	memset(r, 0, sizeof(*r));
	r->nr = nr_of(f[0]);
	r->action = action;
	interest.mask[r->nr] |= IDWRAP_PRE_DECIDE;
	switch (action) {
	case IDWRAP_ACT_DENY:	/* NAME[:PATH]:ERRNO */
		r->err = errno_of(f[n - 1]);
		if (n == 3)
			snprintf(r->path, sizeof(r->path), "%s", f[1]);
		break;
	case HOLD:		/* NAME:PATH */
	case IDWRAP_ACT_KILL:	/* NAME[:PATH] */
		if (n == 2)
			snprintf(r->path, sizeof(r->path), "%s", f[1]);
		break;
	case IDWRAP_ACT_REWRITE:
		if (n == 3 && f[1][0] == '/') {	/* NAME:PATH:NEWPATH */
			snprintf(r->path, sizeof(r->path), "%s", f[1]);
			snprintf(r->newpath, sizeof(r->newpath), "%s", f[2]);
		} else {			/* NAME:ARG:VALUE */
			r->arg = atoi(f[1]);
			r->value = strtoull(f[2], NULL, 0);
		}
		break;
	}
}

static const char *type_name(int t)
{
	static const char *n[] = { "?", "SYSCALL", "FORK", "EXEC", "EXIT", "LOST" };
	return t > 0 && t <= 5 ? n[t] : "?";
}

static void print_str(const char *key, const char *s, size_t len)
{
	printf(" %s=\"", key);
	for (size_t i = 0; i < len && i < 200; i++) {
		unsigned char c = s[i];
		if (c == 0)
			printf(i + 1 < len ? "\\0" : "");
		else if (c < 32 || c > 126 || c == '"' || c == '\\')
			printf("\\x%02x", c);
		else
			putchar(c);
	}
	putchar('"');
}

static void print_event(const struct idwrap_event *ev)
{
	static const char *fl[] = { "POST", "VERDICT", "COMPAT", "X32", "FAULT", "TRUNC",
				    "EMULATED", "WATCHED", "THREAD", "DENIED" };
	const char *p = (const char *)(ev + 1);
	const char *nm = name_of(ev->nr);

	printf("EV %s id=%llu flags=", type_name(ev->type), (unsigned long long)ev->id);
	int first = 1;
	for (int i = 0; i < 10; i++)
		if (ev->flags & (1 << i)) {
			printf("%s%s", first ? "" : "|", fl[i]);
			first = 0;
		}
	if (first)
		printf("-");
	printf(" pid=%d tid=%d ppid=%d uid=%u", ev->pid, ev->tid, ev->ppid, ev->uid);
	if (ev->type == IDWRAP_EV_SYSCALL) {
		if (nm && !(ev->flags & (IDWRAP_EVF_COMPAT | IDWRAP_EVF_X32)))
			printf(" nr=%s", nm);
		else
			printf(" nr=%u", ev->nr);
		printf(" a0=%lld a1=%lld a2=%lld", (long long)ev->args[0], (long long)ev->args[1],
		       (long long)ev->args[2]);
	}
	if (ev->type == IDWRAP_EV_SYSCALL && (ev->flags & (IDWRAP_EVF_POST | IDWRAP_EVF_DENIED)))
		printf(" ret=%lld", (long long)ev->ret);
	if (ev->type == IDWRAP_EV_EXIT)
		printf(" status=%lld", (long long)ev->ret);
	if (ev->type == IDWRAP_EV_LOST)
		printf(" lost=%llu", (unsigned long long)ev->lost);
	if (ev->path_len)
		print_str("path", p, ev->path_len);
	if (ev->path2_len)
		print_str("path2", p + ev->path_len, ev->path2_len);
	if (ev->data_len)
		print_str("data", p + ev->path_len + ev->path2_len, ev->data_len);
	printf(" comm=%.16s\n", ev->comm);
}

static int answer(int fd, const struct idwrap_event *ev)
{
	const char *path = ev->path_len ? (const char *)(ev + 1) : "";
	struct {
		struct idwrap_verdict v;
		char path[256];
	} out;
	size_t len = sizeof(out.v);

	memset(&out, 0, sizeof(out));
	out.v.id = ev->id;
	out.v.action = IDWRAP_ACT_ALLOW;
	if (ev->type == IDWRAP_EV_EXEC) {
		for (int i = 0; i < nactivate; i++)
			if (!strcmp(path, activate[i]))
				out.v.flags = IDWRAP_VF_WATCH;
	} else if (ev->flags & IDWRAP_EVF_POST) {
		if (interest.mask[ev->nr] & IDWRAP_POST_DECIDE)
			out.v.action = IDWRAP_ACT_KILL;
	} else {
		for (int i = 0; i < nrules; i++) {
			struct rule *r = &rules[i];
			if (r->nr != (int)ev->nr)
				continue;
			if (r->dir) {
				char link[64], dir[256] = "";
				const char *d = dir;

				if (ev->path2_len) {
					d = (const char *)(ev + 1) + ev->path_len;
				} else {
					snprintf(link, sizeof(link), "/proc/%d/fd/%d", ev->tid, (int)ev->args[0]);
					if (readlink(link, dir, sizeof(dir) - 1) < 0)
						dir[0] = 0;
				}
				if (path[0] == '/' || strcmp(r->path, d))
					continue;
			} else if (r->path[0] && strcmp(r->path, path)) {
				continue;
			}
			if (r->action == HOLD) {
				if (!quiet)
					printf("HOLD id=%llu\n", (unsigned long long)ev->id);
				return 0;
			}
			out.v.action = r->action;
			out.v.err = r->err;
			out.v.arg = r->arg;
			out.v.value = r->value;
			if (r->newpath[0]) {
				out.v.path_len = strlen(r->newpath) + 1;
				memcpy(out.path, r->newpath, out.v.path_len);
				len += out.v.path_len;
			}
			break;
		}
	}
	if (!quiet)
		printf("VERDICT id=%llu action=%u err=%d flags=%u\n", (unsigned long long)ev->id,
		       out.v.action, out.v.err, out.v.flags);
	if (write(fd, &out, len) != (ssize_t)len) {
		printf("WRITE-FAILED %s\n", strerror(errno));
		return -1;
	}
	return 0;
}

/* The device's answers to bad input, one line each. */
static int selftest(int fd)
{
	struct idwrap_config c = { .abi = IDWRAP_ABI_VERSION + 1 };
	struct idwrap_verdict v = { .id = 1ULL << 60 };
	struct idwrap_watch w = { .pid = getpid() };
	char junk[3] = { 0 };

#define TRY(what, call) printf("SELFTEST %s %s\n", what, (call) < 0 ? strerror(errno) : "ok")
	TRY("config-abi", ioctl(fd, IDWRAP_IOC_CONFIG, &c));
	c.abi = IDWRAP_ABI_VERSION;
	c.ring_bytes = 100000;
	TRY("config-ring", ioctl(fd, IDWRAP_IOC_CONFIG, &c));
	c.ring_bytes = 0;
	c.flags = 0x80;
	TRY("config-flags", ioctl(fd, IDWRAP_IOC_CONFIG, &c));
	c.flags = 0;
	TRY("config-good", ioctl(fd, IDWRAP_IOC_CONFIG, &c));
	TRY("watch-self", ioctl(fd, IDWRAP_IOC_WATCH, &w));
	TRY("write-short", write(fd, junk, sizeof(junk)));
	v.action = 9;
	TRY("write-action", write(fd, &v, sizeof(v)));
	v.action = IDWRAP_ACT_ALLOW;
	TRY("write-unknown-id", write(fd, &v, sizeof(v)));
	TRY("ioctl-bad", ioctl(fd, _IO(IDWRAP_IOC_MAGIC, 99)));
	/* Errnos 512 and up are the kernel's restart codes, never a verdict's. */
	c.fail_errno = 512;
	TRY("config-errno-512", ioctl(fd, IDWRAP_IOC_CONFIG, &c));
	c.fail_errno = 511;
	TRY("config-errno-511", ioctl(fd, IDWRAP_IOC_CONFIG, &c));
	v.action = IDWRAP_ACT_DENY;
	v.err = 512;
	TRY("write-errno-512", write(fd, &v, sizeof(v)));
	v.err = 4095;
	TRY("write-errno-4095", write(fd, &v, sizeof(v)));
	return 0;
}

/* --flip: changes the session as fast as it can while the workload runs. */
static struct {
	int fd, interest;
	struct idwrap_config cfg;
	volatile int stop;
	long n, failed;
} flip;

static void *flipper(void *arg)
{
	static struct idwrap_interest alt;

	(void)arg;
	alt = interest;
	alt.mask[SYS_getppid] ^= IDWRAP_PRE_DECIDE;
	while (!flip.stop) {
		int r;

		if (flip.interest) {
			r = ioctl(flip.fd, IDWRAP_IOC_INTEREST, flip.n & 1 ? &interest : &alt);
		} else {
			flip.cfg.data_max = flip.n & 1 ? 4096 : 65536;
			r = ioctl(flip.fd, IDWRAP_IOC_CONFIG, &flip.cfg);
		}
		flip.failed += r < 0;
		flip.n++;
	}
	return NULL;
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

int main(int argc, char **argv)
{
	struct idwrap_config cfg = { .abi = IDWRAP_ABI_VERSION };
	int all = 0, exits = 0, seconds = 600, stall = 0, self = 0, i;
	const char *flip_what = NULL;
	pthread_t flip_thread;
	static char buf[1 << 20];
	pid_t child = 0;
	int sync_pipe[2];

	for (i = 1; i < argc; i++) {
		char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;

		if (!strcmp(a, "--")) {
			i++;
			break;
		}
		if (!strcmp(a, "--all")) { all = 1; continue; }
		if (!strcmp(a, "--exec-sync")) { cfg.flags |= IDWRAP_CFG_EXEC_SYNC; continue; }
		if (!strcmp(a, "--no-answer")) { no_answer = 1; continue; }
		if (!strcmp(a, "--quiet")) { quiet = 1; continue; }
		if (!strcmp(a, "--selftest")) { self = 1; continue; }
		if (!v) {
			fprintf(stderr, "idwrapctl: %s needs a value\n", a);
			return 2;
		}
		i++;
		if (!strcmp(a, "--observe")) each_name(v, IDWRAP_PRE_OBSERVE | IDWRAP_POST_OBSERVE);
		else if (!strcmp(a, "--pre")) each_name(v, IDWRAP_PRE_OBSERVE);
		else if (!strcmp(a, "--post")) each_name(v, IDWRAP_POST_OBSERVE);
		else if (!strcmp(a, "--decide")) each_name(v, IDWRAP_PRE_DECIDE);
		else if (!strcmp(a, "--post-kill")) each_name(v, IDWRAP_POST_DECIDE);
		else if (!strcmp(a, "--deny")) add_rule(v, IDWRAP_ACT_DENY);
		else if (!strcmp(a, "--deny-dir")) {
			add_rule(v, IDWRAP_ACT_DENY);
			rules[nrules - 1].dir = 1;
		}
		else if (!strcmp(a, "--kill")) add_rule(v, IDWRAP_ACT_KILL);
		else if (!strcmp(a, "--hold")) add_rule(v, HOLD);
		else if (!strcmp(a, "--rewrite") || !strcmp(a, "--redirect")) add_rule(v, IDWRAP_ACT_REWRITE);
		else if (!strcmp(a, "--activate")) activate[nactivate++] = v;
		else if (!strcmp(a, "--timeout")) cfg.timeout_ms = atoi(v);
		else if (!strcmp(a, "--fail"))
			cfg.fail_action = !strcmp(v, "allow") ? IDWRAP_ACT_ALLOW :
					  !strcmp(v, "kill") ? IDWRAP_ACT_KILL : IDWRAP_ACT_DENY;
		else if (!strcmp(a, "--fail-errno")) cfg.fail_errno = errno_of(v);
		else if (!strcmp(a, "--ring")) cfg.ring_bytes = atoi(v);
		else if (!strcmp(a, "--exits")) exits = atoi(v);
		else if (!strcmp(a, "--seconds")) seconds = atoi(v);
		else if (!strcmp(a, "--stall")) stall = atoi(v);
		else if (!strcmp(a, "--flip")) flip_what = v;
		else {
			fprintf(stderr, "idwrapctl: unknown option %s\n", a);
			return 2;
		}
	}
	if (all)
		cfg.flags |= IDWRAP_CFG_ALL_PROCESSES;
	setvbuf(stdout, NULL, _IOLBF, 0);

	printf("PID %d\n", getpid());
	int fd = open("/dev/idwrap", O_RDWR);
	if (fd < 0) {
		printf("OPEN-FAILED %s\n", strerror(errno));
		return 1;
	}
	printf("VERSION %d\n", ioctl(fd, IDWRAP_IOC_VERSION));
	if (self)
		return selftest(fd);
	if (ioctl(fd, IDWRAP_IOC_CONFIG, &cfg) || ioctl(fd, IDWRAP_IOC_INTEREST, &interest)) {
		printf("CONFIG-FAILED %s\n", strerror(errno));
		return 1;
	}
	if (i < argc) {
		if (pipe(sync_pipe))
			return 1;
		child = fork();
		if (!child) {
			char c;

			close(fd);
			close(sync_pipe[1]);
			if (read(sync_pipe[0], &c, 1) != 1)
				_exit(127);
			execvp(argv[i], argv + i);
			_exit(127);
		}
		struct idwrap_watch w = { .pid = child };
		if (ioctl(fd, IDWRAP_IOC_WATCH, &w)) {
			printf("WATCH-FAILED %s\n", strerror(errno));
			return 1;
		}
		printf("CHILD %d\n", child);
		if (write(sync_pipe[1], "g", 1) != 1)
			return 1;
		close(sync_pipe[1]);
		if (!exits)
			exits = -1;	/* until the child's EXIT record */
	}
	if (flip_what) {
		flip.fd = fd;
		flip.cfg = cfg;
		flip.interest = !strcmp(flip_what, "interest");
		if (pthread_create(&flip_thread, NULL, flipper, NULL))
			return 1;
	}
	printf("READY\n");

	long long start = now_ms(), stalled_until = 0;
	int child_status = -1, done = 0, stalled = 0;
	while (!done && now_ms() - start < seconds * 1000LL) {
		if (stalled_until && now_ms() < stalled_until) {
			if (child && child_status < 0 && waitpid(child, &child_status, WNOHANG) == child)
				printf("CHILD-EXITED-WHILE-STALLED status=%d\n", child_status);
			usleep(20000);
			continue;
		}
		struct pollfd p = { .fd = fd, .events = POLLIN };
		if (poll(&p, 1, 200) <= 0) {
			/* Idle: the child gone and its records read (its EXIT may have been lost). */
			if (child && child_status >= 0 && exits < 0)
				break;
			if (child && child_status < 0)
				waitpid(child, &child_status, WNOHANG);
			continue;
		}
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0) {
			printf("READ-FAILED %s\n", strerror(errno));
			break;
		}
		for (ssize_t off = 0; off < n;) {
			const struct idwrap_event *ev = (const void *)(buf + off);

			off += ev->size;
			counts[ev->type & 7]++;
			if (!quiet || ev->type == IDWRAP_EV_LOST)
				print_event(ev);
			if ((ev->flags & IDWRAP_EVF_VERDICT) && !no_answer)
				answer(fd, ev);
			if (ev->type == IDWRAP_EV_EXIT &&
			    ((exits < 0 && ev->pid == child) ||
			     (exits > 0 && (ev->flags & IDWRAP_EVF_WATCHED) && !--exits)))
				done = 1;
		}
		if (stall && !stalled) {
			stalled = 1;
			stalled_until = now_ms() + stall;
			printf("STALL %d\n", stall);
		}
	}
	if (flip_what) {
		flip.stop = 1;
		pthread_join(flip_thread, NULL);
		printf("FLIPS %ld failed=%ld\n", flip.n, flip.failed);
	}
	struct idwrap_stats s;
	if (!ioctl(fd, IDWRAP_IOC_STATS, &s))
		printf("STATS events=%llu waited=%llu lost=%llu timeouts=%llu denied=%llu killed=%llu "
		       "rewritten=%llu emulated=%llu watched=%llu inflight=%llu\n",
		       s.events, s.waited, s.lost, s.timeouts, s.denied, s.killed, s.rewritten,
		       s.emulated, s.watched, s.inflight);
	printf("COUNTS syscall=%ld fork=%ld exec=%ld exit=%ld lost=%ld\n", counts[1], counts[2],
	       counts[3], counts[4], counts[5]);
	if (child && child_status < 0)
		waitpid(child, &child_status, 0);
	if (child)
		printf("CHILD-STATUS %d\n", child_status);
	return 0;
}
