// SPDX-License-Identifier: GPL-2.0
#include <linux/module.h>

int dmb_provider_answer(void);

static int __init consumer_init(void)
{
	pr_info("dmb_consumer: %d\n", dmb_provider_answer());
	return 0;
}

static void __exit consumer_exit(void) { }
module_init(consumer_init);
module_exit(consumer_exit);
MODULE_LICENSE("GPL");
