// SPDX-License-Identifier: GPL-2.0
/*
 * UFFDIO_MOVE and swap: swapped-out source ptes move as swap entries, and
 * moved pages can be reclaimed (swapped out) at their new address, which
 * needs the reverse map to follow the move.  Both tests skip without an
 * active swap device; they never create one (the series guest sets up swap
 * on zram).
 *
 * The "swap" fixture gives each test a userfaultfd with UFFD_FEATURE_MOVE and
 * two 16-page private anonymous areas of 4K pages: "src", filled with a
 * pattern, and "dst", registered in MISSING mode.
 *
 * References ([man], [doc], [uapi], [mp]): see uffd-move-common.h.
 */
#define _GNU_SOURCE
#include "kselftest_harness.h"
#include "uffd-move-common.h"

#define NPAGES 16

FIXTURE(swap) {
	int uffd;
	char *src;	/* NPAGES pages, filled with pattern 54 */
	char *dst;	/* NPAGES pages, registered (MISSING) */
};

FIXTURE_SETUP(swap)
{
	MOVE_PAIR_SETUP(NPAGES);
	fill(self->src, NPAGES, 54);
}

FIXTURE_TEARDOWN(swap)
{
	MOVE_PAIR_TEARDOWN(NPAGES);
}

/*
 * [man]/[mp] swapped-out pages: a source pte that is a swap entry is moved
 * as a swap entry; the data comes back at dst on access, src is a hole.
 */
TEST_F(swap, swap)
{
	const unsigned long n = NPAGES;
	char *src = self->src, *dst = self->dst;
	struct mres r;
	int swapped;

	if (swap_devices() < 1)
		SKIP(return, "no active swap device in /proc/swaps");
	swapped = page_out(src, n);
	if (swapped < 0)
		SKIP(return, "MADV_PAGEOUT: %s", strerror(-swapped));
	if (!swapped)
		SKIP(return, "MADV_PAGEOUT did not swap anything out");
	r = do_move(self->uffd, dst, src, n * ps, 0);
	ASSERT_MOVED(r, n * ps);
	for (unsigned long i = 0; i < n; i++) {
		ASSERT_MISSING(src + i * ps);
		ASSERT_PRESENT(dst + i * ps);
	}
	for (unsigned long i = 0; i < n; i++) {
		ASSERT_PATTERN(dst + i * ps, 54, i);
	}
	TH_LOG("%d of %lu pages were swapped out", swapped, n);
}

/*
 * [mp] move_pages() "only works on non shared anonymous pages because those
 * can be relocated without generating non linear anon_vmas in the rmap
 * code": a moved page is re-homed in the reverse map of the dst vma (its
 * anon_vma and its index follow it), so reclaim, which finds a page's
 * mappings through the rmap, can unmap it at dst.  MADV_PAGEOUT of the
 * moved range swaps the pages out like those of an untouched control range,
 * and they come back intact; src stays a hole.
 */
TEST_F(swap, reclaim_after_move)
{
	const unsigned long n = NPAGES;
	char *src = self->src, *dst = self->dst, *ctl = map_anon(n * ps);
	struct mres r;
	int got, want;

	if (swap_devices() < 1)
		SKIP(return, "no active swap device in /proc/swaps");
	ASSERT_MAPPED(ctl);
	fill(ctl, n, 82);
	want = page_out(ctl, n);
	if (want < 0)
		SKIP(return, "MADV_PAGEOUT: %s", strerror(-want));
	if (want == 0)
		SKIP(return, "MADV_PAGEOUT did not swap out any page of a control range");
	r = do_move(self->uffd, dst, src, n * ps, 0);
	ASSERT_MOVED(r, n * ps);
	got = page_out(dst, n);
	ASSERT_LE(0, got) TH_LOG("MADV_PAGEOUT of dst: %s", strerror(-got));
	ASSERT_TRUE(got > 0 && 2 * got >= want)
	TH_LOG("%d of %lu moved pages could be paged out (control: %d): reclaim cannot find them at dst",
	       got, n, want);
	for (unsigned long i = 0; i < n; i++) {
		ASSERT_MISSING(src + i * ps);
		ASSERT_PATTERN(dst + i * ps, 54, i);
		ASSERT_PATTERN(ctl + i * ps, 82, i);
	}
	TH_LOG("%d of %lu moved pages paged out (control %d)", got, n, want);
}

UFFD_MOVE_HARNESS_MAIN
