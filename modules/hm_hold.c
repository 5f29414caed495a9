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
 *    until flush_all_zero_pkmaps();
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
#include <linux/gfp.h>
#include <linux/highmem.h>
#include <linux/kthread.h>
#include <linux/mm.h>
#include <linux/sched.h>
#include <linux/smp.h>
#include <linux/vmalloc.h>

#define PFN_4G		0x100000UL	/* first PFN at 4 GiB physical */
#define SCAN_ORDER	10		/* allocate 4 MiB blocks while looking */
#define SCAN_MAX	2048		/* 8 GiB of blocks at most */
#define VMAP_PAGES	8
#define LOW_PAGES	2

static bool spin;
module_param(spin, bool, 0444);
MODULE_PARM_DESC(spin, "the kmap_local holder busy-waits instead of sleeping (its PTE stays present)");

static struct page *blocks[SCAN_MAX];
static struct page *blk_above, *blk_below;	/* highmem blocks above / below 4 GiB */
static struct page *low[LOW_PAGES];
static void *vmap_va;
static struct task_struct *holder;
static DECLARE_COMPLETION(holder_mapped);

/*
 * Allocate highmem blocks until one is above 4 GiB and one is below (the allocator hands
 * out the top of memory first), then give back all but those two.
 */
static void find_blocks(void)
{
	int n = 0, i;

	while (n < SCAN_MAX && (!blk_above || !blk_below)) {
		struct page *p = alloc_pages(GFP_HIGHUSER | __GFP_NOWARN, SCAN_ORDER);

		if (!p)
			break;
		blocks[n++] = p;
		if (!PageHighMem(p))
			continue;
		if (page_to_pfn(p) >= PFN_4G && !blk_above)
			blk_above = p;
		else if (page_to_pfn(p) < PFN_4G && !blk_below)
			blk_below = p;
	}
	for (i = 0; i < n; i++)
		if (blocks[i] != blk_above && blocks[i] != blk_below)
			__free_pages(blocks[i], SCAN_ORDER);
}

static void free_blocks(void)
{
	int i;

	if (blk_above)
		__free_pages(blk_above, SCAN_ORDER);
	if (blk_below)
		__free_pages(blk_below, SCAN_ORDER);
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

static int holder_fn(void *unused)
{
	void *va = kmap_local_page(LOCAL_PAGE);

	pr_info("hm_hold: kmap_local va=%#lx pfn=%#lx cpu=%d pid=%d\n", (unsigned long)va,
		page_to_pfn(LOCAL_PAGE), raw_smp_processor_id(), task_pid_nr(current));
	complete(&holder_mapped);
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

	find_blocks();
	for (i = 0; i < LOW_PAGES; i++)
		low[i] = alloc_page(GFP_KERNEL);
	if (!blk_above || !blk_below || !low[0] || !low[1]) {
		pr_err("hm_hold: no highmem above and below 4 GiB, or no lowmem page\n");
		free_blocks();
		return -ENOMEM;
	}
	say("kmap above_4g", kmap(KMAP_ABOVE), KMAP_ABOVE);
	say("kmap below_4g", kmap(KMAP_BELOW), KMAP_BELOW);
	say("kmap stale", kmap(KMAP_STALE), KMAP_STALE);
	kunmap(KMAP_STALE);
	err = hold_vmap();
	if (err)
		goto undo_kmaps;
	holder = kthread_run(holder_fn, NULL, "hm_hold");
	if (IS_ERR(holder)) {
		err = PTR_ERR(holder);
		goto undo_vmap;
	}
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
