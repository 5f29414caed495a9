/* SPDX-License-Identifier: GPL-2.0 */
/*
 * highmem-harness checkpoint API: a test module states what the page tables must hold
 * right now, and calls hm_checkpoint(). The harness has a hardware breakpoint on
 * hm_checkpoint() (exported by hm_checkpoint.ko); while the guest is stopped there it walks
 * the PAE page tables from CR3, judges the PTE against the expectation, and writes its
 * verdict back into the struct before resuming the guest.
 *
 * The struct is read as raw bytes by the harness (harness/checkpoint.py): its layout is an
 * ABI. Change HM_CP_VERSION with it. i386, little endian, sizeof == 96.
 */
#ifndef HM_CHECKPOINT_H
#define HM_CHECKPOINT_H

#include <linux/types.h>
#include <linux/mm_types.h>

#define HM_CP_MAGIC	0x50434d48	/* "HMCP" */
#define HM_CP_VERSION	1

enum hm_cp_kind {
	HM_EXPECT_MAPPED = 1,	/* PTE at va: present, maps pfn, flags of prot */
	HM_EXPECT_UNMAPPED = 2,	/* PTE at va is 0 */
	HM_EXPECT_RANGE = 3,	/* count (va, pfn) pairs, each mapped with prot */
	HM_EXPECT_STALE = 4,	/* unmapped by the API but the PTE stays (lazy kunmap) */
};

enum hm_cp_prot {
	HM_PROT_NONE = 0,
	HM_PROT_KERNEL = 1,	/* PAGE_KERNEL: P RW A D G NX */
	HM_PROT_KERNEL_RO = 2,	/* PAGE_KERNEL_RO: P A D G NX */
};

enum hm_cp_verdict {
	HM_VERDICT_NONE = 0,	/* no harness attached: nothing was checked */
	HM_VERDICT_PASS = 1,
	HM_VERDICT_FAIL = 2,
};

struct hm_range_entry {
	u32 va;
	u32 pad;
	u64 pfn;
};

struct hm_expect {
	u32 magic;		/*  0: HM_CP_MAGIC */
	u16 version;		/*  4: HM_CP_VERSION */
	u16 kind;		/*  6: enum hm_cp_kind */
	u32 prot;		/*  8: enum hm_cp_prot */
	u32 va;			/* 12 */
	u64 pfn;		/* 16 */
	u32 count;		/* 24: entries in a range */
	u32 entries;		/* 28: (struct hm_range_entry *) for a range */
	u32 verdict;		/* 32: written by the harness, enum hm_cp_verdict */
	u32 reserved;		/* 36 */
	char label[56];		/* 40: short name shown in the report */
} __packed;

/* Stops the guest under the harness; returns the harness's verdict. */
u32 hm_checkpoint(struct hm_expect *e);

static inline u32 hm_expect_mapped(const char *label, const void *va, u64 pfn, u32 prot)
{
	struct hm_expect e = {
		.magic = HM_CP_MAGIC, .version = HM_CP_VERSION, .kind = HM_EXPECT_MAPPED,
		.prot = prot, .va = (u32)(unsigned long)va, .pfn = pfn,
	};

	strscpy(e.label, label, sizeof(e.label));
	return hm_checkpoint(&e);
}

static inline u32 hm_expect_unmapped(const char *label, const void *va)
{
	struct hm_expect e = {
		.magic = HM_CP_MAGIC, .version = HM_CP_VERSION, .kind = HM_EXPECT_UNMAPPED,
		.va = (u32)(unsigned long)va,
	};

	strscpy(e.label, label, sizeof(e.label));
	return hm_checkpoint(&e);
}

static inline u32 hm_expect_stale(const char *label, const void *va, u64 pfn, u32 prot)
{
	struct hm_expect e = {
		.magic = HM_CP_MAGIC, .version = HM_CP_VERSION, .kind = HM_EXPECT_STALE,
		.prot = prot, .va = (u32)(unsigned long)va, .pfn = pfn,
	};

	strscpy(e.label, label, sizeof(e.label));
	return hm_checkpoint(&e);
}

static inline u32 hm_expect_range(const char *label, struct hm_range_entry *entries,
				  u32 count, u32 prot)
{
	struct hm_expect e = {
		.magic = HM_CP_MAGIC, .version = HM_CP_VERSION, .kind = HM_EXPECT_RANGE,
		.prot = prot, .count = count, .entries = (u32)(unsigned long)entries,
	};

	strscpy(e.label, label, sizeof(e.label));
	return hm_checkpoint(&e);
}

#endif /* HM_CHECKPOINT_H */
