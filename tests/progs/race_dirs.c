// Watson-style races on the calls race_paths.c does not cover (issue 13 item 3,
// issue 20 item 4): a thread flips what the main thread's call names between
// DIR/ok/x and DIR/protected/x while the main thread calls CALL, ROUNDS times.
// A "win" is the call acting on DIR/protected/...; after each the protected
// state is put back. Prints "calls N wins W"; exits 1 if ever won.
//   race_dirs CALL DIR ROUNDS
//   mkdir rmdir mknod: the path bytes flip (protected/x must stay absent,
//                      present, absent)
//   symlink:  symlink(TARGET, DIR/ok/link), TARGET's bytes flip (the link must
//             never point at DIR/protected/x)
//   dirfd:    unlinkat(N, "f"), another thread dup2()s DIR/protected's fd and
//             DIR/ok's onto N (protected/f must stay)
//   chdir:    unlink("f"), another thread chdir()s between DIR/protected and
//             DIR/ok (threads share the cwd) (protected/f must stay)
//   connect:  connect() to the unix socket DIR/ok/s, the sockaddr's path
//             flips to DIR/protected/s (never connected there)
#define _GNU_SOURCE
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

static char path[512];
static char ok[600], prot[600], okdir[512], protdir[512];
static int fd_ok, fd_prot, fd_n = 100;
static const char *mode;
static atomic_int stop;
static struct sockaddr_un sa = { .sun_family = AF_UNIX };

static void *flip(void *unused)
{
	(void)unused;
	while (!atomic_load(&stop)) {
		if (!strcmp(mode, "dirfd")) {
			dup2(fd_prot, fd_n);
			dup2(fd_ok, fd_n);
		} else if (!strcmp(mode, "chdir")) {
			if (chdir(protdir) < 0 || chdir(okdir) < 0)
				perror("chdir");
		} else if (!strcmp(mode, "connect")) {
			strcpy(sa.sun_path, prot);
			strcpy(sa.sun_path, ok);
		} else {
			strcpy(path, prot);
			strcpy(path, ok);
		}
	}
	return NULL;
}

static void make(const char *p)
{
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	if (fd >= 0)
		close(fd);
}

static int exists(const char *p)
{
	struct stat st;
	return lstat(p, &st) == 0;
}

int main(int argc, char **argv)
{
	if (argc < 4)
		return 2;
	mode = argv[1];
	int rounds = atoi(argv[3]), wins = 0, done = 0;
	snprintf(okdir, sizeof(okdir), "%s/ok", argv[2]);
	snprintf(protdir, sizeof(protdir), "%s/protected", argv[2]);
	mkdir(okdir, 0755);
	mkdir(protdir, 0755);
	const char *leaf = !strcmp(mode, "dirfd") || !strcmp(mode, "chdir") ? "f" : !strcmp(mode, "connect") ? "s" : "x";
	snprintf(ok, sizeof(ok), "%s/%s", okdir, leaf);
	snprintf(prot, sizeof(prot), "%s/%s", protdir, leaf);
	char link[600], target[600];
	snprintf(link, sizeof(link), "%s/link", okdir);
	fd_ok = open(okdir, O_RDONLY | O_DIRECTORY);
	fd_prot = open(protdir, O_RDONLY | O_DIRECTORY);
	if (fd_ok < 0 || fd_prot < 0 || dup2(fd_ok, fd_n) < 0 || chdir(okdir) < 0) {
		perror("setup");
		return 2;
	}
	// The protected state: x absent (mkdir, mknod), a directory (rmdir), f present (dirfd, chdir). Under a deny
	// rule these calls are refused: the caller sets the state up beforehand, and a fresh DIR needs only creates.
	if (!strcmp(mode, "rmdir") && !exists(prot))
		mkdir(prot, 0755);
	if ((!strcmp(mode, "dirfd") || !strcmp(mode, "chdir")) && !exists(prot))
		make(prot);
	strcpy(path, ok);
	// connect: a listener on each name (accepting nothing: the backlog is drained by closing and making it again).
	int lis[2] = { -1, -1 };
	if (!strcmp(mode, "connect")) {
		for (int j = 0; j < 2; j++) {
			struct sockaddr_un at = { .sun_family = AF_UNIX };
			strcpy(at.sun_path, j ? prot : ok);
			unlink(at.sun_path);
			lis[j] = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0);
			if (bind(lis[j], (struct sockaddr *)&at, sizeof(at)) < 0 || listen(lis[j], 4096) < 0) {
				perror("listen");
				return 2;
			}
		}
		strcpy(sa.sun_path, ok);
	}
	pthread_t t;
	pthread_create(&t, NULL, flip, NULL);
	// A win is this call changing the protected state (counted once even where, under a deny rule, putting it back
	// is refused too).
	for (int i = 0; i < rounds; i++) {
		int before = exists(prot);
		if (!strcmp(mode, "mkdir")) {
			rmdir(ok);
			done += mkdir(path, 0755) == 0;
			if (!before && exists(prot)) {
				wins++;
				rmdir(prot);
			}
		} else if (!strcmp(mode, "rmdir")) {
			mkdir(ok, 0755);
			done += rmdir(path) == 0;
			if (before && !exists(prot)) {
				wins++;
				mkdir(prot, 0755);
			}
		} else if (!strcmp(mode, "mknod")) {
			unlink(ok);
			done += mknod(path, S_IFIFO | 0644, 0) == 0;
			if (!before && exists(prot)) {
				wins++;
				unlink(prot);
			}
		} else if (!strcmp(mode, "symlink")) {
			unlink(link);
			done += symlink(path, link) == 0;
			ssize_t n = readlink(link, target, sizeof(target) - 1);
			if (n > 0) {
				target[n] = '\0';
				wins += !strcmp(target, prot);
			}
		} else if (!strcmp(mode, "dirfd")) {
			make(ok);
			done += unlinkat(fd_n, "f", 0) == 0;
			if (before && !exists(prot)) {
				wins++;
				make(prot);
			}
		} else if (!strcmp(mode, "chdir")) {
			make(ok);
			done += unlink("f") == 0;
			if (before && !exists(prot)) {
				wins++;
				make(prot);
			}
		} else if (!strcmp(mode, "connect")) {
			int fd = socket(AF_UNIX, SOCK_STREAM, 0);
			struct sockaddr_un peer;
			socklen_t len = sizeof(peer);
			done += connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
			if (getpeername(fd, (struct sockaddr *)&peer, &len) == 0 && !strcmp(peer.sun_path, prot))
				wins++;
			close(fd);
			for (int j = 0; j < 2; j++) {
				int c;
				while ((c = accept(lis[j], NULL, NULL)) >= 0)
					close(c);
			}
		} else {
			fprintf(stderr, "unknown call %s\n", mode);
			return 2;
		}
	}
	atomic_store(&stop, 1);
	pthread_join(t, NULL);
	printf("calls %d wins %d\n", done, wins);
	return wins ? 1 : 0;
}
