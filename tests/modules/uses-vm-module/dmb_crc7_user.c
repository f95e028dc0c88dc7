// SPDX-License-Identifier: GPL-2.0
#include <linux/module.h>
#include <linux/crc7.h>

static int __init crc7_user_init(void)
{
	static const u8 data[] = { 'd', 'm', 'b' };

	pr_info("dmb_crc7_user: crc7 %02x\n", crc7_be(0, data, sizeof(data)));
	return 0;
}

static void __exit crc7_user_exit(void) { }
module_init(crc7_user_init);
module_exit(crc7_user_exit);
MODULE_LICENSE("GPL");
