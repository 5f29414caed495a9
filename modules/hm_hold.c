// SPDX-License-Identifier: GPL-2.0
/*
 * hm_hold.ko: holds one temporary mapping of each kind live until rmmod, so that
 * `highmem gdb --hold` (hm-kmaps, hm-vmaps, hm-pte) has something to look at.
 * Not a test: no checkpoints, no KTAP. i386 with CONFIG_HIGHMEM64G (PAE), Linux 6.12.
 *
 * What it holds (mm/highmem.c, mm/vmalloc.c 6.12):
 *  - kmap() of a highmem page above 4 GiB and of a highmem page below 4 GiB: two PKMAP
 *    slots, pkmap_count 2 each (mapped + one user);
 *  - kmap() then kunmap() of a third page: a stale PKMAP slot, pkmap_count 1, its PTE kept
 *    until flush_all_zero_pkmaps(). Every set_memory_*() (change_page_attr_set_clr())
 *    calls kmap_flush_unused(), and loading a module does that after its init returns
 *    (module_enable_rodata_ro(mod, true) in do_init_module()), so the holder thread makes
 *    this one only once the module's init memory is gone, then prints "hm_hold: ready";
 *  - vmap() of 8 pages, VM_MAP, PAGE_KERNEL: 3 above 4 GiB, 3 highmem below 4 GiB,
 *    2 lowmem (vmap() keeps no pages array without VM_MAP_PUT_PAGES);
 *  - kmap_local_page() of a page above 4 GiB, held by the kernel thread "hm_hold", which
 *    sleeps until rmmod (spin=1: busy-waits instead). While it sleeps,
 *    __kmap_local_sched_out() has cleared the PTE; the map lives on in the thread's
 *    task_struct (kmap_ctrl.idx, kmap_ctrl.pteval[]) and comes back at sched-in.
 *
 * Every mapping is printed as one "hm_hold: <kind> va=0x... pfn=0x..." line.
 */
#include <linux/module.h>
#include <linux/completion.h>
#include <linux/delay.h>
#include <linux/gfp.h>
#include <linux/highmem.h>
#include <linux/kthread.h>
#include <linux/mm.h>
#include <linux/sched.h>
#include <linux/smp.h>
#include <linux/version.h>
#include <linux/vmalloc.h>
#include "hm_pages.h"

#define SCAN_ORDER	HM_BLOCK_ORDER	/* 4 MiB blocks */
#define VMAP_PAGES	8
#define LOW_PAGES	2

static bool spin;
module_param(spin, bool, 0444);
MODULE_PARM_DESC(spin, "the kmap_local holder busy-waits instead of sleeping (its PTE stays present)");

static int cpu = -1;
module_param(cpu, int, 0444);
MODULE_PARM_DESC(cpu, "the CPU the kmap_local holder thread is bound to (-1: any)");

static struct page *blk_above, *blk_below;	/* highmem blocks above / below 4 GiB */
static struct page *low[LOW_PAGES];
static void *vmap_va;
static struct task_struct *holder;
static DECLARE_COMPLETION(holder_mapped);

static void free_blocks(void)
{
	int i;

	hm_free_blocks(SCAN_ORDER, blk_above, blk_below);
	for (i = 0; i < LOW_PAGES; i++)
		if (low[i])
			__free_page(low[i]);
}

/* Page roles inside the two blocks. */
#define KMAP_ABOVE	nth_page(blk_above, 0)
#define KMAP_STALE	nth_page(blk_above, 1)
#define LOCAL_PAGE	nth_page(blk_above, 2)
#define KMAP_BELOW	nth_page(blk_below, 0)

static void say(const char *kind, const void *va, struct page *page)
{
	pr_info("hm_hold: %s va=%#lx pfn=%#lx\n", kind, (unsigned long)va, page_to_pfn(page));
}

/* True once do_init_module() is past its last set_memory_*() call for this module. */
static bool init_done(void)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 4, 0)
	return READ_ONCE(THIS_MODULE->mem[MOD_INIT_TEXT].size) == 0;
#else
	return READ_ONCE(THIS_MODULE->init_layout.size) == 0;
#endif
}

/* The stale slot: kmap() + kunmap() once module loading can no longer flush it. */
static void make_stale(void)
{
	int waited = 0;

	while (!init_done() && waited < 30000 && !kthread_should_stop()) {
		msleep(20);
		waited += 20;
	}
	say("kmap stale", kmap(KMAP_STALE), KMAP_STALE);
	kunmap(KMAP_STALE);
	pr_info("hm_hold: ready\n");
}

static int holder_fn(void *unused)
{
	void *va = kmap_local_page(LOCAL_PAGE);

	pr_info("hm_hold: kmap_local va=%#lx pfn=%#lx cpu=%d pid=%d\n", (unsigned long)va,
		page_to_pfn(LOCAL_PAGE), raw_smp_processor_id(), task_pid_nr(current));
	complete(&holder_mapped);
	make_stale();
	while (!kthread_should_stop()) {
		if (spin) {
			cpu_relax();
			continue;
		}
		set_current_state(TASK_INTERRUPTIBLE);
		if (!kthread_should_stop())
			schedule();
		__set_current_state(TASK_RUNNING);
	}
	kunmap_local(va);
	return 0;
}

static int hold_vmap(void)
{
	struct page *pages[VMAP_PAGES];
	int i;

	for (i = 0; i < 3; i++) {
		pages[i] = nth_page(blk_above, 3 + i);
		pages[3 + i] = nth_page(blk_below, 1 + i);
	}
	pages[6] = low[0];
	pages[7] = low[1];
	vmap_va = vmap(pages, VMAP_PAGES, VM_MAP, PAGE_KERNEL);
	if (!vmap_va)
		return -ENOMEM;
	for (i = 0; i < VMAP_PAGES; i++)
		pr_info("hm_hold: vmap[%d] va=%#lx pfn=%#lx\n", i,
			(unsigned long)vmap_va + i * PAGE_SIZE, page_to_pfn(pages[i]));
	return 0;
}

static int __init hm_hold_init(void)
{
	int i, err;

	if (cpu >= 0 && (cpu >= nr_cpu_ids || !cpu_online(cpu))) {
		pr_err("hm_hold: cpu=%d is not an online CPU\n", cpu);
		return -EINVAL;
	}
	hm_find_blocks(SCAN_ORDER, &blk_above, &blk_below);
	for (i = 0; i < LOW_PAGES; i++)
		low[i] = alloc_page(GFP_KERNEL);
	if (!blk_above || !blk_below || !low[0] || !low[1]) {
		pr_err("hm_hold: no highmem above and below 4 GiB, or no lowmem page\n");
		free_blocks();
		return -ENOMEM;
	}
	say("kmap above_4g", kmap(KMAP_ABOVE), KMAP_ABOVE);
	say("kmap below_4g", kmap(KMAP_BELOW), KMAP_BELOW);
	err = hold_vmap();
	if (err)
		goto undo_kmaps;
	holder = kthread_create(holder_fn, NULL, "hm_hold");
	if (IS_ERR(holder)) {
		err = PTR_ERR(holder);
		goto undo_vmap;
	}
	if (cpu >= 0)
		kthread_bind(holder, cpu);
	wake_up_process(holder);
	if (!wait_for_completion_timeout(&holder_mapped, 30 * HZ))
		pr_warn("hm_hold: the holder thread has not mapped its page yet\n");
	return 0;

undo_vmap:
	vunmap(vmap_va);
undo_kmaps:
	kunmap(KMAP_ABOVE);
	kunmap(KMAP_BELOW);
	free_blocks();
	return err;
}

static void __exit hm_hold_exit(void)
{
	kthread_stop(holder);
	vunmap(vmap_va);
	kunmap(KMAP_ABOVE);
	kunmap(KMAP_BELOW);
	free_blocks();
}

module_init(hm_hold_init);
module_exit(hm_hold_exit);
MODULE_DESCRIPTION("highmem-harness: hold a kmap, a stale kmap, a vmap and a kmap_local live until rmmod");
MODULE_LICENSE("GPL");
