/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Tiny KTAP v1 printer for highmem-harness test modules, the case bookkeeping that folds
 * the harness's checkpoint verdicts into each case's result, and the suite runner: a suite
 * is a table of cases, one line each (struct hm_suite_case), run by hm_run_suite().
 */
#ifndef HM_KTAP_H
#define HM_KTAP_H

#include <linux/printk.h>
#include <linux/kernel.h>
#include <linux/mm.h>
#include <linux/stdarg.h>
#include "hm_checkpoint.h"

#define HM_PFN_4G		0x100000UL	/* first PFN at 4 GiB physical */

/*
 * Does RAM above 4 GiB physical exist in this kernel, at run time? Only with PAE, and only
 * where the kernel keeps it: up to 6.14 (CONFIG_HIGHMEM64G) a PAE kernel keeps all of it;
 * from 6.15 on (bbeb69ce3013 removed HIGHMEM64G) highmem_pfn_init() caps max_pfn at
 * MAX_NONPAE_PFN (4 GiB; 7.2 arch/x86/mm/init_32.c:595-598) and e820__memblock_setup()
 * discards the memory above it (83b2d345e178). Without PAE the cap is the same
 * (MAX_NONPAE_PFN, 6.12 init_32.c:615-619). FLATMEM's pfn_valid() is "below max_mapnr",
 * the end of the mem_map (6.12: highend_pfn, init_32.c:654; 7.2: the node's end,
 * mm/mm_init.c:1683): the first PFN at 4 GiB is valid exactly when max_pfn lies above it.
 */
static inline bool hm_ram_above_4g(void)
{
	return IS_ENABLED(CONFIG_X86_PAE) && pfn_valid(HM_PFN_4G);
}

struct hm_case {
	const char *name;
	int number;
	bool failed;		/* a check of the module's own, or a checkpoint, failed */
	int unchecked;		/* checkpoints no harness judged */
	const char *xfail;	/* set when a known kernel bug showed: the reason */
	const char *skip;	/* set when the case could not run its check here: the reason */
};

static inline void hm_ktap_header(const char *suite, int plan)
{
	pr_info("KTAP version 1\n");
	pr_info("# Subtest: %s\n", suite);
	pr_info("1..%d\n", plan);
}

/* Record a checkpoint's verdict in the case. */
static inline void hm_case_checkpoint(struct hm_case *c, u32 verdict, const char *label)
{
	if (verdict == HM_VERDICT_FAIL) {
		c->failed = true;
		pr_info("# %s: checkpoint '%s' FAILED in the harness\n", c->name, label);
	} else if (verdict != HM_VERDICT_PASS) {
		c->unchecked++;
	}
}

/* A check of the module's own: false fails the case, with the reason as a diagnostic. */
#define hm_case_expect(c, cond, fmt, ...)					\
	do {									\
		if (!(cond)) {							\
			(c)->failed = true;					\
			pr_info("# %s: expected %s: " fmt "\n", (c)->name,	\
				#cond, ##__VA_ARGS__);				\
		}								\
	} while (0)

/* A known kernel bug showed: the case ends "not ok ... # XFAIL reason", not a failure. */
static inline void hm_case_known_bug(struct hm_case *c, const char *reason)
{
	c->failed = true;
	c->xfail = reason;
}

/*
 * The case could not check what it is for here (one CPU online, an address never handed out
 * again, ...): unless a check failed, it ends "ok ... # SKIP reason", not PASS.
 */
static inline void hm_case_skip(struct hm_case *c, const char *reason)
{
	c->skip = reason;
}

/*
 * For a case about a page frame above 4 GiB physical: true where RAM lies there
 * (hm_ram_above_4g()); otherwise the case is skipped with the reason and false is returned
 * (end the case). Without PAE (CONFIG_HIGHMEM4G) no RAM lies above 4 GiB (MAX_NONPAE_PFN,
 * init_32.c); with PAE from 6.15 on neither (bbeb69ce3013, 83b2d345e178), nor on a guest
 * whose RAM all lies below 4 GiB.
 */
static inline bool hm_case_needs_pfn_above_4g(struct hm_case *c)
{
	if (hm_ram_above_4g())
		return true;
	if (!IS_ENABLED(CONFIG_X86_PAE))
		hm_case_skip(c, "needs a PFN above 4 GiB: no PAE (CONFIG_HIGHMEM4G), no RAM lies above 4 GiB");
	else
		hm_case_skip(c, "needs a PFN above 4 GiB: this PAE kernel keeps no RAM above 4 GiB (max_pfn capped at 4 GiB since 6.15: bbeb69ce3013, 83b2d345e178)");
	return false;
}

/* The skip reason of a case that needs a second online CPU (a guest with -smp 1). */
#define HM_NEEDS_TWO_CPUS	"needs two online CPUs: this guest has one"

static inline void hm_case_end(struct hm_case *c)
{
	if (c->failed && c->xfail)
		pr_info("not ok %d %s # XFAIL %s\n", c->number, c->name, c->xfail);
	else if (c->failed)
		pr_info("not ok %d %s\n", c->number, c->name);
	else if (c->skip)
		pr_info("ok %d %s # SKIP %s\n", c->number, c->name, c->skip);
	else if (c->unchecked)
		pr_info("ok %d %s # SKIP %d checkpoint(s) not checked: no harness attached\n",
			c->number, c->name, c->unchecked);
	else
		pr_info("ok %d %s\n", c->number, c->name);
}

/* One case of a suite: its KTAP name and the function that runs it. */
struct hm_suite_case {
	const char *name;
	void (*run)(struct hm_case *c);
};

/*
 * A suite: its cases in KTAP order (the case at index i is number i + 1). The hooks may be
 * NULL: init runs after the KTAP header and before the first case (its diagnostics belong
 * to the suite), case_ready before each case (false ends the case without running it, so
 * it should say why with hm_case_expect()), exit after the last case.
 */
struct hm_suite {
	const char *name;
	const struct hm_suite_case *cases;
	int ncases;
	void (*init)(void);
	bool (*case_ready)(struct hm_case *c);
	void (*exit)(void);
};

/* The KTAP header, then each case run and ended in table order. */
static inline void hm_run_suite(const struct hm_suite *s)
{
	int i;

	hm_ktap_header(s->name, s->ncases);
	if (s->init)
		s->init();
	for (i = 0; i < s->ncases; i++) {
		struct hm_case c = { .name = s->cases[i].name, .number = i + 1 };

		if (!s->case_ready || s->case_ready(&c))
			s->cases[i].run(&c);
		hm_case_end(&c);
	}
	if (s->exit)
		s->exit();
}

/*
 * Case-labelled checkpoints: the label is "<case name>: <what>", cut to HM_LABEL_LEN - 1
 * characters (buf holds HM_LABEL_LEN bytes), and the verdict is folded into the case.
 */
static inline __printf(3, 4) char *hm_mklabel(char *buf, struct hm_case *c, const char *fmt, ...)
{
	va_list args;
	int n;

	n = scnprintf(buf, HM_LABEL_LEN, "%s: ", c->name);
	va_start(args, fmt);
	vscnprintf(buf + n, HM_LABEL_LEN - n, fmt, args);
	va_end(args);
	return buf;
}

static inline void hm_cp_slot(struct hm_case *c, const void *va, unsigned long pfn, int cpu, int depth,
		    const char *what)
{
	char label[HM_LABEL_LEN];

	hm_mklabel(label, c, "%s", what);
	hm_case_checkpoint(c, hm_expect_slot(label, va, pfn, cpu, depth), label);
}

static inline void hm_cp_unmapped(struct hm_case *c, const void *va, const char *what)
{
	char label[HM_LABEL_LEN];

	hm_mklabel(label, c, "%s", what);
	hm_case_checkpoint(c, hm_expect_unmapped(label, va), label);
}

/* A slot checkpoint that also has the harness read the u64 at pfn's physical address. */
static inline void hm_cp_slot_content(struct hm_case *c, const void *va, unsigned long pfn, int cpu,
			    int depth, u64 content, const char *what)
{
	struct hm_expect e = HM_EXPECT_INIT(HM_EXPECT_MAPPED);
	char label[HM_LABEL_LEN];

	e.prot = HM_PROT_KERNEL;
	e.va = (u32)(unsigned long)va;
	e.pfn = pfn;
	e.where = HM_WHERE_KMAP_LOCAL(cpu, depth);
	e.flags = HM_CHECK_CONTENT;
	e.content = content;
	hm_mklabel(label, c, "%s", what);
	hm_case_checkpoint(c, hm_checkpoint_at(&e, label), label);
}

/*
 * The module around a suite table: init runs the suite (KTAP goes to the kernel log; the
 * module loads even when cases fail, so the harness can unload it), exit does nothing.
 */
#define HM_SUITE_MODULE(s, desc)					\
	static int __init hm_suite_init(void)				\
	{								\
		hm_run_suite(&(s));					\
		return 0;						\
	}								\
	static void __exit hm_suite_exit(void)				\
	{								\
	}								\
	module_init(hm_suite_init);					\
	module_exit(hm_suite_exit);					\
	MODULE_DESCRIPTION(desc);					\
	MODULE_LICENSE("GPL")

#endif /* HM_KTAP_H */
