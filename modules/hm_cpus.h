/* SPDX-License-Identifier: GPL-2.0 */
/*
 * highmem-harness test modules: reads through an address on a given CPU, for the cases
 * that check what each CPU translates (a stale TLB entry reads the old page). Needs
 * hm_ktap.h before it.
 */
#ifndef HM_CPUS_H
#define HM_CPUS_H

#include <linux/compiler.h>
#include <linux/cpumask.h>
#include <linux/smp.h>

/* A load through va on cpu (an IPI, or a plain call on this CPU). */
struct hm_cpu_read {
	const u64 *va;
	u64 val;
};

static inline void hm_read_here(void *arg)
{
	struct hm_cpu_read *r = arg;

	r->val = READ_ONCE(*r->va);
}

static inline u64 read_on(int cpu, const void *va)
{
	struct hm_cpu_read r = { .va = va, .val = 0 };

	WARN_ON_ONCE(smp_call_function_single(cpu, hm_read_here, &r, 1));
	return r.val;
}

/*
 * The first CPUs online, for the cases that read on two; false (the case SKIPs) with one.
 * Call under cpus_read_lock().
 */
static inline bool two_cpus(struct hm_case *c, int cpus[2])
{
	cpus[0] = cpumask_first(cpu_online_mask);
	cpus[1] = cpumask_next(cpus[0], cpu_online_mask);
	if (cpus[1] < nr_cpu_ids)
		return true;
	pr_info("# %s: only CPU%d is online\n", c->name, cpus[0]);
	hm_case_skip(c, "needs two online CPUs to read on the other one");
	return false;
}

#endif /* HM_CPUS_H */
