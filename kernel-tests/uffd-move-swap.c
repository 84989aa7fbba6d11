// SPDX-License-Identifier: GPL-2.0
/*
 * UFFDIO_MOVE and swap: swapped-out source ptes move as swap entries, and
 * moved pages can be reclaimed (swapped out) at their new address, which
 * needs the reverse map to follow the move; moved swap entries are
 * soft-dirty, and shared ones (after fork) are refused.  The tests skip without an active swap device; they never
 * create one (the series guest sets up swap on zram).
 *
 * The "swap" fixture gives each test a userfaultfd with UFFD_FEATURE_MOVE and
 * two 16-page private anonymous areas of 4K pages: "src", filled with a
 * pattern, and "dst", registered in MISSING mode.
 *
 * References ([man], [doc], [uapi], [mp]): see uffd-move-common.h.
 */
#define _GNU_SOURCE
#include <sys/wait.h>

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
 * A moved swap entry is marked soft-dirty (move_swap_pte():
 * pte_swp_mksoft_dirty()), as a moved present pte is ("Set soft dirty bit so
 * userspace can notice the pte was moved", move_present_pte()): pages swapped
 * out, soft-dirty bits cleared (/proc/self/clear_refs = 4 clears them on swap
 * entries too), moved: every destination entry that is still a swap entry is
 * soft-dirty in /proc/self/pagemap (skipped without CONFIG_MEM_SOFT_DIRTY).
 */
TEST_F(swap, swap_soft_dirty)
{
	const unsigned long n = NPAGES;
	char *src = self->src, *dst = self->dst;
	int swapped, checked = 0;
	struct mres r;

	if (swap_devices() < 1)
		SKIP(return, "no active swap device in /proc/swaps");
	swapped = page_out(src, n);
	if (swapped <= 0)
		SKIP(return, "MADV_PAGEOUT swapped nothing out (%d)", swapped);
	if (clear_soft_dirty(_metadata))
		return;
	for (unsigned long i = 0; i < n; i++) {
		if (pagemap(src + i * ps) & PM_SWAP) {
			ASSERT_FALSE(pagemap(src + i * ps) & PM_SOFT_DIRTY)
			TH_LOG("swapped src page %lu soft-dirty after clear_refs", i);
		}
	}
	r = do_move(self->uffd, dst, src, n * ps, 0);
	ASSERT_MOVED(r, n * ps);
	for (unsigned long i = 0; i < n; i++) {
		uint64_t pm = pagemap(dst + i * ps);

		if (!(pm & PM_SWAP))
			continue;
		checked++;
		ASSERT_TRUE(pm & PM_SOFT_DIRTY)
		TH_LOG("moved swap entry %lu is not soft-dirty: %#llx", i, (unsigned long long)pm);
	}
	ASSERT_LT(0, checked) TH_LOG("no moved page was still a swap entry (%d swapped out)", swapped);
	for (unsigned long i = 0; i < n; i++) {
		ASSERT_PATTERN(dst + i * ps, 54, i);
	}
}

/*
 * [mp] "the source page must not be shared" (it "should have mapcount ==
 * 1"), for a swapped-out page too: fork() makes the parent's swap entries
 * non-exclusive (a child shares them), and move_pages_pte() refuses a swap
 * entry that is not exclusive ("if (!pte_swp_exclusive(orig_src_pte)) err =
 * -EBUSY").  Pages swapped out, then a child forked (it stays until the
 * parent has checked): -1/EBUSY, move == -EBUSY, nothing moved, and both
 * still read the data.
 */
TEST_F(swap, swap_ebusy_fork)
{
	const unsigned long n = 4;
	char *src = self->src, *dst = self->dst;
	int p2c[2], st, swapped;
	struct mres r;
	char c = 0;
	pid_t pid;

	if (swap_devices() < 1)
		SKIP(return, "no active swap device in /proc/swaps");
	swapped = page_out(src, n);
	if (swapped <= 0)
		SKIP(return, "MADV_PAGEOUT swapped nothing out (%d)", swapped);
	if (!(pagemap(src) & PM_SWAP))
		SKIP(return, "the first page was not swapped out");
	ASSERT_EQ(0, pipe(p2c));
	pid = fork();
	ASSERT_LE(0, pid) TH_LOG("fork: %s", strerror(errno));
	if (pid == 0) {
		int ok = 1;

		if (read(p2c[0], &c, 1) != 1)
			_exit(2);
		for (unsigned long i = 0; i < n; i++)
			ok &= check_page(src + i * ps, 54, i) < 0;
		_exit(ok ? 0 : 1);
	}
	r = do_move(self->uffd, dst, src, ps, 0);
	ASSERT_MOVE_ERR(r, EBUSY);
	ASSERT_MISSING(dst);
	ASSERT_TRUE(pagemap(src) & PM_SWAP) TH_LOG("the refused page is no longer swapped out");
	ASSERT_EQ(1, write(p2c[1], "g", 1));
	ASSERT_EQ(pid, waitpid(pid, &st, 0));
	ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) TH_LOG("child saw wrong data (status %#x)", st);
	for (unsigned long i = 0; i < n; i++) {
		ASSERT_PATTERN(src + i * ps, 54, i);
	}
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
