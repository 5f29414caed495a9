/* SPDX-License-Identifier: GPL-2.0 */
/*
 * highmem-harness test modules: maps taken in another context than the task's. i386 PAE,
 * Linux 6.12.
 *
 * A kmap_local_page() or kmap_atomic() taken in an interrupt pushes its slot on the stack
 * of the task it interrupted (current->kmap_ctrl, mm/highmem.c: kmap_local_idx_push()), so
 * it must land one slot above the task's maps and leave them mapped.
 */
#ifndef HM_CONTEXT_H
#define HM_CONTEXT_H

#include <linux/highmem.h>
#include <linux/irq_work.h>
#include <linux/jiffies.h>
#include <linux/preempt.h>
#include <linux/smp.h>
#include "hm_checkpoint.h"
#include "hm_ktap.h"

#define HM_IRQ_WAIT	(30 * HZ)	/* how long the task waits for its interrupt */
#define HM_IRQ_PATTERN	0x1259a5c0ffee0badULL	/* written through the interrupt's map */

/* The API under test as functions: kunmap_local() and kunmap_atomic() are macros. */
struct hm_map_ops {
	void *(*map)(struct page *page);
	void (*unmap)(void *va);
};

struct hm_irq_map {
	struct irq_work work;
	const struct hm_map_ops *ops;
	struct hm_case *c;
	struct page *q;			/* the page the interrupt maps */
	struct hm_range_entry task_map;	/* the interrupted task's map at depth 0 */
	int irq_cpu;
	bool hardirq;
	void *va;			/* where the interrupt's map was */
};

/* In hardirq context on the task's CPU: the task's map is live, ours goes on top of it. */
static inline void hm_irq_map_fn(struct irq_work *w)
{
	struct hm_irq_map *x = container_of(w, struct hm_irq_map, work);
	struct hm_case *c = x->c;
	int cpu = smp_processor_id();
	void *va;

	x->irq_cpu = cpu;
	x->hardirq = in_hardirq();
	hm_cp_slot(c, (void *)(unsigned long)x->task_map.va, x->task_map.pfn, cpu, 0,
		   "irq: task's d0 live");
	va = x->ops->map(x->q);
	x->va = va;
	*(u64 *)va = HM_IRQ_PATTERN;
	hm_cp_slot(c, va, page_to_pfn(x->q), cpu, 1, "irq: own map d1");
	x->ops->unmap(va);
	hm_cp_unmapped(c, va, "irq: own map unmapped");
}

/*
 * The case "an interrupt's map stacks on the task's": the task maps p (depth 0) with ops,
 * an irq_work on its CPU maps q (depth 1) and unmaps it; the task's map is checked before,
 * during and after. Works whether ops->map leaves the task preemptible (kmap_local_page)
 * or not (kmap_atomic): the wait polls with preemption off, and irq_work_sync(), which may
 * wait, comes after the task's unmap.
 */
static inline void hm_case_irq_stacks(struct hm_case *c, const struct hm_map_ops *ops,
				      struct page *p, struct page *q)
{
	struct hm_irq_map x = { .ops = ops, .c = c, .q = q, .irq_cpu = -1 };
	unsigned long end;
	void *va;
	int cpu;

	init_irq_work(&x.work, hm_irq_map_fn);
	va = ops->map(p);
	cpu = smp_processor_id();
	x.task_map.va = (u32)(unsigned long)va;
	x.task_map.pad = 0;
	x.task_map.pfn = page_to_pfn(p);
	hm_cp_slot(c, va, page_to_pfn(p), cpu, 0, "task d0 mapped");
	/* No preemption until the work ran: the interrupt must land on this task. */
	preempt_disable();
	irq_work_queue(&x.work);
	end = jiffies + HM_IRQ_WAIT;
	while (irq_work_is_busy(&x.work) && time_before(jiffies, end))
		cpu_relax();
	preempt_enable();
	hm_case_expect(c, !irq_work_is_busy(&x.work), "irq_work still busy after 30 s");
	hm_case_expect(c, x.irq_cpu == cpu, "irq ran on cpu %d, task on %d", x.irq_cpu, cpu);
	hm_case_expect(c, x.hardirq, "callback not in hardirq context");
	hm_case_expect(c, x.va && x.va != va, "irq map at %#lx, task's at %#lx",
		       (unsigned long)x.va, (unsigned long)va);
	hm_cp_slot(c, va, page_to_pfn(p), cpu, 0, "task d0 after irq");
	ops->unmap(va);
	hm_cp_unmapped(c, va, "task d0 unmapped");
	irq_work_sync(&x.work);
}

#endif /* HM_CONTEXT_H */
