// SPDX-License-Identifier: GPL-2.0
/*
 * tlb_suite.ko: what the CPU translates, not only what the page tables hold. i386 with
 * CONFIG_HIGHMEM64G (PAE), Linux 6.12.
 *
 * A page walk from memory cannot see a missing TLB flush: the PTE is right and the CPU still
 * uses the old translation. A load through the address can. QEMU's TCG keeps a software
 * TLB per vCPU that only the guest's INVLPG, CR3/CR4.PGE writes and flush IPIs empty, as on
 * hardware. So every case maps page A at an address, reads A's pattern through it (the TLB
 * now holds address -> A), has the kernel unmap it and hand the same address out again for
 * page B, and reads again: it must see B's pattern. Stale data names the flush that is
 * missing. A write through the reused address then lands in B's page, which the harness
 * reads physically (HM_CHECK_CONTENT), and A's page keeps its own pattern.
 *
 * The patterns are written into A and B through another mapping (kmap() for the fixmap
 * cases, kmap_local_page() for the PKMAP and vmalloc ones). Between the first read and the
 * last one there is no checkpoint, and the task does not let another task run on its CPU
 * where it can avoid it: a CR3 write flushes QEMU's whole TLB and would hide a missing flush.
 *
 * Cases (mm/highmem.c, mm/vmalloc.c, arch/x86/include/asm/highmem.h of Debian's 6.12):
 *  1 tlb_kmap_local_reuse   kunmap_local_indexed() (highmem.c:597) clears the slot (:627) and
 *                           flushes it: arch_kmap_local_post_unmap() (:628) is
 *                           flush_tlb_one_kernel() (asm/highmem.h:66-68). Depth 0.
 *  2 tlb_kmap_local_nested  the same for the depth-1 slot, with a depth-0 map held.
 *  3 tlb_kmap_atomic_reuse  kunmap_atomic() -> __kunmap_atomic() (highmem-internal.h:124)
 *                           -> kunmap_local_indexed() (highmem.c:627-628).
 *  4 tlb_kmap_local_sched   __kmap_local_sched_out() (highmem.c:646) clears and flushes the
 *                           slots of a task switched out (:678-679); another task on the
 *                           CPU reuses the slot. kmap_local slots are per CPU and their
 *                           flush is local, so no case reads them from the other CPU.
 *  5 tlb_pkmap_wrap         flush_all_zero_pkmaps() (highmem.c:197), called by
 *                           map_new_virtual() when the slot index wraps (:258-259), clears
 *                           the kunmap()ed slots (:230) and flushes the PKMAP range on every
 *                           CPU (:236). Read on two CPUs.
 *  6 tlb_vmap_purge         vunmap() clears the PTEs (vunmap_range_noflush, vmalloc.c:512)
 *                           but defers the flush; vm_unmap_aliases() (:2981) ->
 *                           _vm_unmap_aliases() (:2963) -> __purge_vmap_area_lazy() (:2306)
 *                           flushes (:2348) before the range is free again. Read on two CPUs.
 *  7 tlb_vmap_lazy_drain    the same purge without vm_unmap_aliases(): vunmap()s past
 *                           lazy_max_pages() (:2150) make free_vmap_area_noflush() schedule
 *                           drain_vmap_area_work() (:2440, :2399). Read on two CPUs.
 * A case whose address is never handed out again, or that needs two CPUs on a one-CPU
 * guest, ends SKIP with the reason, not PASS.
 *
 * mutate=noflush proves the reads can fail: after the kernel mapped B at the address, the
 * module puts A's translation back into the TLB of each CPU that reads (set_pte() of A
 * through lookup_address(), a read, set_pte() of B again, no flush) - the TLB a kernel
 * without the flush would leave - and every case must FAIL, naming the stale value. The
 * module flushes every CPU itself before it unmaps.
 */
#include <linux/module.h>
#include <linux/completion.h>
#include <linux/cpu.h>
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
#include <linux/vmalloc.h>
#include <asm/pgtable.h>
#include <asm/tlbflush.h>
#include "hm_checkpoint.h"
#include "hm_context.h"
#include "hm_ktap.h"
#include "hm_cpus.h"
#include "hm_pages.h"
#include "hm_versions.h"

/* addresses are printed raw: they are what the tests are about */
#define VA(p)		((unsigned long)(p))

/* The first u64 of a page: a tag and the PFN, so that a value names its page. */
#define TAG_A		0xaaaa000000000000ULL	/* the page mapped first */
#define TAG_B		0xbbbb000000000000ULL	/* the page mapped at the same address next */
#define TAG_HELD	0xcccc000000000000ULL	/* a map held below the one reused */
#define TAG_WRITE	0x5757000000000000ULL	/* written through the reused address */

#define POOL_FIRST	16		/* pages hi(0..15) are the fixed-page cases' */
#define PKMAP_TRIES	(3 * LAST_PKMAP)	/* kmap()s to reach a slot index */
#define VMAP_TRIES	2000		/* vmap()s to get a purged address back */
#define DRAIN_ALIASES	4096		/* pages of one filler area in the drain case */
#define DRAIN_ROUNDS	64		/* filler areas at most: 64 * 16 MiB of lazy backlog */
#define DRAIN_WAITS	8		/* tries for the purged address after each filler */

static char *mutate = "";
module_param(mutate, charp, 0444);
MODULE_PARM_DESC(mutate, "noflush: leave A's translation in the TLB (every case must FAIL)");

/* Two highmem blocks (hm_find_blocks()), one above 4 GiB physical and one below. */
static struct page *blk_above;
static struct page *blk_below;

static struct page *hi(int i)
{
	return blk_above + i;
}

static struct page *lo(int i)
{
	return blk_below + i;
}

static void find_blocks(void)
{
	int n = hm_find_blocks(HM_BLOCK_ORDER, &blk_above, &blk_below);

	pr_info("# tlb_suite: %d blocks scanned, above 4G pfn %#lx, below pfn %#lx, mutate '%s'\n",
		n, blk_above ? page_to_pfn(blk_above) : 0,
		blk_below ? page_to_pfn(blk_below) : 0, mutate);
}

static void free_blocks(void)
{
	hm_free_blocks(HM_BLOCK_ORDER, blk_above, blk_below);
}

static bool have_blocks(struct hm_case *c)
{
	hm_case_expect(c, blk_above && blk_below,
		       "highmem blocks above and below 4 GiB (above %d, below %d)",
		       !!blk_above, !!blk_below);
	return blk_above && blk_below;
}

/* A check of the module's own failed: the reason as a diagnostic. */
#define case_fail(c, fmt, ...)							\
	do {									\
		(c)->failed = true;						\
		pr_info("# %s: " fmt "\n", (c)->name, ##__VA_ARGS__);		\
	} while (0)

static bool noflush(void)
{
	return !strcmp(mutate, "noflush");
}

static u64 pattern(u64 tag, struct page *page)
{
	return tag | page_to_pfn(page);
}

/* The first u64 of a page through kmap(): apart from the fixmap slots under test. */
static void put_via_pkmap(struct page *page, u64 val)
{
	u64 *p = kmap(page);

	WRITE_ONCE(*p, val);
	kunmap(page);
}

static u64 get_via_pkmap(struct page *page)
{
	u64 *p = kmap(page);
	u64 val = READ_ONCE(*p);

	kunmap(page);
	return val;
}

/* The same through kmap_local_page(): apart from the PKMAP and vmalloc addresses. */
static void put_via_local(struct page *page, u64 val)
{
	u64 *p = kmap_local_page(page);

	WRITE_ONCE(*p, val);
	kunmap_local(p);
}

static u64 get_via_local(struct page *page)
{
	u64 *p = kmap_local_page(page);
	u64 val = READ_ONCE(*p);

	kunmap_local(p);
	return val;
}

/* The read before the reuse: A's pattern, or the case cannot tell stale data apart. */
static void expect_first(struct hm_case *c, int cpu, const void *va, u64 got, u64 want)
{
	if (got == want)
		return;
	c->failed = true;
	pr_info("# %s: CPU%d read %#llx through %#lx before the reuse, expected A's %#llx\n",
		c->name, cpu, got, VA(va), want);
}

/* The read after the reuse: B's pattern; A's is a stale translation that flusher left. */
static void expect_reused(struct hm_case *c, int cpu, const void *va, u64 got, u64 want,
			  u64 stale, const char *flusher)
{
	if (got == want)
		return;
	c->failed = true;
	if (got == stale)
		pr_info("# %s: CPU%d read %#llx through %#lx after the reuse, expected B's %#llx (stale TLB: A's data; %s did not flush CPU%d)\n",
			c->name, cpu, got, VA(va), want, flusher, cpu);
	else
		pr_info("# %s: CPU%d read %#llx through %#lx after the reuse, expected B's %#llx (A's is %#llx)\n",
			c->name, cpu, got, VA(va), want, stale);
}

/* A's page after the write through the reused address: its own pattern still. */
static void expect_untouched(struct hm_case *c, struct page *a, u64 got, u64 want,
			     const void *va)
{
	if (got == want)
		return;
	c->failed = true;
	pr_info("# %s: A's page (pfn %#lx) holds %#llx after the write through %#lx, expected its own %#llx%s\n",
		c->name, page_to_pfn(a), got, VA(va), want,
		(got & ~0xffffffffULL) == TAG_WRITE ? " (the write went to A: stale TLB)" : "");
}

/*
 * mutate=noflush: the TLB a kernel that forgot its flush leaves. The live PTE at va maps B;
 * point it at stale (whose first u64 is stale_val) for a moment, read through va on each
 * CPU of cpus (which caches va -> stale there), and put B back without a flush. Call with
 * preemption off, right before the checked reads: anything printed or touched in between
 * may evict the entry from QEMU's small direct-mapped TLB.
 */
static unsigned long stale_va;	/* what make_stale() left stale: mutate_cleanup() drops it */

static void make_stale(struct hm_case *c, const void *va, struct page *stale, u64 stale_val,
		       const int *cpus, int ncpus)
{
	unsigned int level;
	pte_t *ptep = lookup_address(VA(va), &level);
	pte_t real;
	u64 got[2];
	int i;

	if (!ptep || level != PG_LEVEL_4K || !pte_present(*ptep)) {
		case_fail(c, "no 4K PTE at %#lx to make stale", VA(va));
		return;
	}
	real = *ptep;
	stale_va = VA(va);
	pr_info("# %s: mutate=noflush: %d CPU(s) to cache %#lx -> pfn %#lx, PTE maps pfn %#lx\n",
		c->name, ncpus, VA(va), page_to_pfn(stale), (unsigned long)pte_pfn(real));
	set_pte(ptep, pfn_pte(page_to_pfn(stale), pte_pgprot(real)));
	for (i = 0; i < ncpus; i++)
		got[i] = read_on(cpus[i], va);
	set_pte(ptep, real);
	for (i = 0; i < ncpus; i++)
		if (got[i] != stale_val)
			case_fail(c, "mutate=noflush: CPU%d read %#llx through %#lx mapped to A, not A's %#llx",
				  cpus[i], got[i], VA(va), stale_val);
}

static void flush_here(void *unused)
{
	hm_flush_tlb_here(stale_va);	/* __flush_tlb_all() up to 6.14: hm_versions.h */
}

/* After mutate=noflush: drop the stale translations on every CPU before unmapping. */
static void mutate_cleanup(void)
{
	if (noflush())
		on_each_cpu(flush_here, NULL, 1);
}

/* Checkpoint: va maps pfn now, and the u64 at pfn's physical address is content. */
static void cp_content(struct hm_case *c, const void *va, struct page *page, u32 where,
		       u32 flags, u32 aux, u64 content, const char *what)
{
	struct hm_expect e = HM_EXPECT_INIT(HM_EXPECT_MAPPED);
	char label[HM_LABEL_LEN];

	e.prot = HM_PROT_KERNEL;
	e.va = (u32)VA(va);
	e.pfn = page_to_pfn(page);
	e.where = where;
	e.flags = HM_CHECK_CONTENT | flags;
	e.content = content;
	e.aux = aux;
	hm_mklabel(label, c, "%s", what);
	hm_case_checkpoint(c, hm_checkpoint_at(&e, label), label);
}

/* The API under test as functions: kunmap_local() and kunmap_atomic() are macros. */
static void *map_local(struct page *page)
{
	return kmap_local_page(page);
}

static void unmap_local(void *va)
{
	kunmap_local(va);
}

static void *map_atomic(struct page *page)
{
	return kmap_atomic(page);
}

static void unmap_atomic(void *va)
{
	kunmap_atomic(va);
}

static const struct hm_map_ops local_ops = { .map = map_local, .unmap = unmap_local };
static const struct hm_map_ops atomic_ops = { .map = map_atomic, .unmap = unmap_atomic };

/*
 * 1-3: map a at a slot (depth 0, or 1 above held), read, unmap, map b: the same slot, and
 * the read sees b. Preemption stays off from the first map to the last unmap: one CPU, one
 * slot, and no context switch to flush the TLB behind the kernel's back.
 */
static void slot_reuse(struct hm_case *c, const struct hm_map_ops *ops, struct page *a,
		       struct page *b, struct page *held, const char *flusher)
{
	u64 pa = pattern(TAG_A, a), pb = pattern(TAG_B, b), w = pattern(TAG_WRITE, b);
	u64 ph = held ? pattern(TAG_HELD, held) : 0, got;
	int depth = held ? 1 : 0, cpu;
	void *vh = NULL, *va, *vb;

	put_via_pkmap(a, pa);
	put_via_pkmap(b, pb);
	if (held)
		put_via_pkmap(held, ph);

	preempt_disable();
	cpu = smp_processor_id();
	if (held) {
		vh = ops->map(held);
		hm_cp_slot(c, vh, page_to_pfn(held), cpu, 0, "held map d0");
	}
	va = ops->map(a);
	cp_content(c, va, a, HM_WHERE_KMAP_LOCAL(cpu, depth), 0, 0, pa, "A mapped, RAM holds A's");
	got = READ_ONCE(*(u64 *)va);	/* this CPU's TLB: va -> A */
	expect_first(c, cpu, va, got, pa);
	ops->unmap(va);
	vb = ops->map(b);
	if (noflush())
		make_stale(c, vb, a, pa, &cpu, 1);
	got = READ_ONCE(*(u64 *)vb);
	WRITE_ONCE(*(u64 *)vb, w);	/* before any print: it meets the same TLB as the read */
	hm_case_expect(c, vb == va, "B mapped at %#lx, A was at %#lx", VA(vb), VA(va));
	expect_reused(c, cpu, vb, got, pb, pa, flusher);
	cp_content(c, vb, b, HM_WHERE_KMAP_LOCAL(cpu, depth), 0, 0, w,
		   "B mapped, write in B's RAM");
	mutate_cleanup();
	ops->unmap(vb);
	hm_cp_unmapped(c, vb, "B unmapped");
	if (held) {
		got = READ_ONCE(*(u64 *)vh);
		hm_case_expect(c, got == ph, "held map %#lx reads %#llx, expected %#llx", VA(vh),
			       got, ph);
		ops->unmap(vh);
		hm_cp_unmapped(c, vh, "held map unmapped");
	}
	preempt_enable();

	expect_untouched(c, a, get_via_pkmap(a), pa, vb);
	got = get_via_pkmap(b);
	hm_case_expect(c, got == w, "B's page holds %#llx, expected the write %#llx", got, w);
}

static void case_local_reuse(struct hm_case *c)
{
	slot_reuse(c, &local_ops, hi(0), hi(1), NULL, "kunmap_local_indexed()");
}

static void case_local_nested(struct hm_case *c)
{
	slot_reuse(c, &local_ops, hi(2), hi(3), lo(0), "kunmap_local_indexed()");
}

static void case_atomic_reuse(struct hm_case *c)
{
	slot_reuse(c, &atomic_ops, hi(4), hi(5), NULL, "kunmap_atomic()");
}

/* 4: task A holds a at its slot and sleeps; kthread B on A's CPU maps q at the same slot. */
struct sched_ctx {
	struct hm_case *c;
	int cpu;
	void *va;		/* A's map */
	struct page *a, *q;
	bool b_ran;
	struct completion done;
};

static int sched_b_fn(void *arg)
{
	struct sched_ctx *x = arg;
	struct hm_case *c = x->c;
	u64 pa = pattern(TAG_A, x->a), pq = pattern(TAG_B, x->q), w = pattern(TAG_WRITE, x->q);
	u64 got;
	void *vq;
	int cpu;

	x->b_ran = true;
	preempt_disable();
	cpu = smp_processor_id();
	hm_case_expect(c, cpu == x->cpu, "B on cpu %d, A on %d", cpu, x->cpu);
	vq = kmap_local_page(x->q);	/* B's depth 0: A's slot, cleared by A's sched_out */
	if (noflush())
		make_stale(c, vq, x->a, pa, &cpu, 1);
	got = READ_ONCE(*(u64 *)vq);
	WRITE_ONCE(*(u64 *)vq, w);
	hm_case_expect(c, vq == x->va, "B mapped at %#lx, A's slot is %#lx", VA(vq), VA(x->va));
	expect_reused(c, cpu, vq, got, pq, pa, "__kmap_local_sched_out()");
	cp_content(c, vq, x->q, HM_WHERE_KMAP_LOCAL(cpu, 0), 0, 0, w, "B: q mapped, write in q's RAM");
	mutate_cleanup();
	kunmap_local(vq);
	preempt_enable();
	kthread_complete_and_exit(&x->done, 0);
}

static void case_local_sched(struct hm_case *c)
{
	struct sched_ctx x = { .c = c, .a = hi(6), .q = hi(7) };
	u64 pa = pattern(TAG_A, x.a), got;
	struct task_struct *b;

	init_completion(&x.done);
	put_via_pkmap(x.a, pa);
	put_via_pkmap(x.q, pattern(TAG_B, x.q));
	/* Created first: kthread_create() sleeps, and A's map must not see that switch yet. */
	b = kthread_create(sched_b_fn, &x, "hm_tlb_sched_b");
	hm_case_expect(c, !IS_ERR(b), "kthread_create: %ld", PTR_ERR(b));
	if (IS_ERR(b))
		return;

	/* A stays on x.cpu; B is bound there before A's map, so nothing sleeps in between. */
	migrate_disable();
	x.cpu = smp_processor_id();
	kthread_bind(b, x.cpu);
	x.va = kmap_local_page(x.a);
	cp_content(c, x.va, x.a, HM_WHERE_KMAP_LOCAL(x.cpu, 0), 0, 0, pa, "A mapped, RAM holds A's");
	got = READ_ONCE(*(u64 *)x.va);	/* x.cpu's TLB: va -> A */
	expect_first(c, x.cpu, x.va, got, pa);
	wake_up_process(b);
	wait_for_completion(&x.done);	/* A switched out: __kmap_local_sched_out() */
	hm_case_expect(c, x.b_ran, "B did not run");

	/* Back in: __kmap_local_sched_in() restored A's PTE; B's kunmap flushed q's. */
	got = READ_ONCE(*(u64 *)x.va);
	if (got != pa) {
		c->failed = true;
		pr_info("# %s: A read %#llx through %#lx after B ran, expected its own %#llx%s\n",
			c->name, got, VA(x.va), pa,
			got == pattern(TAG_WRITE, x.q) ? " (stale TLB: B's q; kunmap_local_indexed() did not flush)" : "");
	}
	hm_cp_slot(c, x.va, page_to_pfn(x.a), x.cpu, 0, "A: map restored");
	kunmap_local(x.va);
	migrate_enable();
	hm_cp_unmapped(c, x.va, "A unmapped");
	expect_untouched(c, x.a, get_via_pkmap(x.a), pa, x.va);
}

/*
 * 5: a PKMAP address unmapped on one CPU is reused after the wrap; both CPUs must see the
 * new page. Fresh pages (no kmap() address) come from the two blocks, past the fixed ones;
 * the wrap clears the slots of those used before it, so they are fresh again.
 */
struct pool {
	int next;	/* index over hi(POOL_FIRST..) then lo(POOL_FIRST..) */
};

static struct page *pool_page(int i)
{
	int n = HM_BLOCK_PAGES - POOL_FIRST;

	return i < n ? hi(POOL_FIRST + i) : lo(POOL_FIRST + i - n);
}

static struct page *next_fresh(struct pool *pl)
{
	int n = 2 * (HM_BLOCK_PAGES - POOL_FIRST), i;

	for (i = 0; i < n; i++) {
		struct page *p = pool_page(pl->next);

		pl->next = (pl->next + 1) % n;
		if (!page_address(p))
			return p;
	}
	return NULL;
}

static void cp_pkmap(struct hm_case *c, const void *va, struct page *page, u64 content,
		     const char *what)
{
	cp_content(c, va, page, HM_WHERE_PKMAP, HM_CHECK_PKMAP_COUNT, 2, content, what);
}

static void case_pkmap_wrap(struct hm_case *c)
{
	struct pool pl = { 0 };
	struct page *a, *b = NULL, *p;
	u64 pa, pb = 0, w = 0, got, got2[2];
	int cpus[2], i, n, last;
	void *va, *v;

	cpus_read_lock();
	if (!two_cpus(c, cpus))
		goto out;
	/* Every page that may become B gets its pattern now: only kmap() after the wrap. */
	for (i = 0; i < 2 * (HM_BLOCK_PAGES - POOL_FIRST); i++)
		put_via_local(pool_page(i), pattern(TAG_B, pool_page(i)));
	a = next_fresh(&pl);
	hm_case_expect(c, a != NULL, "no highmem page without a kmap() address");
	if (!a)
		goto out;
	pa = pattern(TAG_A, a);
	put_via_local(a, pa);
	va = kmap(a);
	hm_case_expect(c, VA(va) >= PKMAP_ADDR(0) && VA(va) < PKMAP_ADDR(LAST_PKMAP),
		       "A's kmap %#lx outside PKMAP", VA(va));
	cp_pkmap(c, va, a, pa, "A mapped, count 2");

	/* Take the slots after A's, kunmap()ing each, up to the last: the next one wraps. */
	last = PKMAP_NR(VA(va));
	for (n = 0; last != LAST_PKMAP - 1 && n < PKMAP_TRIES; n++) {
		p = next_fresh(&pl);
		if (!p)
			break;
		v = kmap(p);
		last = PKMAP_NR(VA(v));
		kunmap(p);
	}
	pr_info("# %s: A pfn %#lx at %#lx (slot %lu), %d kmaps to slot %d\n", c->name,
		page_to_pfn(a), VA(va), PKMAP_NR(VA(va)), n, last);
	if (last != LAST_PKMAP - 1) {
		case_fail(c, "slot %d, not the last, after %d kmaps", last, n);
		kunmap(a);
		goto out;
	}

	for (i = 0; i < 2; i++)		/* both TLBs: va -> A */
		expect_first(c, cpus[i], va, read_on(cpus[i], va), pa);
	kunmap(a);			/* count 1: the PTE stays until the wrap */

	/* The next new kmap() wraps: flush_all_zero_pkmaps(). Map until one gets va. */
	for (n = 0; n < PKMAP_TRIES; n++) {
		p = next_fresh(&pl);
		if (!p)
			break;
		v = kmap(p);
		if (v == va) {
			b = p;
			break;
		}
		kunmap(p);
	}
	if (!b) {
		pr_info("# %s: no kmap() got %#lx again in %d maps; A's address now %#lx\n",
			c->name, VA(va), n, VA(page_address(a)));
		if (page_address(a))
			case_fail(c, "A's slot %#lx not cleared by %d kmaps past the wrap",
				  VA(va), n);
		else
			hm_case_skip(c, "the wrap cleared A's slot but another user took it");
		goto out;
	}
	pb = pattern(TAG_B, b);
	w = pattern(TAG_WRITE, b);
	preempt_disable();
	if (noflush())
		make_stale(c, va, a, pa, cpus, 2);
	for (i = 0; i < 2; i++)
		got2[i] = read_on(cpus[i], va);
	WRITE_ONCE(*(u64 *)va, w);	/* before any print: it meets the same TLB as the reads */
	preempt_enable();
	for (i = 0; i < 2; i++)
		expect_reused(c, cpus[i], va, got2[i], pb, pa, "flush_all_zero_pkmaps()");
	pr_info("# %s: B pfn %#lx at %#lx after %d kmaps past the wrap\n", c->name,
		page_to_pfn(b), VA(va), n + 1);
	cp_pkmap(c, va, b, w, "B mapped, count 2, write in B's RAM");
	mutate_cleanup();
	kunmap(b);

	expect_untouched(c, a, get_via_local(a), pa, va);
	got = get_via_local(b);
	hm_case_expect(c, got == w, "B's page holds %#llx, expected the write %#llx", got, w);
out:
	cpus_read_unlock();
}

/* 6, 7: vmap() of one page; each area is followed by a guard page. */
static void *vmap_one(struct page *page)
{
	return vmap(&page, 1, VM_MAP, PAGE_KERNEL);
}

static void cp_vmap(struct hm_case *c, const void *va, struct page *page, u64 content,
		    const char *what)
{
	cp_content(c, va, page, HM_WHERE_VMALLOC, 0, 0, content, what);
}

/*
 * vmap() b until it returns va, at most tries times; the areas that land elsewhere stay
 * mapped (in held[]) so that the allocator moves on. Returns how many tries it took, or -1.
 */
static int vmap_until(struct page *b, void *va, void **held, int *nheld, int tries)
{
	int i;

	for (i = 0; i < tries; i++) {
		void *v = vmap_one(b);

		if (!v)
			return -1;
		if (v == va)
			return i + 1;
		held[(*nheld)++] = v;
	}
	return -1;
}

/* Read B through the purged address on both CPUs, write through it, check RAM. */
static void vmap_check_reused(struct hm_case *c, const int cpus[2], void *va, struct page *a,
			      struct page *b, const char *flusher)
{
	u64 pa = pattern(TAG_A, a), pb = pattern(TAG_B, b), w = pattern(TAG_WRITE, b);
	u64 got[2], in_b;
	int i;

	preempt_disable();
	if (noflush())
		make_stale(c, va, a, pa, cpus, 2);
	for (i = 0; i < 2; i++)
		got[i] = read_on(cpus[i], va);
	WRITE_ONCE(*(u64 *)va, w);	/* before any print: it meets the same TLB as the reads */
	preempt_enable();
	for (i = 0; i < 2; i++)
		expect_reused(c, cpus[i], va, got[i], pb, pa, flusher);
	cp_vmap(c, va, b, w, "B mapped, write in B's RAM");
	mutate_cleanup();
	vunmap(va);
	expect_untouched(c, a, get_via_local(a), pa, va);
	in_b = get_via_local(b);
	hm_case_expect(c, in_b == w, "B's page holds %#llx, expected the write %#llx", in_b, w);
}

/* Map a at va, check it and read it on both CPUs: each TLB caches va -> a. */
static void vmap_first(struct hm_case *c, const int cpus[2], void *va, struct page *a)
{
	u64 pa = pattern(TAG_A, a);
	int i;

	cp_vmap(c, va, a, pa, "A mapped, RAM holds A's");
	for (i = 0; i < 2; i++)
		expect_first(c, cpus[i], va, read_on(cpus[i], va), pa);
}

static void case_vmap_purge(struct hm_case *c)
{
	struct page *a = hi(8), *b = hi(9);
	void **held = kcalloc(VMAP_TRIES, sizeof(*held), GFP_KERNEL);
	int cpus[2], nheld = 0, tries, i;
	void *va;

	cpus_read_lock();
	hm_case_expect(c, held != NULL, "out of memory");
	if (!held || !two_cpus(c, cpus))
		goto out;
	put_via_local(a, pattern(TAG_A, a));
	put_via_local(b, pattern(TAG_B, b));
	/* No lazy backlog: A gets the lowest free range, and the purge below is A's. */
	vm_unmap_aliases();
	va = vmap_one(a);
	hm_case_expect(c, va != NULL, "vmap of A failed");
	if (!va)
		goto out;
	vmap_first(c, cpus, va, a);
	vunmap(va);		/* PTE 0 now; the flush waits for the purge */
	vm_unmap_aliases();	/* purge: flush, then the range is free */
	tries = vmap_until(b, va, held, &nheld, VMAP_TRIES);
	if (tries < 0)
		hm_case_skip(c, "vmap() never returned the purged address again");
	else
		vmap_check_reused(c, cpus, va, a, b,
				  "__purge_vmap_area_lazy() (vm_unmap_aliases())");
	pr_info("# %s: A pfn %#lx at %#lx, B pfn %#lx there after %d vmap()s\n", c->name,
		page_to_pfn(a), VA(va), page_to_pfn(b), tries);
out:
	for (i = 0; i < nheld; i++)
		vunmap(held[i]);
	cpus_read_unlock();
	kfree(held);
}

/* The purge threshold of mm/vmalloc.c:2150 (static there). */
static unsigned long lazy_max(void)
{
	return fls(num_online_cpus()) * (32UL * 1024 * 1024 / PAGE_SIZE);
}

/* A filler area of DRAIN_ALIASES aliases of one page, vunmap()ed at once: lazy backlog. */
static bool filler_cycle(struct page **fill)
{
	void *v = vmap(fill, DRAIN_ALIASES, VM_MAP, PAGE_KERNEL);

	if (!v)
		return false;
	vunmap(v);
	return true;
}

static void case_vmap_lazy_drain(struct hm_case *c)
{
	struct page *a = hi(10), *b = hi(11);
	struct page **fill = kvmalloc_array(DRAIN_ALIASES, sizeof(*fill), GFP_KERNEL);
	void **held = kcalloc(DRAIN_ROUNDS * DRAIN_WAITS, sizeof(*held), GFP_KERNEL);
	unsigned long backlog = 0, step = DRAIN_ALIASES + 1;
	int cpus[2], nheld = 0, round, tries = -1, i;
	void *va;

	cpus_read_lock();
	hm_case_expect(c, fill && held, "out of memory");
	if (!fill || !held || !two_cpus(c, cpus))
		goto out;
	for (i = 0; i < DRAIN_ALIASES; i++)
		fill[i] = lo(1);
	put_via_local(a, pattern(TAG_A, a));
	put_via_local(b, pattern(TAG_B, b));
	vm_unmap_aliases();	/* backlog about 0 */
	va = vmap_one(a);
	hm_case_expect(c, va != NULL, "vmap of A failed");
	if (!va)
		goto out;
	/*
	 * Backlog up to where A's vunmap() stays below the threshold and one more filler
	 * crosses it: A's reads come just before the drain.
	 */
	while (backlog + step + 2 <= lazy_max() && filler_cycle(fill))
		backlog += step;
	vmap_first(c, cpus, va, a);
	vunmap(va);		/* lazy: PTE 0, no flush */
	for (round = 0; round < DRAIN_ROUNDS && tries < 0; round++) {
		hm_case_expect(c, filler_cycle(fill), "filler vmap of %d pages failed",
			       DRAIN_ALIASES);
		backlog += step;
		for (i = 0; i < DRAIN_WAITS && tries < 0; i++) {
			usleep_range(1000, 2000);	/* drain_vmap_area_work() may run */
			tries = vmap_until(b, va, held, &nheld, 1);
		}
	}
	if (tries < 0)
		hm_case_skip(c, "vmap() never returned the lazily freed address again");
	else
		vmap_check_reused(c, cpus, va, a, b, "__purge_vmap_area_lazy() (drain_vmap_area_work())");
	pr_info("# %s: threshold %lu pages, %lu vunmap()ed, A pfn %#lx at %#lx, B there: %s after %d vmap()s\n",
		c->name, lazy_max(), backlog, page_to_pfn(a), VA(va),
		tries < 0 ? "no" : "yes", nheld + (tries < 0 ? 0 : 1));
out:
	for (i = 0; i < nheld; i++)
		vunmap(held[i]);
	cpus_read_unlock();
	kfree(held);
	kvfree(fill);
}

static const struct hm_suite_case cases[] = {
	{ "tlb_kmap_local_reuse", case_local_reuse },
	{ "tlb_kmap_local_nested", case_local_nested },
	{ "tlb_kmap_atomic_reuse", case_atomic_reuse },
	{ "tlb_kmap_local_sched", case_local_sched },
	{ "tlb_pkmap_wrap", case_pkmap_wrap },
	{ "tlb_vmap_purge", case_vmap_purge },
	{ "tlb_vmap_lazy_drain", case_vmap_lazy_drain },
};

static const struct hm_suite suite = {
	.name = "tlb_suite",
	.cases = cases,
	.ncases = ARRAY_SIZE(cases),
	.init = find_blocks,
	.case_ready = have_blocks,
	.exit = free_blocks,
};

HM_SUITE_MODULE(suite, "highmem-harness: stale TLB entries after kmap_local/kmap/vmap reuse, read through the CPU");
