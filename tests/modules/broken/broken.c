// SPDX-License-Identifier: GPL-2.0
#include <linux/module.h>

static intt broken_value = 1;
MODULE_LICENSE("GPL");
