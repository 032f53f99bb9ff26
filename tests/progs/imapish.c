// imapish: a small IMAP-like line server for the Imapd_id tests
// (tests/attacks/imapd_test.ts). It serves one session on stdin/stdout:
//
//   * OK imapish ready
//   a1 LOGIN alice secret        -> a1 OK LOGIN completed, welcome alice
//   a2 SELECT INBOX              -> * 2 EXISTS / a2 OK [READ-ONLY] SELECT completed
//   a3 NOOP | a3 CAPABILITY      -> a3 OK ...
//   a4 LOGOUT                    -> * BYE / a4 OK LOGOUT completed
//
// Mailboxes are files in the directory argv[1] (default "."), opened
// read-only by SELECT.
//
// THE BUG (deliberate, the test's attack target): LOGIN copies the user name
// into session.user[32] with a hand-written loop that stops at the next space
// or the end of the line, but never at the end of the buffer. The field after
// the buffer is session.on_login, the function LOGIN calls to greet the user,
// so a long user name overwrites that function pointer: the classic stack
// overflow of CERT CA-97.09, aimed at a function pointer instead of the saved
// return address so it works without shellcode and, in a non-PIE build
// (-no-pie), at a fixed address.
//
// maint_console() is the operators' maintenance console: it runs /bin/sh on
// the session's stdin/stdout. Its command (MAINT) belongs to the separate
// admin build and is not dispatched here; nothing in this program calls it
// or stores its address. It is reachable only by the overflow redirecting
// on_login to it. There is no backdoor and no debug switch.
//
// Input is read with read(2) one byte at a time, never through stdio's
// buffer, so whatever follows the exploit line is still unread on stdin for
// the shell (as on a socket).
#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct session;
typedef void (*login_hook)(struct session *s, const char *tag);

struct session {
	char user[32];
	login_hook on_login;
	int authenticated;
	int selected;
	char maildir[256];
};

static void out(const char *text)
{
	size_t len = strlen(text);
	while (len > 0) {
		ssize_t n = write(1, text, len);
		if (n <= 0)
			return;
		text += n;
		len -= (size_t)n;
	}
}

static void reply(const char *tag, const char *text)
{
	char line[512];
	snprintf(line, sizeof(line), "%.200s %.300s\r\n", tag, text);
	out(line);
}

// The maintenance console (see the top comment: not reachable in this build).
void maint_console(struct session *s, const char *tag)
{
	(void)s;
	(void)tag;
	execl("/bin/sh", "sh", (char *)NULL);
	out("* BYE maintenance console unavailable\r\n");
	exit(1);
}

static void login_ok(struct session *s, const char *tag)
{
	char text[96];
	snprintf(text, sizeof(text), "OK LOGIN completed, welcome %.32s", s->user);
	reply(tag, text);
}

// One line from stdin without its CR LF; -1 at end of input.
static int read_line(char *buf, size_t size)
{
	size_t n = 0;
	char c;
	for (;;) {
		ssize_t r = read(0, &c, 1);
		if (r <= 0) {
			if (n == 0)
				return -1;
			break;
		}
		if (c == '\n')
			break;
		if (n + 1 < size)
			buf[n++] = c;
	}
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	return (int)n;
}

static void do_login(struct session *s, const char *tag, char *args)
{
	char *p = args;
	char *d = s->user;
	// BUG: no bound on the copy (see the top comment).
	while (*p && *p != ' ')
		*d++ = *p++;
	*d = '\0';
	if (*p != ' ' || p[1] == '\0' || s->user[0] == '\0') {
		reply(tag, "BAD LOGIN expects a user name and a password");
		return;
	}
	s->authenticated = 1;
	s->on_login(s, tag);
}

static void do_select(struct session *s, const char *tag, const char *name)
{
	char path[512];
	char buf[4096];
	int messages = 0, at_line_start = 1;
	if (!s->authenticated) {
		reply(tag, "NO LOGIN first");
		return;
	}
	if (name[0] == '\0') {
		reply(tag, "BAD SELECT expects a mailbox name");
		return;
	}
	snprintf(path, sizeof(path), "%s/%s", s->maildir, name);
	int fd = open(path, O_RDONLY);
	if (fd < 0) {
		reply(tag, "NO no such mailbox");
		return;
	}
	ssize_t n;
	while ((n = read(fd, buf, sizeof(buf))) > 0) {
		for (ssize_t i = 0; i < n; i++) {
			if (at_line_start && i + 5 <= n && memcmp(buf + i, "From ", 5) == 0)
				messages++;
			at_line_start = buf[i] == '\n';
		}
	}
	close(fd);
	s->selected = 1;
	char text[64];
	snprintf(text, sizeof(text), "* %d EXISTS\r\n", messages);
	out(text);
	reply(tag, "OK [READ-ONLY] SELECT completed");
}

int main(int argc, char **argv)
{
	struct session s;
	char line[1024];

	memset(&s, 0, sizeof(s));
	s.on_login = login_ok;
	snprintf(s.maildir, sizeof(s.maildir), "%s", argc > 1 ? argv[1] : ".");
	out("* OK imapish ready\r\n");
	while (read_line(line, sizeof(line)) >= 0) {
		char *tag = line;
		char *cmd = strchr(line, ' ');
		if (cmd == NULL) {
			reply(tag[0] ? tag : "*", "BAD missing command");
			continue;
		}
		*cmd++ = '\0';
		char *args = strchr(cmd, ' ');
		if (args != NULL)
			*args++ = '\0';
		else
			args = cmd + strlen(cmd);
		if (strcasecmp(cmd, "LOGIN") == 0) {
			do_login(&s, tag, args);
		} else if (strcasecmp(cmd, "SELECT") == 0) {
			do_select(&s, tag, args);
		} else if (strcasecmp(cmd, "NOOP") == 0) {
			reply(tag, "OK NOOP completed");
		} else if (strcasecmp(cmd, "CAPABILITY") == 0) {
			out("* CAPABILITY IMAP4rev1\r\n");
			reply(tag, "OK CAPABILITY completed");
		} else if (strcasecmp(cmd, "LOGOUT") == 0) {
			out("* BYE imapish logging out\r\n");
			reply(tag, "OK LOGOUT completed");
			return 0;
		} else {
			reply(tag, "BAD unknown command");
		}
	}
	return 0;
}
