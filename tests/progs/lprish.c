// lprish: a small lpr-like print spooler client for the lpr tests
// (tests/attacks/lpr_test.ts). It is meant to be installed set-uid root, as
// BSD lpr was:
//
//   lprish [-P printer] [-J title] [-C class] file...
//
// For each file it checks that the invoker (the real uid) may read it,
// copies it into the spool directory as a data file dfA<seq><host>, and then
// writes the control file cfA<seq><host> (H host, P user, J title, C class,
// L user, f/U/N per file), created with mode 0 and chmod'ed to 0660 once it
// is complete (the signal lpd waits for). The job number comes from the
// spool's .seq file (locked with flock). Finally it announces the request
// id ("request id is lp-3 (1 file)").
//
// The spool directory is $LPR_SPOOL (default /var/spool/lpd): the stand-in
// for printcap's sd= entry, which the invoker of a real lpr cannot choose.
//
// THE BUG (deliberate, the test's attack target; AUSCERT AA-96.12): the job
// title (-J) is copied with strcpy into job.title[32], and the field after it
// is job.announce, the function lprish calls at the end to print the request
// id. A long title overwrites that function pointer. The 1996 exploits put
// shellcode on the stack and overwrote a return address; stacks are no
// longer executable, so this one redirects the pointer to code the program
// already has, in a non-PIE build (-no-pie) at a fixed address.
//
// spool_shell() is that code: the spooling library's shell escape, shared
// with the line printer control program (lpc-like, its "!" command runs a
// shell on the terminal). lprish links the shared code but never calls it,
// nor stores its address: it is reachable only by the overflow. There is no
// backdoor and no debug switch.
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

struct job;
typedef void (*announce_fn)(const struct job *j);

struct job {
	char title[32];
	announce_fn announce;
	char printer[32];
	char class[32];
	char user[32];
	char host[64];
	int seq;
	int files;
};

static const char *spool;

static void die(const char *what)
{
	fprintf(stderr, "lprish: %s: %s\n", what, strerror(errno));
	exit(1);
}

// The spooling library's shell escape (see the top comment: not called by
// lprish).
void spool_shell(const struct job *j)
{
	(void)j;
	// The operator's shell runs as the spool's owner, wholly.
	if (setuid(geteuid()) < 0)
		fprintf(stderr, "setuid: %s\n", strerror(errno));
	execl("/bin/sh", "sh", (char *)NULL);
	fprintf(stderr, "lprish: cannot run a shell: %s\n", strerror(errno));
	exit(1);
}

static void announce(const struct job *j)
{
	printf("request id is %s-%d (%d file%s)\n", j->printer, j->seq, j->files, j->files == 1 ? "" : "s");
}

// The next job number from <spool>/.seq, under an exclusive lock.
static int next_seq(void)
{
	char path[4096], buf[16];
	snprintf(path, sizeof(path), "%s/.seq", spool);
	int fd = open(path, O_RDWR | O_CREAT, 0660);
	if (fd < 0)
		die(path);
	if (flock(fd, LOCK_EX) < 0)
		die("flock");
	ssize_t n = read(fd, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	int seq = (atoi(buf) + 1) % 1000;
	int len = snprintf(buf, sizeof(buf), "%03d\n", seq);
	if (lseek(fd, 0, SEEK_SET) < 0 || ftruncate(fd, 0) < 0 || write(fd, buf, (size_t)len) != len)
		die(path);
	close(fd);
	return seq;
}

static void copy_file(const char *from, const char *to)
{
	char buf[8192];
	// As BSD lpr: the invoker must be able to read the file (lprish's
	// effective uid, root, can read anything).
	if (access(from, R_OK) < 0)
		die(from);
	int in = open(from, O_RDONLY);
	if (in < 0)
		die(from);
	int out = open(to, O_WRONLY | O_CREAT | O_EXCL, 0660);
	if (out < 0)
		die(to);
	ssize_t n;
	while ((n = read(in, buf, sizeof(buf))) > 0) {
		if (write(out, buf, (size_t)n) != n)
			die(to);
	}
	if (n < 0)
		die(from);
	close(in);
	close(out);
}

int main(int argc, char **argv)
{
	struct job job;
	int opt;

	memset(&job, 0, sizeof(job));
	job.announce = announce;
	snprintf(job.printer, sizeof(job.printer), "lp");
	spool = getenv("LPR_SPOOL") ? getenv("LPR_SPOOL") : "/var/spool/lpd";

	while ((opt = getopt(argc, argv, "P:J:C:")) != -1) {
		switch (opt) {
		case 'P':
			snprintf(job.printer, sizeof(job.printer), "%s", optarg);
			break;
		case 'J':
			strcpy(job.title, optarg); // BUG: no bound (see the top comment)
			break;
		case 'C':
			snprintf(job.class, sizeof(job.class), "%s", optarg);
			break;
		default:
			fprintf(stderr, "usage: lprish [-P printer] [-J title] [-C class] file...\n");
			return 2;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "usage: lprish [-P printer] [-J title] [-C class] file...\n");
		return 2;
	}

	struct passwd *pw = getpwuid(getuid());
	if (pw == NULL) {
		fprintf(stderr, "lprish: who are you?\n");
		return 1;
	}
	snprintf(job.user, sizeof(job.user), "%s", pw->pw_name);
	if (gethostname(job.host, sizeof(job.host)) < 0)
		snprintf(job.host, sizeof(job.host), "localhost");
	job.host[sizeof(job.host) - 1] = '\0';
	if (job.title[0] == '\0')
		snprintf(job.title, sizeof(job.title), "%.31s", argv[optind]);
	if (job.class[0] == '\0')
		snprintf(job.class, sizeof(job.class), "%.31s", job.host);

	umask(0);
	job.seq = next_seq();
	char cf[4096], df[4096], text[16384];
	int len = snprintf(text, sizeof(text), "H%s\nP%s\nJ%s\nC%s\nL%s\n", job.host, job.user, job.title, job.class,
			   job.user);
	for (int i = optind; i < argc; i++, job.files++) {
		snprintf(df, sizeof(df), "%s/df%c%03d%s", spool, 'A' + job.files, job.seq, job.host);
		copy_file(argv[i], df);
		len += snprintf(text + len, sizeof(text) - (size_t)len, "f%s\nU%s\nN%s\n", strrchr(df, '/') + 1,
				strrchr(df, '/') + 1, argv[i]);
		if ((size_t)len >= sizeof(text)) {
			fprintf(stderr, "lprish: too many files\n");
			return 1;
		}
	}
	snprintf(cf, sizeof(cf), "%s/cfA%03d%s", spool, job.seq, job.host);
	int fd = open(cf, O_WRONLY | O_CREAT | O_EXCL, 0);
	if (fd < 0)
		die(cf);
	if (write(fd, text, (size_t)len) != len)
		die(cf);
	close(fd);
	if (chmod(cf, 0660) < 0) // complete: lpd may take it
		die(cf);
	job.announce(&job);
	return 0;
}
