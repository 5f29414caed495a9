/* SPDX-License-Identifier: GPL-2.0 */
/*
 * highmem-harness checkpoint API: a test module states what the page tables must hold
 * right now, and calls hm_checkpoint(). The harness has a hardware breakpoint on
 * hm_checkpoint() (exported by hm_checkpoint.ko); while the guest is stopped there it walks
 * the PAE page tables from CR3, judges the PTE against the expectation, and writes its
 * verdict back into the struct before resuming the guest.
 *
 * The struct is read as raw bytes by the harness (harness/checkpoint.py): its layout is an
 * ABI. Change HM_CP_VERSION with it. i386, little endian, sizeof == 112.
 * tests/unit/test_abi.py compiles these structs against the Python mirror, field by field.
 */
#ifndef HM_CHECKPOINT_H
#define HM_CHECKPOINT_H

#include <linux/build_bug.h>
#include <linux/types.h>
#include <linux/mm_types.h>

#define HM_CP_MAGIC	0x50434d48	/* "HMCP" */
#define HM_CP_VERSION	1

enum hm_cp_kind {
	HM_EXPECT_MAPPED = 1,	/* PTE at va: present, maps pfn, flags of prot */
	HM_EXPECT_UNMAPPED = 2,	/* PTE at va is 0 (and QEMU finds no translation) */
	HM_EXPECT_RANGE = 3,	/* count (va, pfn) pairs, each mapped with prot */
	HM_EXPECT_STALE = 4,	/* unmapped by the API but the PTE stays (lazy kunmap) */
	HM_EXPECT_RANGE_UNMAPPED = 5,	/* count (va, -) pairs, each PTE 0 */
};

enum hm_cp_prot {
	HM_PROT_NONE = 0,
	HM_PROT_KERNEL = 1,	/* PAGE_KERNEL: P RW A D G NX */
	HM_PROT_KERNEL_RO = 2,	/* PAGE_KERNEL_RO: P A G NX */
	HM_PROT_ANY = 3,	/* only "present, maps pfn" (e.g. lowmem: a 2 MiB page) */
};

enum hm_cp_verdict {
	HM_VERDICT_NONE = 0,	/* no harness attached: nothing was checked */
	HM_VERDICT_PASS = 1,
	HM_VERDICT_FAIL = 2,
};

/*
 * Where the address must lie, judged by the harness from the running kernel's layout
 * (read through gdb, not from this module): see harness/layout.py.
 */
#define HM_WHERE_ANY		0
#define HM_WHERE_KMAP_LOCAL(cpu, depth)	(0x10000000u | ((u32)(cpu) << 16) | (u32)(depth))
#define HM_WHERE_PKMAP		0x20000000u	/* [PKMAP_BASE, PKMAP_BASE + LAST_PKMAP pages) */
#define HM_WHERE_VMALLOC	0x30000000u	/* [VMALLOC_START, VMALLOC_END) */
#define HM_WHERE_LOWMEM		0x40000000u	/* va == PAGE_OFFSET + (pfn << PAGE_SHIFT) */

/* flags */
#define HM_CHECK_CONTENT	0x1	/* the u64 at phys pfn << PAGE_SHIFT equals content */
#define HM_CHECK_PKMAP_COUNT	0x2	/* pkmap_count[PKMAP_NR(va)] equals aux */
#define HM_CHECK_CONTENT_AT	0x4	/* with HM_CHECK_CONTENT: the u64 at byte aux of the page */

/* struct hm_expect.label: the checkpoint's name in the report, NUL included. */
#define HM_LABEL_LEN	56

struct hm_range_entry {
	u32 va;
	u32 pad;
	u64 pfn;
};

struct hm_expect {
	u32 magic;		/*   0: HM_CP_MAGIC */
	u16 version;		/*   4: HM_CP_VERSION */
	u16 kind;		/*   6: enum hm_cp_kind */
	u32 prot;		/*   8: enum hm_cp_prot */
	u32 va;			/*  12 */
	u64 pfn;		/*  16 */
	u32 count;		/*  24: entries in a range */
	u32 entries;		/*  28: (struct hm_range_entry *) for a range */
	u32 verdict;		/*  32: written by the harness, enum hm_cp_verdict */
	u32 where;		/*  36: HM_WHERE_* */
	u64 content;		/*  40: with HM_CHECK_CONTENT */
	u32 flags;		/*  48: HM_CHECK_* */
	u32 aux;		/*  52: with HM_CHECK_PKMAP_COUNT: the expected count */
	char label[HM_LABEL_LEN];	/*  56: short name shown in the report */
} __packed;			/* 112 bytes */

static_assert(sizeof(struct hm_range_entry) == 16);
static_assert(sizeof(struct hm_expect) == 112);

/* Stops the guest under the harness; returns the harness's verdict. */
u32 hm_checkpoint(struct hm_expect *e);

#define HM_EXPECT_INIT(k)	{ .magic = HM_CP_MAGIC, .version = HM_CP_VERSION, .kind = (k) }

/* The general form: fill a struct hm_expect (HM_EXPECT_INIT) and call hm_checkpoint_at(). */
static inline u32 hm_checkpoint_at(struct hm_expect *e, const char *label)
{
	strscpy(e->label, label, sizeof(e->label));
	return hm_checkpoint(e);
}

static inline u32 hm_expect_mapped(const char *label, const void *va, u64 pfn, u32 prot)
{
	struct hm_expect e = HM_EXPECT_INIT(HM_EXPECT_MAPPED);

	e.prot = prot;
	e.va = (u32)(unsigned long)va;
	e.pfn = pfn;
	return hm_checkpoint_at(&e, label);
}

/* Mapped, and at the kmap_local/kmap_atomic slot for (cpu, depth maps already held). */
static inline u32 hm_expect_slot(const char *label, const void *va, u64 pfn, int cpu,
				 int depth)
{
	struct hm_expect e = HM_EXPECT_INIT(HM_EXPECT_MAPPED);

	e.prot = HM_PROT_KERNEL;
	e.va = (u32)(unsigned long)va;
	e.pfn = pfn;
	e.where = HM_WHERE_KMAP_LOCAL(cpu, depth);
	return hm_checkpoint_at(&e, label);
}

static inline u32 hm_expect_unmapped(const char *label, const void *va)
{
	struct hm_expect e = HM_EXPECT_INIT(HM_EXPECT_UNMAPPED);

	e.va = (u32)(unsigned long)va;
	return hm_checkpoint_at(&e, label);
}

static inline u32 hm_expect_stale(const char *label, const void *va, u64 pfn, u32 prot)
{
	struct hm_expect e = HM_EXPECT_INIT(HM_EXPECT_STALE);

	e.prot = prot;
	e.va = (u32)(unsigned long)va;
	e.pfn = pfn;
	return hm_checkpoint_at(&e, label);
}

static inline u32 hm_expect_range(const char *label, struct hm_range_entry *entries,
				  u32 count, u32 prot)
{
	struct hm_expect e = HM_EXPECT_INIT(HM_EXPECT_RANGE);

	e.prot = prot;
	e.count = count;
	e.entries = (u32)(unsigned long)entries;
	return hm_checkpoint_at(&e, label);
}

static inline u32 hm_expect_range_unmapped(const char *label, struct hm_range_entry *entries,
					   u32 count)
{
	struct hm_expect e = HM_EXPECT_INIT(HM_EXPECT_RANGE_UNMAPPED);

	e.count = count;
	e.entries = (u32)(unsigned long)entries;
	return hm_checkpoint_at(&e, label);
}

#endif /* HM_CHECKPOINT_H */
