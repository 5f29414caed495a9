// SPDX-License-Identifier: GPL-2.0
/*
 * kmap_local_suite.ko: kmap_local_page() and friends on i386 PAE (CONFIG_HIGHMEM64G), with
 * the harness checking the fixmap PTEs live at every checkpoint.
 *
 * Every kmap_local mapping is announced with hm_expect_slot(cpu, depth): the harness
 * computes the fixmap address of that slot from the running kernel's layout (with or
 * without DEBUG_KMAP_LOCAL's guard slots) and checks the PTE there. The module adds its own
 * checks where the API promises something (distinct addresses, contents, contexts).
 *
 * Linux 6.12: mm/highmem.c (__kmap_local_pfn_prot, kunmap_local_indexed,
 * __kmap_local_sched_out/_in), include/linux/highmem-internal.h (is_kmap_addr).
 */
#include <linux/module.h>
#include <linux/completion.h>
#include <linux/cpumask.h>
#include <linux/delay.h>
#include <linux/err.h>
#include <linux/gfp.h>
#include <linux/highmem.h>
#include <linux/kthread.h>
#include <linux/mm.h>
#include <linux/preempt.h>
#include <linux/sched.h>
#include <linux/slab.h>
#include <linux/smp.h>
#include <linux/string.h>
#include <linux/uaccess.h>
#include <linux/workqueue.h>
#include <asm/kmap_size.h>
#include "hm_checkpoint.h"
#include "hm_context.h"
#include "hm_ktap.h"
#include "hm_pages.h"
#include "hm_versions.h"

/* addresses are printed raw: they are what the tests are about */
#define VA(p)		((unsigned long)(p))
#define PATTERN		0x5a17c0de0badf00dULL
#define REUSE_LOOPS	100
#define REUSE_PAGES	16

/* kmap_local maps one context may hold: kmap_local_idx_push() BUG()s on the next one */
#define MAX_DEPTH	((KM_MAX_IDX - 1) / (IS_ENABLED(CONFIG_DEBUG_KMAP_LOCAL) ? 2 : 1))

/* blk_above/blk_below, hi(i)/lo(i), and the suite hooks that find, check, free them */
HM_BLOCK_PAIR();

static bool migration_disabled(void)
{
#ifdef CONFIG_SMP
	return current->migration_disabled;
#else
	return true;
#endif
}

/* 1, 2: one map, a pattern through it, the PTE gone after kunmap_local(). */
static void test_one(struct hm_case *c, struct page *page)
{
	unsigned long pfn = page_to_pfn(page);
	u64 *va;
	int cpu;

	hm_case_expect(c, PageHighMem(page), "pfn %#lx", pfn);
	pr_info("# %s: pfn %#lx phys %#llx\n", c->name, pfn, (u64)pfn << PAGE_SHIFT);
	va = kmap_local_page(page);
	cpu = smp_processor_id();
	hm_case_expect(c, offset_in_page(va) == 0, "va %#lx", VA(va));
	va[0] = PATTERN ^ pfn;
	va[511] = ~(PATTERN ^ pfn);
	hm_cp_slot_content(c, va, pfn, cpu, 0, PATTERN ^ pfn, "mapped");
	hm_case_expect(c, va[0] == (PATTERN ^ pfn) && va[511] == ~(PATTERN ^ pfn),
		       "read back %#llx", va[0]);
	kunmap_local(va);
	hm_cp_unmapped(c, va, "unmapped");
}

static void test_above_4g(struct hm_case *c)
{
	if (!hm_case_needs_pfn_above_4g(c))
		return;
	test_one(c, hi(0));
}

static void test_below_4g(struct hm_case *c)
{
	test_one(c, lo(0));
}

/* 3: the deepest nesting allowed, then LIFO unmap with the remaining maps checked. */
static void test_nest_max(struct hm_case *c)
{
	struct hm_range_entry ent[MAX_DEPTH];
	void *va[MAX_DEPTH];
	char what[32], label[HM_LABEL_LEN];
	int cpu = -1, i, j;

	pr_info("# %s: KM_MAX_IDX %d, max depth %d\n", c->name, KM_MAX_IDX, MAX_DEPTH);
	for (i = 0; i < MAX_DEPTH; i++) {
		struct page *p = (i & 1) ? lo(i) : hi(i);

		va[i] = kmap_local_page(p);
		if (i == 0)
			cpu = smp_processor_id();
		hm_case_expect(c, smp_processor_id() == cpu, "cpu %d, then %d",
			       cpu, smp_processor_id());
		*(u32 *)va[i] = i;
		ent[i].va = (u32)(unsigned long)va[i];
		ent[i].pad = 0;
		ent[i].pfn = page_to_pfn(p);
		snprintf(what, sizeof(what), "map d%d", i);
		hm_cp_slot(c, va[i], page_to_pfn(p), cpu, i, what);
	}
	for (i = 0; i < MAX_DEPTH; i++)
		for (j = i + 1; j < MAX_DEPTH; j++)
			hm_case_expect(c, va[i] != va[j], "d%d and d%d both at %#lx",
				       i, j, VA(va[i]));
	for (i = 0; i < MAX_DEPTH; i++)
		hm_case_expect(c, *(u32 *)va[i] == i, "d%d reads %u", i, *(u32 *)va[i]);
	hm_mklabel(label, c, "all %d mapped", MAX_DEPTH);
	hm_case_checkpoint(c, hm_expect_range(label, ent, MAX_DEPTH, HM_PROT_KERNEL), label);

	for (i = MAX_DEPTH - 1; i >= 0; i--) {
		kunmap_local(va[i]);
		snprintf(what, sizeof(what), "pop d%d", i);
		hm_cp_unmapped(c, va[i], what);
		if (i > 0) {
			hm_mklabel(label, c, "rest after pop d%d", i);
			hm_case_checkpoint(c, hm_expect_range(label, ent, i, HM_PROT_KERNEL),
					   label);
		}
	}
	hm_case_expect(c, !migration_disabled(), "migration still disabled after all unmaps");
}

/*
 * 4: a lowmem page: kmap_local_page() is page_address(), no slot is taken; with
 * DEBUG_KMAP_LOCAL_FORCE_MAP it takes slot 0 like a highmem page (HM_LOWMEM_TAKES_SLOT).
 */
static void test_lowmem(struct hm_case *c)
{
	struct page *page = alloc_page(GFP_KERNEL);
	struct page *probe;
	void *va, *va2;
	int cpu;

	hm_case_expect(c, page != NULL, "alloc_page(GFP_KERNEL)");
	if (!page)
		return;
	hm_case_expect(c, !PageHighMem(page), "pfn %#lx", page_to_pfn(page));
	va = kmap_local_page(page);
	cpu = smp_processor_id();
	hm_cp_lowmem(c, va, page, cpu);
	*(u64 *)va = PATTERN;

	/* A highmem map on top: depth 0 if no slot was pushed, else depth 1. */
	probe = hi(100);
	va2 = kmap_local_page(probe);
	hm_cp_slot(c, va2, page_to_pfn(probe), cpu, HM_LOWMEM_TAKES_SLOT, "highmem on top");
	kunmap_local(va2);
	hm_cp_unmapped(c, va2, "highmem on top unmapped");
	kunmap_local(va);
	if (HM_LOWMEM_TAKES_SLOT)
		hm_cp_unmapped(c, va, "lowmem slot unmapped");
	hm_case_expect(c, *(u64 *)page_address(page) == PATTERN, "read back %#llx",
		       *(u64 *)page_address(page));
	__free_page(page);
}

/* 5: two slots map the same page: what one writes, the other reads, and so does RAM. */
static void test_content(struct hm_case *c)
{
	struct page *page = hi(200);
	unsigned long pfn = page_to_pfn(page);
	u64 *a, *b;
	int cpu;

	a = kmap_local_page(page);
	cpu = smp_processor_id();
	a[0] = PATTERN;
	hm_cp_slot(c, a, pfn, cpu, 0, "first map d0");
	b = kmap_local_page(page);
	hm_case_expect(c, a != b, "both maps at %#lx", VA(a));
	hm_cp_slot(c, b, pfn, cpu, 1, "second map d1");
	hm_case_expect(c, b[0] == PATTERN, "second map reads %#llx", b[0]);
	hm_cp_slot_content(c, b, pfn, cpu, 1, PATTERN, "RAM holds first write");
	b[0] = ~PATTERN;
	hm_case_expect(c, a[0] == ~PATTERN, "first map reads %#llx", a[0]);
	hm_cp_slot_content(c, a, pfn, cpu, 0, ~PATTERN, "RAM holds second write");
	kunmap_local(b);
	hm_cp_unmapped(c, b, "second unmapped");
	hm_cp_slot(c, a, pfn, cpu, 0, "first still mapped");
	kunmap_local(a);
	hm_cp_unmapped(c, a, "first unmapped");
}

/* 6, 15: task A holds maps and sleeps; kthread B runs on A's CPU meanwhile. */
struct sched_ctx {
	struct hm_case *c;
	int cpu;
	int na;				/* maps A holds */
	struct hm_range_entry a[2];	/* A's maps */
	struct page *q;
	bool b_ran;
	struct completion done;
};

static int sched_b_fn(void *arg)
{
	struct sched_ctx *x = arg;
	struct hm_case *c = x->c;
	char label[HM_LABEL_LEN];
	void *vb;

	x->b_ran = true;
	hm_case_expect(c, smp_processor_id() == x->cpu, "B on cpu %d, A on %d",
		       smp_processor_id(), x->cpu);
	hm_case_expect(c, current->kmap_ctrl.idx == 0, "B starts with idx %d",
		       current->kmap_ctrl.idx);
	if (x->na == 1) {
		hm_cp_unmapped(c, (void *)(unsigned long)x->a[0].va, "B: A's slot cleared");
	} else {
		hm_mklabel(label, c, "B: A's %d slots cleared", x->na);
		hm_case_checkpoint(c, hm_expect_range_unmapped(label, x->a, x->na), label);
	}
	vb = kmap_local_page(x->q);
	hm_case_expect(c, (unsigned long)vb == x->a[0].va, "B got %#lx, A's d0 is %#x",
		       VA(vb), x->a[0].va);
	*(u64 *)vb = PATTERN;
	hm_cp_slot(c, vb, page_to_pfn(x->q), smp_processor_id(), 0, "B: own map d0");
	if (x->na > 1)
		hm_cp_unmapped(c, (void *)(unsigned long)x->a[1].va, "B: A's d1 still clear");
	kunmap_local(vb);
	hm_cp_unmapped(c, vb, "B: own map unmapped");
	kthread_complete_and_exit(&x->done, 0);
}

static void test_sched(struct hm_case *c, int na)
{
	struct sched_ctx x = { .c = c, .na = na, .q = lo(300) };
	struct page *pa[2] = { hi(300), hi(301) };
	struct task_struct *b;
	void *va[2];
	char label[HM_LABEL_LEN];
	int i;

	init_completion(&x.done);
	for (i = 0; i < na; i++) {
		va[i] = kmap_local_page(pa[i]);
		*(u64 *)va[i] = PATTERN + i;
		if (i == 0)
			x.cpu = smp_processor_id();
		x.a[i].va = (u32)(unsigned long)va[i];
		x.a[i].pad = 0;
		x.a[i].pfn = page_to_pfn(pa[i]);
		hm_mklabel(label, c, "A: map d%d", i);
		hm_case_checkpoint(c, hm_expect_slot(label, va[i], page_to_pfn(pa[i]),
						     x.cpu, i), label);
	}
	b = kthread_create(sched_b_fn, &x, "hm_sched_b");
	hm_case_expect(c, !IS_ERR(b), "kthread_create: %ld", PTR_ERR(b));
	if (!IS_ERR(b)) {
		kthread_bind(b, x.cpu);
		wake_up_process(b);
		wait_for_completion(&x.done);
	}
	hm_case_expect(c, x.b_ran, "B did not run");
	hm_case_expect(c, smp_processor_id() == x.cpu, "A came back on cpu %d, not %d",
		       smp_processor_id(), x.cpu);
	for (i = 0; i < na; i++) {
		hm_mklabel(label, c, "A: d%d restored", i);
		hm_case_checkpoint(c, hm_expect_slot(label, va[i], page_to_pfn(pa[i]),
						     x.cpu, i), label);
		hm_case_expect(c, *(u64 *)va[i] == PATTERN + i, "A d%d reads %#llx",
			       i, *(u64 *)va[i]);
	}
	for (i = na - 1; i >= 0; i--) {
		kunmap_local(va[i]);
		hm_mklabel(label, c, "A: d%d unmapped", i);
		hm_case_checkpoint(c, hm_expect_unmapped(label, va[i]), label);
	}
}

static void test_sched_one(struct hm_case *c)
{
	test_sched(c, 1);
}

static void test_sched_nested(struct hm_case *c)
{
	test_sched(c, 2);
}

/* 7: the first kmap_local slot of CPU 0 and is_kmap_addr(). */
struct cpu_ctx {
	struct hm_case *c;
	int want_cpu;
	bool first_is_kmap;	/* is_kmap_addr() of the depth-0 map */
	unsigned long va0;	/* address of the depth-0 map */
};

static long is_kmap_addr_fn(void *arg)
{
	struct cpu_ctx *x = arg;
	struct hm_case *c = x->c;
	struct page *p = hi(400), *q = hi(401);
	int cpu = smp_processor_id();
	void *va0, *va1;

	hm_case_expect(c, cpu == x->want_cpu, "running on cpu %d", cpu);
	hm_case_expect(c, current->kmap_ctrl.idx == 0, "worker starts with idx %d",
		       current->kmap_ctrl.idx);
	va0 = kmap_local_page(p);
	hm_cp_slot(c, va0, page_to_pfn(p), cpu, 0, "d0 mapped");
	x->first_is_kmap = is_kmap_addr(va0);
	x->va0 = (unsigned long)va0;
	va1 = kmap_local_page(q);
	hm_cp_slot(c, va1, page_to_pfn(q), cpu, 1, "d1 mapped");
	hm_expect_is_kmap_addr_local(c, va1);
	kunmap_local(va1);
	hm_cp_unmapped(c, va1, "d1 unmapped");
	kunmap_local(va0);
	hm_cp_unmapped(c, va0, "d0 unmapped");
	return 0;
}

static void test_is_kmap_addr_cpu0(struct hm_case *c)
{
	struct cpu_ctx x = { .c = c, .want_cpu = 0 };

	work_on_cpu(0, is_kmap_addr_fn, &x);
	pr_info("# %s: d0 at %#lx, is_kmap_addr %d, DEBUG_KMAP_LOCAL %d\n", c->name,
		x.va0, x.first_is_kmap, IS_ENABLED(CONFIG_DEBUG_KMAP_LOCAL));
	if (x.first_is_kmap)
		return;
	if (!HM_IS_KMAP_ADDR_SEES_LOCAL)
		hm_case_known_bug(c, HM_IS_KMAP_ADDR_BEFORE_6_3);
	else if (!c->failed && !IS_ENABLED(CONFIG_DEBUG_KMAP_LOCAL))
		hm_case_known_bug(c, "is_kmap_addr() misses the first kmap_local slot: include/linux/highmem-internal.h:152-153 (6.12) compare < __fix_to_virt(FIX_KMAP_BEGIN)");
	else
		hm_case_expect(c, x.first_is_kmap, "is_kmap_addr(%#lx) false at depth 0",
			       x.va0);
}

/* 8: CPU 1 has its own slots: its depth 0 is not CPU 0's. */
static long cpu_map_fn(void *arg)
{
	struct cpu_ctx *x = arg;
	struct hm_case *c = x->c;
	struct page *p = lo(500 + x->want_cpu);
	int cpu = smp_processor_id();
	char what[32];
	void *va;

	hm_case_expect(c, cpu == x->want_cpu, "running on cpu %d", cpu);
	va = kmap_local_page(p);
	x->va0 = (unsigned long)va;
	snprintf(what, sizeof(what), "cpu%d d0 mapped", cpu);
	hm_cp_slot(c, va, page_to_pfn(p), cpu, 0, what);
	if (cpu != 0)
		hm_expect_is_kmap_addr_local(c, va);
	kunmap_local(va);
	snprintf(what, sizeof(what), "cpu%d d0 unmapped", cpu);
	hm_cp_unmapped(c, va, what);
	return 0;
}

static void test_cpu1(struct hm_case *c)
{
	struct cpu_ctx x0 = { .c = c, .want_cpu = 0 };
	struct cpu_ctx x1 = { .c = c, .want_cpu = 1 };

	if (!cpu_online(1)) {
		hm_case_skip(c, HM_NEEDS_TWO_CPUS);
		return;
	}
	work_on_cpu(0, cpu_map_fn, &x0);
	work_on_cpu(1, cpu_map_fn, &x1);
	pr_info("# %s: d0 of cpu0 %#lx, of cpu1 %#lx\n", c->name, x0.va0, x1.va0);
	hm_case_expect(c, x0.va0 != x1.va0, "both CPUs map depth 0 at %#lx", x0.va0);
}

/* 9: kmap_local_folio() maps the page that holds the offset, and adds the offset. */
static void test_folio(struct hm_case *c)
{
	struct folio *folio = folio_alloc(GFP_HIGHUSER, 2);
	size_t off = 2 * PAGE_SIZE + 0x128;
	unsigned long pfn;
	void *page_va;
	u64 *va;
	int cpu;

	hm_case_expect(c, folio != NULL, "folio_alloc(GFP_HIGHUSER, 2)");
	if (!folio)
		return;
	/* PageHighMem of its first page: folio_test_highmem() is not in 6.1 */
	hm_case_expect(c, PageHighMem(folio_page(folio, 0)), "folio at pfn %#lx", folio_pfn(folio));
	pfn = folio_pfn(folio) + off / PAGE_SIZE;
	va = kmap_local_folio(folio, off);
	cpu = smp_processor_id();
	page_va = (void *)((unsigned long)va & PAGE_MASK);
	hm_case_expect(c, offset_in_page(va) == 0x128, "va %#lx", VA(va));
	*va = PATTERN;
	hm_cp_slot(c, page_va, pfn, cpu, 0, "page 2 mapped");
	kunmap_local(va);
	hm_cp_unmapped(c, page_va, "unmapped");

	va = kmap_local_page(folio_page(folio, 2));
	hm_cp_slot(c, va, pfn, cpu, 0, "page 2 again");
	hm_case_expect(c, va[0x128 / 8] == PATTERN, "offset 0x128 reads %#llx",
		       va[0x128 / 8]);
	kunmap_local(va);
	hm_cp_unmapped(c, va, "again unmapped");
	folio_put(folio);
}

/* 10: kmap_local_pfn(): a pfn above 4 GiB, and a lowmem pfn, which it maps too (alias). */
static void test_pfn(struct hm_case *c)
{
	struct page *low = alloc_page(GFP_KERNEL);
	unsigned long pfn_hi = page_to_pfn(hi(600));
	u64 *a, *b;
	int cpu;

	hm_case_expect(c, low != NULL, "alloc_page(GFP_KERNEL)");
	if (!low)
		return;
	a = kmap_local_pfn(pfn_hi);
	cpu = smp_processor_id();
	a[0] = PATTERN;
	hm_cp_slot_content(c, a, pfn_hi, cpu, 0, PATTERN, "pfn above 4G d0");
	b = kmap_local_pfn(page_to_pfn(low));
	hm_case_expect(c, (void *)b != page_address(low), "lowmem pfn not aliased: %#lx", VA(b));
	hm_cp_slot(c, b, page_to_pfn(low), cpu, 1, "lowmem pfn alias d1");
	b[0] = ~PATTERN;
	hm_case_expect(c, *(u64 *)page_address(low) == ~PATTERN, "direct map reads %#llx",
		       *(u64 *)page_address(low));
	kunmap_local(b);
	hm_cp_unmapped(c, b, "alias unmapped");
	kunmap_local(a);
	hm_cp_unmapped(c, a, "above 4G unmapped");
	__free_page(low);
}

/* 11: pages above and below 4 GiB in nested slots do not alias each other. */
static void test_two_pages_run(struct hm_case *c)
{
	struct page *p = hi(700), *q = lo(700);
	struct hm_range_entry ent[2];
	char label[HM_LABEL_LEN];
	u64 *a, *b;
	int cpu;

	a = kmap_local_page(p);
	cpu = smp_processor_id();
	hm_cp_slot(c, a, page_to_pfn(p), cpu, 0, "above d0");
	b = kmap_local_page(q);
	hm_cp_slot(c, b, page_to_pfn(q), cpu, 1, "below d1");
	a[0] = PATTERN;
	b[0] = ~PATTERN;
	hm_case_expect(c, a[0] == PATTERN && b[0] == ~PATTERN, "read %#llx %#llx", a[0], b[0]);
	hm_case_expect(c, page_to_pfn(p) >= HM_PFN_4G && page_to_pfn(q) < HM_PFN_4G,
		       "pfns %#lx %#lx", page_to_pfn(p), page_to_pfn(q));
	ent[0].va = (u32)(unsigned long)a;
	ent[0].pad = 0;
	ent[0].pfn = page_to_pfn(p);
	ent[1].va = (u32)(unsigned long)b;
	ent[1].pad = 0;
	ent[1].pfn = page_to_pfn(q);
	hm_mklabel(label, c, "both mapped");
	hm_case_checkpoint(c, hm_expect_range(label, ent, 2, HM_PROT_KERNEL), label);
	hm_cp_slot_content(c, a, page_to_pfn(p), cpu, 0, PATTERN, "above content");
	hm_cp_slot_content(c, b, page_to_pfn(q), cpu, 1, ~PATTERN, "below content");
	kunmap_local(b);
	hm_cp_unmapped(c, b, "below unmapped");
	kunmap_local(a);
	hm_mklabel(label, c, "both unmapped");
	hm_case_checkpoint(c, hm_expect_range_unmapped(label, ent, 2), label);
}

/* Only where a PFN above 4 GiB can exist (PAE); skipped otherwise. */
static void test_two_pages(struct hm_case *c)
{
	if (hm_case_needs_pfn_above_4g(c))
		test_two_pages_run(c);
}

/* 12: map/unmap 100 times: always the same slot, each time the page's own content. */
static void test_reuse(struct hm_case *c)
{
	void *first = NULL;
	int cpu0 = -1, i;

	for (i = 0; i < REUSE_LOOPS; i++) {
		struct page *p = hi(800 + i % REUSE_PAGES);
		u32 *va = kmap_local_page(p);
		int cpu = smp_processor_id();

		if (i == 0) {
			first = va;
			cpu0 = cpu;
		}
		if (i >= REUSE_PAGES)
			hm_case_expect(c, va[0] == i - REUSE_PAGES, "loop %d reads %u", i, va[0]);
		va[0] = i;
		if (i == 0)
			hm_cp_slot(c, va, page_to_pfn(p), cpu, 0, "loop 0 mapped");
		else if (i == REUSE_LOOPS - 1)
			hm_cp_slot_content(c, va, page_to_pfn(p), cpu, 0, i, "loop 99 mapped");
		if (cpu == cpu0)
			hm_case_expect(c, (void *)va == first, "loop %d at %#lx, loop 0 at %#lx",
				       i, VA(va), VA(first));
		kunmap_local(va);
		if (i == 0)
			hm_cp_unmapped(c, va, "loop 0 unmapped");
	}
	hm_cp_unmapped(c, first, "loop 99 unmapped");
}

/* 13: kunmap_local() takes any address inside the mapped page. */
static void test_unmap_offset(struct hm_case *c)
{
	struct page *p = hi(900), *q = lo(900);
	char *a, *b;
	int cpu;

	a = kmap_local_page(p);
	cpu = smp_processor_id();
	hm_cp_slot(c, a, page_to_pfn(p), cpu, 0, "d0 mapped");
	b = kmap_local_page(q);
	hm_cp_slot(c, b, page_to_pfn(q), cpu, 1, "d1 mapped");
	kunmap_local(b + PAGE_SIZE - 1);
	hm_cp_unmapped(c, b, "d1 unmapped via last byte");
	hm_cp_slot(c, a, page_to_pfn(p), cpu, 0, "d0 still mapped");
	kunmap_local(a + 0x800);
	hm_cp_unmapped(c, a, "d0 unmapped via +0x800");
}

/* 14: kmap_local disables migration only: still preemptible, page faults allowed. */
static void test_migrate(struct hm_case *c)
{
	struct page *p = lo(950);
	int cpu, pc0 = preempt_count();
	void *va;

	hm_case_expect(c, preemptible(), "init not preemptible: preempt_count %#x", pc0);
	hm_case_expect(c, !migration_disabled(), "migration disabled before the map");
	va = kmap_local_page(p);
	cpu = smp_processor_id();
	hm_case_expect(c, migration_disabled(), "migration enabled while mapped");
	hm_case_expect(c, preempt_count() == pc0, "preempt_count %#x, was %#x",
		       preempt_count(), pc0);
	hm_case_expect(c, preemptible(), "not preemptible while mapped");
	hm_case_expect(c, !pagefault_disabled(), "page faults disabled while mapped");
	hm_cp_slot(c, va, page_to_pfn(p), cpu, 0, "mapped");
	usleep_range(1000, 2000);	/* switched out and in: __kmap_local_sched_out/_in */
	hm_case_expect(c, smp_processor_id() == cpu, "moved from cpu %d to %d",
		       cpu, smp_processor_id());
	hm_cp_slot(c, va, page_to_pfn(p), cpu, 0, "after usleep_range");
	kunmap_local(va);
	hm_cp_unmapped(c, va, "unmapped");
	hm_case_expect(c, !migration_disabled(), "migration disabled after unmap");
}

/* 16: an interrupt's kmap_local stacks on top of the interrupted task's maps. */
static void *map_local(struct page *page)
{
	return kmap_local_page(page);
}

static void unmap_local(void *va)
{
	kunmap_local(va);
}

static const struct hm_map_ops local_ops = { .map = map_local, .unmap = unmap_local };

static void test_irq(struct hm_case *c)
{
	hm_case_irq_stacks(c, &local_ops, hi(980), lo(980));
}

static const struct hm_suite_case cases[] = {
	{ "kmap_local_above_4g", test_above_4g },
	{ "kmap_local_below_4g", test_below_4g },
	{ "kmap_local_nest_max", test_nest_max },
	{ "kmap_local_lowmem", test_lowmem },
	{ "kmap_local_content", test_content },
	{ "kmap_local_sched", test_sched_one },
	{ "kmap_local_is_kmap_addr_cpu0", test_is_kmap_addr_cpu0 },
	{ "kmap_local_cpu1", test_cpu1 },
	{ "kmap_local_folio", test_folio },
	{ "kmap_local_pfn", test_pfn },
	{ "kmap_local_two_pages", test_two_pages },
	{ "kmap_local_reuse", test_reuse },
	{ "kmap_local_unmap_offset", test_unmap_offset },
	{ "kmap_local_migrate", test_migrate },
	{ "kmap_local_sched_nested", test_sched_nested },
	{ "kmap_local_irq", test_irq },
};

static const struct hm_suite suite = {
	.name = "kmap_local_suite",
	.cases = cases,
	.ncases = ARRAY_SIZE(cases),
	.init = find_blocks,
	.case_ready = have_blocks,
	.exit = free_blocks,
};

HM_SUITE_MODULE(suite, "highmem-harness: kmap_local_page() suite, PTEs checked live");
