// SPDX-License-Identifier: GPL-2.0
/*
 * cat_far_pmd.ko (failure catalogue): a checkpoint over page tables that point outside RAM.
 *
 * vmap() of 1024 pages (4 MiB): the area holds a whole 2 MiB region, PMD-aligned, that no
 * one else maps. With interrupts off on this CPU, the kernel PMD entry of that region (the
 * kernel PMDs are shared by every pgd with PAE and no PTI) is pointed at 60 GiB physical,
 * where the guest has no RAM; a mapped checkpoint of the region's first page is taken; the
 * PMD is put back and the TLB flushed. Nothing touches the region meanwhile.
 *
 * Kernel log: the KTAP header (plan 2), "not ok 1 cat_far_pmd_outside_ram" (the harness's
 * FAIL comes back), "ok 2 cat_far_pmd_after" (a healthy kmap_local case: the module goes
 * on). No WARNING, BUG or Oops.
 *
 * The harness must report: checkpoint "cat_far_pmd_outside_ram: mapped" FAILED with
 * "tables: PMD 0x0000000f00000063 of VA 0x... points outside RAM (0xf00000000)" — never a
 * gdb hang — and case 2 PASS.
 */
#include <linux/module.h>
#include <linux/irqflags.h>
#include <linux/slab.h>
#include <linux/vmalloc.h>
#include <asm/pgtable.h>
#include <asm/tlbflush.h>
#include "cat_common.h"

#define FAR_PHYS	(60ULL << 30)	/* 60 GiB: no RAM in an 8 GiB guest */
#define NPAGES		1024		/* 4 MiB: holds one whole PMD region */

/* The PMD entry covering kernel address @va, through this CPU's CR3 (i386 PAE). */
static pmd_t *kernel_pmd(unsigned long va)
{
	pgd_t *pgd = (pgd_t *)__va(read_cr3_pa()) + pgd_index(va);

	return pmd_offset(pud_offset(p4d_offset(pgd, va), va), va);
}

static void cat_far_pmd_case(struct hm_case *c, struct page **pages, void *area)
{
	unsigned long region = ALIGN((unsigned long)area, PMD_SIZE);
	struct page *page = pages[(region - (unsigned long)area) >> PAGE_SHIFT];
	char label[HM_LABEL_LEN];
	unsigned long flags;
	pmd_t *pmd, orig;
	u32 verdict;

	hm_mklabel(label, c, "mapped");
	pmd = kernel_pmd(region);
	local_irq_save(flags);
	orig = *pmd;
	set_pmd(pmd, __pmd(FAR_PHYS | _KERNPG_TABLE));
	verdict = hm_expect_mapped(label, (void *)region, page_to_pfn(page), HM_PROT_KERNEL);
	set_pmd(pmd, orig);
	__flush_tlb_all();
	local_irq_restore(flags);
	hm_case_checkpoint(c, verdict, label);
}

static int __init cat_far_pmd_init(void)
{
	struct hm_case c1 = { .name = "cat_far_pmd_outside_ram", .number = 1 };
	struct hm_case c2 = { .name = "cat_far_pmd_after", .number = 2 };
	struct page **pages;
	struct page *page;
	void *area = NULL;
	int i, n = 0;

	hm_ktap_header("cat_far_pmd", 2);
	pages = kcalloc(NPAGES, sizeof(*pages), GFP_KERNEL);
	for (; pages && n < NPAGES; n++) {
		pages[n] = alloc_page(GFP_KERNEL);
		if (!pages[n])
			break;
	}
	if (n == NPAGES)
		area = vmap(pages, NPAGES, VM_MAP, PAGE_KERNEL);
	hm_case_expect(&c1, area != NULL, "no 4 MiB vmap area (%d pages)", n);
	if (area) {
		cat_far_pmd_case(&c1, pages, area);
		vunmap(area);
	}
	hm_case_end(&c1);
	for (i = 0; i < n; i++)
		__free_page(pages[i]);
	kfree(pages);

	page = cat_highmem_page();
	cat_kmap_case(&c2, page);
	hm_case_end(&c2);
	if (page)
		__free_page(page);
	return 0;
}

static void __exit cat_far_pmd_exit(void)
{
}

module_init(cat_far_pmd_init);
module_exit(cat_far_pmd_exit);
MODULE_DESCRIPTION("highmem-harness failure catalogue: a PMD pointing outside RAM at a checkpoint");
MODULE_LICENSE("GPL");
