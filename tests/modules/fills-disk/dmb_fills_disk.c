// SPDX-License-Identifier: GPL-2.0
/* Never built: its Makefile fills the disk first (tests/synth.rs). */
#include <linux/module.h>

static int __init dmb_fills_disk_init(void)
{
	return 0;
}

static void __exit dmb_fills_disk_exit(void)
{
}

module_init(dmb_fills_disk_init);
module_exit(dmb_fills_disk_exit);
MODULE_LICENSE("GPL");
