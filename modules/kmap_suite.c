// SPDX-License-Identifier: GPL-2.0
/*
 * kmap_suite.ko: kmap()/kunmap() of highmem pages through the PKMAP area (mm/highmem.c,
 * kmap_high/kunmap_high/flush_all_zero_pkmaps), with the harness checking the PTEs and
 * pkmap_count[] live at each checkpoint. i386 with CONFIG_HIGHMEM64G (PAE), Linux 6.12.
 *
 * What the cases rely on (mm/highmem.c 6.12):
 *  - kmap() of a highmem page without a mapping takes the next free PKMAP slot, sets
 *    pkmap_count to 1 (mapped) and then to 2 (one user); a second kmap() of the same page
 *    returns the same address and counts 3.
 *  - kunmap() only decrements the count: the PTE and page_address() stay (lazy).
 *  - When the round-robin slot index wraps to 0, flush_all_zero_pkmaps() clears every
 *    count-1 slot (PTE 0, page_address() NULL, count 0) and flushes the PKMAP TLB range.
 *  - The PKMAP area lives in the kernel PMD shared by every page directory: a kmap()
 *    address is valid on every CPU.
 *  - kmap() of a lowmem page is page_address(), no PTE of its own.
 */
#include <linux/module.h>
#include <linux/cpu.h>
#include <linux/cpumask.h>
#include <linux/gfp.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include <linux/smp.h>
#include <linux/string.h>
#include <linux/workqueue.h>
#include "hm_checkpoint.h"
#include "hm_ktap.h"
#include "hm_pages.h"

#define CONCURRENT	64		/* kmaps held at once */
#define BATCH_4G	32		/* pages above 4 GiB mapped at once */
#define WRAP_PAGES	(2 * LAST_PKMAP + 64)	/* enough for two wraps of the slot index */
#define WRAP_MIN_STALE	32		/* stale slots wanted before the wrap */
#define PATTERN		0x6b6d6170U	/* "kmap" */

static struct page *blk_above, *blk_below;	/* highmem blocks above / below 4 GiB */
static unsigned int used_above, used_below;

/* The two blocks (hm_find_blocks(): finding one below can take most of the memory above). */
static void find_blocks(void)
{
	int scanned = hm_find_blocks(HM_BLOCK_ORDER, &blk_above, &blk_below);

	pr_info("# kmap_suite: %d blocks scanned, above 4G pfn %#lx, below pfn %#lx\n",
		scanned, blk_above ? page_to_pfn(blk_above) : 0,
		blk_below ? page_to_pfn(blk_below) : 0);
}

static void free_blocks(void)
{
	hm_free_blocks(HM_BLOCK_ORDER, blk_above, blk_below);
}

/* A fresh highmem page (never kmapped by this module) above or below 4 GiB. */
static struct page *page_above(void)
{
	if (!blk_above || used_above >= HM_BLOCK_PAGES)
		return NULL;
	return nth_page(blk_above, used_above++);
}

static struct page *page_below(void)
{
	if (!blk_below || used_below >= HM_BLOCK_PAGES)
		return NULL;
	return nth_page(blk_below, used_below++);
}

/* A fresh page above 4 GiB for case c; NULL fails the case. */
static struct page *case_page_above(struct hm_case *c)
{
	struct page *page = page_above();

	hm_case_expect(c, page != NULL, "no highmem page above 4 GiB");
	return page;
}

static bool in_pkmap(const void *va)
{
	unsigned long a = (unsigned long)va;

	return a >= PKMAP_ADDR(0) && a < PKMAP_ADDR(LAST_PKMAP);
}

/*
 * A checkpoint on a kmap() address: the PTE state (kind), the address in the PKMAP area,
 * and pkmap_count[PKMAP_NR(va)] == count. flags/content add a content check.
 */
static void pk_check_content(struct hm_case *c, u16 kind, const void *va, struct page *page,
			     int count, u32 flags, u64 content, const char *what)
{
	struct hm_expect e = HM_EXPECT_INIT(kind);
	char label[HM_LABEL_LEN];

	snprintf(label, sizeof(label), "%s: %s", c->name, what);
	e.prot = HM_PROT_KERNEL;
	e.va = (u32)(unsigned long)va;
	e.pfn = page ? page_to_pfn(page) : 0;
	e.where = HM_WHERE_PKMAP;
	e.flags = HM_CHECK_PKMAP_COUNT | flags;
	e.aux = count;
	e.content = content;
	hm_case_checkpoint(c, hm_checkpoint_at(&e, label), label);
}

static void pk_check(struct hm_case *c, u16 kind, const void *va, struct page *page,
		     int count, const char *what)
{
	pk_check_content(c, kind, va, page, count, 0, 0, what);
}

static void range_check(struct hm_case *c, struct hm_range_entry *ent, u32 n, const char *what)
{
	struct hm_expect e = HM_EXPECT_INIT(HM_EXPECT_RANGE);
	char label[HM_LABEL_LEN];

	snprintf(label, sizeof(label), "%s: %s", c->name, what);
	e.prot = HM_PROT_KERNEL;
	e.count = n;
	e.entries = (u32)(unsigned long)ent;
	e.where = HM_WHERE_PKMAP;
	hm_case_checkpoint(c, hm_checkpoint_at(&e, label), label);
}

/* Own checks every kmap() address of a highmem page must pass. */
static void expect_pkmap_addr(struct hm_case *c, struct page *page, void *va)
{
	hm_case_expect(c, in_pkmap(va), "va %px outside PKMAP [%#lx, %#lx)", va,
		       PKMAP_ADDR(0), PKMAP_ADDR(LAST_PKMAP));
	hm_case_expect(c, PKMAP_ADDR(PKMAP_NR((unsigned long)va)) == (unsigned long)va,
		       "va %px not a slot address", va);
	hm_case_expect(c, page_address(page) == va, "page_address %px, kmap %px",
		       page_address(page), va);
}

/* kmap, write, check (count 2), kunmap, check the lazy leftover (stale, count 1). */
static void map_once(struct hm_case *c, struct page *page)
{
	u32 *va;

	hm_case_expect(c, page != NULL, "no highmem page found there");
	if (!page)
		return;
	hm_case_expect(c, PageHighMem(page), "pfn %#lx is lowmem", page_to_pfn(page));
	pr_info("# %s: pfn %#lx phys %#llx\n", c->name, page_to_pfn(page),
		(u64)page_to_pfn(page) << PAGE_SHIFT);

	va = kmap(page);
	expect_pkmap_addr(c, page, va);
	va[0] = PATTERN;
	va[1023] = ~PATTERN;
	pk_check(c, HM_EXPECT_MAPPED, va, page, 2, "mapped, count 2");
	hm_case_expect(c, va[0] == PATTERN && va[1023] == ~PATTERN, "read back %#x", va[0]);

	kunmap(page);
	hm_case_expect(c, page_address(page) == va, "page_address %px after kunmap, was %px",
		       page_address(page), va);
	pk_check(c, HM_EXPECT_STALE, va, page, 1, "stale after kunmap, count 1");
}

static void case_above_4g_run(struct hm_case *c)
{
	struct page *page = page_above();

	map_once(c, page);
	if (page)
		hm_case_expect(c, page_to_pfn(page) >= HM_PFN_4G, "pfn %#lx", page_to_pfn(page));
}

/* Only where a PFN above 4 GiB can exist (PAE); skipped otherwise. */
static void case_above_4g(struct hm_case *c)
{
	if (hm_case_needs_pfn_above_4g(c))
		case_above_4g_run(c);
}

static void case_below_4g(struct hm_case *c)
{
	struct page *page = page_below();

	map_once(c, page);
	if (page)
		hm_case_expect(c, page_to_pfn(page) < HM_PFN_4G, "pfn %#lx", page_to_pfn(page));
}

/* The same page twice: one slot, two users (count 3), released one by one. */
static void case_twice(struct hm_case *c)
{
	struct page *page = case_page_above(c);
	void *va1, *va2;

	if (!page)
		return;
	va1 = kmap(page);
	va2 = kmap(page);
	hm_case_expect(c, va1 == va2, "first kmap %px, second %px", va1, va2);
	expect_pkmap_addr(c, page, va1);
	pk_check(c, HM_EXPECT_MAPPED, va1, page, 3, "mapped twice, count 3");
	kunmap(page);
	pk_check(c, HM_EXPECT_MAPPED, va1, page, 2, "one kunmap, count 2");
	kunmap(page);
	hm_case_expect(c, page_address(page) == va1, "page_address %px after kunmap",
		       page_address(page));
	pk_check(c, HM_EXPECT_STALE, va1, page, 1, "both kunmapped, stale, count 1");
}

struct wrap_map {
	void *va;
	struct page *page;
};

/* Stale checkpoints on the first, middle and last slot mapped before the wrap. */
static void wrap_check_stale(struct hm_case *c, struct wrap_map *pre, int npre)
{
	static const char * const what[] = { "first stale before wrap",
					     "middle stale before wrap",
					     "last stale before wrap" };
	int idx[] = { 0, npre / 2, npre - 1 };
	int k;

	for (k = 0; k < ARRAY_SIZE(idx); k++) {
		struct wrap_map *m = &pre[idx[k]];

		hm_case_expect(c, page_address(m->page) == m->va, "page_address %px, was %px",
			       page_address(m->page), m->va);
		pk_check(c, HM_EXPECT_STALE, m->va, m->page, 1, what[k]);
	}
}

/*
 * Map and unmap fresh highmem pages one after the other until the slot index wraps: every
 * kunmap()ed slot stays (stale, count 1) until the wrap, where flush_all_zero_pkmaps()
 * clears them all. The mapping that wrapped reuses a low slot: its address is left out of
 * the "unmapped" range.
 */
static void case_wrap(struct hm_case *c)
{
	struct page **pages = kcalloc(WRAP_PAGES, sizeof(*pages), GFP_KERNEL);
	struct wrap_map *pre = kcalloc(WRAP_PAGES, sizeof(*pre), GFP_KERNEL);
	struct hm_range_entry *ent = kcalloc(WRAP_PAGES, sizeof(*ent), GFP_KERNEL);
	struct page *post = NULL;
	void *post_va = NULL;
	int i, n_alloc = 0, npre = 0, nmaps = 0, prev_nr = -1, n_unm, n_addr_left;
	bool stale_checked = false;

	hm_case_expect(c, pages && pre && ent, "out of memory");
	if (!pages || !pre || !ent)
		goto out;
	for (n_alloc = 0; n_alloc < WRAP_PAGES; n_alloc++) {
		pages[n_alloc] = alloc_page(GFP_HIGHUSER | __GFP_NOWARN);
		if (!pages[n_alloc])
			break;
	}
	hm_case_expect(c, n_alloc == WRAP_PAGES, "allocated %d of %d pages", n_alloc,
		       (int)WRAP_PAGES);

	for (i = 0; i < n_alloc; i++) {
		struct page *p = pages[i];
		void *va;
		int nr;

		/* Only pages without a mapping take a new slot. */
		if (!PageHighMem(p) || page_address(p))
			continue;
		va = kmap(p);
		nmaps++;
		nr = PKMAP_NR((unsigned long)va);
		if (npre > 0 && nr < prev_nr) {
			/* The slot index went down: flush_all_zero_pkmaps() ran. */
			if (npre >= WRAP_MIN_STALE && stale_checked) {
				post = p;
				post_va = va;
				break;
			}
			/* Too few stale slots seen before this wrap: wait for the next one. */
			npre = 0;
			stale_checked = false;
		}
		expect_pkmap_addr(c, p, va);
		kunmap(p);
		pre[npre].va = va;
		pre[npre].page = p;
		npre++;
		prev_nr = nr;
		if (nr == LAST_PKMAP - 1 && npre >= WRAP_MIN_STALE) {
			/* The next new slot wraps: look at the stale ones now. */
			wrap_check_stale(c, pre, npre);
			stale_checked = true;
		}
	}
	pr_info("# %s: %d kmaps, %d stale slots before the wrap, wrapped to slot %ld\n",
		c->name, nmaps, npre, post ? PKMAP_NR((unsigned long)post_va) : -1L);
	hm_case_expect(c, post != NULL, "no wrap after %d kmaps (%d stale, checked %d)",
		       nmaps, npre, stale_checked);
	if (!post)
		goto out;

	/* The mapping that wrapped: a fresh slot, one user. */
	expect_pkmap_addr(c, post, post_va);
	pk_check(c, HM_EXPECT_MAPPED, post_va, post, 2, "mapped after wrap, count 2");

	/* Every slot kunmap()ed before the wrap was flushed, unless the wrap reused it. */
	n_unm = 0;
	n_addr_left = 0;
	for (i = 0; i < npre; i++) {
		if (PKMAP_NR((unsigned long)pre[i].va) == PKMAP_NR((unsigned long)post_va))
			continue;
		if (page_address(pre[i].page))
			n_addr_left++;
		ent[n_unm].va = (u32)(unsigned long)pre[i].va;
		ent[n_unm].pfn = page_to_pfn(pre[i].page);
		n_unm++;
	}
	hm_case_expect(c, n_addr_left == 0, "%d flushed pages kept a page_address()",
		       n_addr_left);
	hm_case_expect(c, n_unm >= WRAP_MIN_STALE, "only %d flushed slots", n_unm);
	if (n_unm) {
		char label[HM_LABEL_LEN];

		snprintf(label, sizeof(label), "%s: %d flushed slots unmapped", c->name, n_unm);
		hm_case_checkpoint(c, hm_expect_range_unmapped(label, ent, n_unm), label);
		pk_check(c, HM_EXPECT_UNMAPPED, (void *)(unsigned long)ent[0].va, NULL, 0,
			 "first flushed slot, count 0");
	}

	kunmap(post);
	pk_check(c, HM_EXPECT_STALE, post_va, post, 1, "wrapped map stale, count 1");
out:
	for (i = 0; i < n_alloc; i++)
		__free_page(pages[i]);
	kfree(ent);
	kfree(pre);
	kfree(pages);
}

struct global_ctx {
	struct hm_case *c;
	struct page *page;
	u32 *va;
	int cpu;	/* where the work must run */
};

/* On the first CPU: kmap, write the pattern, check this CPU's page tables. */
static long global_map_fn(void *arg)
{
	struct global_ctx *g = arg;
	char what[40];

	hm_case_expect(g->c, raw_smp_processor_id() == g->cpu, "ran on cpu %d, not %d",
		       raw_smp_processor_id(), g->cpu);
	g->va = kmap(g->page);
	g->va[0] = PATTERN ^ page_to_pfn(g->page);
	g->va[1023] = ~PATTERN;
	snprintf(what, sizeof(what), "mapped on cpu%d, count 2", g->cpu);
	pk_check(g->c, HM_EXPECT_MAPPED, g->va, g->page, 2, what);
	return 0;
}

/* On the other CPU: the same address reads the pattern; check that CPU's page tables. */
static long global_read_fn(void *arg)
{
	struct global_ctx *g = arg;
	char what[40];

	hm_case_expect(g->c, raw_smp_processor_id() == g->cpu, "ran on cpu %d, not %d",
		       raw_smp_processor_id(), g->cpu);
	hm_case_expect(g->c, g->va[0] == (PATTERN ^ page_to_pfn(g->page)) &&
		       g->va[1023] == ~PATTERN, "cpu %d read %#x %#x", g->cpu, g->va[0],
		       g->va[1023]);
	snprintf(what, sizeof(what), "same va on cpu%d, count 2", g->cpu);
	pk_check(g->c, HM_EXPECT_MAPPED, g->va, g->page, 2, what);
	return 0;
}

/* A kmap() address is global: made on one CPU, it maps the same page on the other. */
static void case_global(struct hm_case *c)
{
	struct global_ctx g = { .c = c, .page = page_above() };
	int cpu_a, cpu_b;

	cpus_read_lock();
	cpu_a = cpumask_first(cpu_online_mask);
	cpu_b = cpumask_next(cpu_a, cpu_online_mask);
	if (cpu_b >= nr_cpu_ids)
		hm_case_skip(c, HM_NEEDS_TWO_CPUS);
	hm_case_expect(c, g.page != NULL, "no highmem page above 4 GiB");
	if (cpu_b >= nr_cpu_ids || !g.page) {
		cpus_read_unlock();
		return;
	}
	g.cpu = cpu_a;
	work_on_cpu(cpu_a, global_map_fn, &g);
	expect_pkmap_addr(c, g.page, g.va);
	g.cpu = cpu_b;
	work_on_cpu(cpu_b, global_read_fn, &g);
	cpus_read_unlock();

	kunmap(g.page);
	pk_check(c, HM_EXPECT_STALE, g.va, g.page, 1, "stale after kunmap, count 1");
}

/* kmap() of a lowmem page is its direct-map address: no PKMAP slot. */
static void case_lowmem(struct hm_case *c)
{
	struct page *page = alloc_page(GFP_KERNEL);
	struct hm_expect e = HM_EXPECT_INIT(HM_EXPECT_MAPPED);
	char label[HM_LABEL_LEN];
	void *va;

	hm_case_expect(c, page != NULL, "alloc_page(GFP_KERNEL) failed");
	if (!page)
		return;
	hm_case_expect(c, !PageHighMem(page), "pfn %#lx is highmem", page_to_pfn(page));
	va = kmap(page);
	hm_case_expect(c, va == page_address(page), "kmap %px, page_address %px", va,
		       page_address(page));
	hm_case_expect(c, !in_pkmap(va), "va %px in PKMAP", va);

	snprintf(label, sizeof(label), "%s: kmap is the direct map", c->name);
	e.prot = HM_PROT_ANY;
	e.va = (u32)(unsigned long)va;
	e.pfn = page_to_pfn(page);
	e.where = HM_WHERE_LOWMEM;
	hm_case_checkpoint(c, hm_checkpoint_at(&e, label), label);

	kunmap(page);
	snprintf(label, sizeof(label), "%s: direct map after kunmap", c->name);
	e.verdict = 0;
	hm_case_checkpoint(c, hm_checkpoint_at(&e, label), label);
	__free_page(page);
}

/* Many kmaps held at once: distinct slots, all mapped; kunmap leaves them all stale. */
static void case_concurrent(struct hm_case *c)
{
	struct hm_range_entry *ent = kcalloc(CONCURRENT, sizeof(*ent), GFP_KERNEL);
	struct page *pages[CONCURRENT];
	void *va[CONCURRENT];
	int i, j, n, dups = 0;

	hm_case_expect(c, ent != NULL, "out of memory");
	if (!ent)
		return;
	for (n = 0; n < CONCURRENT; n++) {
		pages[n] = page_below();
		if (!pages[n])
			break;
	}
	hm_case_expect(c, n == CONCURRENT, "only %d highmem pages below 4 GiB", n);
	if (n < 2)
		goto out;
	for (i = 0; i < n; i++) {
		va[i] = kmap(pages[i]);
		expect_pkmap_addr(c, pages[i], va[i]);
		ent[i].va = (u32)(unsigned long)va[i];
		ent[i].pfn = page_to_pfn(pages[i]);
	}
	for (i = 0; i < n; i++)
		for (j = i + 1; j < n; j++)
			if (va[i] == va[j])
				dups++;
	hm_case_expect(c, dups == 0, "%d pairs of held kmaps share an address", dups);

	range_check(c, ent, n, "all held, mapped");
	pk_check(c, HM_EXPECT_MAPPED, va[0], pages[0], 2, "first held, count 2");
	pk_check(c, HM_EXPECT_MAPPED, va[n - 1], pages[n - 1], 2, "last held, count 2");

	for (i = 0; i < n; i++)
		kunmap(pages[i]);
	range_check(c, ent, n, "all kunmapped, PTEs stay");
	pk_check(c, HM_EXPECT_STALE, va[0], pages[0], 1, "first stale, count 1");
	pk_check(c, HM_EXPECT_STALE, va[n - 1], pages[n - 1], 1, "last stale, count 1");
out:
	kfree(ent);
}

/* The harness reads the page's first u64 physically: what we wrote through the kmap. */
static void case_content(struct hm_case *c)
{
	struct page *page = case_page_above(c);
	u64 *va, pattern;

	if (!page)
		return;
	pattern = ((u64)PATTERN << 32) | page_to_pfn(page);
	va = kmap(page);
	expect_pkmap_addr(c, page, va);
	va[0] = pattern;
	pk_check_content(c, HM_EXPECT_MAPPED, va, page, 2, HM_CHECK_CONTENT, pattern,
			 "content through kmap");
	kunmap(page);
	pk_check_content(c, HM_EXPECT_STALE, va, page, 1, HM_CHECK_CONTENT, pattern,
			 "content, stale after kunmap");
}

/* A batch of pages above 4 GiB mapped at once: PTE PFNs above 32 bits. */
static void case_batch_above_4g_run(struct hm_case *c)
{
	struct hm_range_entry ent[BATCH_4G];
	struct page *pages[BATCH_4G];
	u32 *va[BATCH_4G];
	int i, n, bad = 0;

	for (n = 0; n < BATCH_4G; n++) {
		pages[n] = page_above();
		if (!pages[n])
			break;
	}
	hm_case_expect(c, n == BATCH_4G, "only %d highmem pages above 4 GiB", n);
	if (!n)
		return;
	memset(ent, 0, sizeof(ent));
	for (i = 0; i < n; i++) {
		hm_case_expect(c, page_to_pfn(pages[i]) >= HM_PFN_4G, "pfn %#lx",
			       page_to_pfn(pages[i]));
		va[i] = kmap(pages[i]);
		expect_pkmap_addr(c, pages[i], va[i]);
		va[i][0] = PATTERN + i;
		ent[i].va = (u32)(unsigned long)va[i];
		ent[i].pfn = page_to_pfn(pages[i]);
	}
	range_check(c, ent, n, "batch mapped");
	pk_check(c, HM_EXPECT_MAPPED, va[n / 2], pages[n / 2], 2, "middle of batch, count 2");
	for (i = 0; i < n; i++)
		if (va[i][0] != PATTERN + i)
			bad++;
	hm_case_expect(c, bad == 0, "%d pages read back wrong", bad);
	for (i = 0; i < n; i++)
		kunmap(pages[i]);
	pk_check(c, HM_EXPECT_STALE, va[n / 2], pages[n / 2], 1, "middle stale, count 1");
}

/* Only where a PFN above 4 GiB can exist (PAE); skipped otherwise. */
static void case_batch_above_4g(struct hm_case *c)
{
	if (hm_case_needs_pfn_above_4g(c))
		case_batch_above_4g_run(c);
}

/* kmap() after kunmap() finds the stale slot again: same address, no new slot. */
static void case_remap(struct hm_case *c)
{
	struct page *page = case_page_above(c);
	void *va1, *va2;

	if (!page)
		return;
	va1 = kmap(page);
	kunmap(page);
	pk_check(c, HM_EXPECT_STALE, va1, page, 1, "stale after first kunmap");
	va2 = kmap(page);
	hm_case_expect(c, va1 == va2, "first kmap %px, again %px", va1, va2);
	expect_pkmap_addr(c, page, va2);
	pk_check(c, HM_EXPECT_MAPPED, va2, page, 2, "mapped again, count 2");
	kunmap(page);
	pk_check(c, HM_EXPECT_STALE, va2, page, 1, "stale again, count 1");
}

static const struct hm_suite_case cases[] = {
	{ "kmap_above_4g", case_above_4g },
	{ "kmap_twice", case_twice },
	{ "kmap_below_4g", case_below_4g },
	{ "kmap_wrap", case_wrap },
	{ "kmap_global", case_global },
	{ "kmap_lowmem", case_lowmem },
	{ "kmap_concurrent", case_concurrent },
	{ "kmap_content", case_content },
	{ "kmap_batch_above_4g", case_batch_above_4g },
	{ "kmap_remap", case_remap },
};

static const struct hm_suite suite = {
	.name = "kmap_suite",
	.cases = cases,
	.ncases = ARRAY_SIZE(cases),
	.init = find_blocks,
	.exit = free_blocks,
};

HM_SUITE_MODULE(suite, "highmem-harness: kmap()/kunmap() PKMAP slots, PTEs and pkmap_count live");
