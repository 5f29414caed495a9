// SPDX-License-Identifier: GPL-2.0
/*
 * promise_suite.ko: what kmap_local_page_prot(), kmap_local_page(), kmap() and vmap()
 * promise their callers, one case per promise. Above each case, and in its first KTAP
 * diagnostic, the kernel commit or the Documentation/mm/highmem.rst section that makes it a
 * promise. i386 PAE (CONFIG_HIGHMEM64G), SMP, CONFIG_PREEMPT; line numbers are Linux 6.12's.
 *
 * which= (module parameter):
 *   all           the promises; no kernel warning expected.
 *   invalid_page  vmap() refuses a NULL page and a page with an invalid PFN. Each refusal
 *                 WARNs in vmap_pages_pte_range() (mm/vmalloc.c 6.12:556 and 560; the
 *                 WARNING line names vmap_small_pages_range_noflush, where it is inlined).
 *   size_wrap     vmap() of 2^20 + 1 pages: not above totalram_pages() on an 8 GiB guest,
 *                 but the byte size wraps to one page on 32 bits. A known 6.12 bug: XFAIL.
 *
 * Promises covered by the other suites are not repeated here: kmap_atomic() disables page
 * faults and preemption (kmap_atomic_suite: every case, and kmap_atomic_no_pagefault,
 * kmap_atomic_no_sched); kmap_local_page() disables migration, not preemption
 * (kmap_local_migrate); kmap() counts users (kmap_twice, kmap_remap); a lowmem page is its
 * page_address() (kmap_local_lowmem, kmap_atomic_lowmem, kmap_lowmem).
 */
#include <linux/module.h>
#include <linux/completion.h>
#include <linux/cpumask.h>
#include <linux/delay.h>
#include <linux/err.h>
#include <linux/gfp.h>
#include <linux/highmem.h>
#include <linux/irq_work.h>
#include <linux/jiffies.h>
#include <linux/kthread.h>
#include <linux/mm.h>
#include <linux/preempt.h>
#include <linux/sched.h>
#include <linux/sched/task.h>
#include <linux/slab.h>
#include <linux/smp.h>
#include <linux/string.h>
#include <linux/vmalloc.h>
#include <asm/pgtable.h>
#include "hm_checkpoint.h"
#include "hm_ktap.h"
#include "hm_pages.h"

static char *which = "all";
module_param(which, charp, 0444);
MODULE_PARM_DESC(which, "all | invalid_page | size_wrap");

#define VA(p)		((unsigned long)(p))
#define PATTERN		0x9e0c15e5a11ed00dULL
#define PATTERN_B	0x0b0b5c4edc0ffee5ULL	/* the page of the thread that runs meanwhile */
#define IRQ_WAIT	(30 * HZ)	/* how long the task waits for its interrupt */
#define PIN_WAIT	(30 * HZ)	/* how long the mapping thread waits for its new affinity */
#define PIN_SLEEPS	5		/* sleeps while mapped once the affinity excludes its CPU */
#define WRAP_PAGES	(2 * LAST_PKMAP + 64)	/* enough fresh pages for one PKMAP wrap */
#define VMAP_PAGES	4
/* The PTE bits the hardware may set on its own: left out of the module's PTE compares. */
#define PTE_HW_BITS	(_PAGE_ACCESSED | _PAGE_DIRTY)

/* blk_above/blk_below, hi(i)/lo(i), and the suite hooks that find, check, free them */
HM_BLOCK_PAIR();

/* The case's first diagnostic: where the promise it checks is made. */
static void hm_promise(struct hm_case *c, const char *source)
{
	pr_info("# %s: promise: %s\n", c->name, source);
}

static bool migration_disabled(void)
{
#ifdef CONFIG_SMP
	return current->migration_disabled;
#else
	return true;
#endif
}

/*
 * A task holding kmap_local maps must still be on the CPU it mapped them on: elsewhere their
 * addresses are another CPU's slots. Checked before the task touches a map after a sleep.
 */
static bool still_on(struct hm_case *c, int cpu, const char *when)
{
	int now = raw_smp_processor_id();

	hm_case_expect(c, now == cpu, "moved from cpu %d to %d %s, holding kmap_local maps",
		       cpu, now, when);
	return now == cpu;
}

/* Write v to the first u64 of page through a map of its own. */
static void fill(struct page *page, u64 v)
{
	u64 *va = kmap_local_page(page);

	va[0] = v;
	kunmap_local(va);
}

/* A kmap_local slot (cpu, depth) mapped with prot (HM_PROT_*); flags adds HM_CHECK_*. */
static void cp_slot_prot(struct hm_case *c, const void *va, struct page *page, int cpu,
			 int depth, u32 prot, u32 flags, u64 content, const char *what)
{
	struct hm_expect e = HM_EXPECT_INIT(HM_EXPECT_MAPPED);
	char label[HM_LABEL_LEN];

	e.prot = prot;
	e.va = (u32)(unsigned long)va;
	e.pfn = page_to_pfn(page);
	e.where = HM_WHERE_KMAP_LOCAL(cpu, depth);
	e.flags = flags;
	e.content = content;
	hm_mklabel(label, c, "%s", what);
	hm_case_checkpoint(c, hm_checkpoint_at(&e, label), label);
}

static void cp_slot_ro(struct hm_case *c, const void *va, struct page *page, int cpu,
		       int depth, const char *what)
{
	cp_slot_prot(c, va, page, cpu, depth, HM_PROT_KERNEL_RO, 0, 0, what);
}

static void set_entry(struct hm_range_entry *e, const void *va, struct page *page)
{
	e->va = (u32)(unsigned long)va;
	e->pad = 0;
	e->pfn = page ? page_to_pfn(page) : 0;
}

/* The PTE of a kernel address as this CPU's page tables hold it now; 0 if none. */
static u64 pte_now(const void *va)
{
	unsigned int level;
	pte_t *ptep = lookup_address((unsigned long)va, &level);

	if (!ptep || level != PG_LEVEL_4K)
		return 0;
	return pte_val(*ptep);
}

/*
 * The module's own PTE check, for what the harness does not judge (it compares P, PFN, RW,
 * NX and G; not PCD, PWT, and not NX clear): the PTE at va is want, A and D aside (the CPU
 * may set them). The diagnostic names the bits that differ.
 */
static void expect_pte(struct hm_case *c, const void *va, u64 want, const char *what)
{
	u64 got = pte_now(va);
	u64 diff = (got ^ want) & ~(u64)PTE_HW_BITS;

	hm_case_expect(c, diff == 0, "%s: PTE at %#lx is %#llx, want %#llx, differs in%s%s%s%s%s%s%s",
		       what, VA(va), got, want, diff & _PAGE_PRESENT ? " P" : "",
		       diff & _PAGE_RW ? " RW" : "", diff & _PAGE_PWT ? " PWT" : "",
		       diff & _PAGE_PCD ? " PCD" : "", diff & _PAGE_GLOBAL ? " G" : "",
		       diff & _PAGE_NX ? " NX" : "", diff & PTE_PFN_MASK ? " PFN" : "");
}

/*
 * kmap_local_prot_ro: kmap_local_page_prot(page, PAGE_KERNEL_RO) maps the page read-only
 * (P A G NX, no RW), above and below 4 GiB, and the page reads through it.
 * Promise: f3ba3c710ac5 "mm/highmem: Provide kmap_local*" (v5.11) adds
 * kmap_local_page_prot(page, prot); __kmap_local_pfn_prot() writes pfn_pte(pfn, prot)
 * (mm/highmem.c 6.12:566-567).
 */
static void case_prot_ro(struct hm_case *c)
{
	struct page *pages[2] = { hi(0), lo(0) };
	int i, cpu;
	u64 *va;

	hm_promise(c, "f3ba3c710ac5 \"mm/highmem: Provide kmap_local*\" (v5.11): kmap_local_page_prot()");
	for (i = 0; i < 2; i++) {
		fill(pages[i], PATTERN + i);
		va = kmap_local_page_prot(pages[i], PAGE_KERNEL_RO);
		cpu = smp_processor_id();
		cp_slot_prot(c, va, pages[i], cpu, 0, HM_PROT_KERNEL_RO, HM_CHECK_CONTENT,
			     PATTERN + i, i ? "below 4G RO d0" : "above 4G RO d0");
		hm_case_expect(c, va[0] == PATTERN + i, "page %d reads %#llx through RO", i, va[0]);
		kunmap_local(va);
		hm_cp_unmapped(c, va, i ? "below 4G unmapped" : "above 4G unmapped");
	}
}

/*
 * kmap_local_prot_ro_sched: a PAGE_KERNEL_RO map stays read-only across a context switch.
 * Task A holds d0 RO and d1 PAGE_KERNEL and sleeps; thread B runs on A's CPU, finds A's
 * slots clear, maps its own page at d0 with the default protection and reads its own page
 * through it (A read d0 just before: a stale translation left by a sched_out without its
 * flush shows A's page). Back in A, d0 is RO and d1 RW again: __kmap_local_sched_in()
 * restores the saved pteval, not kmap_prot.
 * Promise: 5fbda3ecd14a "sched: highmem: Store local kmaps in task struct" (v5.11): the
 * pteval saved at map time is what sched_out clears and sched_in restores (mm/highmem.c
 * 6.12:569, 646-710); Documentation/mm/highmem.rst, "Temporary Virtual Mappings": "the maps
 * of the outgoing task are saved and those of the incoming one are restored".
 */
struct sched_ctx {
	struct hm_case *c;
	int cpu;
	struct hm_range_entry a[2];	/* A's maps */
	struct page *q;			/* B's page */
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
	hm_mklabel(label, c, "B: A's 2 slots clear");
	hm_case_checkpoint(c, hm_expect_range_unmapped(label, x->a, 2), label);
	vb = kmap_local_page(x->q);
	hm_case_expect(c, VA(vb) == x->a[0].va, "B got %#lx, A's d0 is %#x", VA(vb), x->a[0].va);
	hm_cp_slot(c, vb, page_to_pfn(x->q), smp_processor_id(), 0, "B: own d0 RW");
	hm_case_expect(c, *(u64 *)vb == PATTERN_B,
		       "B reads %#llx through its d0, its page holds %#llx, A's %#llx: stale TLB",
		       *(u64 *)vb, PATTERN_B, PATTERN);
	kunmap_local(vb);
	hm_cp_unmapped(c, vb, "B: own d0 unmapped");
	kthread_complete_and_exit(&x->done, 0);
}

static void case_prot_ro_sched(struct hm_case *c)
{
	struct sched_ctx x = { .c = c, .q = lo(10) };
	struct page *p0 = hi(10), *p1 = hi(11);
	struct task_struct *b;
	u64 *va0, *va1;

	hm_promise(c, "5fbda3ecd14a \"sched: highmem: Store local kmaps in task struct\" (v5.11); highmem.rst \"Temporary Virtual Mappings\"");
	init_completion(&x.done);
	b = kthread_create(sched_b_fn, &x, "hm_prom_b");	/* it sleeps: before the maps */
	hm_case_expect(c, !IS_ERR(b), "kthread_create: %ld", PTR_ERR(b));
	if (IS_ERR(b))
		return;
	fill(p0, PATTERN);
	fill(x.q, PATTERN_B);
	va0 = kmap_local_page_prot(p0, PAGE_KERNEL_RO);
	x.cpu = smp_processor_id();
	va1 = kmap_local_page(p1);
	va1[0] = ~PATTERN;
	set_entry(&x.a[0], va0, p0);
	set_entry(&x.a[1], va1, p1);
	cp_slot_ro(c, va0, p0, x.cpu, 0, "A: d0 RO");
	hm_cp_slot(c, va1, page_to_pfn(p1), x.cpu, 1, "A: d1 RW");

	kthread_bind(b, x.cpu);
	if (!still_on(c, x.cpu, "in kthread_bind()")) {
		kthread_stop(b);
		goto unmap;
	}
	/* d0 in this CPU's TLB now, then A sleeps: sched_out, B, sched_in */
	hm_case_expect(c, READ_ONCE(va0[0]) == PATTERN, "A reads %#llx", va0[0]);
	wake_up_process(b);
	wait_for_completion(&x.done);
	hm_case_expect(c, x.b_ran, "B did not run");
	if (!still_on(c, x.cpu, "while B ran"))
		goto unmap;
	cp_slot_prot(c, va0, p0, x.cpu, 0, HM_PROT_KERNEL_RO, HM_CHECK_CONTENT, PATTERN,
		     "A: d0 RO restored");
	hm_cp_slot(c, va1, page_to_pfn(p1), x.cpu, 1, "A: d1 RW restored");
	hm_case_expect(c, va0[0] == PATTERN && va1[0] == ~PATTERN, "A reads %#llx %#llx",
		       va0[0], va1[0]);
unmap:
	kunmap_local(va1);
	hm_cp_unmapped(c, va1, "A: d1 unmapped");
	kunmap_local(va0);
	hm_cp_unmapped(c, va0, "A: d0 unmapped");
}

/*
 * kmap_local_prot_ro_nested: a PAGE_KERNEL_RO map stays read-only under the maps stacked on
 * it: a kmap_local_page() (RW) on top, then a kmap_atomic_prot(PAGE_KERNEL_RO), then an
 * interrupt's own map; each pops and d0 is RO all along.
 * Promise: Documentation/mm/highmem.rst, "Temporary Virtual Mappings": nesting
 * kmap_local_page() and kmap_atomic() is allowed (the map implementation is stack based),
 * and kmap_local_page() "can be invoked from any context (including interrupts)";
 * f3ba3c710ac5 "mm/highmem: Provide kmap_local*" (v5.11).
 */
struct irq_ctx {
	struct irq_work work;
	struct hm_case *c;
	struct page *task_page;		/* the task's RO map at d0 */
	void *task_va;
	struct page *q;			/* what the interrupt maps */
	int irq_cpu;
	void *irq_va;
};

static void irq_map_fn(struct irq_work *w)
{
	struct irq_ctx *x = container_of(w, struct irq_ctx, work);
	int cpu = smp_processor_id();
	void *va;

	x->irq_cpu = cpu;
	cp_slot_ro(x->c, x->task_va, x->task_page, cpu, 0, "irq: task d0 RO");
	va = kmap_local_page(x->q);
	x->irq_va = va;
	hm_cp_slot(x->c, va, page_to_pfn(x->q), cpu, 1, "irq: own d1 RW");
	kunmap_local(va);
	hm_cp_unmapped(x->c, va, "irq: own d1 unmapped");
}

/* Queue x's irq_work on this CPU and wait for it with preemption off. */
static void run_irq_on_top(struct hm_case *c, struct irq_ctx *x, int cpu)
{
	unsigned long end;

	init_irq_work(&x->work, irq_map_fn);
	preempt_disable();
	irq_work_queue(&x->work);
	end = jiffies + IRQ_WAIT;
	while (irq_work_is_busy(&x->work) && time_before(jiffies, end))
		cpu_relax();
	preempt_enable();
	hm_case_expect(c, !irq_work_is_busy(&x->work), "irq_work still busy after 30 s");
	hm_case_expect(c, x->irq_cpu == cpu, "irq ran on cpu %d, task on %d", x->irq_cpu, cpu);
	hm_case_expect(c, x->irq_va && x->irq_va != x->task_va, "irq map at %#lx, task's at %#lx",
		       VA(x->irq_va), VA(x->task_va));
}

static void case_prot_ro_nested(struct hm_case *c)
{
	struct page *p = hi(20), *q = lo(20), *r = hi(21);
	struct irq_ctx x = { .c = c, .task_page = p, .q = lo(21), .irq_cpu = -1 };
	void *va, *vq, *vr;
	int cpu;

	hm_promise(c, "highmem.rst \"Temporary Virtual Mappings\" (nesting, any context); f3ba3c710ac5 (v5.11)");
	va = kmap_local_page_prot(p, PAGE_KERNEL_RO);
	cpu = smp_processor_id();
	x.task_va = va;
	cp_slot_ro(c, va, p, cpu, 0, "d0 RO");

	vq = kmap_local_page(q);
	hm_cp_slot(c, vq, page_to_pfn(q), cpu, 1, "RW d1 on top");
	cp_slot_ro(c, va, p, cpu, 0, "d0 RO under RW d1");
	kunmap_local(vq);
	hm_cp_unmapped(c, vq, "RW d1 unmapped");
	cp_slot_ro(c, va, p, cpu, 0, "d0 RO after RW d1");

	vr = kmap_atomic_prot(r, PAGE_KERNEL_RO);
	cp_slot_ro(c, vr, r, cpu, 1, "atomic RO d1 on top");
	cp_slot_ro(c, va, p, cpu, 0, "d0 RO under atomic");
	kunmap_atomic(vr);
	hm_cp_unmapped(c, vr, "atomic RO d1 unmapped");

	run_irq_on_top(c, &x, cpu);
	cp_slot_ro(c, va, p, cpu, 0, "d0 RO after irq");
	kunmap_local(va);
	hm_cp_unmapped(c, va, "d0 unmapped");
	irq_work_sync(&x.work);
}

/*
 * kmap_local_prot_other: the other protections a caller may ask for on i386 are kept too,
 * at map time, across a context switch and under a nested map: PAGE_KERNEL_EXEC and
 * PAGE_KERNEL_ROX (NX clear), PAGE_KERNEL_NOCACHE and pgprot_writecombine(PAGE_KERNEL),
 * which differ from PAGE_KERNEL only in PCD/PWT. The harness judges P, PFN and the slot;
 * the PTE bits are checked by the module against pfn_pte(pfn, prot) through
 * lookup_address() (the harness compares neither PCD/PWT nor "NX clear").
 * Promise: f3ba3c710ac5 "mm/highmem: Provide kmap_local*" (v5.11) takes any pgprot_t;
 * e66f6e095486 "io-mapping: Provide iomap_local variant" (v5.11) maps write-combined through
 * __kmap_local_pfn_prot() (arch/x86/mm/iomap_32.c 6.12:47-63); TTM maps with its caching
 * protection (drivers/gpu/drm/ttm/ttm_tt.c 6.12:434).
 */
struct prot_case {
	const char *name;
	pgprot_t prot;
};

static void prot_kept(struct hm_case *c, const struct prot_case *pc, struct page *p,
		      struct page *q)
{
	unsigned long pfn = page_to_pfn(p), nvcsw;
	int tries;
	u64 want = pte_val(pfn_pte(pfn, pc->prot));
	char what[48];
	u64 *va;
	void *vq;
	int cpu;

	fill(p, PATTERN ^ pfn);
	va = kmap_local_page_prot(p, pc->prot);
	cpu = smp_processor_id();
	pr_info("# %s: %s: pgprot %#llx, PTE %#llx at %#lx\n", c->name, pc->name,
		(u64)pgprot_val(pc->prot), pte_now(va), VA(va));
	snprintf(what, sizeof(what), "%s mapped", pc->name);
	expect_pte(c, va, want, what);
	cp_slot_prot(c, va, p, cpu, 0, HM_PROT_ANY, HM_CHECK_CONTENT, PATTERN ^ pfn, what);
	hm_case_expect(c, va[0] == (PATTERN ^ pfn), "%s reads %#llx", pc->name, va[0]);

	nvcsw = current->nvcsw;
	/*
	 * __kmap_local_sched_out(), then _in(). A sleep whose timer has already expired
	 * (the guest's clock runs on while the harness holds it at a checkpoint) returns
	 * without switching: sleep again, a bounded number of times.
	 */
	for (tries = 0; tries < 10 && current->nvcsw == nvcsw; tries++)
		usleep_range(1000, 2000);
	hm_case_expect(c, current->nvcsw != nvcsw, "%s: no context switch in the sleep",
		       pc->name);
	still_on(c, cpu, "in the sleep");
	snprintf(what, sizeof(what), "%s after sleep", pc->name);
	expect_pte(c, va, want, what);
	cp_slot_prot(c, va, p, cpu, 0, HM_PROT_ANY, 0, 0, what);

	vq = kmap_local_page(q);
	hm_cp_slot(c, vq, page_to_pfn(q), cpu, 1, "RW d1 on top");
	snprintf(what, sizeof(what), "%s under d1", pc->name);
	expect_pte(c, va, want, what);
	kunmap_local(vq);
	snprintf(what, sizeof(what), "%s after d1", pc->name);
	expect_pte(c, va, want, what);

	kunmap_local(va);
	snprintf(what, sizeof(what), "%s unmapped", pc->name);
	expect_pte(c, va, 0, what);
	hm_cp_unmapped(c, va, what);
}

static void case_prot_other(struct hm_case *c)
{
	const struct prot_case prots[] = {
		{ "EXEC", PAGE_KERNEL_EXEC },
		{ "ROX", PAGE_KERNEL_ROX },
		{ "NOCACHE", PAGE_KERNEL_NOCACHE },
		{ "WC", pgprot_writecombine(PAGE_KERNEL) },
	};
	int i;

	hm_promise(c, "f3ba3c710ac5 (v5.11) any pgprot_t; e66f6e095486 \"io-mapping: Provide iomap_local variant\" (v5.11)");
	for (i = 0; i < ARRAY_SIZE(prots); i++)
		prot_kept(c, &prots[i], (i & 1) ? lo(30 + i) : hi(30 + i), lo(40 + i));
}

/*
 * kmap_local_pins_cpu: the thread holding a kmap_local map stays on its CPU even when its
 * affinity excludes that CPU: thread A maps on CPU 0 and sleeps; the suite moves A's affinity
 * to CPU 1. set_cpus_allowed_ptr() may only return once A runs on CPU 1, which must wait for
 * A's kunmap_local() (migrate_enable()). A stays preemptible meanwhile.
 * Promise: Documentation/mm/highmem.rst, "Temporary Virtual Mappings": "the thread is bound
 * to the CPU while the mapping is active", "preemption is never disabled by this function";
 * f3ba3c710ac5 "mm/highmem: Provide kmap_local*" (v5.11): migrate_disable() in
 * __kmap_local_pfn_prot() (6.12:560), migrate_enable() in kunmap_local_indexed() (6.12:632).
 */
struct pin_ctx {
	struct hm_case *c;
	struct page *p;
	int from, to;
	bool mask_seen;		/* A saw the new affinity while it held the map */
	bool unmapped;		/* set by A just before kunmap_local() */
	int moved_to;		/* the CPU A found itself on while mapped, if not from */
	int cpu_after;		/* A's CPU after kunmap_local() and a sleep */
	struct completion mapped;
	struct completion done;
};

static int pin_a_fn(void *arg)
{
	struct pin_ctx *x = arg;
	struct hm_case *c = x->c;
	unsigned long end;
	void *va;
	int cpu, i;

	va = kmap_local_page(x->p);
	cpu = smp_processor_id();
	hm_case_expect(c, cpu == x->from, "A mapped on cpu %d, bound to %d", cpu, x->from);
	hm_case_expect(c, migration_disabled(), "migration enabled while mapped");
	hm_case_expect(c, preemptible(), "not preemptible while mapped: preempt_count %#x",
		       preempt_count());
	hm_cp_slot(c, va, page_to_pfn(x->p), cpu, 0, "A: mapped");
	complete(&x->mapped);

	/* Sleep until the affinity change is in: every wakeup is a chance to migrate. */
	end = jiffies + PIN_WAIT;
	while (cpumask_test_cpu(x->from, &current->cpus_mask) && time_before(jiffies, end))
		usleep_range(1000, 2000);
	x->mask_seen = !cpumask_test_cpu(x->from, &current->cpus_mask);
	for (i = 0; i < PIN_SLEEPS && x->moved_to < 0; i++) {
		usleep_range(2000, 4000);
		if (smp_processor_id() != cpu)
			x->moved_to = smp_processor_id();
	}
	hm_cp_slot(c, va, page_to_pfn(x->p), cpu, 0, "A: still mapped");
	WRITE_ONCE(x->unmapped, true);
	kunmap_local(va);
	hm_cp_unmapped(c, va, "A: unmapped");
	usleep_range(1000, 2000);
	x->cpu_after = smp_processor_id();
	kthread_complete_and_exit(&x->done, 0);
}

static void case_pins_cpu(struct hm_case *c)
{
	struct pin_ctx x = { .c = c, .p = hi(50), .from = 0, .to = 1, .moved_to = -1,
			     .cpu_after = -1 };
	struct task_struct *a;
	int ret;

	hm_promise(c, "highmem.rst \"Temporary Virtual Mappings\": bound to the CPU while mapped; f3ba3c710ac5 (v5.11)");
	if (!cpu_online(x.to)) {
		hm_case_skip(c, HM_NEEDS_TWO_CPUS);
		return;
	}
	init_completion(&x.mapped);
	init_completion(&x.done);
	a = kthread_create(pin_a_fn, &x, "hm_prom_pin");
	hm_case_expect(c, !IS_ERR(a), "kthread_create: %ld", PTR_ERR(a));
	if (IS_ERR(a))
		return;
	get_task_struct(a);
	kthread_bind(a, x.from);
	wake_up_process(a);
	wait_for_completion(&x.mapped);
	ret = set_cpus_allowed_ptr(a, cpumask_of(x.to));
	hm_case_expect(c, ret == 0, "set_cpus_allowed_ptr(A, cpu %d): %d", x.to, ret);
	hm_case_expect(c, READ_ONCE(x.unmapped),
		       "A's move to cpu %d completed while A held its map", x.to);
	wait_for_completion(&x.done);
	put_task_struct(a);
	hm_case_expect(c, x.mask_seen, "A never saw its affinity change");
	hm_case_expect(c, x.moved_to < 0, "A moved from cpu %d to %d while mapped", x.from,
		       x.moved_to);
	hm_case_expect(c, x.cpu_after == x.to, "after kunmap_local A runs on cpu %d, not %d",
		       x.cpu_after, x.to);
}

/*
 * kmap_held_survives_wrap: a kmap() with users is never torn down: pages held by one and by
 * two kmap()s keep their address, PTE and count (2, 3) through a PKMAP wrap, while the
 * count-1 slots are flushed.
 * Promise: mm/highmem.c 6.12:44-51 ("n means that there are (n-1) current users") and
 * flush_all_zero_pkmaps() "Only a count of 1 means that it is free" (6.12:208-215), both
 * older than git (1da177e4c3f4 "Linux-2.6.12-rc2"); Documentation/mm/highmem.rst, kmap():
 * the mapping lasts until it is released with kunmap().
 */
static void pk_check(struct hm_case *c, u16 kind, const void *va, struct page *page, int count,
		     u32 flags, u64 content, const char *what)
{
	struct hm_expect e = HM_EXPECT_INIT(kind);
	char label[HM_LABEL_LEN];

	e.prot = HM_PROT_KERNEL;
	e.va = (u32)(unsigned long)va;
	e.pfn = page ? page_to_pfn(page) : 0;
	e.where = HM_WHERE_PKMAP;
	e.flags = HM_CHECK_PKMAP_COUNT | flags;
	e.aux = count;
	e.content = content;
	hm_mklabel(label, c, "%s", what);
	hm_case_checkpoint(c, hm_checkpoint_at(&e, label), label);
}

static bool fresh_high(struct page *p)
{
	return p && PageHighMem(p) && !page_address(p);
}

/* kmap() and kunmap() fresh pages until the slot index goes down; the wrapping map's slot. */
static long wrap_pkmap(struct hm_case *c, struct page **pages, int n, struct page **first,
		       void **first_va)
{
	int i, nr, prev_nr = -1, nmaps = 0;

	for (i = 0; i < n; i++) {
		void *va;

		if (!fresh_high(pages[i]))
			continue;
		va = kmap(pages[i]);
		kunmap(pages[i]);
		nmaps++;
		nr = PKMAP_NR(VA(va));
		if (prev_nr >= 0 && nr < prev_nr) {
			pr_info("# %s: wrapped after %d kmaps, to slot %d\n", c->name, nmaps, nr);
			return nr;
		}
		if (!*first) {
			*first = pages[i];
			*first_va = va;
		}
		prev_nr = nr;
	}
	hm_case_expect(c, false, "no PKMAP wrap in %d kmaps", nmaps);
	return -1;
}

static void case_held_survives_wrap(struct hm_case *c)
{
	struct page **pages = kcalloc(WRAP_PAGES, sizeof(*pages), GFP_KERNEL);
	struct page *h1 = NULL, *h2 = NULL, *first = NULL;
	void *va1, *va2, *first_va = NULL;
	bool kept;
	int i, n;
	long wrap_nr;

	hm_promise(c, "mm/highmem.c pkmap_count semantics (6.12:44-51, 208-215), pre-git 1da177e4c3f4; highmem.rst kmap()");
	hm_case_expect(c, pages != NULL, "out of memory");
	if (!pages)
		return;
	for (n = 0; n < WRAP_PAGES; n++) {
		pages[n] = alloc_page(GFP_HIGHUSER | __GFP_NOWARN);
		if (!pages[n])
			break;
		if (!h1 && fresh_high(pages[n]))
			h1 = pages[n];
		else if (!h2 && fresh_high(pages[n]))
			h2 = pages[n];
	}
	hm_case_expect(c, h1 && h2 && n == WRAP_PAGES, "%d pages allocated, held pages %d %d",
		       n, !!h1, !!h2);
	if (!h1 || !h2)
		goto out;

	va1 = kmap(h1);
	*(u64 *)va1 = PATTERN;
	va2 = kmap(h2);
	kmap(h2);
	pk_check(c, HM_EXPECT_MAPPED, va1, h1, 2, 0, 0, "held once, count 2");
	pk_check(c, HM_EXPECT_MAPPED, va2, h2, 3, 0, 0, "held twice, count 3");

	wrap_nr = wrap_pkmap(c, pages, n, &first, &first_va);
	kept = page_address(h1) == va1 && page_address(h2) == va2;
	if (wrap_nr >= 0) {
		hm_case_expect(c, kept, "held pages at %#lx %#lx after the wrap, were %#lx %#lx",
			       VA(page_address(h1)), VA(page_address(h2)), VA(va1), VA(va2));
		pk_check(c, HM_EXPECT_MAPPED, va1, h1, 2, HM_CHECK_CONTENT, PATTERN,
			 "held once after wrap, count 2");
		pk_check(c, HM_EXPECT_MAPPED, va2, h2, 3, 0, 0, "held twice after wrap, 3");
		if (kept)
			hm_case_expect(c, *(u64 *)va1 == PATTERN, "held page reads %#llx",
				       *(u64 *)va1);
		/* The wrap did flush: the first count-1 slot is gone, unless the wrap reused it. */
		if (first && PKMAP_NR(VA(first_va)) != wrap_nr) {
			hm_case_expect(c, !page_address(first), "first unused page still at %#lx",
				       VA(page_address(first)));
			pk_check(c, HM_EXPECT_UNMAPPED, first_va, NULL, 0, 0, 0,
				 "unused slot flushed, count 0");
		}
	}
	if (!kept) {
		/* The kernel dropped a held map: kunmap() would BUG_ON(!vaddr). Leak it. */
		pr_info("# %s: held maps lost, not kunmapped\n", c->name);
		goto out;
	}
	kunmap(h1);
	pk_check(c, HM_EXPECT_STALE, va1, h1, 1, 0, 0, "held once kunmapped, count 1");
	kunmap(h2);
	pk_check(c, HM_EXPECT_MAPPED, va2, h2, 2, 0, 0, "held twice, one kunmap, 2");
	kunmap(h2);
	pk_check(c, HM_EXPECT_STALE, va2, h2, 1, 0, 0, "held twice kunmapped, 1");
out:
	for (i = 0; i < n; i++)
		__free_page(pages[i]);
	kfree(pages);
}

/* A vmap of n pages with prot: every PTE judged as hm_prot, NX checked by the module too. */
static void vmap_with(struct hm_case *c, struct page **pages, unsigned int n, pgprot_t prot,
		      u32 hm_prot, const char *name)
{
	struct hm_expect e = HM_EXPECT_INIT(HM_EXPECT_RANGE);
	struct hm_range_entry ent[VMAP_PAGES];
	char label[HM_LABEL_LEN];
	unsigned int i;
	void *va;

	va = vmap(pages, n, VM_MAP, prot);
	hm_case_expect(c, va != NULL, "vmap(%s) failed", name);
	if (!va)
		return;
	for (i = 0; i < n; i++) {
		char *pva = (char *)va + i * PAGE_SIZE;
		u64 pte = pte_now(pva);

		set_entry(&ent[i], pva, pages[i]);
		hm_case_expect(c, (pte & _PAGE_NX) || !(__supported_pte_mask & _PAGE_NX),
			       "page %u of the %s vmap is executable: PTE %#llx", i, name, pte);
	}
	e.prot = hm_prot;
	e.count = n;
	e.entries = (u32)(unsigned long)ent;
	e.where = HM_WHERE_VMALLOC;
	hm_mklabel(label, c, "%s: all NX", name);
	hm_case_checkpoint(c, hm_checkpoint_at(&e, label), label);
	vunmap(va);
	hm_mklabel(label, c, "%s: 0 after vunmap", name);
	hm_case_checkpoint(c, hm_expect_range_unmapped(label, ent, n), label);
}

/*
 * vmap_never_exec: vmap() maps with NX whatever it is asked: PAGE_KERNEL_EXEC gives
 * PAGE_KERNEL (P RW A D G NX), PAGE_KERNEL_ROX gives PAGE_KERNEL_RO (P A G NX).
 * Promise: cca98e9f8b5e "mm: enforce that vmap can't map pages executable" (v5.8):
 * vmap_pages_range(..., pgprot_nx(prot), ...) (mm/vmalloc.c 6.12:3524).
 */
static void case_vmap_never_exec(struct hm_case *c)
{
	struct page *pages[VMAP_PAGES] = { hi(60), lo(60), hi(61), NULL };

	hm_promise(c, "cca98e9f8b5e \"mm: enforce that vmap can't map pages executable\" (v5.8)");
	pages[3] = alloc_page(GFP_KERNEL);
	hm_case_expect(c, pages[3] != NULL, "alloc_page(GFP_KERNEL)");
	if (!pages[3])
		return;
	vmap_with(c, pages, VMAP_PAGES, PAGE_KERNEL_EXEC, HM_PROT_KERNEL, "EXEC");
	vmap_with(c, pages, VMAP_PAGES, PAGE_KERNEL_ROX, HM_PROT_KERNEL_RO, "ROX");
	__free_page(pages[3]);
}

/*
 * vmap() of count pages, every entry of the pages array the same page: the array has count
 * entries, so that a vmap() without its checks reads nothing but valid page pointers.
 */
static void *vmap_count(struct hm_case *c, struct page *page, unsigned int count)
{
	struct page **pages = vmalloc_array(count, sizeof(*pages));
	unsigned int i;
	void *va;

	hm_case_expect(c, pages != NULL, "vmalloc_array(%u) failed", count);
	if (!pages)
		return NULL;
	for (i = 0; i < count; i++)
		pages[i] = page;
	va = vmap(pages, count, VM_MAP, PAGE_KERNEL);
	vfree(pages);
	return va;
}

/*
 * An area vmap() should have refused, mapped for a count that wrapped to one page: page 0
 * maps the page, page 1 is the guard (the evidence); all 0 after vunmap().
 */
static void check_wrapped_area(struct hm_case *c, void *va, struct page *page)
{
	struct hm_range_entry ent;
	char label[HM_LABEL_LEN];

	hm_mklabel(label, c, "page 0 mapped");
	hm_case_checkpoint(c, hm_expect_mapped(label, va, page_to_pfn(page), HM_PROT_KERNEL),
			   label);
	hm_cp_unmapped(c, (char *)va + PAGE_SIZE, "page 1 is the guard");
	vunmap(va);
	set_entry(&ent, va, page);
	hm_mklabel(label, c, "0 after vunmap");
	hm_case_checkpoint(c, hm_expect_range_unmapped(label, &ent, 1), label);
}

/*
 * vmap_count_above_ram_wraps: vmap() refuses more pages than RAM, also when the byte size
 * of the count wraps on 32 bits: 2^21 + 1 pages is 8 GiB + 4 KiB, which is 4 KiB in an
 * unsigned long; without the check the allocator would hand out a one-page area.
 * Promise: vmap()'s "if (count > totalram_pages()) return NULL;" (mm/vmalloc.c 6.12:3515),
 * older than git (1da177e4c3f4 "Linux-2.6.12-rc2": count > num_physpages).
 */
static void case_vmap_count_wraps(struct hm_case *c)
{
	unsigned int count = (1U << (BITS_PER_LONG + 1 - PAGE_SHIFT)) + 1;
	unsigned long ram = totalram_pages();
	struct page *page = hi(70);
	void *va;

	hm_promise(c, "vmap(): count > totalram_pages() (mm/vmalloc.c 6.12:3515), pre-git 1da177e4c3f4");
	pr_info("# %s: count %u, totalram_pages() %lu, count << PAGE_SHIFT = %#lx\n", c->name,
		count, ram, (unsigned long)count << PAGE_SHIFT);
	hm_case_expect(c, count > ram, "the guest has %lu RAM pages: %u is not more", ram, count);
	va = vmap_count(c, page, count);
	hm_case_expect(c, va == NULL, "vmap of %u pages (RAM %lu) returned %#lx, a %#lx-byte area",
		       count, ram, VA(va), (unsigned long)count << PAGE_SHIFT);
	if (va)
		check_wrapped_area(c, va, page);
}

/*
 * vmap_null_page (which=invalid_page): vmap() refuses a pages array with a NULL entry: it
 * returns NULL, after a WARN, and maps nothing.
 * Promise: WARN_ON(!page) -> -ENOMEM in vmap_pages_pte_range() (mm/vmalloc.c 6.12:556),
 * from db64fe02258f "mm: rewrite vmap layer" (v2.6.28).
 */
static void vmap_refused(struct hm_case *c, struct page *bad, const char *what)
{
	struct page *pages[2] = { alloc_page(GFP_HIGHUSER), bad };
	void *va;

	hm_case_expect(c, pages[0] != NULL, "alloc_page(GFP_HIGHUSER)");
	if (!pages[0])
		return;
	pr_info("# %s: vmap of { pfn %#lx, %s }: expect a WARN in vmap_pages_pte_range\n",
		c->name, page_to_pfn(pages[0]), what);
	va = vmap(pages, 2, VM_MAP, PAGE_KERNEL);
	hm_case_expect(c, va == NULL, "vmap of { page, %s } returned %#lx", what, VA(va));
	if (va)
		vunmap(va);
	__free_page(pages[0]);
}

static void case_vmap_null_page(struct hm_case *c)
{
	hm_promise(c, "WARN_ON(!page) in vmap_pages_pte_range(), db64fe02258f \"mm: rewrite vmap layer\" (v2.6.28)");
	vmap_refused(c, NULL, "NULL");
}

/*
 * vmap_invalid_pfn (which=invalid_page): vmap() refuses a page pointer whose PFN is not
 * valid (here the first PFN past mem_map): NULL, after a WARN. The pointer is never
 * dereferenced: FLATMEM's page_to_pfn() is arithmetic.
 * Promise: 4fcdcc12915c "vmap(): don't allow invalid pages" (Yury Norov, 2022):
 * WARN_ON(!pfn_valid(page_to_pfn(page))) -> -EINVAL (mm/vmalloc.c 6.12:560).
 */
static void case_vmap_invalid_pfn(struct hm_case *c)
{
	hm_promise(c, "4fcdcc12915c \"vmap(): don't allow invalid pages\" (2022)");
#ifdef CONFIG_FLATMEM
	{
		unsigned long pfn = ARCH_PFN_OFFSET + max_mapnr;
		char what[40];

		hm_case_expect(c, !pfn_valid(pfn), "pfn %#lx is valid", pfn);
		snprintf(what, sizeof(what), "invalid pfn %#lx", pfn);
		vmap_refused(c, pfn_to_page(pfn), what);
	}
#else
	hm_case_expect(c, IS_ENABLED(CONFIG_FLATMEM), "needs FLATMEM to name an invalid page");
#endif
}

/*
 * vmap_count_wraps_below_ram (which=size_wrap): 2^20 + 1 pages is not more than RAM on an
 * 8 GiB PAE guest, so the totalram_pages() check lets it through, but count << PAGE_SHIFT
 * wraps to 4 KiB: 6.12 returns a one-page area for a 4 GiB + 4 KiB request (mm/vmalloc.c
 * 6.12:3515-3524). Promise: the vmap() kernel-doc, "Maps @count pages ... Return: the
 * address of the area or %NULL on failure". A known kernel bug when it shows (XFAIL).
 */
static void vmap_wraps_below_ram(struct hm_case *c)
{
	unsigned int count = (1U << (BITS_PER_LONG - PAGE_SHIFT)) + 1;
	unsigned long ram = totalram_pages();
	struct page *page = alloc_page(GFP_HIGHUSER);
	void *va;

	hm_promise(c, "vmap() kernel-doc: maps @count pages or returns NULL (mm/vmalloc.c 6.12:3481-3495)");
	hm_case_expect(c, page != NULL, "alloc_page(GFP_HIGHUSER)");
	if (!page)
		return;
	pr_info("# %s: count %u, totalram_pages() %lu, count << PAGE_SHIFT = %#lx\n", c->name,
		count, ram, (unsigned long)count << PAGE_SHIFT);
	hm_case_expect(c, count <= ram, "the guest has only %lu RAM pages", ram);
	va = vmap_count(c, page, count);
	pr_info("# %s: vmap of %u pages returned %#lx\n", c->name, count, VA(va));
	if (va) {
		check_wrapped_area(c, va, page);
		if (!c->failed)
			hm_case_known_bug(c, "vmap(): count << PAGE_SHIFT wraps on 32-bit with more than 4 GiB of RAM: mm/vmalloc.c:3515-3519 (6.12) return a one-page area");
	}
	__free_page(page);
}

/* 2^20 + 1 pages of RAM exist only above 4 GiB physical: PAE only (hm_ktap.h). */
static void case_vmap_wraps_below_ram(struct hm_case *c)
{
	if (hm_case_needs_pfn_above_4g(c))
		vmap_wraps_below_ram(c);
}

static const struct hm_suite_case promise_cases[] = {
	{ "kmap_local_prot_ro", case_prot_ro },
	{ "kmap_local_prot_ro_sched", case_prot_ro_sched },
	{ "kmap_local_prot_ro_nested", case_prot_ro_nested },
	{ "kmap_local_prot_other", case_prot_other },
	{ "kmap_local_pins_cpu", case_pins_cpu },
	{ "kmap_held_survives_wrap", case_held_survives_wrap },
	{ "vmap_never_exec", case_vmap_never_exec },
	{ "vmap_count_above_ram_wraps", case_vmap_count_wraps },
};

static const struct hm_suite_case invalid_page_cases[] = {
	{ "vmap_null_page", case_vmap_null_page },
	{ "vmap_invalid_pfn", case_vmap_invalid_pfn },
};

static const struct hm_suite_case size_wrap_cases[] = {
	{ "vmap_count_wraps_below_ram", case_vmap_wraps_below_ram },
};

static const struct hm_suite suites[] = {
	{ .name = "promise_suite", .cases = promise_cases, .ncases = ARRAY_SIZE(promise_cases),
	  .init = find_blocks, .case_ready = have_blocks, .exit = free_blocks },
	{ .name = "promise_suite", .cases = invalid_page_cases,
	  .ncases = ARRAY_SIZE(invalid_page_cases) },
	{ .name = "promise_suite", .cases = size_wrap_cases,
	  .ncases = ARRAY_SIZE(size_wrap_cases) },
};

static const char * const suite_which[] = { "all", "invalid_page", "size_wrap" };

static int __init promise_suite_init(void)
{
	struct hm_case c = { .name = "promise_suite_which", .number = 1 };
	int i;

	for (i = 0; i < ARRAY_SIZE(suite_which); i++) {
		if (!strcmp(which, suite_which[i])) {
			hm_run_suite(&suites[i]);
			return 0;
		}
	}
	hm_ktap_header("promise_suite", 1);
	hm_case_expect(&c, false, "unknown which=%s (all | invalid_page | size_wrap)", which);
	hm_case_end(&c);
	return 0;
}

static void __exit promise_suite_exit(void)
{
}

module_init(promise_suite_init);
module_exit(promise_suite_exit);
MODULE_DESCRIPTION("highmem-harness: the promises of kmap_local_page_prot, kmap and vmap");
MODULE_LICENSE("GPL");
