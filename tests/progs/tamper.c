// Attacks on a supervisor from inside its wrapped tree (issue 13, item 4).
// Usage: tamper ATTACK PID|parent|holder [FILE]
//
//   own PID          counts the seccomp listeners among our own fds 0..1023
//                    (PID unused); prints "own listeners N"
//   getfd PID        pidfd_open(PID) and pidfd_getfd(2) of its fds 0..1023;
//                    prints "got N listener L" (L: seccomp listeners taken)
//   escape PID FILE  take PID's seccomp listener, stop PID (SIGSTOP), answer
//                    our own notifications with CONTINUE from a child, open
//                    FILE; prints "opened" or "open: ERRNO", then SIGCONT
//   ptrace PID       PTRACE_SEIZE of PID's leader
//   ptrace-thread PID  PTRACE_SEIZE of PID's last thread
//   vmread PID       process_vm_readv of one byte of PID's memory
//   vmwrite PID      process_vm_writev of one byte it first read (unchanged)
//   procmem PID      open /proc/PID/mem for reading and writing
//   kill PID         kill(PID, SIGSTOP) then kill(PID, SIGCONT)
//   kill-thread PID  kill(TID, SIGSTOP) for PID's last thread, then SIGCONT
//   tkill PID        tkill(TID, SIGSTOP) for PID's last thread, then SIGCONT
//   tgkill PID       tgkill(PID, PID, SIGSTOP), then SIGCONT
//   sigqueue PID     rt_sigqueueinfo(PID, SIGSTOP), then SIGCONT
//   pidfd-signal PID pidfd_send_signal(pidfd_open(PID), SIGSTOP), then SIGCONT
//   procfd-signal PID pidfd_send_signal(open("/proc/PID"), SIGSTOP), then SIGCONT
//   peerpidfd PID    getsockopt(SO_PEERPIDFD) on a socketpair (PID unused)
//   setown PID       F_SETSIG SIGURG + F_SETOWN PID + O_ASYNC on a pipe, then a
//                    write: the kernel signals PID (then SIGCONT); a signal that
//                    ends or stops is refused by F_SETSIG itself in a wrapped
//                    tree (tamper_sigio_test.ts), so the owner check is tested
//                    with a harmless one
//   prlimit PID      prlimit(PID, RLIMIT_CORE) set to its current value
//   tiocsti PID      TIOCSTI of one byte into a new pty (PID unused)
//   group-kill PID   kill(0, SIGKILL) with PID in our process group (we survive:
//                    the test runs us in a child process)
//
// Each signal attack prints "signal: 0" when the call succeeded, else
// "signal: ERRNO". Exit 0 always, except 2 for bad usage.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/ptrace.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <termios.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

static int pidfd_open(pid_t pid)
{
	return (int)syscall(SYS_pidfd_open, pid, 0);
}

static const char *err(long rc)
{
	static char buf[32];

	if (rc >= 0)
		return "0";
	snprintf(buf, sizeof(buf), "%s", strerrorname_np(errno));
	return buf;
}

/* The highest thread id of PID other than PID itself, or PID. */
static pid_t last_thread(pid_t pid)
{
	char path[64];
	struct dirent *e;
	pid_t best = pid;
	DIR *d;

	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	d = opendir(path);
	if (!d)
		return pid;
	while ((e = readdir(d))) {
		pid_t t = atoi(e->d_name);

		if (t > best)
			best = t;
	}
	closedir(d);
	return best;
}

static int is_listener(int fd)
{
	char path[64], link[128];
	ssize_t n;

	snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
	n = readlink(path, link, sizeof(link) - 1);
	if (n < 0)
		return 0;
	link[n] = '\0';
	return strstr(link, "seccomp") != NULL;
}

/* Copies every fd of PID it can; returns how many, the last listener in *listener. */
static int take_fds(pid_t pid, int *listener)
{
	int pidfd = pidfd_open(pid), got = 0;

	*listener = -1;
	if (pidfd < 0) {
		printf("pidfd_open: %s\n", err(-1));
		return 0;
	}
	for (int fd = 0; fd < 1024; fd++) {
		int mine = (int)syscall(SYS_pidfd_getfd, pidfd, fd, 0);

		if (mine < 0)
			continue;
		got++;
		if (is_listener(mine))
			*listener = mine;
		else
			close(mine);
	}
	return got;
}

static int getfd(pid_t pid)
{
	int listener, got = take_fds(pid, &listener);

	printf("got %d listener %d\n", got, listener >= 0);
	return 0;
}

/* Answers every notification of LISTENER with CONTINUE, forever. */
static void answer_all(int listener)
{
	struct seccomp_notif req;
	struct seccomp_notif_resp resp;

	for (;;) {
		memset(&req, 0, sizeof(req));
		if (ioctl(listener, SECCOMP_IOCTL_NOTIF_RECV, &req) < 0)
			continue;
		memset(&resp, 0, sizeof(resp));
		resp.id = req.id;
		resp.flags = SECCOMP_USER_NOTIF_FLAG_CONTINUE;
		ioctl(listener, SECCOMP_IOCTL_NOTIF_SEND, &resp);
	}
}

static int escape(pid_t pid, const char *file)
{
	int listener, fd;
	pid_t answerer;

	take_fds(pid, &listener);
	if (listener < 0) {
		printf("no listener\n");
		return 0;
	}
	if (kill(pid, SIGSTOP) < 0) {
		printf("stop: %s\n", err(-1));
		return 0;
	}
	answerer = fork();
	if (answerer == 0) {
		answer_all(listener);
		_exit(0);
	}
	fd = open(file, O_RDONLY);
	printf(fd >= 0 ? "opened\n" : "open: %s\n", err(fd));
	kill(answerer, SIGKILL);
	waitpid(answerer, NULL, 0);
	kill(pid, SIGCONT);
	return 0;
}

static int vm(pid_t pid, int write)
{
	char line[256], byte;
	unsigned long start = 0;
	FILE *maps;
	struct iovec local = { &byte, 1 }, remote;
	long rc;

	snprintf(line, sizeof(line), "/proc/%d/maps", pid);
	maps = fopen(line, "r");
	/* The first writable mapping (a write to a read-only one fails EFAULT). */
	while (maps && fgets(line, sizeof(line), maps)) {
		char perms[8];

		if (sscanf(line, "%lx-%*x %7s", &start, perms) == 2 && perms[1] == 'w')
			break;
		start = 0;
	}
	/* Unreadable maps (a non-dumpable target): guess the usual executable base instead. */
	if (!start)
		start = 0x400000;
	if (maps)
		fclose(maps);
	remote.iov_base = (void *)start;
	remote.iov_len = 1;
	rc = process_vm_readv(pid, &local, 1, &remote, 1, 0);
	if (rc >= 0 && write)
		rc = process_vm_writev(pid, &local, 1, &remote, 1, 0);
	printf("vm: %s\n", err(rc));
	return 0;
}

static int seize(pid_t tid)
{
	long rc = ptrace(PTRACE_SEIZE, tid, 0, 0);

	printf("ptrace: %s\n", err(rc));
	if (rc == 0)
		ptrace(PTRACE_DETACH, tid, 0, 0);
	return 0;
}

static int procmem(pid_t pid)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "/proc/%d/mem", pid);
	fd = open(path, O_RDWR);
	printf("procmem: %s\n", err(fd));
	return 0;
}

#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

/* The newer ways to reach another process: a peer's pidfd, SIGIO, its limits, a terminal's input. */
static int other_attack(const char *how, pid_t pid)
{
	long rc;

	if (!strcmp(how, "peerpidfd")) {
		int sv[2], pidfd;
		socklen_t len = sizeof(pidfd);

		socketpair(AF_UNIX, SOCK_STREAM, 0, sv);
		rc = getsockopt(sv[0], SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len);
	} else if (!strcmp(how, "setown")) {
		int p[2];

		if (pipe(p) < 0)
			return 1;
		rc = fcntl(p[0], F_SETSIG, SIGURG);
		if (rc == 0)
			rc = fcntl(p[0], F_SETOWN, pid);
		if (rc == 0) {
			fcntl(p[0], F_SETFL, O_ASYNC | O_NONBLOCK);
			(void)!write(p[1], "x", 1);
			usleep(100000);
			kill(pid, SIGCONT);
		}
	} else if (!strcmp(how, "prlimit")) {
		struct rlimit r;

		rc = prlimit(pid, RLIMIT_CORE, NULL, &r);
		if (rc == 0)
			rc = prlimit(pid, RLIMIT_CORE, &r, NULL);
	} else if (!strcmp(how, "tiocsti")) {
		int master = posix_openpt(O_RDWR | O_NOCTTY), slave;
		char c = 'x';

		if (master < 0 || grantpt(master) || unlockpt(master))
			return 1;
		slave = open(ptsname(master), O_RDWR | O_NOCTTY);
		rc = ioctl(slave, TIOCSTI, &c);
	} else {
		return 2;
	}
	printf("%s: %s\n", how, err(rc));
	return 0;
}

static int signal_attack(const char *how, pid_t pid)
{
	pid_t tid = last_thread(pid);
	long rc;
	int fd;

	if (!strcmp(how, "kill")) {
		rc = kill(pid, SIGSTOP);
	} else if (!strcmp(how, "kill-thread")) {
		rc = kill(tid, SIGSTOP);
	} else if (!strcmp(how, "tkill")) {
		rc = syscall(SYS_tkill, tid, SIGSTOP);
	} else if (!strcmp(how, "tgkill")) {
		rc = syscall(SYS_tgkill, pid, pid, SIGSTOP);
	} else if (!strcmp(how, "sigqueue")) {
		siginfo_t info = { .si_signo = SIGSTOP, .si_code = SI_QUEUE, .si_pid = getpid() };

		rc = syscall(SYS_rt_sigqueueinfo, pid, SIGSTOP, &info);
	} else if (!strcmp(how, "pidfd-signal") || !strcmp(how, "procfd-signal")) {
		char path[64];

		snprintf(path, sizeof(path), "/proc/%d", pid);
		fd = !strcmp(how, "pidfd-signal") ? pidfd_open(pid) : open(path, O_RDONLY | O_DIRECTORY);
		rc = fd < 0 ? fd : syscall(SYS_pidfd_send_signal, fd, SIGSTOP, NULL, 0);
	} else if (!strcmp(how, "group-kill")) {
		rc = kill(0, SIGKILL);
	} else {
		return 2;
	}
	printf("signal: %s\n", err(rc));
	fflush(stdout);
	kill(pid, SIGCONT);
	return 0;
}

/* "holder": the idwrap-holder our supervisor started (its child of that name), 0 if none. */
static pid_t holder_of(pid_t supervisor)
{
	DIR *proc = opendir("/proc");
	struct dirent *e;
	pid_t found = 0;

	while (proc && (e = readdir(proc)) && !found) {
		char path[64], buf[512], comm[64];
		FILE *f;
		int ppid;

		snprintf(path, sizeof(path), "/proc/%d/stat", atoi(e->d_name));
		f = atoi(e->d_name) > 0 ? fopen(path, "r") : NULL;
		if (!f)
			continue;
		if (fgets(buf, sizeof(buf), f) && sscanf(buf, "%*d (%63[^)]) %*c %d", comm, &ppid) == 2 &&
		    ppid == supervisor && !strcmp(comm, "idwrap-holder"))
			found = atoi(e->d_name);
		fclose(f);
	}
	if (proc)
		closedir(proc);
	return found;
}

int main(int argc, char **argv)
{
	pid_t pid;

	if (argc < 3)
		return 2;
	/* "parent": the supervisor that launched us (idwrap run's launcher execs into us). */
	pid = strcmp(argv[2], "parent") ? atoi(argv[2]) : getppid();
	/* "holder": the idwrap-holder the supervisor started, which keeps a copy of its listener. */
	if (!strcmp(argv[2], "holder") && !(pid = holder_of(getppid()))) {
		printf("no holder\n");
		return 2;
	}
	setvbuf(stdout, NULL, _IONBF, 0);
	if (!strcmp(argv[1], "own")) {
		int n = 0;

		for (int fd = 0; fd < 1024; fd++)
			n += is_listener(fd);
		printf("own listeners %d\n", n);
		return 0;
	}
	if (!strcmp(argv[1], "getfd"))
		return getfd(pid);
	if (!strcmp(argv[1], "escape"))
		return argc > 3 ? escape(pid, argv[3]) : 2;
	if (!strcmp(argv[1], "ptrace"))
		return seize(pid);
	if (!strcmp(argv[1], "ptrace-thread"))
		return seize(last_thread(pid));
	if (!strcmp(argv[1], "vmread"))
		return vm(pid, 0);
	if (!strcmp(argv[1], "vmwrite"))
		return vm(pid, 1);
	if (!strcmp(argv[1], "procmem"))
		return procmem(pid);
	if (!strcmp(argv[1], "peerpidfd") || !strcmp(argv[1], "setown") || !strcmp(argv[1], "prlimit") ||
	    !strcmp(argv[1], "tiocsti"))
		return other_attack(argv[1], pid);
	return signal_attack(argv[1], pid);
}
