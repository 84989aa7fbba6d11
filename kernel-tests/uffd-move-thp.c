// SPDX-License-Identifier: GPL-2.0
/*
 * UFFDIO_MOVE of transparent huge pages (the PMD path): a whole THP moves as
 * a PMD, a partial or misaligned move splits it, populated destinations,
 * ALLOW_SRC_HOLES across PMDs, a THP shared with a fork child, the huge zero
 * page, and what holds after PMD moves (a writable pmd, a THP the kernel can
 * still split, anon_vmas freed).  Tests skip when THP is disabled or no PMD
 * THP can be had.
 *
 * The "thp" fixture gives each test a userfaultfd with UFFD_FEATURE_MOVE and
 * "dst": two PMDs (2 * PMD size, PMD-aligned, MADV_HUGEPAGE), empty and
 * registered in MISSING mode.  Sources are made by make_thp().
 *
 * References ([man], [doc], [uapi], [mp]): see uffd-move-common.h.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "uffd-move-common.h"

FIXTURE(thp) {
	int uffd;
	char *dst;	/* 2 PMDs, PMD-aligned, MADV_HUGEPAGE, registered (MISSING) */
};

FIXTURE_SETUP(thp)
{
	self->uffd = uffd_move_fd();
	ASSERT_UFFD(self->uffd);
	self->dst = map_anon_a(2 * hps, hps);
	ASSERT_MAPPED(self->dst);
	madvise(self->dst, 2 * hps, MADV_HUGEPAGE);
	ASSERT_REGISTER(self->uffd, self->dst, 2 * hps);
}

FIXTURE_TEARDOWN(thp)
{
	if (self->uffd >= 0)
		close(self->uffd);
	if (self->dst)
		munmap(self->dst, 2 * hps);
}

/*
 * [mp] ALLOW_SRC_HOLES comment: moving "hugepage naturally aligned virtual
 * regions" must not split the huge pmd.  A 2 MiB-aligned THP moved to a
 * 2 MiB-aligned, never-touched dst moves as a whole PMD: move == 2 MiB, the
 * dst vma maps it as AnonHugePages, the src vma has nothing left, data intact.
 */
TEST_F(thp, thp_move_pmd)
{
	char *src, *dst = self->dst;
	uint64_t pfn0;
	struct mres r;

	if (make_thp(_metadata, &src, hps, 46))
		return;
	pfn0 = pfn_of(src);
	r = do_move(self->uffd, dst, src, hps, 0);
	ASSERT_MOVED(r, hps);
	ASSERT_EQ((long)(hps >> 10), smaps_kb(dst, "AnonHugePages"))
	TH_LOG("dst AnonHugePages=%ld kB: PMD was split", smaps_kb(dst, "AnonHugePages"));
	ASSERT_EQ(0, smaps_kb(src, "Rss")) TH_LOG("src vma Rss=%ld kB after move", smaps_kb(src, "Rss"));
	if (pfn0) {
		ASSERT_EQ(pfn0, pfn_of(dst)) TH_LOG("THP not moved in place");
	}
	for (unsigned long i = 0; i < hps / ps; i++) {
		ASSERT_PATTERN(dst + i * ps, 46, i);
		ASSERT_MISSING(src + i * ps);
	}
}

/*
 * What must still hold of a THP after PMD moves: the huge pmd a move installs
 * is writable and dirty (move_pages_huge_pmd(): "Follow mremap() behavior
 * and treat the entry dirty after the move", pmd_mkwrite(pmd_mkdirty())), so
 * writing to it takes no page fault (getrusage() minor faults), after each of
 * several moves back and forth; and the kernel can still split it where it
 * now is: a one-page move out of it splits the pmd (with the page table the
 * move deposited along with it) and the folio (an rmap walk, which needs the
 * folio's anon_vma and index set for dst: folio_move_anon_rmap() and
 * "src_folio->index = linear_page_index(dst_vma, dst_addr)"), then the rest
 * moves page by page; every byte is intact.
 */
#define THP_TRIPS 16

TEST_F(thp, thp_after_move)
{
	char *src, *dst = self->dst, *at, *pages = map_anon(hps);
	long faults = 0;
	struct mres r;

	ASSERT_MAPPED(pages);
	if (make_thp(_metadata, &src, hps, 49))
		return;
	ASSERT_REGISTER(self->uffd, pages, hps);
	at = src;
	for (int t = 0; t < THP_TRIPS; t++) {
		char *to = dst + (t % 2) * hps;
		long f;

		r = do_move(self->uffd, to, at, hps, 0);
		ASSERT_MOVED(r, hps);
		ASSERT_EQ((long)(hps >> 10), smaps_kb(to, "AnonHugePages"))
		TH_LOG("trip %d: the THP was split (AnonHugePages=%ld kB)", t, smaps_kb(to, "AnonHugePages"));
		f = minor_faults();
		((volatile uint64_t *)to)[1 + t] = pat_word(49, 0, 1 + t);	/* the same word: the pattern stays */
		faults += minor_faults() - f;
		at = to;
	}
	ASSERT_LT(faults, THP_TRIPS / 2)
	TH_LOG("writing the THP after each of %d moves took %ld page faults: read-only pmds", THP_TRIPS, faults);
	r = do_move(self->uffd, pages + 3 * ps, at + 3 * ps, ps, 0);
	ASSERT_MOVED(r, ps);
	ASSERT_EQ(0, smaps_kb(at, "AnonHugePages"))
	TH_LOG("THP not split (AnonHugePages=%ld kB)", smaps_kb(at, "AnonHugePages"));
	r = do_move(self->uffd, pages, at, 3 * ps, 0);
	ASSERT_MOVED(r, 3 * ps);
	r = do_move(self->uffd, pages + 4 * ps, at + 4 * ps, hps - 4 * ps, 0);
	ASSERT_MOVED(r, hps - 4 * ps);
	for (unsigned long i = 0; i < hps / ps; i++) {
		ASSERT_PATTERN(pages + i * ps, 49, i);
		ASSERT_MISSING(at + i * ps);
	}
}

/*
 * What a PMD move takes, it gives back: move_pages_huge_pmd() takes a
 * reference on the THP's anon_vma ([mp] code: folio_get_anon_vma(),
 * "split_huge_page walks the anon_vma chain without the page lock. Serialize
 * against it with the anon_vma lock") and drops it (put_anon_vma()), so that
 * unmapping the source vma frees its anon_vma.  The THP hops as a whole PMD
 * through LEAK_THP_HOPS vmas of their own (hop_chain()), which are then
 * unmapped: their anon_vmas must be freed (struct gauge).  A shorter chain
 * first warms the slab caches.
 */
#define LEAK_THP_HOPS 4096

TEST_F(thp, thp_anon_vma_released)
{
	struct chain c;
	struct gauge g;
	char *src;
	long grew;

	if (make_thp(_metadata, &src, hps, 47))
		return;
	ASSERT_EQ(0, hop_chain(self->uffd, src, hps, LEAK_THP_HOPS / 4, &c)) TH_LOG("warm-up chain");
	ASSERT_EQ((long)(hps >> 10), smaps_kb(c.at, "AnonHugePages"))
	TH_LOG("the THP was split on its way (AnonHugePages=%ld kB)", smaps_kb(c.at, "AnonHugePages"));
	ASSERT_EQ(0, do_move(self->uffd, self->dst, c.at, hps, 0).ret) TH_LOG("moving it out of the chain");
	chain_unmap(&c);
	if (gauge_start(&g, LEAK_THP_HOPS))
		SKIP(return, "neither /proc/slabinfo nor SUnreclaim in /proc/meminfo");
	ASSERT_EQ(0, hop_chain(self->uffd, self->dst, hps, LEAK_THP_HOPS, &c))
	TH_LOG("chain of %d vmas", LEAK_THP_HOPS);
	ASSERT_EQ((long)(hps >> 10), smaps_kb(c.at, "AnonHugePages"))
	TH_LOG("the THP was split on its way (AnonHugePages=%ld kB)", smaps_kb(c.at, "AnonHugePages"));
	for (unsigned long i = 0; i < hps / ps; i++) {
		ASSERT_PATTERN(c.at + i * ps, 47, i);
	}
	chain_unmap(&c);
	grew = gauge_settled(&g);
	ASSERT_LT(grew, g.allowed)
	TH_LOG("still %ld %s more than before a THP moved through %d vmas that were then unmapped: "
	       "an anon_vma reference not dropped?", grew, g.unit, LEAK_THP_HOPS);
	TH_LOG("%+ld %s after %d PMD moves and unmaps (allowed: < %ld)", grew, g.unit, LEAK_THP_HOPS, g.allowed);
}

/*
 * A move that covers only part of a THP splits the PMD and moves the 4K
 * pages ([mp]: the huge pmd is split when the move does not cover it
 * whole): 1 page out of the middle; then len = 2 MiB - 1 page from the THP
 * start (the last page stays).  The destination is a 4K-page area.
 */
TEST_F(thp, thp_move_pmd_split)
{
	char *src, *src2, *dst = map_anon(hps);
	struct mres r;

	ASSERT_MAPPED(dst);
	if (make_thp(_metadata, &src, hps, 47))
		return;
	ASSERT_REGISTER(self->uffd, dst, hps);
	r = do_move(self->uffd, dst + 7 * ps, src + 5 * ps, ps, 0);
	ASSERT_MOVED(r, ps);
	ASSERT_PATTERN(dst + 7 * ps, 47, 5);
	ASSERT_MISSING(src + 5 * ps);
	ASSERT_EQ(0, smaps_kb(src, "AnonHugePages"))
	TH_LOG("THP not split (AnonHugePages=%ld)", smaps_kb(src, "AnonHugePages"));
	for (unsigned long i = 0; i < hps / ps; i++) {
		if (i != 5) {
			ASSERT_PATTERN(src + i * ps, 47, i);
		}
	}

	if (make_thp(_metadata, &src2, hps, 48))
		return;
	madvise(dst, hps, MADV_DONTNEED);
	r = do_move(self->uffd, dst, src2, hps - ps, 0);
	ASSERT_MOVED(r, hps - ps);
	for (unsigned long i = 0; i < hps / ps - 1; i++) {
		ASSERT_PATTERN(dst + i * ps, 48, i);
		ASSERT_MISSING(src2 + i * ps);
	}
	ASSERT_PATTERN(src2 + hps - ps, 48, hps / ps - 1);
	ASSERT_MISSING(dst + hps - ps);
}

/*
 * Whole THP to a destination that is not PMD aligned: must fall back to
 * splitting and moving 512 small pages; result identical to a plain move.
 */
TEST_F(thp, thp_move_unaligned_dst)
{
	char *src, *dst = self->dst;
	struct mres r;

	if (make_thp(_metadata, &src, hps, 49))
		return;
	r = do_move(self->uffd, dst + ps, src, hps, 0);
	ASSERT_MOVED(r, hps);
	for (unsigned long i = 0; i < hps / ps; i++) {
		ASSERT_PATTERN(dst + (i + 1) * ps, 49, i);
		ASSERT_MISSING(src + i * ps);
	}
	ASSERT_MISSING(dst);
}

/*
 * Destination PMD already a THP -> EEXIST (dst not a hole), nothing moved.
 * Destination PMD has a page table with its last page populated: the src
 * THP is split and moved page by page up to the populated page: EAGAIN with
 * move == 2 MiB - 1 page.
 */
TEST_F(thp, thp_dst_populated)
{
	char *src, *dthp, *dst = map_anon_a(hps, hps);
	struct mres r;

	ASSERT_MAPPED(dst);
	madvise(dst, hps, MADV_HUGEPAGE);
	if (make_thp(_metadata, &dthp, hps, 50))
		return;
	if (make_thp(_metadata, &src, hps, 51))
		return;
	ASSERT_REGISTER(self->uffd, dthp, hps);
	r = do_move(self->uffd, dthp, src, hps, 0);
	ASSERT_MOVE_ERR(r, EEXIST);
	r = do_move(self->uffd, dthp + 3 * ps, src, ps, 0);
	ASSERT_MOVE_ERR(r, EEXIST);
	ASSERT_PATTERN(dthp + 3 * ps, 50, 3);
	ASSERT_EQ((long)(hps >> 10), smaps_kb(src, "AnonHugePages")) TH_LOG("src THP disturbed");
	for (unsigned long i = 0; i < hps / ps; i += 97) {
		ASSERT_PATTERN(src + i * ps, 51, i);
	}

	madvise(dst, hps, MADV_NOHUGEPAGE);	/* so the next write maps a 4K page */
	dst[hps - ps] = 1;	/* page table exists at dst, last page populated */
	ASSERT_EQ(0, smaps_kb(dst, "AnonHugePages")) TH_LOG("dst got a THP");
	ASSERT_REGISTER(self->uffd, dst, hps);
	r = do_move(self->uffd, dst, src, hps, 0);
	ASSERT_PARTIAL(r, hps - ps);
	for (unsigned long i = 0; i < hps / ps - 1; i++) {
		ASSERT_PATTERN(dst + i * ps, 51, i);
	}
	ASSERT_PATTERN(src + hps - ps, 51, hps / ps - 1);
	ASSERT_EQ(1, dst[hps - ps]) TH_LOG("populated dst page clobbered");
}

/*
 * ALLOW_SRC_HOLES over two PMDs, the first a THP and the second empty: the
 * THP moves whole and the empty PMD counts as moved (move == 4 MiB).  Without
 * the flag the THP moves and the hole stops the move: EAGAIN, move == 2 MiB.
 */
TEST_F(thp, thp_allow_src_holes)
{
	char *src, *dst = self->dst, *dst2 = map_anon_a(2 * hps, hps);
	struct mres r;

	ASSERT_MAPPED(dst2);
	madvise(dst2, 2 * hps, MADV_HUGEPAGE);
	if (make_thp(_metadata, &src, 2 * hps, 52))	/* only the first PMD is populated */
		return;
	ASSERT_REGISTER(self->uffd, dst2, 2 * hps);
	r = do_move(self->uffd, dst, src, 2 * hps, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES);
	ASSERT_MOVED(r, 2 * hps);
	ASSERT_EQ((long)(hps >> 10), smaps_kb(dst, "AnonHugePages"))
	TH_LOG("dst AnonHugePages=%ld kB", smaps_kb(dst, "AnonHugePages"));
	for (unsigned long i = 0; i < hps / ps; i += 31) {
		ASSERT_PATTERN(dst + i * ps, 52, i);
	}
	ASSERT_MISSING(dst + hps);
	ASSERT_MISSING(dst + 2 * hps - ps);

	r = do_move(self->uffd, dst2, dst, 2 * hps, 0);
	ASSERT_PARTIAL(r, hps);
	for (unsigned long i = 0; i < hps / ps; i += 31) {
		ASSERT_PATTERN(dst2 + i * ps, 52, i);
	}
	ASSERT_MISSING(dst2 + hps);
}

/*
 * [man] EBUSY for a THP shared with a forked child: both the whole-PMD path
 * and the split path refuse with EBUSY, nothing moved, THP intact.
 */
TEST_F(thp, thp_ebusy_fork)
{
	char *src, *dst = self->dst;
	int p2c[2], st;
	char c;
	struct mres r;
	pid_t pid;

	if (make_thp(_metadata, &src, hps, 53))
		return;
	ASSERT_EQ(0, pipe(p2c));
	pid = fork();
	ASSERT_LE(0, pid) TH_LOG("fork: %s", strerror(errno));
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		_exit(read(p2c[0], &c, 1) == 1 ? 0 : 1);
	}
	r = do_move(self->uffd, dst, src, hps, 0);
	ASSERT_MOVE_ERR(r, EBUSY);
	r = do_move(self->uffd, dst, src + ps, ps, 0);
	ASSERT_MOVE_ERR(r, EBUSY);
	for (unsigned long i = 0; i < hps / ps; i += 17) {
		ASSERT_PATTERN(src + i * ps, 53, i);
	}
	ASSERT_MISSING(dst);
	ASSERT_MISSING(dst + ps);
	ASSERT_EQ(1, write(p2c[1], "x", 1));
	waitpid(pid, &st, 0);
}

/*
 * The huge zero page (read fault in a MADV_HUGEPAGE region with
 * transparent_hugepage/use_zero_page=1).  Kernels >= 6.10 move it as a whole
 * PMD (dst reads zeros, src becomes a hole); the first 6.8/6.9 releases
 * refused it with EBUSY (non-anon-exclusive page), which is accepted only on
 * those kernels.  A 1-page move out of it splits it and moves a zero pte.
 */
TEST_F(thp, huge_zeropage)
{
	char buf[64];
	char *src = map_anon_a(2 * hps, hps), *dst = self->dst, *dst2 = map_anon(4 * ps);
	volatile char sink;
	int64_t kf;
	uint64_t pfn;
	struct mres r;

	ASSERT_MAPPED(src);
	ASSERT_MAPPED(dst2);
	if (!thp_usable())
		SKIP(return, "transparent hugepages are disabled or unsupported");
	if (read_file_str("/sys/kernel/mm/transparent_hugepage/use_zero_page", buf, sizeof(buf)) || buf[0] != '1')
		SKIP(return, "transparent_hugepage/use_zero_page is not 1");
	madvise(src, 2 * hps, MADV_HUGEPAGE);
	sink = src[0];
	sink = src[hps];
	(void)sink;
	madvise(src, 2 * hps, MADV_NOHUGEPAGE);	/* no khugepaged collapse behind our back */
	pfn = pfn_of(src);
	if (!pfn)
		SKIP(return, "PFNs hidden in pagemap: cannot tell the huge zero page apart");
	kf = kpageflags(pfn);
	if (kf < 0 || !(kf & (1LL << KPF_ZERO_PAGE)) || !(kf & (1LL << KPF_THP)))
		SKIP(return, "read fault did not map the huge zero page (kpageflags %#llx)", (long long)kf);
	ASSERT_REGISTER(self->uffd, dst2, 4 * ps);
	r = do_move(self->uffd, dst, src, hps, 0);
	if (!kernel_at_least(6, 10) && r.ret == -1 && r.err == EBUSY) {
		TH_LOG("pre-6.10 kernel refuses the huge zero page with EBUSY");
		return;
	}
	ASSERT_MOVED(r, hps);
	for (unsigned long i = 0; i < hps / ps; i += 64) {
		ASSERT_TRUE(page_is_zero(dst + i * ps)) TH_LOG("dst page %lu not zero", i);
		ASSERT_MISSING(src + i * ps);
	}
	ASSERT_PRESENT(dst + hps - ps);
	/* partial move out of a huge zero page: split, zero pte moved */
	r = do_move(self->uffd, dst2, src + hps + 3 * ps, ps, 0);
	ASSERT_MOVED(r, ps);
	ASSERT_PRESENT(dst2);
	ASSERT_TRUE(page_is_zero(dst2)) TH_LOG("dst2 not zero");
	ASSERT_MISSING(src + hps + 3 * ps);
	ASSERT_PRESENT(src + hps + 4 * ps);
	dst[0] = 1;
	ASSERT_TRUE(dst[0] == 1 && dst[ps] == 0) TH_LOG("write after huge zero page move");
}

UFFD_MOVE_HARNESS_MAIN
