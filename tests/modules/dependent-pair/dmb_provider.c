// SPDX-License-Identifier: GPL-2.0
#include <linux/module.h>

/* A parameter, so that tests can pass one and read it back in sysfs. */
static int answer = 42;
module_param(answer, int, 0444);
MODULE_PARM_DESC(answer, "what dmb_provider_answer() returns");

int dmb_provider_answer(void)
{
	return answer;
}
EXPORT_SYMBOL_GPL(dmb_provider_answer);

static int __init provider_init(void) { return 0; }
static void __exit provider_exit(void) { }
module_init(provider_init);
module_exit(provider_exit);
MODULE_LICENSE("GPL");
