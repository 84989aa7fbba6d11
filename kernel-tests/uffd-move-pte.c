// SPDX-License-Identifier: GPL-2.0
/*
 * UFFDIO_MOVE of 4K pages (the pte path): what moves, where, and what the
 * "move" field and errno report for complete, partial and refused moves;
 * source holes (ENOENT, ALLOW_SRC_HOLES), populated destinations (EEXIST),
 * overlapping ranges, the shared zero page, RSS accounting and soft-dirty,
 * the moved pte (writable, dirty) and what a move leaves behind (anon_vmas).
 *
 * The "pte" fixture gives each test a userfaultfd with UFFD_FEATURE_MOVE and
 * two 16-page private anonymous areas of 4K pages (no THP): "src", left
 * empty for the test to fill, and "dst", registered in MISSING mode.  A test
 * that needs a destination populated before registration (a write to a
 * registered hole would block on a userfault) maps its own.
 *
 * References ([man], [doc], [uapi], [mp]): see uffd-move-common.h.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <sys/ioctl.h>

#include "kselftest_harness.h"
#include "uffd-move-common.h"

#define NPAGES 16

FIXTURE(pte) {
	int uffd;
	char *src;	/* NPAGES pages, empty */
	char *dst;	/* NPAGES pages, empty, registered (MISSING) */
};

FIXTURE_SETUP(pte)
{
	MOVE_PAIR_SETUP(NPAGES);
}

FIXTURE_TEARDOWN(pte)
{
	MOVE_PAIR_TEARDOWN(NPAGES);
}

/*
 * [man]/[mp]: UFFDIO_MOVE moves the pages of [src, src+len) to
 * [dst, dst+len) in zero copy: contents appear intact at dst, the source
 * range becomes a hole (the pages are *moved*, not copied), and a later
 * access to src in a MISSING-registered range raises a userfault that we
 * resolve with UFFDIO_ZEROPAGE and read zeros.
 */
TEST_F(pte, move_basic)
{
	const unsigned long n = NPAGES;
	char *src = self->src, *dst = self->dst;
	struct uffdio_zeropage z;
	struct toucher t;
	struct mres r;
	uint64_t fa;

	fill(src, n, 7);
	ASSERT_REGISTER(self->uffd, src, n * ps);
	for (unsigned long i = 0; i < n; i++) {
		ASSERT_MISSING(dst + i * ps);
	}

	r = do_move(self->uffd, dst, src, n * ps, 0);
	ASSERT_MOVED(r, n * ps);
	for (unsigned long i = 0; i < n; i++) {
		ASSERT_PRESENT(dst + i * ps);
		ASSERT_MISSING(src + i * ps);
	}
	for (unsigned long i = 0; i < n; i++) {
		ASSERT_PATTERN(dst + i * ps, 7, i);
	}

	/* reading the source now faults (it is a hole in a registered range) */
	touch_async(&t, src + 3 * ps);
	fa = read_fault(self->uffd, 5000);
	ASSERT_EQ((uintptr_t)(src + 3 * ps), fa)
	TH_LOG("expected a userfault at %p, got %#llx", (void *)(src + 3 * ps), (unsigned long long)fa);
	z = (struct uffdio_zeropage){ .range = { .start = fa, .len = ps } };
	ASSERT_EQ(0, ioctl(self->uffd, UFFDIO_ZEROPAGE, &z)) TH_LOG("UFFDIO_ZEROPAGE: %s", strerror(errno));
	ASSERT_TRUE(wait_done(&t, 5000)) TH_LOG("faulting thread not woken by UFFDIO_ZEROPAGE");
	pthread_join(t.th, NULL);
	ASSERT_EQ(0, t.val) TH_LOG("source page read %#llx after move, expected zeros", (unsigned long long)t.val);
	/* the destination is a normal writable anonymous mapping */
	for (unsigned long i = 0; i < n; i++)
		fill_page(dst + i * ps, 8, i);
	for (unsigned long i = 0; i < n; i++) {
		ASSERT_PATTERN(dst + i * ps, 8, i);
	}
}

/*
 * [mp] "remaps arbitrary anonymous pages atomically in zero copy": the
 * physical page (PFN) that backed src is the one now mapped at dst, and it
 * stays mapped after writing to dst (the moved pte is writable, no COW).
 * Needs PFNs in /proc/self/pagemap (CAP_SYS_ADMIN).
 */
TEST_F(pte, move_zero_copy_pfn)
{
	const unsigned long n = 8;
	char *src = self->src, *dst = self->dst;
	uint64_t pfns[8];
	struct mres r;

	fill(src, n, 9);
	for (unsigned long i = 0; i < n; i++)
		pfns[i] = pfn_of(src + i * ps);
	if (!pfns[0])
		SKIP(return, "PFNs are hidden in /proc/self/pagemap (needs CAP_SYS_ADMIN)");
	r = do_move(self->uffd, dst, src, n * ps, 0);
	ASSERT_MOVED(r, n * ps);
	for (unsigned long i = 0; i < n; i++) {
		ASSERT_EQ(pfns[i], pfn_of(dst + i * ps))
		TH_LOG("page %lu: pfn %#llx at dst, was %#llx at src", i,
		       (unsigned long long)pfn_of(dst + i * ps), (unsigned long long)pfns[i]);
		dst[i * ps + 5] = 0x42;
		ASSERT_EQ(pfns[i], pfn_of(dst + i * ps)) TH_LOG("page %lu was copied on write after the move", i);
	}
}

/*
 * The pte a move installs is writable and keeps the source's dirty bit
 * (move_present_pte(): "if (pte_dirty(orig_src_pte)) orig_dst_pte =
 * pte_mkdirty(orig_dst_pte); orig_dst_pte = pte_mkwrite(orig_dst_pte,
 * dst_vma)").  Writable: writing each moved page takes no page fault
 * (getrusage() minor faults; a read-only pte would take one per page).
 * Dirty: a page that MADV_FREE made lazily freeable and that was then written
 * again (which cancels the lazy free: madvise(2) MADV_FREE "if the caller
 * writes into the page ... the kernel will not free the page") holds data that
 * only its dirty pte records; moved, then reclaimed with MADV_PAGEOUT (which
 * drops a lazily freed page whose pte is clean, swap or not), it must still be
 * mapped, with the new data.  The thread stays on one CPU meanwhile: MADV_FREE
 * queues the pages on a per-CPU batch that MADV_PAGEOUT drains on its own CPU.
 */
TEST_F(pte, moved_pte_writable_dirty)
{
	const unsigned long n = 8;
	char *src = self->src, *dst = self->dst, *s2 = src + n * ps, *d2 = dst + n * ps;
	cpu_set_t one;
	struct mres r;
	long faults;

	fill(src, n, 77);
	r = do_move(self->uffd, dst, src, n * ps, 0);
	ASSERT_MOVED(r, n * ps);
	faults = minor_faults();
	for (unsigned long i = 0; i < n; i++)
		dst[i * ps + 8] = 1;
	faults = minor_faults() - faults;
	ASSERT_LT(faults, (long)n / 2) TH_LOG("writing %lu moved pages took %ld page faults: read-only ptes", n, faults);

	CPU_ZERO(&one);
	CPU_SET(sched_getcpu(), &one);
	if (sched_setaffinity(0, sizeof(one), &one))
		SKIP(return, "sched_setaffinity: %s", strerror(errno));
	fill(s2, n, 78);
	if (madvise(s2, n * ps, MADV_FREE))
		SKIP(return, "MADV_FREE: %s", strerror(errno));
	fill(s2, n, 79);	/* written again: dirty ptes */
	r = do_move(self->uffd, d2, s2, n * ps, 0);
	ASSERT_MOVED(r, n * ps);
	if (madvise(d2, n * ps, MADV_PAGEOUT))
		SKIP(return, "MADV_PAGEOUT: %s", strerror(errno));
	for (unsigned long i = 0; i < n; i++) {
		ASSERT_EQ(1, page_present(d2 + i * ps))
		TH_LOG("moved page %lu, written after MADV_FREE, was dropped by reclaim: its pte lost the dirty bit", i);
		ASSERT_PATTERN(d2 + i * ps, 79, i);
	}
}

/*
 * [man] "move": on success the kernel writes len into the "move" field and
 * the ioctl returns 0; whatever the caller left there is overwritten.  Also
 * a single page, and moving within one vma ([mp] "It can remap non shared
 * anonymous pages within the same vma too").
 */
TEST_F(pte, move_field_success)
{
	char *a = self->src;	/* one vma: src = a[0..3], dst = a[4..7] */
	struct mres r;

	fill(a, 4, 11);
	ASSERT_REGISTER(self->uffd, a, NPAGES * ps);
	r = do_move(self->uffd, a + 4 * ps, a, ps, 0);
	ASSERT_MOVED(r, ps);
	r = do_move(self->uffd, a + 5 * ps, a + ps, 3 * ps, 0);
	ASSERT_MOVED(r, 3 * ps);
	for (int i = 0; i < 4; i++) {
		ASSERT_PATTERN(a + (4 + i) * ps, 11, i);
		ASSERT_MISSING(a + i * ps);
	}
}

/*
 * Large move across many page tables (8 MiB of 4K pages, several PMDs,
 * unaligned start) in one call: move == len, every page exact.
 */
TEST_F(pte, move_large)
{
	const unsigned long n = 2048 + 37;
	char *src = map_anon(n * ps + ps), *dst = map_anon(n * ps + 3 * ps);
	struct mres r;

	ASSERT_MAPPED(src);
	ASSERT_MAPPED(dst);
	fill(src + ps, n, 77);
	ASSERT_REGISTER(self->uffd, dst, n * ps + 3 * ps);
	r = do_move(self->uffd, dst + 3 * ps, src + ps, n * ps, 0);
	ASSERT_MOVED(r, n * ps);
	for (unsigned long i = 0; i < n; i++) {
		ASSERT_PATTERN(dst + (3 + i) * ps, 77, i);
	}
	for (unsigned long i = 0; i < n; i += 13) {
		ASSERT_MISSING(src + (1 + i) * ps);
	}
	ASSERT_EQ(0, smaps_kb(src, "Rss")) TH_LOG("src Rss %ld", smaps_kb(src, "Rss"));
}

/*
 * [man] EAGAIN: "The number of bytes moved (i.e., the value returned in the
 * move field) does not equal the value that was specified in the len field."
 * [mp] "If interrupted it will return the number of bytes successfully
 * remapped before the interruption ... should be repeated by userland with
 * src+retval, dst+retval, len-retval if it wants to know about the error".
 * A populated dst page in the middle stops the move: ioctl -1/EAGAIN, move ==
 * bytes moved before it; the pages before are moved, the rest untouched; the
 * retry reports the real error EEXIST with move == -EEXIST.
 */
TEST_F(pte, partial_eexist)
{
	const unsigned long n = 8, k = 3;
	char *src = self->src, *dst = map_anon(n * ps);
	struct mres r;

	ASSERT_MAPPED(dst);
	fill(src, n, 12);
	fill_page(dst + k * ps, 99, 0);
	ASSERT_REGISTER(self->uffd, dst, n * ps);
	r = do_move(self->uffd, dst, src, n * ps, 0);
	ASSERT_PARTIAL(r, k * ps);
	for (unsigned long i = 0; i < k; i++) {
		ASSERT_PATTERN(dst + i * ps, 12, i);
		ASSERT_MISSING(src + i * ps);
	}
	ASSERT_PATTERN(dst + k * ps, 99, 0);
	for (unsigned long i = k; i < n; i++) {
		ASSERT_PATTERN(src + i * ps, 12, i);
	}
	for (unsigned long i = k + 1; i < n; i++) {
		ASSERT_MISSING(dst + i * ps);
	}
	r = do_move(self->uffd, dst + k * ps, src + k * ps, (n - k) * ps, 0);
	ASSERT_MOVE_ERR(r, EEXIST);
	/* skip the busy page and finish */
	r = do_move(self->uffd, dst + (k + 1) * ps, src + (k + 1) * ps, (n - k - 1) * ps, 0);
	ASSERT_MOVED(r, (n - k - 1) * ps);
	for (unsigned long i = k + 1; i < n; i++) {
		ASSERT_PATTERN(dst + i * ps, 12, i);
	}
	ASSERT_PATTERN(src + k * ps, 12, k);
}

/*
 * [mp] "If the source virtual memory range has any unmapped holes ...
 * move_pages() will fail ... with -ENOENT"; progress before the hole is
 * reported as in partial_eexist (EAGAIN + move == bytes moved).
 */
TEST_F(pte, partial_enoent)
{
	const unsigned long n = 8, k = 5;
	char *src = self->src, *dst = self->dst;
	struct mres r;

	fill(src, n, 13);
	madvise(src + k * ps, ps, MADV_DONTNEED);
	r = do_move(self->uffd, dst, src, n * ps, 0);
	ASSERT_PARTIAL(r, k * ps);
	for (unsigned long i = 0; i < k; i++) {
		ASSERT_PATTERN(dst + i * ps, 13, i);
	}
	for (unsigned long i = k; i < n; i++) {
		ASSERT_MISSING(dst + i * ps);
	}
	for (unsigned long i = k + 1; i < n; i++) {
		ASSERT_PATTERN(src + i * ps, 13, i);
	}
	r = do_move(self->uffd, dst + k * ps, src + k * ps, (n - k) * ps, 0);
	ASSERT_MOVE_ERR(r, ENOENT);
}

/*
 * [man] ENOENT / [mp]: a hole at the very first source page fails with
 * -ENOENT and move == -ENOENT, nothing moved.  Three flavours: the hole is a
 * none pte inside an existing page table, the hole has no page table at all
 * (untouched 2 MiB region: a none pmd), and the hole lies in an untouched
 * vma that fills its whole 1 GiB-aligned range, so that not even a pmd table
 * exists ([mp]: "if (!(mode & UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES)) err =
 * -ENOENT" on each page-table level move_pages() finds empty: the none pmd,
 * and mm_find_pmd() finding no pmd table at all).  A 1 GiB-aligned vma of a
 * few pages is not enough: the rest of its 1 GiB may hold other mappings'
 * page tables.
 */
TEST_F(pte, enoent_src_hole)
{
	char *src = self->src, *dst = self->dst;
	char *empty = map_anon_a(hps, hps);	/* never touched: no page table */
	char *far;
	struct mres r;

	ASSERT_MAPPED(empty);
	madvise(empty, hps, MADV_NOHUGEPAGE);
	fill(src + ps, 3, 14);	/* page 0 is a hole, page table exists */
	r = do_move(self->uffd, dst, src, 4 * ps, 0);
	ASSERT_MOVE_ERR(r, ENOENT);
	r = do_move(self->uffd, dst, src, ps, 0);
	ASSERT_MOVE_ERR(r, ENOENT);
	for (int i = 0; i < 4; i++) {
		ASSERT_MISSING(dst + i * ps);
	}
	for (int i = 1; i < 4; i++) {
		ASSERT_PATTERN(src + i * ps, 14, i - 1);
	}
	r = do_move(self->uffd, dst, empty, 4 * ps, 0);
	ASSERT_MOVE_ERR(r, ENOENT);
	r = do_move(self->uffd, dst, empty + hps - ps, ps, 0);
	ASSERT_MOVE_ERR(r, ENOENT);
	far = map_alone_gib();
	ASSERT_MAPPED(far);
	r = do_move(self->uffd, dst, far, ps, 0);
	ASSERT_MOVE_ERR(r, ENOENT);
	r = do_move(self->uffd, dst, far + GIB / 2, 4 * ps, 0);
	ASSERT_MOVE_ERR(r, ENOENT);
	ASSERT_MISSING(dst);
	munmap(far, GIB);
}

/*
 * [uapi]/[man] UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES: "holes will be accounted as
 * successfully remapped in the retval" ([mp]): a sparse source moves with
 * ret 0 and move == len; holes stay holes at dst, data pages move.  Also a
 * fully unpopulated source with no page tables at all: a none pmd, and no
 * pmd table either (a vma alone in its 1 GiB: move_pages() allocates the
 * source's pmd with mm_alloc_pmd() and moves the holes).
 */
TEST_F(pte, allow_src_holes)
{
	const unsigned long n = 8;
	char *src = self->src, *dst = self->dst;
	char *empty = map_anon_a(2 * hps, hps), *dst2 = map_anon(n * ps);
	char *far;
	struct mres r;

	ASSERT_MAPPED(empty);
	ASSERT_MAPPED(dst2);
	madvise(empty, 2 * hps, MADV_NOHUGEPAGE);
	fill(src, n, 15);
	madvise(src, ps, MADV_DONTNEED);		/* hole at the start */
	madvise(src + 4 * ps, 2 * ps, MADV_DONTNEED);	/* and in the middle */
	madvise(src + 7 * ps, ps, MADV_DONTNEED);	/* and at the end */
	ASSERT_REGISTER(self->uffd, dst2, n * ps);
	r = do_move(self->uffd, dst, src, n * ps, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES);
	ASSERT_MOVED(r, n * ps);
	for (unsigned long i = 0; i < n; i++) {
		int hole = i == 0 || i == 4 || i == 5 || i == 7;

		ASSERT_MISSING(src + i * ps);
		if (hole) {
			ASSERT_MISSING(dst + i * ps);
		} else {
			ASSERT_PATTERN(dst + i * ps, 15, i);
		}
	}
	/* the range ends at len: the page after it is untouched */
	ASSERT_MISSING(dst + n * ps);
	/* the holes did not turn into populated pages: a second move into them works */
	fill_page(src, 16, 0);
	r = do_move(self->uffd, dst, src, ps, 0);
	ASSERT_MOVED(r, ps);
	ASSERT_PATTERN(dst, 16, 0);

	/* completely empty source, crossing a page-table boundary */
	r = do_move(self->uffd, dst2, empty + hps - 4 * ps, n * ps, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES);
	ASSERT_MOVED(r, n * ps);
	for (unsigned long i = 0; i < n; i++) {
		ASSERT_MISSING(dst2 + i * ps);
	}
	/* same without the flag: ENOENT */
	r = do_move(self->uffd, dst2, empty + hps - 4 * ps, n * ps, 0);
	ASSERT_MOVE_ERR(r, ENOENT);

	/* no pmd table for the source at all: the holes move, nothing appears */
	far = map_alone_gib();
	ASSERT_MAPPED(far);
	r = do_move(self->uffd, dst2, far + GIB / 2, n * ps, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES);
	ASSERT_MOVED(r, n * ps);
	for (unsigned long i = 0; i < n; i++) {
		ASSERT_MISSING(dst2 + i * ps);
		ASSERT_MISSING(far + GIB / 2 + i * ps);
	}
	munmap(far, GIB);
}

/*
 * [mp] "if the destination virtual memory range is not a whole unmapped
 * hole, move_pages() will fail ... with -EEXIST" ([man] EEXIST): dst first
 * page populated -> -1/EEXIST, move == -EEXIST, nothing moved.  Also when
 * the dst page was populated by UFFDIO_COPY / UFFDIO_ZEROPAGE (zero page pte).
 */
TEST_F(pte, eexist_dst_populated)
{
	char *src = self->src, *dst = map_anon(4 * ps), *buf = map_anon(ps);
	struct uffdio_copy c;
	struct uffdio_zeropage z;
	struct mres r;

	ASSERT_MAPPED(dst);
	ASSERT_MAPPED(buf);
	fill(src, 4, 17);
	fill_page(dst, 18, 0);
	ASSERT_REGISTER(self->uffd, dst, 4 * ps);
	r = do_move(self->uffd, dst, src, 4 * ps, 0);
	ASSERT_MOVE_ERR(r, EEXIST);
	r = do_move(self->uffd, dst, src, 4 * ps, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES);
	ASSERT_MOVE_ERR(r, EEXIST);
	ASSERT_PATTERN(dst, 18, 0);
	for (int i = 0; i < 4; i++) {
		ASSERT_PATTERN(src + i * ps, 17, i);
	}
	for (int i = 1; i < 4; i++) {
		ASSERT_MISSING(dst + i * ps);
	}

	fill_page(buf, 19, 0);
	c = (struct uffdio_copy){ .dst = (uintptr_t)(dst + ps), .src = (uintptr_t)buf, .len = ps };
	ASSERT_EQ(0, ioctl(self->uffd, UFFDIO_COPY, &c)) TH_LOG("UFFDIO_COPY: %s", strerror(errno));
	r = do_move(self->uffd, dst + ps, src + ps, ps, 0);
	ASSERT_MOVE_ERR(r, EEXIST);
	z = (struct uffdio_zeropage){ .range = { .start = (uintptr_t)(dst + 2 * ps), .len = ps } };
	ASSERT_EQ(0, ioctl(self->uffd, UFFDIO_ZEROPAGE, &z)) TH_LOG("UFFDIO_ZEROPAGE: %s", strerror(errno));
	r = do_move(self->uffd, dst + 2 * ps, src + 2 * ps, ps, 0);
	ASSERT_MOVE_ERR(r, EEXIST);
	ASSERT_TRUE(page_is_zero(dst + 2 * ps)) TH_LOG("zeropage clobbered");
	ASSERT_PATTERN(dst + ps, 19, 0);
	r = do_move(self->uffd, dst + 3 * ps, src + 3 * ps, ps, 0);
	ASSERT_MOVED(r, ps);
	ASSERT_PATTERN(dst + 3 * ps, 17, 3);
}

/*
 * Overlapping src/dst ranges inside one vma.  Neither [man] nor [mp] forbid
 * overlap; the move proceeds page by page from the low address upwards, so
 * it is the EEXIST/ENOENT rules that decide: moving a range one page *up*
 * hits its own populated page first (-EEXIST, nothing moved), moving it one
 * page *down* succeeds (each destination was vacated by the previous step).
 * A kernel returning EINVAL for overlap is also accepted (documented
 * alternative), as long as nothing was moved.
 */
TEST_F(pte, overlap)
{
	char *a = self->src;
	struct mres r;

	fill(a + 2 * ps, 4, 23);	/* pages 2..5 */
	ASSERT_REGISTER(self->uffd, a, NPAGES * ps);
	r = do_move(self->uffd, a + 3 * ps, a + 2 * ps, 4 * ps, 0);	/* up by one page */
	if (r.ret == -1 && r.err == EINVAL) {
		TH_LOG("kernel rejects overlapping ranges with EINVAL");
		for (int i = 0; i < 4; i++) {
			ASSERT_PATTERN(a + (2 + i) * ps, 23, i);
		}
		return;
	}
	ASSERT_MOVE_ERR(r, EEXIST);
	for (int i = 0; i < 4; i++) {
		ASSERT_PATTERN(a + (2 + i) * ps, 23, i);
	}
	ASSERT_MISSING(a + 6 * ps);
	r = do_move(self->uffd, a + ps, a + 2 * ps, 4 * ps, 0);	/* down by one page */
	ASSERT_MOVED(r, 4 * ps);
	for (int i = 0; i < 4; i++) {
		ASSERT_PATTERN(a + (1 + i) * ps, 23, i);
	}
	ASSERT_MISSING(a + 5 * ps);
	/* fully identical src and dst: dst is populated -> EEXIST */
	r = do_move(self->uffd, a + ps, a + ps, 2 * ps, 0);
	ASSERT_TRUE(r.ret == -1 && (r.err == EEXIST || r.err == EINVAL))
	TH_LOG("src==dst: ret=%d errno=%d", r.ret, r.err);
	for (int i = 0; i < 4; i++) {
		ASSERT_PATTERN(a + (1 + i) * ps, 23, i);
	}
}

/*
 * The shared zero page ([mp]/kernel 6.8 "userfaultfd: handle zeropage moves
 * by UFFDIO_MOVE"): a read-faulted, never-written source maps the zero page;
 * moving it succeeds (move == len), dst reads zeros and maps the zero page,
 * src becomes a hole; writing dst afterwards gives a private page.
 */
TEST_F(pte, zeropage)
{
	char *src = self->src, *dst = self->dst;
	volatile char sink = 0;
	uint64_t zpfn;
	struct mres r;

	for (int i = 0; i < 4; i++)
		sink += src[i * ps];	/* read faults: zero page */
	(void)sink;
	zpfn = pfn_of(src);
	if (zpfn) {
		ASSERT_EQ(zpfn, pfn_of(src + ps)) TH_LOG("read faults did not map the shared zero page");
	}
	r = do_move(self->uffd, dst, src, 4 * ps, 0);
	ASSERT_MOVED(r, 4 * ps);
	for (int i = 0; i < 4; i++) {
		ASSERT_PRESENT(dst + i * ps);
		ASSERT_MISSING(src + i * ps);
		ASSERT_TRUE(page_is_zero(dst + i * ps)) TH_LOG("dst page %d not zero", i);
		if (zpfn) {
			ASSERT_EQ(zpfn, pfn_of(dst + i * ps)) TH_LOG("dst page %d is not the zero page", i);
		}
	}
	r = do_move(self->uffd, dst, src, ps, 0);	/* src is a hole now */
	ASSERT_MOVE_ERR(r, EEXIST);	/* dst checked before src: populated with the zero page */
	dst[0] = 5;
	ASSERT_TRUE(dst[0] == 5 && dst[ps] == 0) TH_LOG("write to moved zero page");
	if (zpfn) {
		ASSERT_TRUE(pfn_of(dst) != zpfn && pfn_of(dst + ps) == zpfn) TH_LOG("COW of the zero page");
	}
}

/*
 * RSS accounting: a move within one mm does not change the process's
 * anonymous RSS (RssAnon, approximate per-cpu counter: small tolerance),
 * while the per-vma Rss in /proc/self/smaps (exact page-table walk) moves
 * from the src vma to the dst vma.  Both for 4K pages and a THP.
 */
TEST_F(pte, rss_counters)
{
	const unsigned long n = 1024;
	char *src = map_anon(n * ps), *dst = map_anon(n * ps), *tsrc, *tdst = map_anon_a(hps, hps);
	long before, after, tol = 512;	/* kB; per-cpu counter drift */
	struct mres r;

	ASSERT_MAPPED(src);
	ASSERT_MAPPED(dst);
	ASSERT_MAPPED(tdst);
	fill(src, n, 73);
	ASSERT_REGISTER(self->uffd, dst, n * ps);
	ASSERT_EQ((long)(n * ps >> 10), smaps_kb(src, "Rss")) TH_LOG("src Rss %ld", smaps_kb(src, "Rss"));
	before = status_kb("RssAnon");
	if (before < 0)
		SKIP(return, "no RssAnon in /proc/self/status");
	r = do_move(self->uffd, dst, src, n * ps, 0);
	ASSERT_MOVED(r, n * ps);
	after = status_kb("RssAnon");
	ASSERT_LE(labs(after - before), tol)
	TH_LOG("RssAnon changed by a same-mm move: %ld -> %ld kB", before, after);
	ASSERT_EQ((long)(n * ps >> 10), smaps_kb(dst, "Rss")) TH_LOG("dst vma Rss=%ld kB", smaps_kb(dst, "Rss"));
	ASSERT_EQ((long)(n * ps >> 10), smaps_kb(dst, "Anonymous"))
	TH_LOG("dst vma Anonymous=%ld kB", smaps_kb(dst, "Anonymous"));
	ASSERT_EQ(0, smaps_kb(src, "Rss")) TH_LOG("src vma Rss=%ld kB", smaps_kb(src, "Rss"));
	/* sanity: the counter does react to real changes */
	madvise(dst, n * ps, MADV_DONTNEED);
	ASSERT_LT(status_kb("RssAnon"), after - (long)(n * ps >> 10) + tol) TH_LOG("RssAnon did not drop after DONTNEED");

	if (thp_usable() && make_thp(_metadata, &tsrc, hps, 74) == 0) {
		madvise(tdst, hps, MADV_HUGEPAGE);
		ASSERT_REGISTER(self->uffd, tdst, hps);
		before = status_kb("RssAnon");
		r = do_move(self->uffd, tdst, tsrc, hps, 0);
		ASSERT_MOVED(r, hps);
		after = status_kb("RssAnon");
		ASSERT_LE(labs(after - before), tol) TH_LOG("RssAnon changed by THP move: %ld -> %ld kB", before, after);
		ASSERT_EQ((long)(hps >> 10), smaps_kb(tdst, "Rss")) TH_LOG("THP dst Rss=%ld", smaps_kb(tdst, "Rss"));
		ASSERT_EQ(0, smaps_kb(tsrc, "Rss")) TH_LOG("THP src Rss=%ld", smaps_kb(tsrc, "Rss"));
	}
}

/*
 * What a move takes, it gives back: to move a present page move_pages_pte()
 * takes a reference on the source folio's anon_vma ([mp] code:
 * folio_get_anon_vma(), "folio_referenced walks the anon_vma chain without
 * the folio lock. Serialize against it with the anon_vma lock") and drops it
 * when done (put_anon_vma()), so that unmapping the source vma frees its
 * anon_vma.  A page hops through LEAK_HOPS vmas of their own (hop_chain()),
 * then they are all unmapped: their anon_vmas must be freed (struct gauge:
 * anon_vma objects, or SUnreclaim).  A first, shorter chain warms the slab
 * caches (SLUB keeps a few empty slabs per cache), so that both readings see
 * them alike.
 */
#define LEAK_HOPS 8192

TEST_F(pte, anon_vma_released)
{
	struct chain c;
	struct gauge g;
	long grew;

	fill(self->src, 1, 75);
	ASSERT_EQ(0, hop_chain(self->uffd, self->src, ps, LEAK_HOPS / 4, &c)) TH_LOG("warm-up chain");
	ASSERT_PATTERN(c.at, 75, 0);
	fill(self->src, 1, 76);	/* the warm-up's page is gone with its chain */
	chain_unmap(&c);
	if (gauge_start(&g, LEAK_HOPS))
		SKIP(return, "neither /proc/slabinfo nor SUnreclaim in /proc/meminfo");
	ASSERT_EQ(0, hop_chain(self->uffd, self->src, ps, LEAK_HOPS, &c)) TH_LOG("chain of %d vmas", LEAK_HOPS);
	ASSERT_PATTERN(c.at, 76, 0);
	chain_unmap(&c);
	grew = gauge_settled(&g);
	ASSERT_LT(grew, g.allowed)
	TH_LOG("still %ld %s more than before a page moved through %d vmas that were then unmapped: "
	       "an anon_vma reference not dropped?", grew, g.unit, LEAK_HOPS);
	TH_LOG("%+ld %s after %d moves and unmaps (allowed: < %ld)", grew, g.unit, LEAK_HOPS, g.allowed);
}

/*
 * mm/userfaultfd.c move_present_pte(): "Set soft dirty bit so userspace can
 * notice the pte was moved": after clearing soft-dirty bits
 * (/proc/self/clear_refs = 4) a moved page is soft-dirty at dst.
 */
TEST_F(pte, soft_dirty)
{
	char *src = self->src, *dst = self->dst;
	struct mres r;

	fill(src, 4, 75);
	if (clear_soft_dirty(_metadata))
		return;
	ASSERT_FALSE(pagemap(src) & PM_SOFT_DIRTY) TH_LOG("src soft-dirty after clear_refs");
	r = do_move(self->uffd, dst, src, 4 * ps, 0);
	ASSERT_MOVED(r, 4 * ps);
	for (int i = 0; i < 4; i++) {
		ASSERT_TRUE(pagemap(dst + i * ps) & PM_SOFT_DIRTY)
		TH_LOG("moved page %d not soft-dirty: %#llx", i, (unsigned long long)pagemap(dst + i * ps));
	}
	for (int i = 0; i < 4; i++) {
		ASSERT_PATTERN(dst + i * ps, 75, i);
	}
}

/*
 * The same for a page whose pte is clean.  On x86 marking a pte dirty also
 * marks it soft-dirty, so a written (dirty) source page would come out
 * soft-dirty at dst even without the move's own marking; the move must mark
 * the pte it installs ("Set soft dirty bit so userspace can notice the pte
 * was moved", move_present_pte()) whatever the source's dirty bit.
 * MADV_FREE cleans the ptes of written pages and leaves them mapped (lazily
 * freed, kept while there is no memory pressure).
 */
TEST_F(pte, soft_dirty_clean_pte)
{
	char *src = self->src, *dst = self->dst;
	struct mres r;

	fill(src, 4, 76);
	if (madvise(src, 4 * ps, MADV_FREE))
		SKIP(return, "MADV_FREE: %s", strerror(errno));
	if (clear_soft_dirty(_metadata))
		return;
	for (int i = 0; i < 4; i++) {
		if (!(pagemap(src + i * ps) & PM_PRESENT))
			SKIP(return, "a MADV_FREE page was reclaimed before the move");
		ASSERT_FALSE(pagemap(src + i * ps) & PM_SOFT_DIRTY) TH_LOG("src page %d soft-dirty after clear_refs", i);
	}
	r = do_move(self->uffd, dst, src, 4 * ps, 0);
	ASSERT_MOVED(r, 4 * ps);
	for (int i = 0; i < 4; i++) {
		ASSERT_TRUE(pagemap(dst + i * ps) & PM_SOFT_DIRTY)
		TH_LOG("moved clean page %d not soft-dirty: %#llx", i, (unsigned long long)pagemap(dst + i * ps));
		ASSERT_MISSING(src + i * ps);
	}
}

UFFD_MOVE_HARNESS_MAIN
