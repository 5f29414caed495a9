// SPDX-License-Identifier: GPL-2.0
/*
 * vmram_suite.ko: vm_map_ram()/vm_unmap_ram() (mm/vmalloc.c) of highmem pages above and
 * below 4 GiB, every PTE of each area checked live by the harness.
 *
 * What the cases rely on (mm/vmalloc.c 6.12):
 *  - vm_map_ram() of count <= VMAP_MAX_ALLOC (BITS_PER_LONG, 32 on i386) pages takes its
 *    range from the calling CPU's vmap block (vb_alloc :2826), more from its own vmap area
 *    (alloc_vmap_area :3052); both map with PAGE_KERNEL (vmap_pages_range :3066): P RW A D
 *    G NX, one 4 KiB PTE per page, in [VMALLOC_START, VMALLOC_END).
 *  - vm_unmap_ram() clears the PTEs at once (vb_free :2897 -> vunmap_range_noflush, or
 *    free_unmap_vmap_area :3019); the TLB flush is lazy: a block's dirty range is flushed
 *    by vm_unmap_aliases() (:2981, the dirty_min/dirty_max walk :2930-2950), a large area's
 *    by the lazy purge, before the range is handed out again.
 *  - vmalloc_to_page() finds each mapped page, and none after the unmap.
 * A case that needs two CPUs on a one-CPU guest, or whose range is never handed out again,
 * ends SKIP with the reason, not PASS.
 */
#include <linux/module.h>
#include <linux/cpu.h>
#include <linux/cpumask.h>
#include <linux/gfp.h>
#include <linux/highmem.h>
#include <linux/mm.h>
#include <linux/numa.h>
#include <linux/pid.h>
#include <linux/rcupdate.h>
#include <linux/sched.h>
#include <linux/string.h>
#include <linux/version.h>
#include <linux/slab.h>
#include <linux/smp.h>
#include <linux/vmalloc.h>
#include <linux/workqueue.h>
#include "hm_checkpoint.h"
#include "hm_ktap.h"
#include "hm_cpus.h"
#include "hm_pages.h"

#define VA(p)		((unsigned long)(p))
#define MAX_PAGES	64
#define SMALL_MAX	32		/* VMAP_MAX_ALLOC on i386 (BITS_PER_LONG) */
#define REUSE_TRIES	2000		/* vm_map_ram()s to get a purged range back */
#define TAG_A		0xaaaa000000000000ULL
#define TAG_B		0xbbbb000000000000ULL

HM_BLOCK_PAIR();

static char *mutate = "";
module_param(mutate, charp, 0444);
MODULE_PARM_DESC(mutate, "pgd: init's page directory loses the area's entry while it is checked (PGD must FAIL)");

/*
 * mutate=pgd: the page-table sync missing for one process. init's (pid 1) page directory
 * is made to lose the directory entry of @va: on PAE its top entry points at a copy of the
 * kernel PMD page with @va's entry cleared; on 2-level tables its PDE is cleared. Nothing
 * of init runs in between (the guest is stopped at the checkpoint right after); restored
 * by pgd_restore(). The copy is never freed: another CPU may have loaded it.
 */
static pgd_t *pgd_slot;
static pgd_t pgd_saved;

static void pgd_break(const void *va)
{
	struct task_struct *t;

	rcu_read_lock();
	t = pid_task(find_vpid(1), PIDTYPE_PID);
	pgd_slot = t && t->mm ? t->mm->pgd + pgd_index(VA(va)) : NULL;
	rcu_read_unlock();
	if (!pgd_slot)
		return;
	pgd_saved = *pgd_slot;
#ifdef CONFIG_X86_PAE
	{
		u64 *copy = (u64 *)get_zeroed_page(GFP_ATOMIC);

		if (!copy) {
			pgd_slot = NULL;
			return;
		}
		memcpy(copy, __va(pgd_val(pgd_saved) & PTE_PFN_MASK), PAGE_SIZE);
		copy[pmd_index(VA(va))] = 0;
		WRITE_ONCE(*(u64 *)pgd_slot, (u64)__pa(copy) | _PAGE_PRESENT);
	}
#else
	WRITE_ONCE(*(unsigned long *)pgd_slot, 0);
#endif
}

static void pgd_restore(void)
{
	if (pgd_slot)
		*pgd_slot = pgd_saved;
	pgd_slot = NULL;
}

static struct hm_range_entry ent[MAX_PAGES];

/* n pages alternating above and below 4 GiB, from page base on (base + n <= 512). */
static void pick(struct page **pages, unsigned int n, unsigned int base)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		pages[i] = i % 2 ? lo(base + i) : hi(base + i);
}

static u64 tag(u64 t, struct page *p)
{
	return t | page_to_pfn(p);
}

/* The first u64 of each page, written through kmap_local (not through the area). */
static void put_tags(struct page **pages, unsigned int n, u64 t)
{
	unsigned int i;

	for (i = 0; i < n; i++) {
		u64 *p = kmap_local_page(pages[i]);

		*p = tag(t, pages[i]);
		kunmap_local(p);
	}
}

static void cp_range(struct hm_case *c, void *va, struct page **pages, unsigned int n,
		     bool mapped, const char *what)
{
	struct hm_expect e = HM_EXPECT_INIT(mapped ? HM_EXPECT_RANGE : HM_EXPECT_RANGE_UNMAPPED);
	char label[HM_LABEL_LEN];
	unsigned int i;

	for (i = 0; i < n; i++) {
		ent[i].va = (u32)(VA(va) + i * PAGE_SIZE);
		ent[i].pad = 0;
		ent[i].pfn = page_to_pfn(pages[i]);
	}
	e.prot = mapped ? HM_PROT_KERNEL : HM_PROT_NONE;
	e.count = n;
	e.entries = (u32)VA(ent);
	e.where = HM_WHERE_VMALLOC;
	hm_mklabel(label, c, "%s", what);
	hm_case_checkpoint(c, hm_checkpoint_at(&e, label), label);
}

/* Page 0 of the area mapped, and what was written through the area is in its RAM. */
static void cp_written(struct hm_case *c, void *va, struct page *page, u64 val,
		       const char *what)
{
	struct hm_expect e = HM_EXPECT_INIT(HM_EXPECT_MAPPED);
	char label[HM_LABEL_LEN];

	*(u64 *)va = val;
	e.prot = HM_PROT_KERNEL;
	e.va = (u32)VA(va);
	e.pfn = page_to_pfn(page);
	e.where = HM_WHERE_VMALLOC;
	e.flags = HM_CHECK_CONTENT;
	e.content = val;
	hm_mklabel(label, c, "%s", what);
	hm_case_checkpoint(c, hm_checkpoint_at(&e, label), label);
}

/* Map n pages, check the area live, its content both ways, vmalloc_to_page(), unmap. */
static void map_check_unmap(struct hm_case *c, unsigned int n, unsigned int base)
{
	struct page *pages[MAX_PAGES];
	unsigned int i, bad = 0, left = 0;
	char what[24];
	void *va;

	pick(pages, n, base);
	put_tags(pages, n, TAG_A);
	va = vm_map_ram(pages, n, NUMA_NO_NODE);
	if (!va) {
		hm_case_expect(c, va, "vm_map_ram(%u pages) returned NULL", n);
		return;
	}
	hm_case_expect(c, is_vmalloc_addr(va) && PAGE_ALIGNED(va), "%u pages at %#lx", n, VA(va));
	for (i = 0; i < n; i++) {
		if (vmalloc_to_page((char *)va + i * PAGE_SIZE) != pages[i])
			bad++;
		if (*(u64 *)((char *)va + i * PAGE_SIZE) != tag(TAG_A, pages[i]))
			bad++;
	}
	hm_case_expect(c, !bad, "%u pages: %u wrong through the area or vmalloc_to_page()", n,
		       bad);
	snprintf(what, sizeof(what), "%u mapped", n);
	if (!strcmp(mutate, "pgd") && n == 1) {
		preempt_disable();
		pgd_break(va);
		cp_range(c, va, pages, n, true, what);
		pgd_restore();
		preempt_enable();
	} else {
		cp_range(c, va, pages, n, true, what);
	}
	snprintf(what, sizeof(what), "%u written", n);
	cp_written(c, (char *)va + (n - 1) * PAGE_SIZE, pages[n - 1], tag(TAG_B, pages[n - 1]),
		   what);
	vm_unmap_ram(va, n);
	snprintf(what, sizeof(what), "%u unmapped", n);
	cp_range(c, va, pages, n, false, what);
	for (i = 0; i < n; i++)
		if (vmalloc_to_page((char *)va + i * PAGE_SIZE))
			left++;
	hm_case_expect(c, !left, "vmalloc_to_page() still finds %u of %u pages", left, n);
}

/* From the calling CPU's vmap block: 1, 4 and 32 pages (VMAP_MAX_ALLOC). */
static void case_small(struct hm_case *c)
{
	map_check_unmap(c, 1, 0);
	map_check_unmap(c, 4, 2);
	map_check_unmap(c, SMALL_MAX, 8);
}

/* From a vmap area of their own: 33 and 64 pages. */
static void case_large(struct hm_case *c)
{
	map_check_unmap(c, SMALL_MAX + 1, 64);
	map_check_unmap(c, MAX_PAGES, 128);
}

/* Many small areas held at once (several blocks' worth on this CPU), then all unmapped. */
static void case_many_held(struct hm_case *c)
{
	enum { AREAS = 48, N = 8 };
	struct page *pages[N];
	void **va = kcalloc(AREAS, sizeof(*va), GFP_KERNEL);
	unsigned int i, j, bad = 0;

	if (!va) {
		hm_case_expect(c, va, "kcalloc");
		return;
	}
	pick(pages, N, 200);
	put_tags(pages, N, TAG_A);
	for (i = 0; i < AREAS; i++) {
		va[i] = vm_map_ram(pages, N, NUMA_NO_NODE);
		if (!va[i])
			break;
		for (j = 0; j < i; j++)
			if (va[j] == va[i])
				bad++;
	}
	hm_case_expect(c, i == AREAS, "vm_map_ram() failed at area %u of %u", i, AREAS);
	hm_case_expect(c, !bad, "%u areas handed out twice", bad);
	if (i)
		cp_range(c, va[0], pages, N, true, "first held mapped");
	if (i)
		cp_range(c, va[i - 1], pages, N, true, "last held mapped");
	for (j = 0; j < i; j++)
		if (*(u64 *)va[j] != tag(TAG_A, pages[0]))
			bad++;
	hm_case_expect(c, !bad, "%u areas read wrong", bad);
	for (j = 0; j < i; j++)
		vm_unmap_ram(va[j], N);
	if (i)
		cp_range(c, va[0], pages, N, false, "first unmapped");
	vm_unmap_aliases();
	kfree(va);
}

struct remote_map {
	struct page **pages;
	unsigned int n;
	void *va;
};

static long map_there(void *arg)
{
	struct remote_map *r = arg;

	r->va = vm_map_ram(r->pages, r->n, NUMA_NO_NODE);
	return 0;
}

static long unmap_there(void *arg)
{
	struct remote_map *r = arg;

	vm_unmap_ram(r->va, r->n);
	return 0;
}

/* An area mapped from the other CPU's block: mapped for this CPU too, read on both. */
static void case_other_cpu(struct hm_case *c)
{
	struct page *pages[4];
	struct remote_map r = { .pages = pages, .n = 4 };
	int cpus[2];

	cpus_read_lock();
	if (!two_cpus(c, cpus))
		goto out;
	pick(pages, 4, 300);
	put_tags(pages, 4, TAG_A);
	work_on_cpu(cpus[1], map_there, &r);
	if (!r.va) {
		hm_case_expect(c, r.va, "vm_map_ram() on CPU%d returned NULL", cpus[1]);
		goto out;
	}
	cp_range(c, r.va, pages, 4, true, "mapped on the other CPU");
	hm_case_expect(c, read_on(cpus[0], r.va) == tag(TAG_A, pages[0]) &&
		       read_on(cpus[1], (char *)r.va + 3 * PAGE_SIZE) == tag(TAG_A, pages[3]),
		       "reads through %#lx on CPU%d/CPU%d", VA(r.va), cpus[0], cpus[1]);
	work_on_cpu(cpus[1], unmap_there, &r);
	cp_range(c, r.va, pages, 4, false, "unmapped on the other CPU");
out:
	cpus_read_unlock();
}

/*
 * The TLB read-after-reuse of a large area: page A's range read on both CPUs (the TLBs now
 * hold it), vm_unmap_ram(), vm_unmap_aliases() (the purge flushes every CPU), then
 * vm_map_ram() of B until the same range comes back: both CPUs must read B, not A.
 */
static void case_reuse_large(struct hm_case *c)
{
	enum { N = SMALL_MAX + 1 };
	struct page *a[N], *b[N];
	void *va, *again = NULL, **held;
	unsigned int tries, nheld = 0, i;
	int cpus[2];

	held = kcalloc(REUSE_TRIES, sizeof(*held), GFP_KERNEL);
	if (!held) {
		hm_case_expect(c, held, "kcalloc");
		return;
	}
	cpus_read_lock();
	if (!two_cpus(c, cpus))
		goto out;
	pick(a, N, 400);
	pick(b, N, 440);
	put_tags(a, N, TAG_A);
	put_tags(b, N, TAG_B);
	va = vm_map_ram(a, N, NUMA_NO_NODE);
	if (!va) {
		hm_case_expect(c, va, "vm_map_ram(A)");
		goto out;
	}
	hm_case_expect(c, read_on(cpus[0], va) == tag(TAG_A, a[0]) &&
		       read_on(cpus[1], va) == tag(TAG_A, a[0]), "A through %#lx", VA(va));
	vm_unmap_ram(va, N);
	vm_unmap_aliases();
	for (tries = 0; tries < REUSE_TRIES; tries++) {
		void *v = vm_map_ram(b, N, NUMA_NO_NODE);

		if (!v)
			break;
		if (v == va) {
			again = v;
			break;
		}
		held[nheld++] = v;
		if (tries % 64 == 63)
			vm_unmap_aliases();
	}
	if (again) {
		u64 r0 = read_on(cpus[0], va), r1 = read_on(cpus[1], va);

		cp_range(c, va, b, N, true, "B at A's range");
		hm_case_expect(c, r0 == tag(TAG_B, b[0]) && r1 == tag(TAG_B, b[0]),
			       "CPU%d read %#llx, CPU%d %#llx through %#lx, B is %#llx, A %#llx (stale TLB: not flushed)",
			       cpus[0], r0, cpus[1], r1, VA(va), tag(TAG_B, b[0]),
			       tag(TAG_A, a[0]));
		vm_unmap_ram(again, N);
	} else {
		pr_info("# %s: range %#lx not handed out again in %u tries\n", c->name, VA(va),
			tries);
		hm_case_skip(c, "the unmapped range was not handed out again");
	}
	for (i = 0; i < nheld; i++)
		vm_unmap_ram(held[i], N);
out:
	cpus_read_unlock();
	kfree(held);
}

/*
 * The TLB read-after-reuse of vmap *blocks* (fc1e0d980037, 8c61291fd850 shapes): on one CPU
 * BLK_AREAS areas of SMALL_MAX pages (whole blocks' worth) mapping A are read on both CPUs,
 * unmapped (each block becomes fully dirty and is freed: free_vmap_block :2620), purged with
 * vm_unmap_aliases(); then areas mapping B until one of the old addresses comes back: both
 * CPUs must read B there.
 */
static void case_block_reuse(struct hm_case *c)
{
	enum { BLK_AREAS = 32, TRIES = 512 };
	struct page *a[SMALL_MAX], *b[SMALL_MAX];
	void **old = kcalloc(BLK_AREAS, sizeof(*old), GFP_KERNEL);
	void **held = kcalloc(TRIES, sizeof(*held), GFP_KERNEL);
	unsigned int i, j, n = 0, nheld = 0;
	void *again = NULL;
	int cpus[2];

	if (!old || !held) {
		hm_case_expect(c, old && held, "kcalloc");
		goto free;
	}
	cpus_read_lock();
	if (!two_cpus(c, cpus))
		goto out;
	pick(a, SMALL_MAX, 600);
	pick(b, SMALL_MAX, 640);
	put_tags(a, SMALL_MAX, TAG_A);
	put_tags(b, SMALL_MAX, TAG_B);
	migrate_disable();
	for (n = 0; n < BLK_AREAS; n++) {
		old[n] = vm_map_ram(a, SMALL_MAX, NUMA_NO_NODE);
		if (!old[n])
			break;
		read_on(cpus[0], old[n]);
		read_on(cpus[1], old[n]);
	}
	hm_case_expect(c, n == BLK_AREAS, "vm_map_ram() failed at area %u", n);
	for (i = 0; i < n; i++)
		vm_unmap_ram(old[i], SMALL_MAX);
	vm_unmap_aliases();
	for (j = 0; j < TRIES && !again; j++) {
		void *v = vm_map_ram(b, SMALL_MAX, NUMA_NO_NODE);

		if (!v)
			break;
		for (i = 0; i < n; i++)
			if (v == old[i])
				again = v;
		if (!again)
			held[nheld++] = v;
	}
	if (again) {
		u64 r0 = read_on(cpus[0], again), r1 = read_on(cpus[1], again);

		cp_range(c, again, b, SMALL_MAX, true, "B at a freed block's range");
		hm_case_expect(c, r0 == tag(TAG_B, b[0]) && r1 == tag(TAG_B, b[0]),
			       "CPU%d read %#llx, CPU%d %#llx through %#lx, B is %#llx, A %#llx (stale TLB: the block's range was not flushed)",
			       cpus[0], r0, cpus[1], r1, VA(again), tag(TAG_B, b[0]),
			       tag(TAG_A, a[0]));
		vm_unmap_ram(again, SMALL_MAX);
	} else {
		pr_info("# %s: no freed block range came back in %u areas\n", c->name, j);
		hm_case_skip(c, "no freed vmap block's range was handed out again");
	}
	for (i = 0; i < nheld; i++)
		vm_unmap_ram(held[i], SMALL_MAX);
	migrate_enable();
	vm_unmap_aliases();
out:
	cpus_read_unlock();
free:
	kfree(old);
	kfree(held);
}

/*
 * vrealloc() (6.12: mm/vmalloc.c:4133; a module reaches it through kvrealloc(), mm/util.c:745,
 * vrealloc() itself is not exported): a shrink stays in place and, with __GFP_ZERO, zeroes
 * what it gives up (70d1eb031a68); a grow within the area stays in place and reads those
 * zeroes (f7a35a3c36d1's requested_size); a grow past it moves, keeps the bytes, and the old
 * range is unmapped. The harness reads the bytes from the pages' RAM.
 */
static void case_vrealloc(struct hm_case *c)
{
#if LINUX_VERSION_CODE >= KERNEL_VERSION(6, 12, 0)
	const gfp_t gfp = GFP_KERNEL | __GFP_ZERO;
	size_t i;
	char *p = vmalloc(3 * PAGE_SIZE), *q, *r;
	struct page *pg[3];

	if (!p) {
		hm_case_expect(c, p, "vmalloc");
		return;
	}
	memset(p, 0x77, 3 * PAGE_SIZE);
	for (i = 0; i < 3; i++)
		pg[i] = vmalloc_to_page(p + i * PAGE_SIZE);
	q = kvrealloc(p, 2 * PAGE_SIZE + 2048, gfp);
	hm_case_expect(c, q == p, "shrink moved %#lx -> %#lx", VA(p), VA(q));
	if (q != p) {
		vfree(q ? q : p);
		return;
	}
	{
		struct hm_expect e = HM_EXPECT_INIT(HM_EXPECT_MAPPED);
		char label[HM_LABEL_LEN];

		e.prot = HM_PROT_KERNEL;
		e.va = (u32)VA(p + 2 * PAGE_SIZE);
		e.pfn = page_to_pfn(pg[2]);
		e.where = HM_WHERE_VMALLOC;
		e.flags = HM_CHECK_CONTENT | HM_CHECK_CONTENT_AT;
		e.aux = 2048;
		e.content = 0;
		hm_mklabel(label, c, "shrunk tail zeroed");
		hm_case_checkpoint(c, hm_checkpoint_at(&e, label), label);
		e.aux = 2040;
		e.content = 0x7777777777777777ULL;
		hm_mklabel(label, c, "kept bytes");
		hm_case_checkpoint(c, hm_checkpoint_at(&e, label), label);
	}
	r = kvrealloc(p, 3 * PAGE_SIZE, gfp);
	hm_case_expect(c, r == p, "grow within the area moved %#lx -> %#lx", VA(p), VA(r));
	hm_case_expect(c, r && !memchr_inv(r + 2 * PAGE_SIZE + 2048, 0, 2048),
		       "the regrown bytes are not zero");
	if (r != p) {
		vfree(r ? r : p);
		return;
	}
	q = kvrealloc(p, 8 * PAGE_SIZE, GFP_KERNEL);
	if (!q) {
		hm_case_expect(c, q, "grow to 8 pages");
		vfree(p);
		return;
	}
	hm_case_expect(c, q[0] == 0x77 && q[2 * PAGE_SIZE + 2047] == 0x77 &&
		       q[2 * PAGE_SIZE + 2048] == 0, "bytes after the move: %#x %#x %#x",
		       q[0], q[2 * PAGE_SIZE + 2047], q[2 * PAGE_SIZE + 2048]);
	if (q != p) {
		struct hm_range_entry old[3];
		struct hm_expect e = HM_EXPECT_INIT(HM_EXPECT_RANGE_UNMAPPED);
		char label[HM_LABEL_LEN];

		for (i = 0; i < 3; i++) {
			old[i].va = (u32)VA(p + i * PAGE_SIZE);
			old[i].pad = 0;
			old[i].pfn = 0;
		}
		e.count = 3;
		e.entries = (u32)VA(old);
		e.where = HM_WHERE_VMALLOC;
		hm_mklabel(label, c, "old range unmapped");
		hm_case_checkpoint(c, hm_checkpoint_at(&e, label), label);
	}
	vfree(q);
#else
	hm_case_skip(c, "vrealloc() is in Linux since 6.12");
#endif
}

static const struct hm_suite_case cases[] = {
	{ "vm_map_ram_small", case_small },
	{ "vm_map_ram_large", case_large },
	{ "vm_map_ram_many_held", case_many_held },
	{ "vm_map_ram_other_cpu", case_other_cpu },
	{ "vm_map_ram_reuse_large", case_reuse_large },
	{ "vm_map_ram_block_reuse", case_block_reuse },
	{ "vrealloc_grow_shrink", case_vrealloc },
};

static const struct hm_suite suite = {
	.name = "vmram_suite",
	.cases = cases,
	.ncases = ARRAY_SIZE(cases),
	.init = find_blocks,
	.case_ready = have_blocks,
	.exit = free_blocks,
};

HM_SUITE_MODULE(suite, "highmem-harness: vm_map_ram()/vm_unmap_ram(), PTEs checked live");
