// SPDX-License-Identifier: GPL-2.0-only
/*
 * Sends SIGKILL to a fresh child by every call that carries a signal (and by
 * the forms that put garbage in an int argument's upper half), and says for
 * each whether the child died of it ("KILLED") or not ("held"). Under a
 * `signal: SIGKILL` deny rule on the signal calls every line must say held;
 * unwrapped, every line says KILLED.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static pid_t child(void)
{
	pid_t pid = fork();

	if (pid == 0) {
		pause();
		_exit(0);
	}
	return pid;
}

static void report(const char *form, pid_t pid, long rc)
{
	int status = 0, killed;

	usleep(20000);
	killed = waitpid(pid, &status, WNOHANG) == pid && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL;
	printf("%s %s\n", form, killed ? "KILLED" : "held");
	if (!killed) {
		kill(pid, SIGTERM);
		waitpid(pid, &status, 0);
	}
	(void)rc;
}

int main(void)
{
	siginfo_t info;
	pid_t pid;

	memset(&info, 0, sizeof(info));
	info.si_code = SI_QUEUE;
	info.si_pid = getpid();
	info.si_uid = getuid();
	pid = child();
	report("kill", pid, syscall(SYS_kill, pid, SIGKILL));
	pid = child();
	report("kill-high-word", pid, syscall(SYS_kill, (long)pid, SIGKILL | (1L << 32)));
	pid = child();
	report("tkill", pid, syscall(SYS_tkill, pid, SIGKILL));
	pid = child();
	report("tgkill", pid, syscall(SYS_tgkill, pid, pid, SIGKILL));
	pid = child();
	report("rt_sigqueueinfo", pid, syscall(SYS_rt_sigqueueinfo, pid, SIGKILL, &info));
	pid = child();
	report("rt_tgsigqueueinfo", pid, syscall(SYS_rt_tgsigqueueinfo, pid, pid, SIGKILL, &info));
	pid = child();
	report("pidfd_send_signal", pid, syscall(SYS_pidfd_send_signal, (int)syscall(SYS_pidfd_open, pid, 0), SIGKILL,
						 NULL, 0));
	return 0;
}
