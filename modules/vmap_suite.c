// SPDX-License-Identifier: GPL-2.0
/*
 * vmap_suite.ko: vmap()/vunmap() of highmem and lowmem pages (mm/vmalloc.c), with the
 * harness checking every PTE of the area live. i386 with CONFIG_HIGHMEM64G (PAE), Linux 6.12.
 *
 * What the cases rely on (mm/vmalloc.c 6.12):
 *  - vmap() returns NULL when count > totalram_pages(), before it looks at the pages array.
 *  - vmap() maps with pgprot_nx(prot): PAGE_KERNEL gives P RW A D G NX, PAGE_KERNEL_RO
 *    gives P A G NX, one 4 KiB PTE per page in [VMALLOC_START, VMALLOC_END).
 *  - Each area is followed by an unmapped guard page.
 *  - vunmap() clears the PTEs synchronously; only the TLB flush and the release of the
 *    address range are lazy (vm_unmap_aliases() purges them).
 *  - With VM_MAP_PUT_PAGES, vfree() frees the pages and the array.
 */
#include <linux/module.h>
#include <linux/gfp.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/string.h>
#include <linux/vmalloc.h>
#include "hm_checkpoint.h"
#include "hm_ktap.h"
#include "hm_pages.h"

#define ABOVE_4G_PAGES	256		/* vmap of pages all above 4 GiB */
#define RO_PAGES	16
#define ALIASES		4		/* in one vmap(), and as many single-page vmap()s */
#define CONTENT_PAGES	8
#define REUSE_PAGES	16
#define LOWMEM_ONLY_PAGES	8
#define PUT_PAGES	16
#define PATTERN		0x766d6170U	/* "vmap" */

/* The address of page i of an area. */
static void *page_va(void *va, unsigned int i)
{
	return (char *)va + ((unsigned long)i << PAGE_SHIFT);
}

static void checkpoint_one(struct hm_case *c, u16 kind, const void *va, u64 pfn, u32 prot,
			   u32 where, u32 flags, u64 content, const char *what)
{
	struct hm_expect e = HM_EXPECT_INIT(kind);
	char label[HM_LABEL_LEN];

	snprintf(label, sizeof(label), "%s: %s", c->name, what);
	e.prot = prot;
	e.va = (u32)(unsigned long)va;
	e.pfn = pfn;
	e.where = where;
	e.flags = flags;
	e.content = content;
	hm_case_checkpoint(c, hm_checkpoint_at(&e, label), label);
}

/* Page i of a vmap area: mapped, in the vmalloc area. */
static void check_mapped(struct hm_case *c, const void *va, struct page *page, u32 prot,
			 const char *what)
{
	checkpoint_one(c, HM_EXPECT_MAPPED, va, page_to_pfn(page), prot, HM_WHERE_VMALLOC, 0, 0,
		       what);
}

/* The guard page after an area of n pages: no PTE. */
static void check_guard(struct hm_case *c, void *va, unsigned int n, const char *what)
{
	checkpoint_one(c, HM_EXPECT_UNMAPPED, page_va(va, n), 0, HM_PROT_NONE, HM_WHERE_VMALLOC,
		       0, 0, what);
}

/* Every (va, pfn) of ent mapped with prot, every va in the vmalloc area. */
static void check_range(struct hm_case *c, struct hm_range_entry *ent, unsigned int n,
			u32 prot, const char *what)
{
	struct hm_expect e = HM_EXPECT_INIT(HM_EXPECT_RANGE);
	char label[HM_LABEL_LEN];

	snprintf(label, sizeof(label), "%s: %s", c->name, what);
	e.prot = prot;
	e.count = n;
	e.entries = (u32)(unsigned long)ent;
	e.where = HM_WHERE_VMALLOC;
	hm_case_checkpoint(c, hm_checkpoint_at(&e, label), label);
}

/* Every va of ent with PTE 0. */
static void check_range_unmapped(struct hm_case *c, struct hm_range_entry *ent,
				 unsigned int n, const char *what)
{
	struct hm_expect e = HM_EXPECT_INIT(HM_EXPECT_RANGE_UNMAPPED);
	char label[HM_LABEL_LEN];

	snprintf(label, sizeof(label), "%s: %s", c->name, what);
	e.count = n;
	e.entries = (u32)(unsigned long)ent;
	e.where = HM_WHERE_VMALLOC;
	hm_case_checkpoint(c, hm_checkpoint_at(&e, label), label);
}

static void free_page_array(struct page **pages, unsigned int n)
{
	unsigned int i;

	if (!pages)
		return;
	for (i = 0; i < n; i++)
		if (pages[i])
			__free_page(pages[i]);
	kfree(pages);
}

/*
 * n pages, page i lowmem when low_every && i % low_every == low_every - 1, highmem
 * otherwise; NULL (nothing kept) when out of memory.
 */
static struct page **alloc_mixed(unsigned int n, unsigned int low_every)
{
	struct page **pages = kcalloc(n, sizeof(*pages), GFP_KERNEL);
	unsigned int i;

	if (!pages)
		return NULL;
	for (i = 0; i < n; i++) {
		bool low = low_every && i % low_every == low_every - 1;

		pages[i] = alloc_page(low ? GFP_KERNEL : GFP_HIGHUSER);
		if (!pages[i]) {
			free_page_array(pages, n);
			return NULL;
		}
	}
	return pages;
}

/* The (va, pfn) pairs of an area mapping pages[0..n). */
static void fill_entries(struct hm_range_entry *ent, void *va, struct page **pages,
			 unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		ent[i].va = (u32)(unsigned long)page_va(va, i);
		ent[i].pad = 0;
		ent[i].pfn = page_to_pfn(pages[i]);
	}
}

/* Own checks of a fresh area: in vmalloc space, vmalloc_to_page() agrees on every page. */
static void expect_area(struct hm_case *c, void *va, struct page **pages, unsigned int n)
{
	unsigned int i, bad = 0;

	hm_case_expect(c, is_vmalloc_addr(va), "va %px", va);
	hm_case_expect(c, PAGE_ALIGNED(va), "va %px", va);
	for (i = 0; i < n; i++) {
		if (vmalloc_to_page(page_va(va, i)) != pages[i]) {
			if (!bad)
				pr_info("# %s: vmalloc_to_page(page %u) pfn %#lx, want %#lx\n",
					c->name, i,
					vmalloc_to_page(page_va(va, i)) ?
					page_to_pfn(vmalloc_to_page(page_va(va, i))) : 0,
					page_to_pfn(pages[i]));
			bad++;
		}
	}
	hm_case_expect(c, bad == 0, "vmalloc_to_page() disagrees on %u of %u pages", bad, n);
}

/* Own check after vunmap: vmalloc_to_page() finds no page (the PTEs are cleared now). */
static void expect_gone(struct hm_case *c, void *va, unsigned int n)
{
	unsigned int i, left = 0;

	for (i = 0; i < n; i++)
		if (vmalloc_to_page(page_va(va, i)))
			left++;
	hm_case_expect(c, left == 0, "vmalloc_to_page() still finds %u of %u pages", left, n);
}

/* Write a word per page through the area, read it back through each page's own mapping. */
static void expect_aliasing(struct hm_case *c, void *va, struct page **pages, unsigned int n)
{
	unsigned int i, bad = 0;

	for (i = 0; i < n; i++)
		*(u32 *)page_va(va, i) = PATTERN ^ i;
	for (i = 0; i < n; i++) {
		u32 *p = kmap_local_page(pages[i]);

		if (*p != (PATTERN ^ i))
			bad++;
		kunmap_local(p);
	}
	hm_case_expect(c, bad == 0, "%u of %u pages read back wrong through kmap_local", bad, n);
}

/*
 * A fresh area va mapping pages[0..n) with prot: every PTE (ent filled here), the first
 * page in the vmalloc area, the guard page; then vunmap() and every PTE 0.
 */
static void check_area_vunmap(struct hm_case *c, void *va, struct page **pages,
			      struct hm_range_entry *ent, unsigned int n, u32 prot,
			      const char *first, const char *all)
{
	fill_entries(ent, va, pages, n);
	check_mapped(c, va, pages[0], prot, first);
	check_range(c, ent, n, prot, all);
	check_guard(c, va, n, "guard page unmapped");

	vunmap(va);
	expect_gone(c, va, n);
	check_range_unmapped(c, ent, n, "all PTEs 0 after vunmap");
}

/*
 * vmap of n pages (every 4th lowmem) with VM_MAP, PAGE_KERNEL: every PTE, the first page
 * in the vmalloc area, the guard page; after vunmap every PTE is 0.
 */
static void vmap_mixed(struct hm_case *c, unsigned int n)
{
	struct page **pages = alloc_mixed(n, 4);
	struct hm_range_entry *ent = kcalloc(n, sizeof(*ent), GFP_KERNEL);
	unsigned int i, nhigh = 0;
	void *va;

	hm_case_expect(c, pages && ent, "out of memory for %u pages", n);
	if (!pages || !ent)
		goto out;
	for (i = 0; i < n; i++)
		if (PageHighMem(pages[i]))
			nhigh++;
	hm_case_expect(c, nhigh == n - n / 4, "%u highmem pages of %u", nhigh, n);

	va = vmap(pages, n, VM_MAP, PAGE_KERNEL);
	hm_case_expect(c, va != NULL, "vmap of %u pages failed", n);
	if (!va)
		goto out;
	pr_info("# %s: %u pages (%u highmem) at %px\n", c->name, n, nhigh, va);
	expect_area(c, va, pages, n);
	expect_aliasing(c, va, pages, n);
	check_area_vunmap(c, va, pages, ent, n, HM_PROT_KERNEL, "first page in vmalloc",
			  "all pages mapped");
out:
	kfree(ent);
	free_page_array(pages, n);
}

static void case_vmap_1(struct hm_case *c)
{
	vmap_mixed(c, 1);
}

static void case_vmap_16(struct hm_case *c)
{
	vmap_mixed(c, 16);
}

static void case_vmap_512(struct hm_case *c)
{
	vmap_mixed(c, 512);
}

static void case_vmap_1024(struct hm_case *c)
{
	vmap_mixed(c, 1024);
}

/* PAGE_KERNEL_RO: present, not writable, NX, global. */
static void case_ro(struct hm_case *c)
{
	struct page **pages = alloc_mixed(RO_PAGES, 4);
	struct hm_range_entry ent[RO_PAGES];
	unsigned int i, bad = 0;
	void *va;

	hm_case_expect(c, pages != NULL, "out of memory");
	if (!pages)
		return;
	for (i = 0; i < RO_PAGES; i++) {
		u32 *p = kmap_local_page(pages[i]);

		*p = PATTERN + i;
		kunmap_local(p);
	}
	va = vmap(pages, RO_PAGES, VM_MAP, PAGE_KERNEL_RO);
	hm_case_expect(c, va != NULL, "vmap failed");
	if (!va)
		goto out;
	expect_area(c, va, pages, RO_PAGES);
	for (i = 0; i < RO_PAGES; i++)
		if (*(u32 *)page_va(va, i) != PATTERN + i)
			bad++;
	hm_case_expect(c, bad == 0, "%u pages read back wrong through the RO mapping", bad);
	check_area_vunmap(c, va, pages, ent, RO_PAGES, HM_PROT_KERNEL_RO,
			  "first page RO in vmalloc", "all pages mapped RO");
out:
	free_page_array(pages, RO_PAGES);
}

/*
 * count > totalram_pages() is refused before the pages array is read: a one-entry dummy
 * array is enough. The PTE assertion: a one-page area made just before is untouched by
 * the refused call (still mapped, guard still 0).
 */
static void case_more_than_ram(struct hm_case *c)
{
	struct page *dummy[1] = { NULL };
	struct page *page = alloc_page(GFP_HIGHUSER);
	unsigned long ram = totalram_pages();
	void *va = NULL, *big;
	struct hm_range_entry ent;

	hm_case_expect(c, page != NULL, "out of memory");
	if (page)
		va = vmap(&page, 1, VM_MAP, PAGE_KERNEL);
	hm_case_expect(c, !page || va, "vmap of one page failed");

	big = vmap(dummy, ram + 1, VM_MAP, PAGE_KERNEL);
	hm_case_expect(c, big == NULL, "vmap of %lu pages (RAM %lu) gave %px", ram + 1, ram, big);
	if (big)
		vunmap(big);
	pr_info("# %s: totalram_pages() %lu, vmap(count %lu) = %px\n", c->name, ram, ram + 1,
		big);

	if (va) {
		check_mapped(c, va, page, HM_PROT_KERNEL, "earlier area still mapped");
		check_guard(c, va, 1, "earlier area's guard unmapped");
		vunmap(va);
		ent.va = (u32)(unsigned long)va;
		ent.pad = 0;
		ent.pfn = page_to_pfn(page);
		check_range_unmapped(c, &ent, 1, "earlier area 0 after vunmap");
	}
	if (page)
		__free_page(page);
}

/* Every page above 4 GiB: PTE PFNs wider than 32 bits. */
static void case_above_4g_run(struct hm_case *c)
{
	struct page **pages = kcalloc(ABOVE_4G_PAGES, sizeof(*pages), GFP_KERNEL);
	struct hm_range_entry *ent = kcalloc(ABOVE_4G_PAGES, sizeof(*ent), GFP_KERNEL);
	struct page *blk = NULL;
	int nblocks = 0;
	unsigned int i, low = 0;
	void *va;

	hm_case_expect(c, pages && ent, "out of memory");
	if (!pages || !ent)
		goto out;
	nblocks = hm_find_blocks(HM_BLOCK_ORDER, &blk, NULL);
	hm_case_expect(c, blk != NULL, "no highmem block above 4 GiB among %d", nblocks);
	if (!blk)
		goto out;
	for (i = 0; i < ABOVE_4G_PAGES; i++) {
		pages[i] = nth_page(blk, i);
		if (page_to_pfn(pages[i]) < HM_PFN_4G)
			low++;
	}
	hm_case_expect(c, low == 0, "%u pages below 4 GiB", low);
	pr_info("# %s: pfn %#lx.., %d blocks scanned\n", c->name, page_to_pfn(blk), nblocks);

	va = vmap(pages, ABOVE_4G_PAGES, VM_MAP, PAGE_KERNEL);
	hm_case_expect(c, va != NULL, "vmap failed");
	if (!va)
		goto out;
	expect_area(c, va, pages, ABOVE_4G_PAGES);
	expect_aliasing(c, va, pages, ABOVE_4G_PAGES);
	check_area_vunmap(c, va, pages, ent, ABOVE_4G_PAGES, HM_PROT_KERNEL,
			  "first page in vmalloc", "all pages mapped");
out:
	hm_free_blocks(HM_BLOCK_ORDER, blk, NULL);
	kfree(ent);
	kfree(pages);
}

/* Only where a PFN above 4 GiB can exist (PAE); skipped otherwise. */
static void case_above_4g(struct hm_case *c)
{
	if (hm_case_needs_pfn_above_4g(c))
		case_above_4g_run(c);
}

/*
 * One page mapped ALIASES times by one vmap() and by ALIASES single-page vmap()s: every
 * alias maps the same PFN, a write through one reads back through all.
 */
static void case_aliases(struct hm_case *c)
{
	struct hm_range_entry ent[2 * ALIASES];
	struct page *same[ALIASES];
	void *single[ALIASES] = { NULL };
	struct page *page = alloc_page(GFP_HIGHUSER);
	unsigned int i, j, n = 0, bad = 0, dups = 0;
	void *multi = NULL;

	hm_case_expect(c, page != NULL, "out of memory");
	if (!page)
		return;
	for (i = 0; i < ALIASES; i++)
		same[i] = page;
	multi = vmap(same, ALIASES, VM_MAP, PAGE_KERNEL);
	hm_case_expect(c, multi != NULL, "vmap of %d aliases failed", ALIASES);
	for (i = 0; i < ALIASES; i++) {
		single[i] = vmap(&page, 1, VM_MAP, PAGE_KERNEL);
		hm_case_expect(c, single[i] != NULL, "single vmap %u failed", i);
	}
	if (!multi)
		goto out;
	for (i = 0; i < ALIASES; i++) {
		ent[n].va = (u32)(unsigned long)page_va(multi, i);
		ent[n].pad = 0;
		ent[n++].pfn = page_to_pfn(page);
		if (!single[i])
			continue;
		ent[n].va = (u32)(unsigned long)single[i];
		ent[n].pad = 0;
		ent[n++].pfn = page_to_pfn(page);
	}
	for (i = 0; i < n; i++)
		for (j = i + 1; j < n; j++)
			if (ent[i].va == ent[j].va)
				dups++;
	hm_case_expect(c, dups == 0, "%u pairs of aliases share an address", dups);
	expect_area(c, multi, same, ALIASES);

	for (i = 0; i < n; i++) {
		u32 *w = (u32 *)(unsigned long)ent[i].va;
		u32 v = PATTERN + i;

		*w = v;
		for (j = 0; j < n; j++)
			if (*(u32 *)(unsigned long)ent[j].va != v)
				bad++;
	}
	hm_case_expect(c, bad == 0, "%u alias reads disagree", bad);

	check_mapped(c, multi, page, HM_PROT_KERNEL, "first alias in vmalloc");
	check_range(c, ent, n, HM_PROT_KERNEL, "all aliases map one PFN");
	check_guard(c, multi, ALIASES, "guard after multi-alias area");

	vunmap(multi);
	multi = NULL;
	for (i = 0; i < ALIASES; i++) {
		if (single[i])
			vunmap(single[i]);
		single[i] = NULL;
	}
	check_range_unmapped(c, ent, n, "all aliases 0 after vunmap");
out:
	if (multi)
		vunmap(multi);
	for (i = 0; i < ALIASES; i++)
		if (single[i])
			vunmap(single[i]);
	__free_page(page);
}

/* The harness reads each page's first u64 physically: what we wrote through the area. */
static void case_content(struct hm_case *c)
{
	struct page **pages = alloc_mixed(CONTENT_PAGES, 2);
	struct hm_range_entry ent[CONTENT_PAGES];
	unsigned int i;
	u64 pattern[CONTENT_PAGES];
	void *va;

	hm_case_expect(c, pages != NULL, "out of memory");
	if (!pages)
		return;
	va = vmap(pages, CONTENT_PAGES, VM_MAP, PAGE_KERNEL);
	hm_case_expect(c, va != NULL, "vmap failed");
	if (!va)
		goto out;
	expect_area(c, va, pages, CONTENT_PAGES);
	fill_entries(ent, va, pages, CONTENT_PAGES);
	for (i = 0; i < CONTENT_PAGES; i++) {
		pattern[i] = ((u64)PATTERN << 32) | (u32)(page_to_pfn(pages[i]) + i);
		*(u64 *)page_va(va, i) = pattern[i];
	}
	for (i = 0; i < CONTENT_PAGES; i++) {
		char what[40];

		snprintf(what, sizeof(what), "content of page %u (%s)", i,
			 PageHighMem(pages[i]) ? "high" : "low");
		checkpoint_one(c, HM_EXPECT_MAPPED, page_va(va, i), page_to_pfn(pages[i]),
			       HM_PROT_KERNEL, HM_WHERE_VMALLOC, HM_CHECK_CONTENT, pattern[i],
			       what);
	}
	vunmap(va);
	check_range_unmapped(c, ent, CONTENT_PAGES, "all PTEs 0 after vunmap");
	for (i = 0; i < CONTENT_PAGES; i++) {
		u64 *p = kmap_local_page(pages[i]);

		hm_case_expect(c, *p == pattern[i], "page %u holds %#llx after vunmap", i, *p);
		kunmap_local(p);
	}
out:
	free_page_array(pages, CONTENT_PAGES);
}

static bool overlaps(void *a, void *b, unsigned int n)
{
	unsigned long x = (unsigned long)a, y = (unsigned long)b;
	unsigned long len = (unsigned long)n << PAGE_SHIFT;

	return x < y + len && y < x + len;
}

/*
 * vmap, vunmap, vmap again: right after vunmap the freed range is still reserved (lazy
 * purge), so the next area lies elsewhere; after vm_unmap_aliases() the range may be
 * reused. Wherever each area lands its PTEs map its own pages, and the old addresses
 * outside the newest area are 0.
 */
static void case_reuse(struct hm_case *c)
{
	struct page **pa = alloc_mixed(REUSE_PAGES, 4);
	struct page **pb = alloc_mixed(REUSE_PAGES, 4);
	struct page **pc = alloc_mixed(REUSE_PAGES, 4);
	struct hm_range_entry ent[2 * REUSE_PAGES];
	void *va_a, *va_b = NULL, *va_c = NULL;
	unsigned int i, n;

	hm_case_expect(c, pa && pb && pc, "out of memory");
	if (!pa || !pb || !pc)
		goto out;
	/*
	 * Start with no lazy backlog, so that our own vunmap cannot push vmap_lazy_nr over
	 * lazy_max_pages() and have the drain work purge the first area behind our back.
	 */
	vm_unmap_aliases();
	va_a = vmap(pa, REUSE_PAGES, VM_MAP, PAGE_KERNEL);
	hm_case_expect(c, va_a != NULL, "first vmap failed");
	if (!va_a)
		goto out;
	fill_entries(ent, va_a, pa, REUSE_PAGES);
	check_range(c, ent, REUSE_PAGES, HM_PROT_KERNEL, "first area mapped");
	vunmap(va_a);
	check_range_unmapped(c, ent, REUSE_PAGES, "first area 0 after vunmap");

	/* Not purged yet: the lazily freed range is not handed out again. */
	va_b = vmap(pb, REUSE_PAGES, VM_MAP, PAGE_KERNEL);
	hm_case_expect(c, va_b != NULL, "second vmap failed");
	if (!va_b)
		goto out;
	hm_case_expect(c, !overlaps(va_a, va_b, REUSE_PAGES),
		       "second area %px overlaps the lazily freed %px", va_b, va_a);
	expect_area(c, va_b, pb, REUSE_PAGES);
	fill_entries(ent, va_b, pb, REUSE_PAGES);
	check_range(c, ent, REUSE_PAGES, HM_PROT_KERNEL, "second area mapped");
	vunmap(va_b);
	check_range_unmapped(c, ent, REUSE_PAGES, "second area 0 after vunmap");

	/* Purge the lazy areas (and flush the TLB): their addresses are free now. */
	vm_unmap_aliases();
	va_c = vmap(pc, REUSE_PAGES, VM_MAP, PAGE_KERNEL);
	hm_case_expect(c, va_c != NULL, "third vmap failed");
	if (!va_c)
		goto out;
	pr_info("# %s: first %px, second %px, after purge %px (%s)\n", c->name, va_a, va_b,
		va_c, va_c == va_a ? "reuses the first" : va_c == va_b ? "reuses the second" :
		overlaps(va_c, va_a, REUSE_PAGES) || overlaps(va_c, va_b, REUSE_PAGES) ?
		"overlaps an old one" : "new range");
	expect_area(c, va_c, pc, REUSE_PAGES);
	fill_entries(ent, va_c, pc, REUSE_PAGES);
	check_range(c, ent, REUSE_PAGES, HM_PROT_KERNEL, "third area maps its own pages");
	check_guard(c, va_c, REUSE_PAGES, "third area's guard unmapped");

	/* The old addresses the third area does not cover stay 0. */
	n = 0;
	for (i = 0; i < 2 * REUSE_PAGES; i++) {
		void *old = page_va(i < REUSE_PAGES ? va_a : va_b, i % REUSE_PAGES);

		if (overlaps(old, va_c, REUSE_PAGES))
			continue;
		ent[n].va = (u32)(unsigned long)old;
		ent[n].pad = 0;
		ent[n++].pfn = 0;
	}
	if (n)
		check_range_unmapped(c, ent, n, "old addresses outside third 0");
	vunmap(va_c);
	expect_gone(c, va_c, REUSE_PAGES);
out:
	free_page_array(pc, REUSE_PAGES);
	free_page_array(pb, REUSE_PAGES);
	free_page_array(pa, REUSE_PAGES);
}

/*
 * Lowmem pages only: the vmap alias is a 4 KiB PAGE_KERNEL PTE in the vmalloc area while
 * the direct map (maybe a large page) keeps mapping the same pages, also after vunmap.
 */
static void case_lowmem_only(struct hm_case *c)
{
	struct page **pages = kcalloc(LOWMEM_ONLY_PAGES, sizeof(*pages), GFP_KERNEL);
	struct hm_range_entry ent[LOWMEM_ONLY_PAGES];
	unsigned int i, high = 0;
	void *va;

	hm_case_expect(c, pages != NULL, "out of memory");
	if (!pages)
		return;
	for (i = 0; i < LOWMEM_ONLY_PAGES; i++) {
		pages[i] = alloc_page(GFP_KERNEL);
		hm_case_expect(c, pages[i] != NULL, "alloc_page %u failed", i);
		if (!pages[i])
			goto out;
		if (PageHighMem(pages[i]))
			high++;
	}
	hm_case_expect(c, high == 0, "%u highmem pages from GFP_KERNEL", high);
	va = vmap(pages, LOWMEM_ONLY_PAGES, VM_MAP, PAGE_KERNEL);
	hm_case_expect(c, va != NULL, "vmap failed");
	if (!va)
		goto out;
	expect_area(c, va, pages, LOWMEM_ONLY_PAGES);
	for (i = 0; i < LOWMEM_ONLY_PAGES; i++)
		*(u32 *)page_va(va, i) = PATTERN ^ i;
	for (i = 0; i < LOWMEM_ONLY_PAGES; i++)
		hm_case_expect(c, *(u32 *)page_address(pages[i]) == (PATTERN ^ i),
			       "page %u reads %#x through the direct map", i,
			       *(u32 *)page_address(pages[i]));
	fill_entries(ent, va, pages, LOWMEM_ONLY_PAGES);

	check_range(c, ent, LOWMEM_ONLY_PAGES, HM_PROT_KERNEL, "vmap aliases 4K PTEs");
	checkpoint_one(c, HM_EXPECT_MAPPED, page_address(pages[0]), page_to_pfn(pages[0]),
		       HM_PROT_ANY, HM_WHERE_LOWMEM, 0, 0, "direct map of page 0");
	check_guard(c, va, LOWMEM_ONLY_PAGES, "guard page unmapped");

	vunmap(va);
	check_range_unmapped(c, ent, LOWMEM_ONLY_PAGES, "aliases 0 after vunmap");
	checkpoint_one(c, HM_EXPECT_MAPPED, page_address(pages[0]), page_to_pfn(pages[0]),
		       HM_PROT_ANY, HM_WHERE_LOWMEM, 0, 0, "direct map after vunmap");
out:
	free_page_array(pages, LOWMEM_ONLY_PAGES);
}

/* VM_MAP_PUT_PAGES: the area owns pages and array; vfree() unmaps and frees them. */
static void case_put_pages(struct hm_case *c)
{
	struct page **pages = kvmalloc_array(PUT_PAGES, sizeof(*pages), GFP_KERNEL | __GFP_ZERO);
	struct hm_range_entry ent[PUT_PAGES];
	unsigned int i;
	void *va;

	hm_case_expect(c, pages != NULL, "out of memory");
	if (!pages)
		return;
	for (i = 0; i < PUT_PAGES; i++) {
		pages[i] = alloc_page(GFP_HIGHUSER);
		hm_case_expect(c, pages[i] != NULL, "alloc_page %u failed", i);
		if (!pages[i])
			goto fail;
	}
	va = vmap(pages, PUT_PAGES, VM_MAP | VM_MAP_PUT_PAGES, PAGE_KERNEL);
	hm_case_expect(c, va != NULL, "vmap failed");
	if (!va)
		goto fail;
	expect_area(c, va, pages, PUT_PAGES);
	fill_entries(ent, va, pages, PUT_PAGES);
	check_range(c, ent, PUT_PAGES, HM_PROT_KERNEL, "all pages mapped");
	check_guard(c, va, PUT_PAGES, "guard page unmapped");

	vfree(va);	/* frees the pages and the array */
	check_range_unmapped(c, ent, PUT_PAGES, "all PTEs 0 after vfree");
	return;
fail:
	for (i = 0; i < PUT_PAGES; i++)
		if (pages[i])
			__free_page(pages[i]);
	kvfree(pages);
}

static const struct hm_suite_case cases[] = {
	{ "vmap_1_page", case_vmap_1 },
	{ "vmap_16_pages", case_vmap_16 },
	{ "vmap_512_pages", case_vmap_512 },
	{ "vmap_1024_pages", case_vmap_1024 },
	{ "vmap_ro_16_pages", case_ro },
	{ "vmap_more_than_ram", case_more_than_ram },
	{ "vmap_above_4g", case_above_4g },
	{ "vmap_aliases", case_aliases },
	{ "vmap_content", case_content },
	{ "vmap_reuse", case_reuse },
	{ "vmap_lowmem_only", case_lowmem_only },
	{ "vmap_put_pages", case_put_pages },
};

static const struct hm_suite suite = {
	.name = "vmap_suite",
	.cases = cases,
	.ncases = ARRAY_SIZE(cases),
};

HM_SUITE_MODULE(suite, "highmem-harness: vmap()/vunmap() of highmem and lowmem pages, PTEs live");
