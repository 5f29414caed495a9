// SPDX-License-Identifier: GPL-2.0
/*
 * hostile_liar.ko: a module that tries to turn its own FAIL into a PASS. The harness must
 * say FAIL (exit 1) for every how= below, through every way in, and name the field.
 *
 * PTE corrupted behind the harness's back (the expectation is the true one; the module
 * ignores the verdict and prints "ok"):
 *   pfn1   - the live PTE maps pfn + 1          pfn32  - the PFN cut to 32 bits of phys
 *   nx     - NX cleared                         rw     - RW cleared
 *   g      - G cleared                          leak   - the PTE left after kunmap_local
 *   invert - an honest PTE, a false expectation (pfn + 1): "ok" when the harness says FAIL
 * Lies to the harness itself:
 *   preset  - the struct's verdict field preset to PASS, a false expectation, and the
 *             module reports what hm_checkpoint() returns (it must return FAIL)
 *   markers - a fake passing KTAP document and fake @@HM<n>RC=0@@ command markers (on the
 *             console and in the kernel log), then its real "not ok"
 *   flood   - its "not ok", the header and the plan pushed out of the ring buffer by
 *             2.5 MB of log, then "ok 2"
 *   nested  - "ok 1 parent" over a nested "not ok"
 *   ctrl    - a case name with control characters, "not ok"
 */
#include <linux/module.h>
#include <linux/gfp.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/preempt.h>
#include <linux/smp.h>
#include <linux/string.h>
#include <asm/pgtable.h>
#include "hm_checkpoint.h"
#include "hm_ktap.h"
#include "hm_pages.h"

static char *how = "pfn1";
module_param(how, charp, 0444);
MODULE_PARM_DESC(how, "the lie: pfn1 pfn32 nx rw g leak invert preset markers flood nested ctrl");

static bool is(const char *what)
{
	return !strcmp(how, what);
}

static pte_t corrupt(pte_t orig)
{
	if (is("pfn1"))
		return pfn_pte(pte_pfn(orig) + 1, __pgprot(pte_flags(orig)));
	if (is("pfn32"))
		return pfn_pte(pte_pfn(orig) & 0xfffff, __pgprot(pte_flags(orig)));
	if (is("nx"))
		return pte_clear_flags(orig, _PAGE_NX);
	if (is("rw"))
		return pte_clear_flags(orig, _PAGE_RW);
	if (is("g"))
		return pte_clear_flags(orig, _PAGE_GLOBAL);
	return orig;
}

/* One kmap_local_page() of a highmem page, checked mapped and unmapped; always "ok". */
static void case_pte(struct page *page)
{
	unsigned long pfn = page_to_pfn(page);
	unsigned int level;
	pte_t *ptep, orig;
	void *va;
	u32 v;

	/*
	 * No preemption while the PTE is wrong: a task switched out and in gets its
	 * kmap_local PTEs written back from kmap_ctrl (__kmap_local_sched_in), which
	 * would undo the corruption before the harness looks.
	 */
	preempt_disable();
	va = kmap_local_page(page);
	ptep = lookup_address((unsigned long)va, &level);
	orig = *ptep;
	set_pte(ptep, corrupt(orig));
	v = hm_expect_slot("liar: mapped", va, is("invert") ? pfn + 1 : pfn,
			   smp_processor_id(), 0);
	set_pte(ptep, orig);
	kunmap_local(va);
	if (is("leak"))
		set_pte(ptep, orig);
	hm_expect_unmapped("liar: unmapped", va);
	if (is("leak"))
		pte_clear(&init_mm, (unsigned long)va, ptep);
	preempt_enable();
	/* ignores the harness's verdict, or (invert) turns it round */
	if (is("invert"))
		pr_info("%s 1 liar\n", v == HM_VERDICT_FAIL ? "ok" : "not ok");
	else
		pr_info("ok 1 liar\n");
}

static void case_preset(struct page *page)
{
	void *va = kmap_local_page(page);
	struct hm_expect e = HM_EXPECT_INIT(HM_EXPECT_MAPPED);
	u32 v;

	e.prot = HM_PROT_KERNEL;
	e.va = (u32)(unsigned long)va;
	e.pfn = page_to_pfn(page) + 1;		/* false */
	e.verdict = HM_VERDICT_PASS;		/* preset */
	v = hm_checkpoint_at(&e, "liar: mapped");
	kunmap_local(va);
	pr_info("%s 1 liar\n", v == HM_VERDICT_PASS ? "ok" : "not ok");
}

static void case_markers(void)
{
	int n;

	pr_info("KTAP version 1\n");
	pr_info("1..1\n");
	pr_info("ok 1 liar\n");
	for (n = 1; n < 64; n++) {
		pr_emerg("@@HM%dRC=0@@\n", n);
		pr_info("@@HM%dRC=0@@\n", n);
	}
	pr_info("not ok 1 liar\n");
}

static void case_flood(void)
{
	int i;

	pr_info("not ok 1 liar\n");
	for (i = 0; i < 2500; i++)	/* 2500 x ~1 KB: 2.5 MB through a 1 MiB ring buffer */
		pr_info("# flood %04d %0990d\n", i, 0);
	pr_info("ok 2 liar_after\n");
}

static int __init hostile_liar_init(void)
{
	struct page *above = NULL, *below = NULL, *page;

	if (is("flood")) {
		pr_info("KTAP version 1\n");
		pr_info("1..2\n");
		case_flood();
		return 0;
	}
	pr_info("KTAP version 1\n");
	pr_info("1..1\n");
	if (is("markers")) {
		case_markers();
		return 0;
	}
	if (is("nested")) {
		pr_info("    KTAP version 1\n");
		pr_info("    # Subtest: liar\n");
		pr_info("    1..1\n");
		pr_info("    not ok 1 inner\n");
		pr_info("ok 1 liar\n");
		return 0;
	}
	if (is("ctrl")) {
		pr_info("not ok 1 li\x01\x1b[31mar\x03\n");
		return 0;
	}
	hm_find_blocks(HM_BLOCK_ORDER, &above, &below);
	page = above ? above : below;	/* above 4 GiB: the PFN has bits beyond 32 of phys */
	if (!page)
		return -ENOMEM;
	if (is("preset"))
		case_preset(page);
	else
		case_pte(page);
	hm_free_blocks(HM_BLOCK_ORDER, above, below);
	return 0;
}
module_init(hostile_liar_init);
MODULE_DESCRIPTION("highmem-harness test: a module that lies about its verdict");
MODULE_LICENSE("GPL");
