// SPDX-License-Identifier: GPL-2.0
/*
 * kwatch_planted.ko: maps highmem pages with each API `highmem watch-kernel` watches, and
 * with plant= makes one mapping wrong while it is live, just before its unmap (the watch
 * judges at the unmap's entry):
 *   none     - every mapping right: kmap, kmap_local (three deep), vmap, vm_map_ram
 *   kmap_nx  - NX cleared in the PKMAP PTE of a kmap() before kunmap() (restored after)
 *   local_nx - NX cleared in a kmap_local PTE before kunmap_local() (kmap_ctrl keeps the
 *              true pteval)
 *   vmap_pfn - the second PTE of a vmap() area maps the next pfn before vunmap()
 *   order    - two kmap_local maps undone first-in first-out (the kernel WARNs and clears
 *              the top slot each time: no PTE is left)
 * The module stays loaded (init returns 0).
 */
#include <linux/module.h>
#include <linux/gfp.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/preempt.h>
#include <linux/string.h>
#include <linux/vmalloc.h>
#include <asm/pgtable.h>

#define NPAGES 4

static char *plant = "none";
module_param(plant, charp, 0444);
MODULE_PARM_DESC(plant, "the wrong PTE: none kmap_nx local_nx vmap_pfn order");

static struct page *pages[NPAGES];

static bool is(const char *what)
{
	return !strcmp(plant, what);
}

static pte_t *pte_of(void *va)
{
	unsigned int level;

	return lookup_address((unsigned long)va, &level);
}

static void do_kmap(void)
{
	void *va = kmap(pages[0]);
	pte_t *ptep = pte_of(va);
	pte_t orig = *ptep;

	if (is("kmap_nx"))
		set_pte(ptep, pte_clear_flags(orig, _PAGE_NX));
	kunmap(pages[0]);
	if (is("kmap_nx"))
		set_pte(ptep, orig);
}

static void do_kmap_local(void)
{
	void *a, *b, *c;
	pte_t *ptep, orig;

	/* no preemption while a PTE is wrong: sched-in would restore it from kmap_ctrl */
	preempt_disable();
	a = kmap_local_page(pages[0]);
	b = kmap_local_page(pages[1]);
	c = kmap_local_page(pages[2]);
	ptep = pte_of(c);
	orig = *ptep;
	if (is("local_nx"))
		set_pte(ptep, pte_clear_flags(orig, _PAGE_NX));
	kunmap_local(c);
	if (is("order")) {
		kunmap_local(a);
		kunmap_local(b);
	} else {
		kunmap_local(b);
		kunmap_local(a);
	}
	preempt_enable();
}

static void do_vmap(void)
{
	void *va = vmap(pages, NPAGES, VM_MAP, PAGE_KERNEL);
	pte_t *ptep;

	if (!va)
		return;
	ptep = pte_of(va + PAGE_SIZE);
	if (is("vmap_pfn"))
		set_pte(ptep, pfn_pte(pte_pfn(*ptep) + 1, __pgprot(pte_flags(*ptep))));
	vunmap(va);
}

static void do_vm_map_ram(void)
{
	void *va = vm_map_ram(pages, NPAGES, NUMA_NO_NODE);

	if (va)
		vm_unmap_ram(va, NPAGES);
}

static int __init kwatch_planted_init(void)
{
	int i;

	for (i = 0; i < NPAGES; i++) {
		pages[i] = alloc_page(GFP_HIGHUSER);
		if (!pages[i])
			return -ENOMEM;
	}
	do_kmap();
	do_kmap_local();
	do_vmap();
	do_vm_map_ram();
	pr_info("kwatch_planted: done (plant=%s)\n", plant);
	return 0;
}
module_init(kwatch_planted_init);

MODULE_LICENSE("GPL");
MODULE_DESCRIPTION("highmem watch-kernel: mappings of each kind, one made wrong on request");
