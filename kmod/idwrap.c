// SPDX-License-Identifier: GPL-2.0-only
/*
 * idwrap - intrusion-detection wrappers for Linux processes, kernel side.
 *
 * idwrap binds small ID wrappers to running programs; the wrappers see the
 * system calls the programs make, keep state, and may deny a call, kill the
 * process or raise an alert (after Ko, Fraser, Badger and Kilpatrick,
 * "Detecting and Countering System Intrusions Using Software Wrappers",
 * USENIX Security 2000). This module is to become idwrap's in-kernel event
 * source; the policy and the wrappers themselves stay in the user-space host.
 *
 * User space talks to the module through one character device, /dev/idwrap
 * (a misc device, mode 0600: root's supervisor only). For now it only reads:
 * read() returns one line, "idwrap <version> abi <n>\n", naming the module's
 * version and the version of its user-space ABI, so the host can check that it
 * speaks the same ABI before it uses the device. Each open() reads the line
 * once (then EOF); lseek() fails with ESPIPE.
 *
 * Skeleton only: nothing is intercepted yet.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/fs.h>
#include <linux/init.h>
#include <linux/kernel.h>
#include <linux/miscdevice.h>
#include <linux/module.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#define IDWRAP_VERSION	"0.1"
#define IDWRAP_ABI	1

/* What read() returns: one line, the version and the ABI. */
#define IDWRAP_BANNER	"idwrap " IDWRAP_VERSION " abi " __stringify(IDWRAP_ABI) "\n"

/**
 * struct idwrap_dev - the module's driver data
 * @misc: the /dev/idwrap misc device; container_of() leads back here
 */
struct idwrap_dev {
	struct miscdevice misc;
};

static struct idwrap_dev *idwrap;

static int idwrap_open(struct inode *inode, struct file *file)
{
	/* misc_open() has set private_data to the struct miscdevice. */
	struct idwrap_dev *dev = container_of(file->private_data,
					      struct idwrap_dev, misc);

	file->private_data = dev;
	return nonseekable_open(inode, file);
}

static ssize_t idwrap_read(struct file *file, char __user *buf, size_t count,
			   loff_t *ppos)
{
	/* The banner, read once per open (a second read gets EOF). */
	return simple_read_from_buffer(buf, count, ppos, IDWRAP_BANNER,
				       sizeof(IDWRAP_BANNER) - 1);
}

/* nonseekable_open() makes lseek() fail with ESPIPE: no .llseek needed. */
static const struct file_operations idwrap_fops = {
	.owner	= THIS_MODULE,
	.open	= idwrap_open,
	.read	= idwrap_read,
};

static int __init idwrap_init(void)
{
	int ret;

	idwrap = kzalloc(sizeof(*idwrap), GFP_KERNEL);
	if (!idwrap) {
		ret = -ENOMEM;
		goto err_out;
	}

	idwrap->misc.minor = MISC_DYNAMIC_MINOR;
	idwrap->misc.name = "idwrap";
	idwrap->misc.fops = &idwrap_fops;
	idwrap->misc.mode = 0600;

	ret = misc_register(&idwrap->misc);
	if (ret) {
		pr_err("cannot register /dev/idwrap: %d\n", ret);
		goto err_free;
	}

	pr_info("version %s, abi %d, /dev/idwrap (minor %d)\n",
		IDWRAP_VERSION, IDWRAP_ABI, idwrap->misc.minor);
	return 0;

err_free:
	kfree(idwrap);
	idwrap = NULL;
err_out:
	return ret;
}

static void __exit idwrap_exit(void)
{
	misc_deregister(&idwrap->misc);
	kfree(idwrap);
	idwrap = NULL;
	pr_info("unloaded\n");
}

module_init(idwrap_init);
module_exit(idwrap_exit);

MODULE_AUTHOR("idwrap developers");
MODULE_DESCRIPTION("idwrap: intrusion-detection wrappers, kernel event source (skeleton)");
MODULE_LICENSE("GPL");
MODULE_VERSION(IDWRAP_VERSION);
