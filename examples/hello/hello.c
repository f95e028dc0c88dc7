// SPDX-License-Identifier: GPL-2.0
/* The smallest useful module: says hello when loaded, goodbye when removed. */
#include <linux/init.h>
#include <linux/module.h>

static char *greeting = "hello";
module_param(greeting, charp, 0444);
MODULE_PARM_DESC(greeting, "what to say when loaded");

static int __init hello_init(void)
{
	pr_info("dmb-hello: %s\n", greeting);
	return 0;
}

static void __exit hello_exit(void)
{
	pr_info("dmb-hello: goodbye\n");
}

module_init(hello_init);
module_exit(hello_exit);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("dmb example module");
MODULE_AUTHOR("dmb");
