// SPDX-License-Identifier: GPL-2.0-only
/*
 * idwrap: in-module opens and the replacement of the kernel's path copy.
 *
 * TOCTOU: open, openat and creat decided synchronously and allowed are run
 * by the module itself on the copied path (filp_open(); a relative name
 * joined to the d_path of the start directory pinned at copy time, which
 * the record carries as path2), so the file opened is the one decided on
 * (Watson, "Exploiting Concurrency Vulnerabilities in System Call Wrappers",
 * WOOT 2007). openat2 is decided on its copied path but runs the original.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/binfmts.h>
#include <linux/dcache.h>
#include <linux/fcntl.h>
#include <linux/file.h>
#include <linux/fs.h>
#include <linux/fs_struct.h>
#include <linux/fsnotify.h>
#include <linux/ftrace.h>
#include <linux/hashtable.h>
#include <linux/kallsyms.h>
#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/namei.h>
#include <linux/net.h>
#include <linux/openat2.h>
#include <linux/path.h>
#include <linux/sched/signal.h>
#include <linux/sched/task.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/task_work.h>
#include <linux/tracepoint.h>
#include <linux/uaccess.h>
#include <linux/vmalloc.h>
#include <asm/syscall.h>
#include <asm/unistd.h>

#include "idwrap.h"

/* ---- the pre path (sleepable) ------------------------------------------- */

/*
 * The directory a relative open starts from, pinned when the path is copied
 * (the dirfd's struct path, or the cwd for AT_FDCWD), so that neither a
 * dup2() onto the dirfd number nor a chdir() after the decision changes it.
 * The record carries its name as path2: the host decides knowing it.
 */
static void idw_dir_at(int dfd, struct path *dir)
{
	struct file *f;

	*dir = (struct path){};
	if (dfd == AT_FDCWD) {
		get_fs_pwd(current->fs, dir);
		return;
	}
	f = fget_raw(dfd);
	if (!f)
		return;	/* EBADF at the call, for a relative name */
	*dir = f->f_path;
	path_get(dir);
	fput(f);
}

void idw_get_dir(long nr, int dfd, struct path *dir)
{
	idw_dir_at(nr == __NR_openat ? dfd : AT_FDCWD, dir);
}

void idw_pin_dir(long nr, struct idw_rec *r, const unsigned long *args,
		 struct path *dir)
{
	const char *name = (const char *)(r->ev + 1);
	char *slot = (char *)r->ev + r->len, *p;
	long len;

	idw_get_dir(nr, args[0], dir);
	if (!dir->dentry || !r->ev->path_len || name[0] == '/' ||
	    r->cap - r->len < PATH_MAX + 8)
		return;
	p = d_path(dir, slot, PATH_MAX);
	if (IS_ERR(p))
		return;
	len = strlen(p) + 1;
	memmove(slot, p, len);
	r->ev->path2_len = len;
	r->len += len;
}

/*
 * @name joined to @dir's name, into @out (PATH_MAX bytes). The name is
 * d_path() of the pinned directory, and it must lead back to that
 * directory itself now (not a directory outside the caller's root, in
 * another mount namespace, under an overmount, or renamed away), else
 * EXDEV: the string would name something other than what was pinned. A
 * non-directory is ENOTDIR, a deleted one ENOENT.
 */
int idw_join(const struct path *dir, const char *name, char *out)
{
	struct path check;
	char *buf, *p;
	int err;

	if (!d_can_lookup(dir->dentry))
		return -ENOTDIR;
	if (d_unlinked(dir->dentry))
		return -ENOENT;
	buf = idw_kmalloc("open", PATH_MAX, GFP_KERNEL);
	if (!buf)
		return -ENOMEM;
	p = d_path(dir, buf, PATH_MAX);
	if (IS_ERR(p)) {
		err = PTR_ERR(p);
		goto out;
	}
	err = kern_path(p, LOOKUP_FOLLOW | LOOKUP_DIRECTORY, &check);
	if (err) {
		err = -EXDEV;
		goto out;
	}
	err = path_equal(&check, dir) ? 0 : -EXDEV;
	path_put(&check);
	if (err)
		goto out;
	/* "/" joins without a second slash. */
	if (snprintf(out, PATH_MAX, "%s/%s", p[1] ? p : "", name) >= PATH_MAX)
		err = -ENAMETOOLONG;
out:
	kfree(buf);
	return err;
}

/*
 * Opens @name as openat() would from @dir (NULL: @name is absolute), on the
 * bytes decided on: the caller's copy, never user memory. filp_open() takes
 * a string, so a relative name is joined to @dir (idw_join()).
 */
static long idw_open_file(const struct path *dir, const char *name, int flags, umode_t mode)
{
	const char *path = name;
	char *buf = NULL;
	struct file *f;
	long fd;

	if (!*name)
		return -ENOENT;
	if (dir && name[0] != '/') {
		buf = idw_kmalloc("open", PATH_MAX, GFP_KERNEL);
		if (!buf)
			return -ENOMEM;
		fd = idw_join(dir, name, buf);
		if (fd)
			goto out;
		path = buf;
	}
	if (force_o_largefile())
		flags |= O_LARGEFILE;
	fd = get_unused_fd_flags(flags);
	if (fd < 0)
		goto out;
	f = filp_open(path, flags, mode);
	if (IS_ERR(f)) {
		put_unused_fd(fd);
		fd = PTR_ERR(f);
		goto out;
	}
	fsnotify_open(f);
	fd_install(fd, f);
out:
	kfree(buf);
	return fd;
}

/*
 * The open family, emulated on the record's copied path (or @newpath) from
 * the directory pinned at copy time.
 */
long idw_open_emulated(long nr, struct idw_rec *r, unsigned long *args,
		       const char *newpath, const struct path *dir)
{
	const char *path = newpath ?: (const char *)(r->ev + 1);

	atomic64_inc(&idw->stats.emulated);
	if (!newpath && (r->ev->flags & IDWRAP_EVF_TRUNC))
		return -ENAMETOOLONG;
	if (!newpath && !r->ev->path_len)
		return -EFAULT;
	if (path[0] != '/' && !dir->dentry)
		return nr == __NR_openat ? -EBADF : -ENOENT;
	switch (nr) {
	case __NR_openat:
		return idw_open_file(dir, path, args[2], args[3]);
	case __NR_open:
		return idw_open_file(dir, path, args[1], args[2]);
	default:	/* creat */
		return idw_open_file(dir, path, O_CREAT | O_WRONLY | O_TRUNC, args[1]);
	}
}

/* ---- the kernel's copy of a decided call's arguments --------------------- */

/* openat2 with RESOLVE_BENEATH or RESOLVE_IN_ROOT: its dirfd is part of the lookup, not only a start. */
static bool idw_openat2_rooted(const unsigned long *args)
{
	struct open_how how;

	if (args[3] < sizeof(how) || copy_from_user(&how, (const void __user *)args[2], sizeof(how)))
		return true;	/* the call fails anyway (EINVAL, EFAULT) */
	return how.resolve & (RESOLVE_BENEATH | RESOLVE_IN_ROOT);
}

/*
 * Where the name in slot @i (0: path, 1: path2) of call @nr starts: the
 * index of its dirfd argument, IDW_CWD, IDW_NOJOIN (used as copied) or
 * IDW_NOSLOT (not a name the kernel getname()s).
 */
static int idw_slot_dir(long nr, int i, const unsigned long *args)
{
	switch (nr) {
	case __NR_renameat:
	case __NR_renameat2:
	case __NR_linkat:
		return i ? 2 : 0;
	case __NR_symlink:
		return i ? IDW_CWD : IDW_NOJOIN;
	case __NR_symlinkat:
		return i ? 1 : IDW_NOJOIN;
	case __NR_mount:
		return i ? IDW_CWD : IDW_NOJOIN;
	case __NR_getxattr: case __NR_lgetxattr: case __NR_setxattr:
	case __NR_lsetxattr: case __NR_removexattr: case __NR_lremovexattr:
		return i ? IDW_NOSLOT : IDW_CWD;
	case __NR_inotify_add_watch:
		return IDW_CWD;
	case __NR_openat2:
		return idw_openat2_rooted(args) ? IDW_NOJOIN : 0;
	}
	/* PATH(1): the *at calls, whose dirfd is the first argument. */
	return idw_spec[nr].path == 2 ? 0 : IDW_CWD;
}

/* Slot @sl's relative name joined to the directory of @dfd (or the cwd) as it is now. */
static void idw_slot_join(struct idw_slot *sl, int dfd)
{
	struct path dir;

	idw_dir_at(dfd, &dir);
	sl->err = dir.dentry ? idw_join(&dir, sl->raw, sl->name) : -EBADF;
	path_put(&dir);
}

/* The path xattr calls, whose second string (slot 1) is the attribute's name. */
static bool idw_is_xattr(long nr)
{
	switch (nr) {
	case __NR_getxattr: case __NR_lgetxattr: case __NR_setxattr:
	case __NR_lsetxattr: case __NR_removexattr: case __NR_lremovexattr:
		return true;
	}
	return false;
}

/* ---- the identity of what a decided name names ------------------------- */

/*
 * The bytes decided on are not enough: a thread may rename a directory on
 * the path away and put a symlink to /etc in its place (or swap a final
 * symlink) after the decision, and the same bytes then name another file.
 * So at copy time each name is also looked up (in the caller, its root, cwd
 * and mount namespace): the object (final symlink not followed, and
 * followed) and its parent directory, by device, inode number and
 * generation. The kernel's security_* hooks, which run after its own lookup,
 * compare what the call acts on with that, and refuse (EACCES, EVF_RACED)
 * when it is another object: a parent for creates and removals, the object
 * for the rest. A lookup that fails records "nothing there", so any object
 * found later differs (fail closed). Only tasks with an expectation pay:
 * three lookups at copy time, a compare in the hook.
 *
 * In the test-only build (IDWRAP_FAULT_INJECT), idwrap.identity=0 (at insmod
 * only) turns the check off: the old behaviour, the control of
 * tests/sources/kmod/swap_vm_test.ts. The production module has no such
 * parameter: the check is always on.
 */
#ifdef IDWRAP_FAULT_INJECT
static bool identity = true;
module_param(identity, bool, 0444);
MODULE_PARM_DESC(identity, "check the identity of what a decided name names (default on; off: a test control)");
#else
static const bool identity = true;
#endif

/* The calls whose object the identity hooks check (the others' names are only looked at). */
static bool idw_ident_wanted(long nr)
{
	switch (nr) {
	case __NR_open: case __NR_openat: case __NR_creat: case __NR_openat2:
	case __NR_unlink: case __NR_unlinkat: case __NR_rmdir:
	case __NR_mkdir: case __NR_mkdirat: case __NR_mknod: case __NR_mknodat:
	case __NR_symlink: case __NR_symlinkat: case __NR_link: case __NR_linkat:
	case __NR_rename: case __NR_renameat: case __NR_renameat2:
	case __NR_chmod: case __NR_fchmodat: case __NR_chown: case __NR_lchown: case __NR_fchownat:
	case __NR_truncate: case __NR_utime: case __NR_utimes: case __NR_utimensat: case __NR_futimesat:
	case __NR_execve: case __NR_execveat:
		return READ_ONCE(identity);
	}
	return false;
}

static void idw_ident_lookup(const char *name, unsigned int flags, struct idw_ident *id)
{
	struct path p;

	*id = (struct idw_ident){};
	if (kern_path(name, flags, &p))
		return;
	if (d_really_is_positive(p.dentry)) {
		struct inode *inode = d_inode(p.dentry);

		id->ino = inode->i_ino;
		id->dev = inode->i_sb->s_dev;
		id->gen = inode->i_generation;
	}
	path_put(&p);
}

/* What @sl's absolute name names now (a relative one: nothing, which no object matches). */
static int idw_ident_record(struct idw_slot *sl)
{
	char *dir, *slash;
	size_t n;

	sl->ident = true;
	sl->parent = sl->obj = sl->objf = (struct idw_ident){};
	if (sl->name[0] != '/')
		return 0;
	idw_ident_lookup(sl->name, 0, &sl->obj);
	idw_ident_lookup(sl->name, LOOKUP_FOLLOW, &sl->objf);
	dir = kstrdup(sl->name, GFP_KERNEL);
	if (!dir)
		return -ENOMEM;
	n = strlen(dir);
	while (n > 1 && dir[n - 1] == '/')
		dir[--n] = 0;
	slash = strrchr(dir, '/');
	slash[slash == dir] = 0;	/* "/a" -> "/", "/a/b" -> "/a" */
	idw_ident_lookup(dir, LOOKUP_FOLLOW | LOOKUP_DIRECTORY, &sl->parent);
	kfree(dir);
	return 0;
}

static bool idw_ident_is(const struct idw_ident *id, const struct inode *inode)
{
	return inode && id->ino && id->ino == inode->i_ino && id->dev == inode->i_sb->s_dev &&
	       id->gen == inode->i_generation;
}

/* The object a call acts on (NULL: a negative dentry) is the one @sl named at copy time. */
static bool idw_ident_obj(const struct idw_slot *sl, const struct inode *inode)
{
	if (!inode)
		return !sl->obj.ino || !sl->objf.ino;
	return idw_ident_is(&sl->obj, inode) || idw_ident_is(&sl->objf, inode);
}

/*
 * The expectation of an emulated open (NULL: none; an ERR_PTR: no memory):
 * only the identity of what its decided name (joined to the pinned @dir)
 * names now; filp_open() looks the name up again.
 */
struct idw_expect *idw_expect_open(long nr, struct idw_rec *r, const struct path *dir)
{
	const char *name = (const char *)(r->ev + 1);
	struct idw_expect *ex;
	struct idw_slot *sl;

	if (!idw_ident_wanted(nr) || !r->ev->path_len || (r->ev->flags & IDWRAP_EVF_TRUNC) || !name[0])
		return NULL;
	ex = kzalloc(sizeof(*ex), GFP_KERNEL);
	if (!ex)
		return ERR_PTR(-ENOMEM);
	ex->nr = nr;
	ex->raced_slot = -1;
	sl = &ex->slot[0];
	sl->name = kmalloc(PATH_MAX, GFP_KERNEL);
	if (!sl->name)
		goto nomem;
	if (name[0] == '/')
		strscpy(sl->name, name, PATH_MAX);
	else if (!dir->dentry || idw_join(dir, name, sl->name))
		sl->name[0] = 0;	/* the open fails, or nothing matches */
	if (idw_ident_record(sl))
		goto nomem;
	return ex;
nomem:
	idw_ex_free(ex);
	return ERR_PTR(-ENOMEM);
}

/*
 * The expectation of decided call @nr (NULL: it has none; an ERR_PTR: no
 * memory), from its record @r, before the verdict: each name the kernel
 * will getname() (its raw copy; a relative one joined to its start
 * directory now, idw_join()), or the error the kernel gets instead; a
 * connect's or bind's sockaddr. A joined name replaces the copied one in
 * the record (EVF_JOINED), so the host decides on what will run.
 */
struct idw_expect *idw_expect_build(long nr, struct idw_rec *r, const unsigned long *args)
{
	const struct idw_argspec *sp = &idw_spec[nr];
	struct idwrap_event *ev = r->ev;
	char *at[2] = { (char *)(ev + 1), (char *)(ev + 1) + ev->path_len };
	u16 len[2] = { ev->path_len, ev->path2_len };
	u8 argi[2] = { sp->path, sp->path2 };
	struct idw_expect *ex;
	bool joined = false;
	int i;

	if (idw_is_open(nr) || (!sp->path && nr != __NR_connect && nr != __NR_bind))
		return NULL;
	ex = idw_kzalloc("expect", sizeof(*ex), GFP_KERNEL);
	if (!ex)
		return ERR_PTR(-ENOMEM);
	ex->nr = nr;
	ex->raced_slot = -1;
	if (!sp->path) {	/* connect, bind */
		if (!ev->data_len || (ev->flags & IDWRAP_EVF_TRUNC)) {
			kfree(ex);
			return NULL;	/* nothing copied: the kernel faults the same way */
		}
		ex->addrlen = ev->data_len;
		ex->addr = idw_kmemdup("expect", at[1] + len[1], ex->addrlen, GFP_KERNEL);
		if (!ex->addr)
			goto nomem;
		return ex;
	}
	for (i = 0; i < 2; i++) {
		struct idw_slot *sl = &ex->slot[i];
		int where = argi[i] ? idw_slot_dir(nr, i, args) : IDW_NOSLOT;

		if (where == IDW_NOSLOT)
			continue;
		sl->uaddr = args[argi[i] - 1];
		if (!sl->uaddr)
			continue;	/* NULL: never a getname() of ours */
		if (!len[i]) {
			sl->err = -EFAULT;
			continue;
		}
		if (len[i] == PATH_MAX) {	/* cut: the kernel would say so too */
			sl->err = -ENAMETOOLONG;
			continue;
		}
		sl->raw = idw_kstrdup("expect", at[i], GFP_KERNEL);
		sl->name = idw_kmalloc("expect", PATH_MAX, GFP_KERNEL);
		if (!sl->raw || !sl->name)
			goto nomem;
		strscpy(sl->name, sl->raw, PATH_MAX);
		if (where == IDW_NOJOIN || !sl->raw[0])
			continue;
		if (sl->raw[0] != '/') {
			idw_slot_join(sl, where == IDW_CWD ? AT_FDCWD : (int)args[where]);
			if (sl->err == -ENOMEM)
				goto nomem;
			joined |= !sl->err;
		}
		if (!sl->err && idw_ident_wanted(nr) && idw_ident_record(sl))
			goto nomem;
	}
	/* An xattr's name, as copied (a cut or faulted copy: the kernel's fails too, ERANGE or EFAULT). */
	if (idw_is_xattr(nr) && len[1] && len[1] < PATH_MAX) {
		ex->xname = kstrdup(at[1], GFP_KERNEL);
		if (!ex->xname)
			goto nomem;
	}
	if (joined) {
		/* The record again: header, the joined names, the data after them. */
		char *tmp = idw_kmalloc("expect", 2 * PATH_MAX, GFP_KERNEL), *dst = (char *)(ev + 1);
		char *data = at[1] + len[1];
		u32 n[2] = {};

		if (!tmp)
			goto nomem;
		for (i = 0; i < 2; i++) {
			const char *str = ex->slot[i].name && !ex->slot[i].err ? ex->slot[i].name : at[i];

			if (!len[i])
				continue;
			n[i] = strlen(str) + 1;
			memcpy(tmp + i * PATH_MAX, str, n[i]);
		}
		memmove(dst + n[0] + n[1], data, ev->data_len);
		memcpy(dst, tmp, n[0]);
		memcpy(dst + n[0], tmp + PATH_MAX, n[1]);
		ev->path_len = n[0];
		ev->path2_len = n[1];
		r->len = sizeof(*ev) + n[0] + n[1] + ev->data_len;
		ev->flags |= IDWRAP_EVF_JOINED;
		kfree(tmp);
	}
	return ex;
nomem:
	idw_ex_free(ex);
	return ERR_PTR(-ENOMEM);
}

/* A name whose start directory could not be joined: the call fails with that (EBADF, ENOTDIR, EXDEV...). */
int idw_expect_error(const struct idw_expect *ex)
{
	int i;

	for (i = 0; i < 2; i++)
		if (ex->slot[i].err && ex->slot[i].err != -EFAULT && ex->slot[i].err != -ENAMETOOLONG)
			return ex->slot[i].err;
	return 0;
}

/* A REWRITE of a dirfd argument: the names starting there start at the new one. */
void idw_expect_rewrite(struct idw_expect *ex, long nr, const unsigned long *args, u32 arg)
{
	int i;

	for (i = 0; i < 2; i++) {
		struct idw_slot *sl = &ex->slot[i];

		if (sl->raw && sl->raw[0] && sl->raw[0] != '/' && idw_slot_dir(nr, i, args) == (int)arg) {
			idw_slot_join(sl, (int)args[arg]);
			/* What the new name resolves to; without memory for that, nothing matches: refused. */
			if (sl->ident && (sl->err || idw_ident_record(sl)))
				sl->parent = sl->obj = sl->objf = (struct idw_ident){};
		}
	}
}

/* getname()'s room for a name inside its struct filename (fs/namei.c's EMBEDDED_NAME_MAX). */
#define IDW_EMBEDDED_NAME_MAX	(PATH_MAX - offsetof(struct filename, iname))

/*
 * The kernel's copy @fn of one of @ex's names becomes the decided bytes (in
 * place: it is the kernel's own buffer, past any user access). A copy that
 * differs from the caller's bytes the module copied is a race (reported at
 * sys_exit). Returns 0, or the error the call must fail with: the module's
 * copy faulted where the kernel's did not, or the joined name does not fit
 * the buffer getname() sized for the short one.
 */
static int idw_fname_fix(struct idw_expect *ex, struct filename *fn)
{
	struct idw_slot *sl;
	size_t room;
	int i;

	if (IS_ERR_OR_NULL(fn) || !fn->uptr)
		return 0;	/* a name from the kernel, not from the caller */
	for (i = 0; i < 2; i++) {
		sl = &ex->slot[i];
		if (sl->uaddr == (unsigned long)fn->uptr && (sl->name || sl->err))
			break;
	}
	if (i == 2)
		return 0;
	if (!sl->name)
		return sl->err;
	if (!strcmp(fn->name, sl->name))
		return 0;	/* the bytes decided on (or already replaced: a second consumer) */
	if (strcmp(fn->name, sl->raw) && !ex->raced) {
		ex->raced = true;
		ex->raced_slot = i;
		ex->seen = kstrdup(fn->name, GFP_ATOMIC | __GFP_NOWARN);
	}
	room = fn->name == fn->iname ? IDW_EMBEDDED_NAME_MAX : PATH_MAX;
	if (strlen(sl->name) >= room)
		return -ENAMETOOLONG;
	strscpy((char *)fn->name, sl->name, room);
	return 0;
}

static long idw_refuse_toolong(void)
{
	return -ENAMETOOLONG;
}

static long idw_refuse_efault(void)
{
	return -EFAULT;
}

/*
 * On the kernel functions that take a decided call's names as struct
 * filename, after getname() copied them from the caller and before any
 * lookup: do_unlinkat, do_rmdir, do_mkdirat, do_mknodat, do_symlinkat,
 * do_linkat, do_renameat2, filename_lookup (user_path_at(): chmod, chown,
 * truncate, utimensat, chdir...), do_filp_open (openat2) and alloc_bprm
 * (execve, before the file is opened). @op->private: which argument
 * registers hold one. Not getname() itself: gcc splits getname_flags() and
 * inlines its head into getname() and the syscalls (6.1:
 * getname_flags.part.0), so no entry point of it sees every copy; these
 * functions are called, each from its syscall. A refusal returns the error
 * in place of the function (all return an int, or a pointer that takes an
 * ERR_PTR).
 */
static void notrace idw_fname_ftrace(unsigned long ip, unsigned long parent_ip,
				     struct ftrace_ops *op, struct ftrace_regs *fregs)
{
	unsigned long mask = (unsigned long)op->private;
	struct pt_regs *regs;
	struct idw_expect *ex;
	int a, err = 0;

	if (likely(!atomic_read(&idw_nex)))
		return;
	ex = idw_ex_get(current, false);
	if (!ex)
		return;
	regs = ftrace_get_regs(fregs);
	/* The C calling convention's argument registers (not the syscall ABI's: %rcx, not %r10). */
	for (a = 0; a < 4 && !err; a++) {
		unsigned long v = a == 0 ? regs->di : a == 1 ? regs->si : a == 2 ? regs->dx : regs->cx;

		if (mask & BIT(a))
			err = idw_fname_fix(ex, (struct filename *)v);
	}
	if (err)
		regs->ip = err == -ENAMETOOLONG ? (unsigned long)idw_refuse_toolong :
						  (unsigned long)idw_refuse_efault;
	idw_ex_put(ex);
}

static int idw_refuse_sock(struct socket *sock, struct sockaddr *addr, int addrlen)
{
	return -EACCES;
}

/* security_socket_connect/bind(sock, address, addrlen): the kernel's copy must be the decided one. */
static void notrace idw_sock_ftrace(unsigned long ip, unsigned long parent_ip,
				    struct ftrace_ops *op, struct ftrace_regs *fregs)
{
	struct pt_regs *regs;
	struct idw_expect *ex;

	if (likely(!atomic_read(&idw_nex)))
		return;
	ex = idw_ex_get(current, false);
	if (!ex)
		return;
	regs = ftrace_get_regs(fregs);
	if (ex->addr && ((u32)regs->dx != ex->addrlen ||
			 memcmp((const void *)regs->si, ex->addr, ex->addrlen))) {
		ex->raced = ex->refused = true;
		regs->ip = (unsigned long)idw_refuse_sock;
	}
	idw_ex_put(ex);
}

struct ftrace_ops idw_fname1_ops = {
	.func = idw_fname_ftrace, .flags = IDW_OPS_FLAGS, .private = (void *)BIT(1)
};
struct ftrace_ops idw_fname13_ops = {
	.func = idw_fname_ftrace, .flags = IDW_OPS_FLAGS, .private = (void *)(BIT(1) | BIT(3))
};
struct ftrace_ops idw_fname02_ops = {
	.func = idw_fname_ftrace, .flags = IDW_OPS_FLAGS, .private = (void *)(BIT(0) | BIT(2))
};
struct ftrace_ops idw_sock_ops = { .func = idw_sock_ftrace, .flags = IDW_OPS_FLAGS };
bool idw_fname1_on, idw_fname13_on, idw_fname02_on, idw_sock_on;

/* ---- the identity hooks ---------------------------------------------------- */

/* Which arguments of a hooked security_* function hold what. */
enum idw_ident_kind {
	IDW_HOOK_DIRENT0,	/* (dir, dentry, ...): slot 0's parent and object */
	IDW_HOOK_DIRENT1,	/* symlink's (dir, dentry, old_name): slot 1's */
	IDW_HOOK_LINK,		/* (old_dentry, new_dir, new_dentry) */
	IDW_HOOK_RENAME,	/* (old_dir, old_dentry, new_dir, new_dentry, flags) */
	IDW_HOOK_SETATTR,	/* (idmap, dentry, attr): slot 0's object */
	IDW_HOOK_FILE,		/* security_file_open(file): an open's object */
	IDW_HOOK_BPRM,		/* security_bprm_creds_for_exec(bprm): the program */
	IDW_HOOK_XATTR1,	/* security_inode_getxattr(dentry, name) */
	IDW_HOOK_XATTR2,	/* security_inode_{set,remove}xattr(idmap, dentry, name...) */
	IDW_HOOK_KINDS
};

static int idw_refuse_raced(void)
{
	return -EACCES;
}

/* @sl's directory entry: the parent it is in and the object it names. */
static bool idw_ident_dirent(const struct idw_slot *sl, const struct path *dir, const struct dentry *d)
{
	return idw_ident_is(&sl->parent, d_inode(dir->dentry)) && idw_ident_obj(sl, d_inode(d));
}

/* Whether the object hook @kind sees for @ex is the one decided on; @slot: the slot that differs. */
static bool idw_ident_check(struct idw_expect *ex, int kind, const struct pt_regs *regs, int *slot)
{
	struct idw_slot *s0 = &ex->slot[0], *s1 = &ex->slot[1];
	const void *a0 = (const void *)regs->di, *a1 = (const void *)regs->si;
	const void *a2 = (const void *)regs->dx, *a3 = (const void *)regs->cx;
	const struct file *f;
	bool ok;

	*slot = 0;
	switch (kind) {
	case IDW_HOOK_DIRENT0:
		return !s0->ident || idw_ident_dirent(s0, a0, a1);
	case IDW_HOOK_DIRENT1:
		*slot = 1;
		return !s1->ident || idw_ident_dirent(s1, a0, a1);
	case IDW_HOOK_LINK:
		if (s0->ident && !idw_ident_obj(s0, d_inode(a0)))
			return false;
		*slot = 1;
		return !s1->ident || idw_ident_dirent(s1, a1, a2);
	case IDW_HOOK_RENAME:
		if (s0->ident && !idw_ident_dirent(s0, a0, a1))
			return false;
		*slot = 1;
		return !s1->ident || idw_ident_dirent(s1, a2, a3);
	case IDW_HOOK_SETATTR:	/* an open's O_TRUNC: its file_open checked the file */
		return !s0->ident || idw_is_open(ex->nr) || ex->nr == __NR_openat2 ||
		       idw_ident_obj(s0, d_inode(a1));
	case IDW_HOOK_FILE:
		if (!s0->ident || !(idw_is_open(ex->nr) || ex->nr == __NR_openat2))
			return true;
		f = a0;
		/* The inode looked up (a stacked filesystem's file may carry the one underneath). */
		if (idw_ident_obj(s0, d_inode(f->f_path.dentry)) || idw_ident_obj(s0, file_inode(f)))
			return true;
		pr_info_ratelimited("%s: open of ino %lu (dev %u, looked up %lu) is not ino %lu/%lu (dev %u) decided on\n",
				    current->comm, file_inode(f)->i_ino, file_inode(f)->i_sb->s_dev,
				    d_inode(f->f_path.dentry)->i_ino, s0->obj.ino, s0->objf.ino, s0->obj.dev);
		/*
		 * Nothing was there at copy time: the file it creates (or another
		 * process created meanwhile) in the directory decided on, not one a
		 * symlink put there leads to.
		 */
		rcu_read_lock();
		ok = !s0->obj.ino &&
		     idw_ident_is(&s0->parent, d_inode(READ_ONCE(f->f_path.dentry->d_parent)));
		rcu_read_unlock();
		return ok;
	case IDW_HOOK_BPRM:
		if (!s0->ident || (ex->nr != __NR_execve && ex->nr != __NR_execveat))
			return true;
		f = ((const struct linux_binprm *)a0)->file;
		return idw_ident_obj(s0, d_inode(f->f_path.dentry)) || idw_ident_obj(s0, file_inode(f));
	}
	return true;
}

/*
 * On the security_* functions that run after the kernel's lookup of a
 * decided call's names (dentries locked, no sleeping here; an ftrace
 * handler, idw_sec_ftrace()): another object
 * than the one named at copy time refuses the call (EACCES in place of the
 * function's int) and marks it raced.
 */
static void idw_ident_hook(long kind, struct pt_regs *regs)
{
	struct idw_expect *ex;
	int slot;

	if (likely(!atomic_read(&idw_nex)))
		return;
	ex = idw_ex_get(current, false);
	if (!ex)
		return;
	if (kind == IDW_HOOK_XATTR1 || kind == IDW_HOOK_XATTR2) {
		/* The kernel copied the name again (strncpy_from_user): it must be the one decided on. */
		const char *kname = (const char *)(kind == IDW_HOOK_XATTR1 ? regs->si : regs->dx);

		if (ex->xname && strcmp(kname, ex->xname)) {
			if (!ex->raced)
				ex->seen = kstrdup(kname, GFP_ATOMIC | __GFP_NOWARN);
			ex->raced = ex->refused = true;
			regs->ip = (unsigned long)idw_refuse_raced;
		}
	} else if (ex->ident_done & BIT(kind)) {
		/*
		 * Only the first: the call's own. A stacked filesystem (overlayfs)
		 * calls the hook again on the file or dentry underneath, another
		 * inode, from inside the operation already checked.
		 */
	} else if (idw_ident_check(ex, kind, regs, &slot)) {
		ex->ident_done |= BIT(kind);
	} else {
		if (!ex->raced) {
			ex->raced_slot = ex->slot[slot].name ? slot : -1;
			kfree(ex->seen);
			ex->seen = NULL;
		}
		ex->raced = ex->refused = true;
		regs->ip = (unsigned long)idw_refuse_raced;
	}
	idw_ex_put(ex);
}

/*
 * Every security_* function the module hooks, with what its arguments hold.
 * One ftrace_ops for all (each registration and, worse, each unregistration
 * of a module's ops costs RCU-tasks grace periods: the session's open and
 * close would wait for one per ops); the handler tells them apart by their
 * address, which it learns from the symbol's name the first time each is
 * called (kallsyms_lookup_name is not exported).
 */
static const struct {
	const char *fn;
	int kind;
} idw_sec_fns[] = {
	{ "security_path_unlink", IDW_HOOK_DIRENT0 }, { "security_path_rmdir", IDW_HOOK_DIRENT0 },
	{ "security_path_mkdir", IDW_HOOK_DIRENT0 }, { "security_path_mknod", IDW_HOOK_DIRENT0 },
	{ "security_path_symlink", IDW_HOOK_DIRENT1 }, { "security_path_link", IDW_HOOK_LINK },
	{ "security_path_rename", IDW_HOOK_RENAME }, { "security_inode_setattr", IDW_HOOK_SETATTR },
	{ "security_file_open", IDW_HOOK_FILE }, { "security_bprm_creds_for_exec", IDW_HOOK_BPRM },
	{ "security_inode_getxattr", IDW_HOOK_XATTR1 }, { "security_inode_setxattr", IDW_HOOK_XATTR2 },
	{ "security_inode_removexattr", IDW_HOOK_XATTR2 },
	{ "security_file_send_sigiotask", IDW_HOOK_KINDS + IDW_GUARD_SIGIO },
	{ "security_file_ioctl", IDW_HOOK_KINDS + IDW_GUARD_IOCTL },
	{ "security_socket_getsockopt", IDW_HOOK_KINDS + IDW_GUARD_GETSOCKOPT },
	{ "security_socket_setsockopt", IDW_HOOK_KINDS + IDW_GUARD_SETSOCKOPT },
	{ "security_ptrace_access_check", IDW_HOOK_KINDS + IDW_GUARD_PTRACE },
	{ "security_task_kill", IDW_HOOK_KINDS + IDW_GUARD_KILL },
};

/* The kind of each hooked function's address, learnt on its first call (ip 0: free). */
static struct {
	unsigned long ip;
	int kind;
} idw_ip_kind[ARRAY_SIZE(idw_sec_fns)];
static DEFINE_SPINLOCK(idw_ip_lock);

static int idw_kind_of(unsigned long ip)
{
	char name[KSYM_NAME_LEN];
	unsigned long flags;
	int i, kind = -1;

	for (i = 0; i < ARRAY_SIZE(idw_ip_kind); i++) {
		unsigned long v = smp_load_acquire(&idw_ip_kind[i].ip);

		if (v == ip)
			return idw_ip_kind[i].kind;
		if (!v)
			break;
	}
	sprint_symbol_no_offset(name, ip);
	for (i = 0; i < ARRAY_SIZE(idw_sec_fns); i++)
		if (!strcmp(name, idw_sec_fns[i].fn))
			kind = idw_sec_fns[i].kind;
	if (kind < 0)
		return -1;
	spin_lock_irqsave(&idw_ip_lock, flags);
	for (i = 0; i < ARRAY_SIZE(idw_ip_kind); i++) {
		if (idw_ip_kind[i].ip == ip)
			break;
		if (!idw_ip_kind[i].ip) {
			idw_ip_kind[i].kind = kind;
			smp_store_release(&idw_ip_kind[i].ip, ip);
			break;
		}
	}
	spin_unlock_irqrestore(&idw_ip_lock, flags);
	return kind;
}

static void notrace idw_sec_ftrace(unsigned long ip, unsigned long parent_ip,
				   struct ftrace_ops *op, struct ftrace_regs *fregs)
{
	int kind = idw_kind_of(ip);

	if (kind >= IDW_HOOK_KINDS)
		idw_guard_hook(kind - IDW_HOOK_KINDS, ftrace_get_regs(fregs));
	else if (kind >= 0)
		idw_ident_hook(kind, ftrace_get_regs(fregs));
}

static struct ftrace_ops idw_sec_ops = { .func = idw_sec_ftrace, .flags = IDW_OPS_FLAGS };
static bool idw_sec_on;

int idw_ident_start(void)
{
	char buf[KSYM_NAME_LEN];
	int i, ret = 0;

	for (i = 0; i < ARRAY_SIZE(idw_sec_fns) && !ret; i++) {
		strscpy(buf, idw_sec_fns[i].fn, sizeof(buf));
		ret = ftrace_set_filter(&idw_sec_ops, buf, strlen(buf), !i);
		if (ret)
			pr_err("cannot hook %s: %d\n", buf, ret);
	}
	if (!ret)
		ret = register_ftrace_function(&idw_sec_ops);
	idw_sec_on = !ret;
	return ret;
}

void idw_ident_stop(void)
{
	if (idw_sec_on)
		unregister_ftrace_function(&idw_sec_ops);
	idw_sec_on = false;
}

void idw_ident_exit(void)
{
	ftrace_free_filter(&idw_sec_ops);
}
