// SPDX-License-Identifier: GPL-2.0
#include <linux/module.h>

int dmb_first_ping(void)
{
	return 1;
}
EXPORT_SYMBOL_GPL(dmb_first_ping);

static int __init first_init(void) { return 0; }
static void __exit first_exit(void) { }
module_init(first_init);
module_exit(first_exit);
MODULE_LICENSE("GPL");
