// A child that execs cat, and a grandchild that execs true: the whole tree is seen.
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	const char *file = argc > 1 ? argv[1] : "/etc/hostname";
	pid_t child = fork();

	if (child == 0) {
		pid_t grandchild = fork();

		if (grandchild == 0) {
			execl("/bin/true", "true", (char *)NULL);
			_exit(127);
		}
		waitpid(grandchild, NULL, 0);
		execl("/bin/cat", "cat", file, (char *)NULL);
		_exit(127);
	}
	int status;
	waitpid(child, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 1;
}
