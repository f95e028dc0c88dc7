// SPDX-License-Identifier: GPL-2.0
#include <linux/module.h>

int dmb_first_ping(void);

static int __init second_init(void)
{
	dmb_first_ping();
	pr_err("dmb_second: refusing to load, on purpose\n");
	return -ENODEV;
}

static void __exit second_exit(void) { }
module_init(second_init);
module_exit(second_exit);
MODULE_LICENSE("GPL");
