// SPDX-License-Identifier: GPL-2.0
/*
 * UFFDIO_MOVE of 4K pages (the pte path): what moves, where, and what the
 * "move" field and errno report for complete, partial and refused moves;
 * source holes (ENOENT, ALLOW_SRC_HOLES), populated destinations (EEXIST),
 * overlapping ranges, the shared zero page, RSS accounting and soft-dirty.
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
 * (untouched 2 MiB region: a none pmd), and the hole lies alone in an
 * untouched 1 GiB-aligned region ([mp]: "if (!(mode &
 * UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES)) err = -ENOENT" on each page-table level
 * move_pages() finds empty).
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
	far = map_anon_a(4 * ps, 1UL << 30);	/* alone in its 1 GiB, never touched */
	ASSERT_MAPPED(far);
	r = do_move(self->uffd, dst, far, ps, 0);
	ASSERT_MOVE_ERR(r, ENOENT);
	r = do_move(self->uffd, dst, far, 4 * ps, 0);
	ASSERT_MOVE_ERR(r, ENOENT);
	ASSERT_MISSING(dst);
	munmap(far, 4 * ps);
}

/*
 * [uapi]/[man] UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES: "holes will be accounted as
 * successfully remapped in the retval" ([mp]): a sparse source moves with
 * ret 0 and move == len; holes stay holes at dst, data pages move.  Also a
 * fully unpopulated source with no page tables at all.
 */
TEST_F(pte, allow_src_holes)
{
	const unsigned long n = 8;
	char *src = self->src, *dst = self->dst;
	char *empty = map_anon_a(2 * hps, hps), *dst2 = map_anon(n * ps);
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
 * Clear the soft-dirty bits of the whole process (/proc/self/clear_refs = 4)
 * and check, with a written probe page, that soft-dirty tracking works: 0,
 * or -1 after SKIP() (the caller returns).
 */
static int clear_soft_dirty(struct __test_metadata *_metadata)
{
	char *probe = map_anon(ps);
	int cr = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);

	ASSERT_MAPPED(probe);
	if (cr < 0)
		SKIP(return -1, "/proc/self/clear_refs: %s", strerror(errno));
	probe[0] = 1;
	if (write(cr, "4", 1) != 1)
		SKIP(return -1, "clear_refs soft-dirty: %s", strerror(errno));
	close(cr);
	if (pagemap(probe) & PM_SOFT_DIRTY)
		SKIP(return -1, "soft-dirty tracking unsupported (CONFIG_MEM_SOFT_DIRTY off)");
	probe[0] = 2;
	if (!(pagemap(probe) & PM_SOFT_DIRTY))
		SKIP(return -1, "soft-dirty tracking unsupported (CONFIG_MEM_SOFT_DIRTY off)");
	return 0;
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
