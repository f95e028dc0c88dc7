// SPDX-License-Identifier: GPL-2.0
#include <linux/module.h>
#include "counter.h"

static int step = 2;
module_param(step, int, 0644);
MODULE_PARM_DESC(step, "how much to add");

static int __init counter_init(void)
{
	pr_info("counter: %d\n", counter_step(40, step));
	return 0;
}

static void __exit counter_exit(void) { }
module_init(counter_init);
module_exit(counter_exit);
MODULE_LICENSE("GPL");
