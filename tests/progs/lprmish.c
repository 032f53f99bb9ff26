// lprmish: a small lprm-like job remover for the lprm tests
// (tests/attacks/lpr_test.ts), the companion of lprish.c. It is meant to be
// installed set-uid root, as BSD lprm was:
//
//   lprmish [-P printer] [jobspec...]
//
// A jobspec is a job number (3 from "request id is lp-3") or a user name;
// none means "the invoker's jobs". For each jobspec it scans the spool
// directory's control files (cf*), and removes every job that matches it and
// that the invoker may remove (the control file's P line names the invoker,
// or the invoker is root): the data files its U lines name, then the control
// file, printing "<file> dequeued" for each.
//
// The spool directory is $LPR_SPOOL (default /var/spool/lpd), as for lprish.
//
// THE BUG (deliberate, the test's attack target; the lprm overflows of the
// 1990s): each jobspec is copied with strcpy into req.spec[16], and the field
// after it is req.match, the predicate lprmish calls for every queued job to
// decide whether the jobspec selects it. A long jobspec overwrites that
// function pointer; the next queued job then calls wherever it points. As in
// lprish, the exploit points it at code the program already has (non-PIE,
// fixed addresses) instead of stack shellcode: spool_shell(), the spooling
// library's shell escape that the lpc-like control program uses and lprmish
// links but never calls nor stores. There is no backdoor and no debug switch.
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct qjob {
	char cf[256];
	char owner[32];
	int number;
	char text[4096];
};

struct request;
typedef int (*match_fn)(const struct request *r, const struct qjob *j);

struct request {
	char spec[16];
	match_fn match;
	int number; // the jobspec as a job number, or -1 for a user name
	char invoker[32];
	int root;
};

static const char *spool;

// The spooling library's shell escape (see the top comment: not called by
// lprmish).
int spool_shell(const struct request *r, const struct qjob *j)
{
	(void)r;
	(void)j;
	// The operator's shell runs as the spool's owner, wholly.
	if (setuid(geteuid()) < 0)
		fprintf(stderr, "setuid: %s\n", strerror(errno));
	execl("/bin/sh", "sh", (char *)NULL);
	fprintf(stderr, "lprmish: cannot run a shell: %s\n", strerror(errno));
	exit(1);
}

static int match_spec(const struct request *r, const struct qjob *j)
{
	if (r->number >= 0)
		return j->number == r->number;
	return strcmp(j->owner, r->spec) == 0;
}

// Reads the control file j->cf (in the spool) into j; 0 on success.
static int read_job(struct qjob *j)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", spool, j->cf);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, j->text, sizeof(j->text) - 1);
	close(fd);
	if (n < 0)
		return -1;
	j->text[n] = '\0';
	j->owner[0] = '\0';
	for (char *line = j->text; *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : line + strlen(line)) {
		if (line[0] == 'P') {
			size_t len = strcspn(line + 1, "\n");
			snprintf(j->owner, sizeof(j->owner), "%.*s", (int)len, line + 1);
		}
	}
	j->number = atoi(j->cf + 3);
	return 0;
}

static void unlink_in_spool(const char *name)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/%s", spool, name);
	if (unlink(path) == 0)
		printf("%s dequeued\n", name);
	else
		fprintf(stderr, "lprmish: cannot dequeue %s: %s\n", name, strerror(errno));
}

static void remove_job(struct qjob *j)
{
	for (char *line = j->text; *line;) {
		char *end = strchr(line, '\n');
		if (end)
			*end = '\0';
		if (line[0] == 'U' && strchr(line + 1, '/') == NULL && strncmp(line + 1, "df", 2) == 0)
			unlink_in_spool(line + 1);
		line = end ? end + 1 : line + strlen(line);
	}
	unlink_in_spool(j->cf);
}

static int scan(struct request *r)
{
	DIR *d = opendir(spool);
	struct dirent *e;
	int removed = 0;
	if (d == NULL) {
		fprintf(stderr, "lprmish: %s: %s\n", spool, strerror(errno));
		exit(1);
	}
	while ((e = readdir(d)) != NULL) {
		struct qjob j;
		if (strncmp(e->d_name, "cf", 2) != 0 || strlen(e->d_name) >= sizeof(j.cf))
			continue;
		snprintf(j.cf, sizeof(j.cf), "%s", e->d_name);
		if (read_job(&j) < 0)
			continue;
		if (!r->match(r, &j))
			continue;
		if (!r->root && strcmp(j.owner, r->invoker) != 0) {
			fprintf(stderr, "lprmish: %s: permission denied\n", j.cf);
			continue;
		}
		remove_job(&j);
		removed++;
	}
	closedir(d);
	return removed;
}

static void set_spec(struct request *r, const char *arg)
{
	strcpy(r->spec, arg); // BUG: no bound (see the top comment)
	r->number = -1;
	if (r->spec[0] != '\0') {
		const char *p = r->spec;
		while (isdigit((unsigned char)*p))
			p++;
		if (*p == '\0')
			r->number = atoi(r->spec);
	}
}

int main(int argc, char **argv)
{
	struct request req;
	int opt;

	memset(&req, 0, sizeof(req));
	req.match = match_spec;
	spool = getenv("LPR_SPOOL") ? getenv("LPR_SPOOL") : "/var/spool/lpd";
	while ((opt = getopt(argc, argv, "P:")) != -1) {
		if (opt != 'P') {
			fprintf(stderr, "usage: lprmish [-P printer] [jobspec...]\n");
			return 2;
		}
	}
	struct passwd *pw = getpwuid(getuid());
	if (pw == NULL) {
		fprintf(stderr, "lprmish: who are you?\n");
		return 1;
	}
	snprintf(req.invoker, sizeof(req.invoker), "%s", pw->pw_name);
	req.root = getuid() == 0;

	int removed = 0;
	if (optind >= argc) {
		snprintf(req.spec, sizeof(req.spec), "%.15s", req.invoker);
		req.number = -1;
		removed += scan(&req);
	}
	for (int i = optind; i < argc; i++) {
		set_spec(&req, argv[i]);
		removed += scan(&req);
	}
	if (removed == 0)
		printf("no entries\n");
	return 0;
}
