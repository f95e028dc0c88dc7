// SPDX-License-Identifier: GPL-2.0
#include <linux/module.h>

int dmb_exported_by_nobody(void);

static int __init unresolved_init(void)
{
	return dmb_exported_by_nobody();
}

module_init(unresolved_init);
MODULE_LICENSE("GPL");
