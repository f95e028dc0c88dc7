/* SPDX-License-Identifier: GPL-2.0 */
int counter_step(int value, int by);
