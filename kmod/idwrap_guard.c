// SPDX-License-Identifier: GPL-2.0-only
/*
 * idwrap: the supervisor's guard for what the module's interest mask cannot
 * select by argument (issue 13, item 3 of the kmod source).
 *
 * - SIGIO/SIGURG owners (fcntl F_SETOWN, F_SETOWN_EX, F_SETSIG; ioctl
 *   FIOSETOWN, SIOCSPGRP): where the owner comes from (a register, a struct
 *   a thread may rewrite, a process group) does not matter here. The kernel
 *   asks security_file_send_sigiotask() before it sends a file's signal to
 *   each task; no such signal reaches the supervisor's thread group while a
 *   session is open (it sets no owner of its own). Decided at delivery, on
 *   the task the kernel is about to signal: nothing to race.
 * - TIOCSTI (input pushed into a terminal, run by whatever reads it next:
 *   the shell idwrap was started from), SO_PEERPIDFD (a pidfd of the socket's
 *   peer, which may be idwrap) and SO_PASSPIDFD (the same through SCM_PIDFD):
 *   refused for watched tasks (EPERM; the two options ENOPROTOOPT, the kernel's answer
 *   before 6.5, as on the seccomp source) in security_file_ioctl() and
 *   security_socket_{get,set}sockopt(), on the values the kernel itself
 *   passes them (registers, never reread from memory). sys_enter reports
 *   them refused (EVF_DENIED), as it does io_uring.
 * - Every way to the supervisor's process that the kernel itself guards with
 *   __ptrace_may_access(): its /proc magic links (fd/N, cwd, root, exe:
 *   proc_fd_access_allowed), map_files/, mem, environ, auxv, ptrace attach,
 *   process_vm_readv/writev, pidfd_getfd, kcmp. The kernel asks
 *   security_ptrace_access_check(child, mode) for each, on the task it is
 *   about to expose, after the path (whatever symlink, dirfd or /proc name
 *   led there) is resolved: a watched task gets EPERM for any task of the
 *   supervisor's thread group, whatever the policy and whether or not its
 *   opens wait for the host. EPERM is what __ptrace_may_access() answers
 *   itself when access is not allowed; each caller maps it as it does for
 *   a task without CAP_SYS_PTRACE (an open of /proc/PID/fd/N or mem fails
 *   with EACCES, process_vm_* with EPERM).
 * - Signals to the supervisor (kill, tkill, tgkill, rt_*sigqueueinfo,
 *   pidfd_send_signal): the kernel asks security_task_kill() for each task
 *   it is about to signal on a program's behalf. The host's guard judges the
 *   pid or pidfd it reads, and a thread can dup2() a /proc/<idwrap> fd onto
 *   the number pidfd_send_signal names after that read: here the target is
 *   the task itself. Refused (EPERM) as the host's guard refuses them
 *   (host/wss/tamper.ts): any signal but 0 sent to idwrap itself; to a
 *   process group or every process (kill with pid <= 0), those idwrap
 *   neither survives nor forwards to the command.
 * The last two are counted (/proc/idwrap: ptrace_refused, kill_refused) and
 * reported as the caller's call refused (EVF_DENIED, ret -EPERM) from the
 * hook itself, except the ptrace checks the kernel marks PTRACE_MODE_NOAUDIT
 * (/proc/PID/stat's fields it hides from any stranger): refused, not
 * counted, as they are no attempt of the program's.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fs.h>
#include <linux/ptrace.h>
#include <linux/sched.h>
#include <linux/signal.h>
#include <linux/socket.h>
#include <asm/ioctls.h>
#include <asm/syscall.h>
#include <asm/unistd.h>

#include "idwrap.h"

/* asm-generic/socket.h, Linux 6.5: not in 6.1's headers. */
#define IDW_SO_PASSPIDFD	76
#define IDW_SO_PEERPIDFD	77

atomic64_t idw_sigio_refused = ATOMIC64_INIT(0);
atomic64_t idw_ptrace_refused = ATOMIC64_INIT(0);
atomic64_t idw_kill_refused = ATOMIC64_INIT(0);

/*
 * Signals a group or broadcast kill() may send idwrap too, as the host's
 * guard lets them through (host/wss/tamper.ts: SURVIVABLE_SIGNALS and
 * GROUP_SIGNALS_LET_THROUGH): those it survives or ignores, and SIGHUP,
 * SIGINT, SIGQUIT, SIGTERM (forwarded to the command), SIGTSTP, SIGTTIN,
 * SIGTTOU (job control: they only hold calls).
 */
#define IDW_GROUP_SIGNALS_OK (BIT(0) | BIT(SIGTRAP) | BIT(SIGUSR1) | BIT(SIGUSR2) | BIT(SIGPIPE) | \
			      BIT(SIGALRM) | BIT(SIGCHLD) | BIT(SIGCONT) | BIT(SIGURG) | BIT(SIGXCPU) | \
			      BIT(SIGXFSZ) | BIT(SIGVTALRM) | BIT(SIGPROF) | BIT(SIGWINCH) | BIT(SIGIO) | \
			      BIT(SIGPWR) | BIT(SIGSYS) | BIT(SIGHUP) | BIT(SIGINT) | BIT(SIGQUIT) | \
			      BIT(SIGTERM) | BIT(SIGTSTP) | BIT(SIGTTIN) | BIT(SIGTTOU))

/* Whether the guard refuses signal @sig to idwrap in the current call. */
static bool idw_guard_signal(int sig)
{
	struct pt_regs *uregs = task_pt_regs(current);

	if (sig == 0)
		return false;
	/* kill(pid <= 0, sig): a group or every process, idwrap among them. */
	if (syscall_get_nr(current, uregs) == __NR_kill && (int)uregs->di <= 0)
		return sig >= 32 || !(IDW_GROUP_SIGNALS_OK & BIT(sig));
	return true;
}

static int idw_guard_eperm(void)
{
	return -EPERM;
}

/* What the kernel says where there is no such option (before 6.5): what the seccomp source answers too. */
static int idw_guard_enoprotoopt(void)
{
	return -ENOPROTOOPT;
}

/*
 * The errno a watched task's call @nr with argument registers @a1, @a2
 * gets from the guard (0: none of its business).
 */
static int idw_guard_args(long nr, unsigned long a1, unsigned long a2)
{
	switch (nr) {
	case __NR_ioctl:
		return (unsigned int)a1 == TIOCSTI ? EPERM : 0;
	case __NR_getsockopt:
		return (int)a1 == SOL_SOCKET && (int)a2 == IDW_SO_PEERPIDFD ? ENOPROTOOPT : 0;
	case __NR_setsockopt:
		return (int)a1 == SOL_SOCKET && (int)a2 == IDW_SO_PASSPIDFD ? ENOPROTOOPT : 0;
	}
	return 0;
}

/* For sys_enter's report: the call's own registers (%rsi, %rdx: arguments 1 and 2). */
int idw_guard_refuses(long nr, const struct pt_regs *regs)
{
	return idw_guard_args(nr, regs->si, regs->dx);
}

/*
 * From the module's one ftrace handler on security_* functions
 * (idw_sec_ftrace(), idwrap_emulate.c): @which of them was called, with
 * these argument registers.
 */
void idw_guard_hook(int which, struct pt_regs *regs)
{
	switch (which) {
	case IDW_GUARD_SIGIO:
		/* (tsk, fown, sig): no file's signal for the supervisor. Hooked only during a session,
		 * outside one the opener is NULL, which no task's group is. */
		if (idw_is_opener((struct task_struct *)regs->di)) {
			atomic64_inc(&idw_sigio_refused);
			regs->ip = (unsigned long)idw_guard_eperm;
		}
		break;
	case IDW_GUARD_IOCTL:	/* (file, cmd, arg) */
		if (idw_guard_args(__NR_ioctl, regs->si, 0) && idw_intercepts(current))
			regs->ip = (unsigned long)idw_guard_eperm;
		break;
	case IDW_GUARD_PTRACE:	/* (child, mode) */
		if (in_task() && idw_is_opener((struct task_struct *)regs->di) && idw_intercepts(current)) {
			regs->ip = (unsigned long)idw_guard_eperm;
			if (!(regs->si & PTRACE_MODE_NOAUDIT)) {
				atomic64_inc(&idw_ptrace_refused);
				idw_report_guarded(-EPERM);
			}
		}
		break;
	case IDW_GUARD_KILL:	/* (p, info, sig, cred); in_task(): USB's async I/O signals from interrupts */
		if (in_task() && idw_is_opener((struct task_struct *)regs->di) && idw_intercepts(current) &&
		    idw_guard_signal((int)regs->dx)) {
			regs->ip = (unsigned long)idw_guard_eperm;
			atomic64_inc(&idw_kill_refused);
			idw_report_guarded(-EPERM);
		}
		break;
	case IDW_GUARD_GETSOCKOPT:	/* (sock, level, optname) */
	case IDW_GUARD_SETSOCKOPT:
		if (idw_guard_args(which == IDW_GUARD_GETSOCKOPT ? __NR_getsockopt : __NR_setsockopt,
				   regs->si, regs->dx) && idw_intercepts(current))
			regs->ip = (unsigned long)idw_guard_enoprotoopt;
		break;
	}
}
