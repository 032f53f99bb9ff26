// SPDX-License-Identifier: GPL-2.0-only
/*
 * idwrap-holder - keep wrapped trees' seccomp listeners, and give each tree
 * its on_supervisor_loss answer when the idwrap supervisor is gone.
 *
 * Without it, the kernel fails every notified call with ENOSYS once the last
 * copy of a listener is closed: a daemon stopped or SIGKILLed left nginx
 * spinning on accept() = ENOSYS and writing gigabytes of error log (issue 17).
 * No cleanup code runs in a SIGKILLed supervisor, so this small,
 * single-threaded process, started by the supervisor (the daemon or a
 * standalone `idwrap run`), holds a copy of each listener and watches the
 * supervisor through a socket whose other end only the supervisor has:
 *
 *   idwrap-holder FD
 *
 * FD is a SOCK_SEQPACKET socket.  Messages from the supervisor:
 *
 *   "hold SESSION PID MODE" + SCM_RIGHTS(listener)   hold a copy of SESSION's
 *       listener (PID: the tree's first process); MODE is kill or deny.
 *       Answered "held SESSION" once the copy is ours.
 *   "lost SESSION"   the supervisor cannot serve SESSION any more (its thread
 *       died): apply the mode to it now.
 *   "at SESSION ID"  the supervisor received notification ID (sent every
 *       50 ms at most).  A call it received but never answered is in no
 *       queue the holder can read: ids are sequential per filter, so the
 *       holder finds such calls after the last reported id
 *       (SECCOMP_IOCTL_NOTIF_ID_VALID) and fails them with EPERM.
 *
 * A daemon's restart (`idwrap daemon --restart`) is an exec in place: the
 * same process, still holding its end of FD, goes on talking to the same
 * holder, which sees no end of file and nothing else.
 *
 * End of file on FD (the supervisor exited, was killed, or closed it when it
 * stopped) means supervision of every held session is lost.  While the
 * supervisor serves, the holder only waits: it never receives a
 * notification; it drops a listener once its tree is gone (POLLHUP).  When
 * supervision is lost:
 *
 *   kill: SIGKILL to the tree's first process and its descendants, then to
 *         every process that makes a notified call afterwards (one that left
 *         the tree by double-forking meets it at its next notified call);
 *   deny: every notified call fails with EPERM, at most DENY_RATE answers a
 *         second (a program that retries a failing call in a loop waits
 *         instead of spinning and logging without end).
 *
 * The holder exits when it holds no listener and its supervisor is gone.
 * It ignores every catchable signal (a terminal's ^C, a stop of the
 * supervisor or a wrapped tree's group signal must not end it first) and is
 * not dumpable, so that a process of the same user cannot ptrace it or take
 * its fds.  Exit codes:
 * 0 done, 125 bad usage or set-up.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <linux/seccomp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define EXIT_SETUP 125
#define DENY_RATE 1000		/* EPERM answers per second, per session */
#define MAX_PIDS 65536
/*
 * Ids past the last one the supervisor reported (it reports every 50 ms at
 * most) searched for calls it received and never answered: ample for
 * 20 million notified calls a second.
 */
#define PROBE_WINDOW (1u << 20)

enum mode { MODE_KILL, MODE_DENY };

struct held {
	int fd;			/* our copy of the listener */
	int session;
	pid_t pid;		/* the tree's first process */
	int pidfd;		/* a pidfd of it, taken while it surely was that process */
	enum mode mode;
	int lost;		/* supervision lost: we answer its calls */
	time_t second;		/* deny: the second being counted, and its answers */
	unsigned answered;
	int have_id;		/* a notification id the supervisor received ("at") */
	__u64 last_id;
};

static struct held *held;
static size_t nheld, capheld;
static int sock = -1;
static struct seccomp_notif_sizes sizes;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "idwrap-holder: ");
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* Parent pid of each process, from /proc/PID/stat (after the comm's closing paren). */
static size_t read_parents(pid_t *pids, pid_t *parents, size_t max)
{
	DIR *proc = opendir("/proc");
	struct dirent *e;
	size_t n = 0;

	if (!proc)
		return 0;
	while ((e = readdir(proc)) && n < max) {
		char path[64], buf[512], *paren;
		FILE *f;
		pid_t pid = (pid_t)atoi(e->d_name);
		int ppid;

		if (pid <= 0)
			continue;
		snprintf(path, sizeof(path), "/proc/%d/stat", pid);
		f = fopen(path, "re");
		if (!f)
			continue;
		if (!fgets(buf, sizeof(buf), f)) {
			fclose(f);
			continue;
		}
		fclose(f);
		paren = strrchr(buf, ')');
		if (!paren || sscanf(paren + 1, " %*c %d", &ppid) != 1)
			continue;
		pids[n] = pid;
		parents[n++] = (pid_t)ppid;
	}
	closedir(proc);
	return n;
}

/*
 * SIGKILL to the descendants of `root` (not root itself).  Passes repeat while
 * they find processes: one forked during a pass is found in the next, unless
 * its parent died first (it is then re-parented out of the tree; the kill on
 * its next notified call is the backstop).
 */
static void kill_descendants(pid_t root)
{
	static pid_t pids[MAX_PIDS], parents[MAX_PIDS], tree[MAX_PIDS];
	int pass;

	for (pass = 0; pass < 8; pass++) {
		size_t n = read_parents(pids, parents, MAX_PIDS), ntree = 1, i, j;
		int grew = 1, killed = 0;

		tree[0] = root;
		while (grew) {
			grew = 0;
			for (i = 0; i < n; i++) {
				int in = 0, parent_in = 0;

				for (j = 0; j < ntree; j++) {
					in |= tree[j] == pids[i];
					parent_in |= tree[j] == parents[i];
				}
				if (!in && parent_in && ntree < MAX_PIDS) {
					tree[ntree++] = pids[i];
					grew = 1;
				}
			}
		}
		for (i = 1; i < ntree; i++)
			killed |= kill(tree[i], SIGKILL) == 0;
		if (!killed)
			return;
	}
}

static void kill_tree(struct held *h)
{
	/* Its pid may name another process once it has been reaped: its descendants left the tree by then. */
	if (h->pidfd < 0 || syscall(SYS_pidfd_send_signal, h->pidfd, 0, NULL, 0) < 0)
		return;
	kill_descendants(h->pid);
	if (h->pidfd >= 0)
		syscall(SYS_pidfd_send_signal, h->pidfd, SIGKILL, NULL, 0);
	kill_descendants(h->pid);
}

/* Fails with EPERM the calls the supervisor received and never answered (they wait for nobody otherwise). */
static void answer_orphans(struct held *h)
{
	struct seccomp_notif_resp *resp = calloc(1, sizes.seccomp_notif_resp);
	__u64 id;
	unsigned i;

	if (!resp || !h->have_id) {
		free(resp);
		return;
	}
	for (i = 0, id = h->last_id; i < PROBE_WINDOW; i++, id++) {
		if (ioctl(h->fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &id) < 0)
			continue;
		resp->id = id;
		resp->error = -EPERM;
		(void)ioctl(h->fd, SECCOMP_IOCTL_NOTIF_SEND, resp);
	}
	free(resp);
}

static void lose(struct held *h, const char *why)
{
	if (h->lost)
		return;
	h->lost = 1;
	say("session %d (pid %d) lost its supervisor (%s): %s", h->session, h->pid, why,
	    h->mode == MODE_KILL ? "killing its processes" : "its notified calls fail with EPERM");
	if (h->mode == MODE_KILL)
		kill_tree(h);
	answer_orphans(h);
}

static void drop(size_t i)
{
	close(held[i].fd);
	if (held[i].pidfd >= 0)
		close(held[i].pidfd);
	held[i] = held[--nheld];
}

/* Whether no process uses the session's filter any more (its tree ended just before the supervisor did). */
static int tree_gone(struct held *h)
{
	struct pollfd p = { h->fd, 0, 0 };

	return poll(&p, 1, 0) == 1 && (p.revents & POLLHUP);
}

/* Answers one notified call of a session whose supervisor is gone. */
static void answer(struct held *h)
{
	struct seccomp_notif *req = calloc(1, sizes.seccomp_notif);
	struct seccomp_notif_resp *resp = calloc(1, sizes.seccomp_notif_resp);
	struct timespec now;

	if (!req || !resp) {
		say("out of memory");
		exit(EXIT_SETUP);
	}
	if (ioctl(h->fd, SECCOMP_IOCTL_NOTIF_RECV, req) < 0)
		goto out;	/* the caller died meanwhile */
	if (h->mode == MODE_KILL) {
		/* Still waiting on us, so req->pid still names the caller. */
		if (ioctl(h->fd, SECCOMP_IOCTL_NOTIF_ID_VALID, &req->id) == 0) {
			kill_descendants((pid_t)req->pid);
			kill((pid_t)req->pid, SIGKILL);
		}
	} else {
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (now.tv_sec != h->second) {
			h->second = now.tv_sec;
			h->answered = 0;
		}
		if (++h->answered > DENY_RATE) {
			struct timespec rest = { 0, 1000000000L - now.tv_nsec };

			nanosleep(&rest, NULL);
			h->second = now.tv_sec + 1;
			h->answered = 1;
		}
	}
	resp->id = req->id;
	resp->error = -EPERM;
	(void)ioctl(h->fd, SECCOMP_IOCTL_NOTIF_SEND, resp);
out:
	free(req);
	free(resp);
}

/* One message from the supervisor; 0 at end of file. */
static int receive(void)
{
	char text[128], control[CMSG_SPACE(sizeof(int))];
	struct iovec iov = { text, sizeof(text) - 1 };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1,
			      .msg_control = control, .msg_controllen = sizeof(control) };
	struct cmsghdr *c;
	ssize_t n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC);
	int fd = -1, session, pid;
	unsigned long long id;
	char mode[16];
	size_t i;

	if (n <= 0)
		return n < 0 && errno == EINTR ? 1 : 0;
	text[n] = '\0';
	for (c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c))
		if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS)
			memcpy(&fd, CMSG_DATA(c), sizeof(int));
	if (sscanf(text, "hold %d %d %15s", &session, &pid, mode) == 3 && fd >= 0 &&
	    (!strcmp(mode, "kill") || !strcmp(mode, "deny"))) {
		char reply[32];
		int len;

		if (nheld == capheld) {
			capheld = capheld ? 2 * capheld : 16;
			held = realloc(held, capheld * sizeof(*held));
			if (!held) {
				say("out of memory");
				exit(EXIT_SETUP);
			}
		}
		held[nheld++] = (struct held){
			.fd = fd, .session = session, .pid = pid,
			.pidfd = (int)syscall(SYS_pidfd_open, pid, 0),
			.mode = !strcmp(mode, "kill") ? MODE_KILL : MODE_DENY,
		};
		len = snprintf(reply, sizeof(reply), "held %d", session);
		(void)!send(sock, reply, (size_t)len, MSG_NOSIGNAL);
		return 1;
	}
	if (fd >= 0)
		close(fd);
	if (sscanf(text, "at %d %llu", &session, &id) == 2) {
		for (i = 0; i < nheld; i++)
			if (held[i].session == session) {
				held[i].last_id = (__u64)id;
				held[i].have_id = 1;
			}
		return 1;
	}
	if (sscanf(text, "lost %d", &session) == 1) {
		for (i = 0; i < nheld; i++)
			if (held[i].session == session)
				lose(&held[i], "its supervisor thread stopped");
		return 1;
	}
	say("ignored a message it does not know: %s", text);
	return 1;
}

int main(int argc, char **argv)
{
	struct pollfd *fds = NULL;
	size_t i;

	if (argc != 2 || (sock = atoi(argv[1])) <= 2) {
		fprintf(stderr, "usage: idwrap-holder FD (started by idwrap, see kmod/seccomp/holder.c)\n");
		return EXIT_SETUP;
	}
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	/*
	 * Out of idwrap's session and process group: a tree's kill(0) or
	 * kill(-pgid), and the terminal's signals, do not reach us.
	 */
	setsid();
	/*
	 * And no signal a tree can still send us (kill(-1), signals the guard lets
	 * through because idwrap survives them) ends or stops us: every catchable
	 * one is ignored but SIGCHLD (ignored by default). A real fault still ends
	 * us: the kernel forces its signal. Numbers glibc keeps for itself fail,
	 * harmlessly.
	 */
	for (int s = 1; s < NSIG; s++)
		if (s != SIGKILL && s != SIGSTOP && s != SIGCHLD)
			signal(s, SIG_IGN);
	if (syscall(SYS_seccomp, SECCOMP_GET_NOTIF_SIZES, 0, &sizes) < 0) {
		say("seccomp(SECCOMP_GET_NOTIF_SIZES): %s", strerror(errno));
		return EXIT_SETUP;
	}
	for (;;) {
		size_t n = 0, polled;

		if (sock < 0 && nheld == 0)
			return 0;	/* no tree left, nobody to serve */
		fds = realloc(fds, (nheld + 1) * sizeof(*fds));
		if (!fds) {
			say("out of memory");
			return EXIT_SETUP;
		}
		for (i = 0; i < nheld; i++)
			fds[n++] = (struct pollfd){ held[i].fd, held[i].lost ? POLLIN : 0, 0 };
		if (sock >= 0)
			fds[n++] = (struct pollfd){ sock, POLLIN, 0 };
		if (poll(fds, n, -1) < 0) {
			if (errno == EINTR)
				continue;
			say("poll: %s", strerror(errno));
			return EXIT_SETUP;
		}
		polled = nheld;
		if (sock >= 0 && fds[polled].revents && !receive()) {
			close(sock);
			sock = -1;
			for (i = nheld; i-- > 0;)
				if (tree_gone(&held[i]))
					drop(i);
			for (i = 0; i < nheld; i++)
				lose(&held[i], "the supervisor is gone");
			continue;	/* held[] was reordered: poll again */
		}
		/* Downwards: drop() moves the last entry into the dropped one's place. */
		for (i = polled; i-- > 0;) {
			if (fds[i].revents & POLLIN)
				answer(&held[i]);
			else if (fds[i].revents & (POLLHUP | POLLERR))
				drop(i);	/* its tree is gone */
		}
	}
}
