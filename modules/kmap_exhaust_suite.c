// SPDX-License-Identifier: GPL-2.0
/*
 * kmap_exhaust_suite.ko: kmap() when every PKMAP slot is held (mm/highmem.c 6.12):
 * map_new_virtual() (:243) finds no free slot, the task sleeps on pkmap_map_wait (:270-283);
 * kunmap() of one page drops its count to 1 and wakes the sleepers (kunmap_high :355-372);
 * the woken task wraps the slot index, flush_all_zero_pkmaps() (:197) frees the count-1
 * slot, and the task maps its page there. The harness checks the waiter's PTE and
 * pkmap_count live.
 *
 * The waiter is a kthread holding a reference on this module, so a waiter that is never
 * woken (a kernel without the wake-up) leaves the module busy instead of running freed code;
 * the case FAILs after WAIT_S seconds either way.
 */
#include <linux/module.h>
#include <linux/completion.h>
#include <linux/delay.h>
#include <linux/err.h>
#include <linux/gfp.h>
#include <linux/highmem.h>
#include <linux/kthread.h>
#include <linux/mm.h>
#include <linux/slab.h>
#include "hm_checkpoint.h"
#include "hm_ktap.h"
#include "hm_pages.h"

#define VA(p)		((unsigned long)(p))
#define WAIT_S		10		/* how long a woken waiter may take to map */
#define SLEEP_MS	300		/* how long the waiter must stay asleep first */

HM_BLOCK_PAIR();

struct waiter {
	struct page *page;
	void *va;
	struct completion mapped;
	struct completion release;
};

static int waiter_fn(void *arg)
{
	struct waiter *w = arg;

	w->va = kmap(w->page);
	complete(&w->mapped);
	wait_for_completion(&w->release);
	kunmap(w->page);
	kfree(w);
	module_put_and_kthread_exit(0);
}

static void cp_pkmap(struct hm_case *c, const void *va, struct page *page, int count,
		     const char *what)
{
	struct hm_expect e = HM_EXPECT_INIT(HM_EXPECT_MAPPED);
	char label[HM_LABEL_LEN];

	e.prot = HM_PROT_KERNEL;
	e.va = (u32)VA(va);
	e.pfn = page_to_pfn(page);
	e.where = HM_WHERE_PKMAP;
	e.flags = HM_CHECK_PKMAP_COUNT;
	e.aux = count;
	hm_mklabel(label, c, "%s", what);
	hm_case_checkpoint(c, hm_checkpoint_at(&e, label), label);
}

/*
 * Hold LAST_PKMAP pages kmap()ped (every slot: the guest is idle, nothing else holds one),
 * start a waiter on one more page, see it asleep, kunmap() one page, see it mapped.
 */
static void case_exhaust_wakes(struct hm_case *c)
{
	void **held = kcalloc(LAST_PKMAP, sizeof(*held), GFP_KERNEL);
	struct task_struct *t;
	struct waiter *w = kzalloc(sizeof(*w), GFP_KERNEL);
	int i, n = 0;
	void *freed;

	if (!held || !w) {
		hm_case_expect(c, held && w, "kcalloc");
		kfree(held);
		kfree(w);
		return;
	}
	for (i = 0; i < LAST_PKMAP; i++)
		held[n++] = kmap(i < HM_BLOCK_PAGES ? hi(i) : lo(i - HM_BLOCK_PAGES));
	cp_pkmap(c, held[0], hi(0), 2, "first held");
	w->page = lo(HM_BLOCK_PAGES - 1);
	init_completion(&w->mapped);
	init_completion(&w->release);
	__module_get(THIS_MODULE);
	t = kthread_run(waiter_fn, w, "hm_kmap_waiter");
	if (IS_ERR(t)) {
		module_put(THIS_MODULE);
		hm_case_expect(c, !IS_ERR(t), "kthread_run: %ld", PTR_ERR(t));
		kfree(w);
		goto out;
	}
	msleep(SLEEP_MS);
	hm_case_expect(c, !completion_done(&w->mapped),
		       "kmap() returned %#lx with all %d slots held", VA(w->va), LAST_PKMAP);
	freed = held[0];
	kunmap(hi(0));
	held[0] = NULL;
	if (!wait_for_completion_timeout(&w->mapped, WAIT_S * HZ)) {
		hm_case_expect(c, false, "kunmap() did not wake the waiting kmap() in %d s", WAIT_S);
		pr_info("# %s: the waiter is left asleep; the module stays busy\n", c->name);
		goto out;	/* w belongs to the waiter now */
	}
	hm_case_expect(c, w->va == freed, "waiter mapped at %#lx, the one free slot is %#lx",
		       VA(w->va), VA(freed));
	cp_pkmap(c, w->va, w->page, 2, "waiter mapped");
	complete(&w->release);
out:
	for (i = 0; i < n; i++)
		if (held[i])
			kunmap(i < HM_BLOCK_PAGES ? hi(i) : lo(i - HM_BLOCK_PAGES));
	kfree(held);
}

static const struct hm_suite_case cases[] = {
	{ "kmap_exhaust_wakes", case_exhaust_wakes },
};

static const struct hm_suite suite = {
	.name = "kmap_exhaust_suite",
	.cases = cases,
	.ncases = ARRAY_SIZE(cases),
	.init = find_blocks,
	.case_ready = have_blocks,
	.exit = free_blocks,
};

HM_SUITE_MODULE(suite, "highmem-harness: kmap() with every PKMAP slot held sleeps until kunmap()");
