// Reads a process's files through its /proc magic links (issue 13, item 4:
// a root program with CAP_SYS_PTRACE opens /proc/PID/fd/N and gets the file
// behind PID's fd N; /proc/PID/cwd/..., root/..., exe and map_files/ walk
// from PID's directories and mappings).
//
//   procwalk HOW PID|parent [ARG]
//     fd        /proc/PID/fd/N, N = 0..255
//     tid       /proc/TID/fd/N (TID: PID's last thread, a name ls /proc hides)
//     task      /proc/PID/task/TID/fd/N
//     mount     a second procfs at ARG (own mount namespace): ARG/PID/fd/N
//     dirfd     openat(open("/proc", O_PATH), "PID/fd/N")
//     taskdir   openat(open("/proc/PID/task"), "TID/fd/N") (task/ is what ps reads)
//     devfd     /dev/fd/D/TID/fd/N, D an fd of /proc/PID/task
//     dotdot    /proc/self/../PID/fd/N
//     symlink   ARG/link -> /proc/PID/fd, then ARG/link/N
//     openat2   openat2(AT_FDCWD, "/proc/PID/fd/N")
//     map_files /proc/PID/map_files/R for each line R of the file ARG (waited
//               for up to 10 s: the test writes it once we run)
//     cwd       chdir("/"), then /proc/PID/cwd/ARG
//     root      /proc/PID/root/ARG
//     exe       /proc/PID/exe
//     self      holds ARG open as fd F, then reads /proc/./self/fd/F (PID
//               unused): its own file, never another process's; then
//               /proc/./self/fd/N for every N < 256 it does not hold
//               ("foreign: K", K opened: 0 unless "self" was not us)
//
// Prints "first: 0|ERRNO" (the first open), "opened: K" (opens that worked),
// "bytes: B" (read from the regular files among them), and for self "self: "
// and the first line read. Exit 0; 2 on bad usage.
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

static const char *err(int rc)
{
	static char buf[32];
	if (rc >= 0) return "0";
	snprintf(buf, sizeof(buf), "%s", strerrorname_np(errno) ? strerrorname_np(errno) : "?");
	return buf;
}

static int opened, tries;
static long bytes;
static char first[32];

/* One try: openat(dir, path), reading what a regular file holds. */
static void try_open(int dir, const char *path, int use_openat2)
{
	int fd;
	if (use_openat2) {
		struct open_how how = { .flags = O_RDONLY };
		fd = (int)syscall(SYS_openat2, dir, path, &how, sizeof(how));
	} else {
		fd = openat(dir, path, O_RDONLY | O_NONBLOCK);
	}
	if (tries++ == 0) snprintf(first, sizeof(first), "%s", err(fd));
	if (fd < 0) return;
	opened++;
	struct stat st;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
		char buf[4096];
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n > 0) bytes += n;
	}
	close(fd);
}

/* PID's last thread (its highest-numbered task). */
static pid_t last_thread(pid_t pid)
{
	char path[64];
	snprintf(path, sizeof(path), "/proc/%d/task", pid);
	DIR *d = opendir(path);
	pid_t tid = pid;
	if (!d) return tid;
	for (struct dirent *e; (e = readdir(d));) {
		pid_t t = atoi(e->d_name);
		if (t > tid) tid = t;
	}
	closedir(d);
	return tid;
}

int main(int argc, char **argv)
{
	if (argc < 3) return 2;
	const char *how = argv[1], *arg = argc > 3 ? argv[3] : "";
	pid_t pid = strcmp(argv[2], "parent") ? atoi(argv[2]) : getppid();
	pid_t tid = last_thread(pid);
	char path[4096];
	int dir = AT_FDCWD;

	if (!strcmp(how, "self")) {
		int own = open(arg, O_RDONLY);
		snprintf(path, sizeof(path), "/proc/./self/fd/%d", own);
		int fd = open(path, O_RDONLY);
		char line[256] = "";
		if (fd >= 0) {
			ssize_t n = read(fd, line, sizeof(line) - 1);
			line[n > 0 ? n : 0] = 0;
			line[strcspn(line, "\n")] = 0;
		}
		printf("self: %s%s\n", fd < 0 ? "" : line, fd < 0 ? err(fd) : "");
		/* Fds we do not hold: /proc/self/fd/N of them is ENOENT, unless "self" is another process. */
		for (int n = 3; n < 256; n++) {
			if (n == own || fcntl(n, F_GETFD) >= 0) continue;
			snprintf(path, sizeof(path), "/proc/./self/fd/%d", n);
			try_open(AT_FDCWD, path, 0);
		}
		printf("foreign: %d\nbytes: %ld\n", opened, bytes);
		return 0;
	}
	if (!strcmp(how, "map_files") || !strcmp(how, "cwd") || !strcmp(how, "root") || !strcmp(how, "exe")) {
		if (!strcmp(how, "map_files")) {
			/* The ranges come from outside (the test reads PID's map_files/): wait for them. */
			FILE *f = NULL;
			for (int i = 0; i < 1000 && !(f = fopen(arg, "r")); i++) usleep(10000);
			if (!f) return 2;
			char range[128];
			while (fscanf(f, "%127s", range) == 1) {
				snprintf(path, sizeof(path), "/proc/%d/map_files/%s", pid, range);
				try_open(dir, path, 0);
			}
			fclose(f);
		} else if (!strcmp(how, "cwd")) {
			if (chdir("/") < 0) return 2;
			snprintf(path, sizeof(path), "/proc/%d/cwd/%s", pid, arg);
			try_open(dir, path, 0);
		} else if (!strcmp(how, "root")) {
			snprintf(path, sizeof(path), "/proc/%d/root%s", pid, arg);
			try_open(dir, path, 0);
		} else {
			snprintf(path, sizeof(path), "/proc/%d/exe", pid);
			try_open(dir, path, 0);
		}
	} else {
		const char *fmt = "/proc/%d/fd/%d";
		int a = pid, use_openat2 = 0;
		char format[4200];
		if (!strcmp(how, "fd")) {
		} else if (!strcmp(how, "tid")) {
			a = tid;
		} else if (!strcmp(how, "task")) {
			snprintf(format, sizeof(format), "/proc/%d/task/%d/fd/%%d", pid, tid);
			fmt = format;
		} else if (!strcmp(how, "mount")) {
			if (unshare(CLONE_NEWNS) < 0) printf("unshare: %s\n", err(-1));
			mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL);
			mkdir(arg, 0700);
			printf("mount: %s\n", err(mount("proc", arg, "proc", 0, NULL)));
			snprintf(format, sizeof(format), "%s/%%d/fd/%%d", arg);
			fmt = format;
		} else if (!strcmp(how, "dirfd")) {
			dir = open("/proc", O_PATH | O_DIRECTORY);
			fmt = "%d/fd/%d";
		} else if (!strcmp(how, "taskdir") || !strcmp(how, "devfd")) {
			snprintf(path, sizeof(path), "/proc/%d/task", pid);
			int d = open(path, O_RDONLY | O_DIRECTORY);
			printf("taskdir: %s\n", err(d));
			a = tid;
			if (!strcmp(how, "taskdir")) {
				dir = d;
				fmt = "%d/fd/%d";
			} else {
				snprintf(format, sizeof(format), "/dev/fd/%d/%%d/fd/%%d", d);
				fmt = format;
			}
		} else if (!strcmp(how, "dotdot")) {
			fmt = "/proc/self/../%d/fd/%d";
		} else if (!strcmp(how, "symlink")) {
			char link[4096], target[64];
			snprintf(link, sizeof(link), "%s/link", arg);
			snprintf(target, sizeof(target), "/proc/%d/fd", pid);
			unlink(link);
			if (symlink(target, link) < 0) return 2;
			snprintf(format, sizeof(format), "%s/%%d", link);
			fmt = format;
		} else if (!strcmp(how, "openat2")) {
			use_openat2 = 1;
		} else {
			return 2;
		}
		for (int n = 0; n < 256; n++) {
			if (fmt == format && !strchr(strchr(format, '%') + 1, '%'))
				snprintf(path, sizeof(path), fmt, n);
			else
				snprintf(path, sizeof(path), fmt, a, n);
			try_open(dir, path, use_openat2);
		}
	}
	printf("first: %s\nopened: %d\nbytes: %ld\n", first, opened, bytes);
	return 0;
}
