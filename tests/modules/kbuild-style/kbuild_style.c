// SPDX-License-Identifier: GPL-2.0
#include <linux/module.h>

static int __init kbuild_style_init(void) { return 0; }
static void __exit kbuild_style_exit(void) { }
module_init(kbuild_style_init);
module_exit(kbuild_style_exit);
MODULE_LICENSE("GPL");
