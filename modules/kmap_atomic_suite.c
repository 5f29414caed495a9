// SPDX-License-Identifier: GPL-2.0
/*
 * kmap_atomic_suite.ko: kmap_atomic() on i386 PAE (CONFIG_HIGHMEM64G, CONFIG_PREEMPT), with
 * the harness checking the fixmap PTEs live at every checkpoint.
 *
 * kmap_atomic() is preempt_disable() + pagefault_disable() + the kmap_local machinery: it
 * uses the same per-CPU slot stack as kmap_local_page() (include/linux/highmem-internal.h,
 * mm/highmem.c in 6.12). Every mapping is announced with hm_expect_slot(cpu, depth); the
 * harness computes the slot's address from the running kernel's layout.
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
#include <linux/mman.h>
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
#define PATTERN		0xa70e1c0ffee15badULL
#define NEST		4		/* kmap_atomic levels in the nesting case */

/* kmap_atomic disables preemption with a count (not on PREEMPT_RT: migrate_disable) */
#define PREEMPT_COUNTS	(IS_ENABLED(CONFIG_PREEMPT_COUNT) && !IS_ENABLED(CONFIG_PREEMPT_RT))

/* blk_above/blk_below, hi(i)/lo(i), and the suite hooks that find, check, free them */
HM_BLOCK_PAIR();

/* Inside kmap_atomic: no preemption, no page faults. */
static void expect_atomic(struct hm_case *c, const char *where)
{
	hm_case_expect(c, !preemptible(), "%s: preemptible", where);
	if (PREEMPT_COUNTS)
		hm_case_expect(c, preempt_count() > 0, "%s: preempt_count %#x", where,
			       preempt_count());
	hm_case_expect(c, pagefault_disabled(), "%s: page faults enabled", where);
}

/* Back in plain process context after kunmap_atomic. */
static void expect_not_atomic(struct hm_case *c, const char *where)
{
	hm_case_expect(c, preemptible(), "%s: not preemptible, preempt_count %#x", where,
		       preempt_count());
	hm_case_expect(c, !pagefault_disabled(), "%s: page faults still disabled", where);
}

/* 1, 2: one kmap_atomic, a pattern through it, the PTE gone after kunmap_atomic(). */
static void test_one(struct hm_case *c, struct page *page)
{
	unsigned long pfn = page_to_pfn(page);
	u64 *va;
	int cpu;

	pr_info("# %s: pfn %#lx phys %#llx\n", c->name, pfn, (u64)pfn << PAGE_SHIFT);
	expect_not_atomic(c, "before");
	va = kmap_atomic(page);
	cpu = smp_processor_id();
	expect_atomic(c, "mapped");
	va[0] = PATTERN ^ pfn;
	hm_cp_slot_content(c, va, pfn, cpu, 0, PATTERN ^ pfn, "mapped");
	hm_case_expect(c, va[0] == (PATTERN ^ pfn), "read back %#llx", va[0]);
	kunmap_atomic(va);
	hm_cp_unmapped(c, va, "unmapped");
	expect_not_atomic(c, "after");
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

/* 3: nested kmap_atomic: each level a slot and one more preempt/pagefault count. */
static void test_nested(struct hm_case *c)
{
	int pc0 = preempt_count(), pf0 = current->pagefault_disabled;
	struct hm_range_entry ent[NEST];
	void *va[NEST];
	char what[32], label[HM_LABEL_LEN];
	int cpu = -1, i;

	for (i = 0; i < NEST; i++) {
		struct page *p = (i & 1) ? lo(10 + i) : hi(10 + i);

		va[i] = kmap_atomic(p);
		if (i == 0)
			cpu = smp_processor_id();
		if (PREEMPT_COUNTS)
			hm_case_expect(c, preempt_count() == pc0 + i + 1,
				       "d%d: preempt_count %#x", i, preempt_count());
		hm_case_expect(c, current->pagefault_disabled == pf0 + i + 1,
			       "d%d: pagefault_disabled %d", i, current->pagefault_disabled);
		*(u32 *)va[i] = 0xa000 + i;
		ent[i].va = (u32)(unsigned long)va[i];
		ent[i].pad = 0;
		ent[i].pfn = page_to_pfn(p);
		snprintf(what, sizeof(what), "map d%d", i);
		hm_cp_slot(c, va[i], page_to_pfn(p), cpu, i, what);
		if (i > 0)
			hm_case_expect(c, va[i] != va[i - 1], "d%d at %#lx too", i, VA(va[i]));
	}
	hm_mklabel(label, c, "all %d mapped", NEST);
	hm_case_checkpoint(c, hm_expect_range(label, ent, NEST, HM_PROT_KERNEL), label);
	for (i = NEST - 1; i >= 0; i--) {
		hm_case_expect(c, *(u32 *)va[i] == 0xa000 + i, "d%d reads %#x", i,
			       *(u32 *)va[i]);
		kunmap_atomic(va[i]);
		if (PREEMPT_COUNTS)
			hm_case_expect(c, preempt_count() == pc0 + i,
				       "pop d%d: preempt_count %#x", i, preempt_count());
		snprintf(what, sizeof(what), "pop d%d", i);
		hm_cp_unmapped(c, va[i], what);
		if (i > 0) {
			snprintf(what, sizeof(what), "d%d kept", i - 1);
			hm_cp_slot(c, va[i - 1], ent[i - 1].pfn, cpu, i - 1, what);
		}
	}
	expect_not_atomic(c, "after");
}

/* 4: a kmap_atomic in hardirq context stacks on top of the interrupted task's. */
static void *map_atomic(struct page *page)
{
	return kmap_atomic(page);
}

static void unmap_atomic(void *va)
{
	kunmap_atomic(va);
}

static const struct hm_map_ops atomic_ops = { .map = map_atomic, .unmap = unmap_atomic };

static void test_irq(struct hm_case *c)
{
	hm_case_irq_stacks(c, &atomic_ops, hi(100), lo(100));
}

/*
 * 5: a lowmem page: page_address(), no slot pushed, but still atomic; with
 * DEBUG_KMAP_LOCAL_FORCE_MAP it takes slot 0 like a highmem page (HM_LOWMEM_TAKES_SLOT).
 */
static void test_lowmem(struct hm_case *c)
{
	struct page *page = alloc_page(GFP_KERNEL);
	struct page *probe = hi(200);
	void *va, *va2;
	int cpu;

	hm_case_expect(c, page != NULL, "alloc_page(GFP_KERNEL)");
	if (!page)
		return;
	hm_case_expect(c, !PageHighMem(page), "pfn %#lx", page_to_pfn(page));
	va = kmap_atomic(page);
	cpu = smp_processor_id();
	expect_atomic(c, "lowmem mapped");
	hm_cp_lowmem(c, va, page, cpu);
	*(u64 *)va = PATTERN;
	/* A highmem map on top: depth 0 if no slot was pushed, else depth 1. */
	va2 = kmap_atomic(probe);
	hm_cp_slot(c, va2, page_to_pfn(probe), cpu, HM_LOWMEM_TAKES_SLOT, "highmem on top");
	kunmap_atomic(va2);
	hm_cp_unmapped(c, va2, "highmem on top unmapped");
	expect_atomic(c, "lowmem still mapped");
	kunmap_atomic(va);
	if (HM_LOWMEM_TAKES_SLOT)
		hm_cp_unmapped(c, va, "lowmem slot unmapped");
	expect_not_atomic(c, "after");
	hm_case_expect(c, *(u64 *)page_address(page) == PATTERN, "read back %#llx",
		       *(u64 *)page_address(page));
	__free_page(page);
}

/* 6: kmap_local_page and kmap_atomic share one slot stack. */
static void test_mixed(struct hm_case *c)
{
	struct page *p = hi(300), *q = lo(300), *r = hi(301);
	void *a, *b, *d;
	int cpu;

	a = kmap_local_page(p);
	cpu = smp_processor_id();
	expect_not_atomic(c, "local d0");
	hm_cp_slot(c, a, page_to_pfn(p), cpu, 0, "local d0");
	b = kmap_atomic(q);
	hm_case_expect(c, smp_processor_id() == cpu, "cpu %d, then %d", cpu,
		       smp_processor_id());
	expect_atomic(c, "atomic d1");
	hm_cp_slot(c, b, page_to_pfn(q), cpu, 1, "atomic d1");
	d = kmap_local_page(r);
	expect_atomic(c, "local d2");
	hm_cp_slot(c, d, page_to_pfn(r), cpu, 2, "local d2");
	hm_case_expect(c, a != b && b != d && a != d, "addresses %#lx %#lx %#lx", VA(a), VA(b), VA(d));
	kunmap_local(d);
	hm_cp_unmapped(c, d, "local d2 unmapped");
	expect_atomic(c, "local d2 unmapped");
	kunmap_atomic(b);
	hm_cp_unmapped(c, b, "atomic d1 unmapped");
	expect_not_atomic(c, "atomic d1 unmapped");
	hm_cp_slot(c, a, page_to_pfn(p), cpu, 0, "local d0 kept");
	kunmap_local(a);
	hm_cp_unmapped(c, a, "local d0 unmapped");
}

/* 7: on CPU 1, kmap_atomic takes CPU 1's slots. */
struct cpu_ctx {
	struct hm_case *c;
	int want_cpu;
};

static long cpu1_fn(void *arg)
{
	struct cpu_ctx *x = arg;
	struct hm_case *c = x->c;
	struct page *p = lo(400), *q = hi(400);
	void *a, *b;
	int cpu;

	a = kmap_atomic(p);
	cpu = smp_processor_id();
	hm_case_expect(c, cpu == x->want_cpu, "running on cpu %d", cpu);
	expect_atomic(c, "d0");
	hm_cp_slot(c, a, page_to_pfn(p), cpu, 0, "cpu1 d0");
	b = kmap_atomic(q);
	hm_cp_slot(c, b, page_to_pfn(q), cpu, 1, "cpu1 d1");
	hm_expect_is_kmap_addr_local(c, a);
	hm_expect_is_kmap_addr_local(c, b);
	kunmap_atomic(b);
	hm_cp_unmapped(c, b, "cpu1 d1 unmapped");
	kunmap_atomic(a);
	hm_cp_unmapped(c, a, "cpu1 d0 unmapped");
	expect_not_atomic(c, "after");
	return 0;
}

static void test_cpu1(struct hm_case *c)
{
	struct cpu_ctx x = { .c = c, .want_cpu = 1 };

	if (!cpu_online(1)) {
		hm_case_skip(c, HM_NEEDS_TWO_CPUS);
		return;
	}
	work_on_cpu(1, cpu1_fn, &x);
}

/* 8: content through kmap_atomic reaches RAM; a slot reused by another page. */
static void test_content(struct hm_case *c)
{
	struct page *p = hi(500), *q = lo(500);
	u64 *va, *vb;
	int cpu, cpu_p;

	va = kmap_atomic(p);
	cpu = smp_processor_id();
	cpu_p = cpu;
	va[0] = PATTERN;
	hm_cp_slot_content(c, va, page_to_pfn(p), cpu, 0, PATTERN, "P written d0");
	kunmap_atomic(va);
	hm_cp_unmapped(c, va, "P unmapped");

	vb = kmap_atomic(q);
	cpu = smp_processor_id();
	if (cpu == cpu_p)
		hm_case_expect(c, vb == va, "Q at %#lx, P was at %#lx", VA(vb), VA(va));
	vb[0] = ~PATTERN;
	hm_cp_slot_content(c, vb, page_to_pfn(q), cpu, 0, ~PATTERN, "Q written d0");
	va = kmap_atomic(p);
	hm_cp_slot_content(c, va, page_to_pfn(p), cpu, 1, PATTERN, "P again d1");
	hm_case_expect(c, va[0] == PATTERN, "P reads %#llx", va[0]);
	kunmap_atomic(va);
	hm_cp_unmapped(c, va, "P d1 unmapped");
	kunmap_atomic(vb);
	hm_cp_unmapped(c, vb, "Q unmapped");
}

/* 9: kmap_atomic_pfn() of a pfn above 4 GiB. */
static void test_pfn(struct hm_case *c)
{
	unsigned long pfn = page_to_pfn(hi(600));
	u64 *va;
	int cpu;

	va = kmap_atomic_pfn(pfn);
	cpu = smp_processor_id();
	expect_atomic(c, "mapped");
	va[0] = PATTERN;
	hm_cp_slot_content(c, va, pfn, cpu, 0, PATTERN, "pfn mapped");
	kunmap_atomic(va);
	hm_cp_unmapped(c, va, "pfn unmapped");
	expect_not_atomic(c, "after");
}

/* 10: page faults are disabled: a user store to a page not yet faulted in fails. */
static void test_no_pagefault(struct hm_case *c)
{
	struct page *p = lo(700);
	unsigned long uaddr, left;
	u64 v = PATTERN, back = 0;
	void *va;
	int cpu;

	if (!current->mm) {
		hm_case_expect(c, current->mm, "no user mm in this context");
		return;
	}
	uaddr = vm_mmap(NULL, 0, PAGE_SIZE, PROT_READ | PROT_WRITE,
			MAP_ANONYMOUS | MAP_PRIVATE, 0);
	hm_case_expect(c, !IS_ERR_VALUE(uaddr), "vm_mmap: %ld", (long)uaddr);
	if (IS_ERR_VALUE(uaddr))
		return;
	va = kmap_atomic(p);
	cpu = smp_processor_id();
	hm_cp_slot(c, va, page_to_pfn(p), cpu, 0, "mapped");
	left = __copy_to_user_inatomic((void __user *)uaddr, &v, sizeof(v));
	hm_case_expect(c, left == sizeof(v), "store to a fresh user page: %lu left", left);
	hm_cp_unmapped(c, (void *)uaddr, "user page not faulted in");
	hm_cp_slot(c, va, page_to_pfn(p), cpu, 0, "mapped after fault");
	kunmap_atomic(va);
	hm_cp_unmapped(c, va, "unmapped");
	left = copy_to_user((void __user *)uaddr, &v, sizeof(v));
	hm_case_expect(c, left == 0, "store after kunmap_atomic: %lu left", left);
	left = copy_from_user(&back, (void __user *)uaddr, sizeof(back));
	hm_case_expect(c, left == 0 && back == v, "read back %#llx, %lu left", back, left);
	vm_munmap(uaddr, PAGE_SIZE);
}

/* 11: no context switch while kmap_atomic is held: a thread bound here waits. */
struct sched_ctx {
	struct hm_case *c;
	int cpu;
	struct page *q;
	unsigned long a_va;
	bool b_ran;
	struct completion done;
};

static int sched_b_fn(void *arg)
{
	struct sched_ctx *x = arg;
	struct hm_case *c = x->c;
	void *vb;

	WRITE_ONCE(x->b_ran, true);
	hm_cp_unmapped(c, (void *)x->a_va, "B: A's slot clear");
	vb = kmap_atomic(x->q);
	hm_case_expect(c, (unsigned long)vb == x->a_va, "B at %#lx, A was at %#lx",
		       VA(vb), x->a_va);
	hm_cp_slot(c, vb, page_to_pfn(x->q), smp_processor_id(), 0, "B: own map d0");
	kunmap_atomic(vb);
	hm_cp_unmapped(c, vb, "B: own map unmapped");
	kthread_complete_and_exit(&x->done, 0);
}

static long sched_a_fn(void *arg)
{
	struct sched_ctx *x = arg;
	struct hm_case *c = x->c;
	struct page *p = hi(800);
	struct task_struct *b;
	void *va;

	b = kthread_create(sched_b_fn, x, "hm_atomic_b");
	hm_case_expect(c, !IS_ERR(b), "kthread_create: %ld", PTR_ERR(b));
	if (IS_ERR(b))
		return 0;
	kthread_bind(b, x->cpu);
	va = kmap_atomic(p);
	hm_case_expect(c, smp_processor_id() == x->cpu, "A on cpu %d", smp_processor_id());
	x->a_va = (unsigned long)va;
	hm_cp_slot(c, va, page_to_pfn(p), x->cpu, 0, "A: mapped");
	wake_up_process(b);
	mdelay(20);
	hm_case_expect(c, !READ_ONCE(x->b_ran), "B ran while A held kmap_atomic");
	hm_cp_slot(c, va, page_to_pfn(p), x->cpu, 0, "A: still mapped");
	kunmap_atomic(va);
	wait_for_completion(&x->done);
	hm_case_expect(c, READ_ONCE(x->b_ran), "B did not run");
	return 0;
}

static void test_no_sched(struct hm_case *c)
{
	struct sched_ctx x = { .c = c, .cpu = 0, .q = lo(800) };

	init_completion(&x.done);
	work_on_cpu(x.cpu, sched_a_fn, &x);
}

static const struct hm_suite_case cases[] = {
	{ "kmap_atomic_above_4g", test_above_4g },
	{ "kmap_atomic_below_4g", test_below_4g },
	{ "kmap_atomic_nested", test_nested },
	{ "kmap_atomic_irq", test_irq },
	{ "kmap_atomic_lowmem", test_lowmem },
	{ "kmap_atomic_mixed_local", test_mixed },
	{ "kmap_atomic_cpu1", test_cpu1 },
	{ "kmap_atomic_content", test_content },
	{ "kmap_atomic_pfn", test_pfn },
	{ "kmap_atomic_no_pagefault", test_no_pagefault },
	{ "kmap_atomic_no_sched", test_no_sched },
};

static const struct hm_suite suite = {
	.name = "kmap_atomic_suite",
	.cases = cases,
	.ncases = ARRAY_SIZE(cases),
	.init = find_blocks,
	.case_ready = have_blocks,
	.exit = free_blocks,
};

HM_SUITE_MODULE(suite, "highmem-harness: kmap_atomic() suite, PTEs checked live");
