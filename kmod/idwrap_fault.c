// SPDX-License-Identifier: GPL-2.0-only
/*
 * idwrap: test-only knobs, built only with `make IDWRAP_FAULT_INJECT=1`
 * (docs/kmod.md, "The fault-injection build"). Debian's kernels have no
 * CONFIG_FAULT_INJECTION, so the module fails its own allocations on
 * request, to drive every failure path for real in the VM tests:
 *
 *   fail_site   the allocation site to fail ("" = any; names: idwrap.h)
 *   fail_nth    fail from the Nth allocation at that site on (0 = off;
 *               writing it restarts the count)
 *   fail_times  how many to fail from there (-1 = every one)
 *   injected    (read) allocations failed since fail_nth was written
 *   force_ibt   open as if the kernel ran with IBT (the guard refuses)
 *   observe_sleep_ms  an observed call copied in idwrap_pre() sleeps this
 *               long before emitting its record: a task still in module
 *               code while the session ends and the module unloads
 *   wake_delay_ms  the reader's wake timer fires this long after it is
 *               armed (not 2 ms): a timer armed late would still be
 *               pending when the module goes
 *
 * The production build has none of these parameters.
 */

#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/atomic.h>
#include <linux/delay.h>
#include <linux/kernel.h>
#include <linux/module.h>
#include <linux/moduleparam.h>
#include <linux/string.h>

#include "idwrap.h"

static char fail_site[32];
module_param_string(fail_site, fail_site, sizeof(fail_site), 0644);
MODULE_PARM_DESC(fail_site, "test build: the allocation site to fail (empty: any)");

static int fail_times = 1;
module_param(fail_times, int, 0644);
MODULE_PARM_DESC(fail_times, "test build: how many allocations to fail from the Nth (-1: all)");

static atomic_t idw_fault_seen = ATOMIC_INIT(0);
static atomic_t idw_fault_injected = ATOMIC_INIT(0);
static unsigned int fail_nth;

static int idw_set_nth(const char *val, const struct kernel_param *kp)
{
	unsigned int n;
	int ret = kstrtouint(val, 0, &n);

	if (ret)
		return ret;
	WRITE_ONCE(fail_nth, 0);
	atomic_set(&idw_fault_seen, 0);
	atomic_set(&idw_fault_injected, 0);
	WRITE_ONCE(fail_nth, n);
	return 0;
}

static const struct kernel_param_ops idw_nth_ops = {
	.set = idw_set_nth,
	.get = param_get_uint,
};
module_param_cb(fail_nth, &idw_nth_ops, &fail_nth, 0644);
MODULE_PARM_DESC(fail_nth, "test build: fail from the Nth allocation at fail_site (0: off)");

static int idw_get_injected(char *buf, const struct kernel_param *kp)
{
	return sysfs_emit(buf, "%d\n", atomic_read(&idw_fault_injected));
}

static const struct kernel_param_ops idw_injected_ops = { .get = idw_get_injected };
module_param_cb(injected, &idw_injected_ops, NULL, 0444);
MODULE_PARM_DESC(injected, "test build: allocations failed since fail_nth was written");

static bool force_ibt;
module_param(force_ibt, bool, 0644);
MODULE_PARM_DESC(force_ibt, "test build: the IBT guard sees IBT on");

static unsigned int observe_sleep_ms;
module_param(observe_sleep_ms, uint, 0644);
MODULE_PARM_DESC(observe_sleep_ms, "test build: idwrap_pre's observe path sleeps before emitting");

/* May run in atomic context: no sleeping, the site string compared in place. */
bool idw_fault(const char *site)
{
	unsigned int nth = READ_ONCE(fail_nth);
	int n, times;

	if (!nth || (fail_site[0] && !sysfs_streq(fail_site, site)))
		return false;
	n = atomic_inc_return(&idw_fault_seen);
	times = READ_ONCE(fail_times);
	if (n < nth || (times >= 0 && n - nth >= times))
		return false;
	atomic_inc(&idw_fault_injected);
	pr_info_ratelimited("test build: failing allocation %d at %s\n", n, site);
	return true;
}

bool idw_force_ibt(void)
{
	return READ_ONCE(force_ibt);
}

static unsigned int wake_delay_ms;
module_param(wake_delay_ms, uint, 0644);
MODULE_PARM_DESC(wake_delay_ms, "test build: the reader's wake timer delay (0: 2 ms)");

unsigned int idw_test_wake_delay_ms(void)
{
	return READ_ONCE(wake_delay_ms);
}

void idw_test_observe_delay(void)
{
	unsigned int ms = READ_ONCE(observe_sleep_ms);

	if (ms)
		msleep(ms);
}
