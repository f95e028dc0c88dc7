// SPDX-License-Identifier: GPL-2.0
#include <linux/delay.h>
#include <linux/module.h>

static unsigned int delay_ms = 4000;
module_param(delay_ms, uint, 0444);
MODULE_PARM_DESC(delay_ms, "how long init takes");

static int __init slow_init(void)
{
	msleep(delay_ms);
	return 0;
}

static void __exit slow_exit(void) { }
module_init(slow_init);
module_exit(slow_exit);
MODULE_LICENSE("GPL");
