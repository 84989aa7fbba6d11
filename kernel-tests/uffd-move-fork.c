// SPDX-License-Identifier: GPL-2.0
/*
 * UFFDIO_MOVE and page exclusivity: pages shared with a fork child or
 * long-term pinned are refused with EBUSY; moves between vmas whose
 * anon_vmas have different roots (COW pages of a fork child), and pages of
 * an mremap()ed vma, stay correct through further forks, COW and moves back.
 *
 * The "fork" fixture gives each test a userfaultfd with UFFD_FEATURE_MOVE and
 * two 8-page private anonymous areas of 4K pages: "src", filled with the
 * pattern SEED before the test forks, and "dst", registered in MISSING mode.
 *
 * References ([man], [doc], [uapi], [mp]): see uffd-move-common.h.
 */
#define _GNU_SOURCE
#include <signal.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "uffd-move-common.h"

#define NPAGES 8
#define SEED 41

FIXTURE(fork) {
	int uffd;
	char *src;	/* NPAGES pages, filled with pattern SEED */
	char *dst;	/* NPAGES pages, registered (MISSING) */
};

FIXTURE_SETUP(fork)
{
	MOVE_PAIR_SETUP(NPAGES);
	fill(self->src, NPAGES, SEED);
}

FIXTURE_TEARDOWN(fork)
{
	MOVE_PAIR_TEARDOWN(NPAGES);
}

/*
 * [man] EBUSY: "The pages in the source virtual memory range are either
 * pinned or not exclusive to the process" / [mp] "The source vma pages
 * should have mapcount == 1".  After fork() the pages are shared with the
 * child -> EBUSY, move == -EBUSY, nothing moved.  Once the parent writes a
 * page (COW gives it an exclusive copy) that page moves, while the child
 * still sees the original data.  [mp]: MADV_DONTFORK on the source avoids
 * the EBUSY.
 */
TEST_F(fork, ebusy_fork_shared)
{
	char *src = self->src, *dst = self->dst, *nf = map_anon(2 * ps);
	int p2c[2], c2p[2], st;
	char c = 0;
	struct mres r;
	pid_t pid;

	ASSERT_MAPPED(nf);
	fill(nf, 2, 42);
	ASSERT_EQ(0, madvise(nf, 2 * ps, MADV_DONTFORK)) TH_LOG("MADV_DONTFORK: %s", strerror(errno));
	ASSERT_TRUE(pipe(p2c) == 0 && pipe(c2p) == 0) TH_LOG("pipe: %s", strerror(errno));
	pid = fork();
	ASSERT_LE(0, pid) TH_LOG("fork: %s", strerror(errno));
	if (pid == 0) {
		int ok = 1;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (write(c2p[1], "r", 1) != 1 || read(p2c[0], &c, 1) != 1)
			_exit(2);
		for (int i = 0; i < 4; i++)
			ok &= check_page(src + i * ps, SEED, i) < 0;
		_exit(ok ? 0 : 1);
	}
	ASSERT_EQ(1, read(c2p[0], &c, 1)) TH_LOG("child did not start");
	r = do_move(self->uffd, dst, src, 4 * ps, 0);
	ASSERT_MOVE_ERR(r, EBUSY);
	r = do_move(self->uffd, dst + ps, src + ps, ps, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES);
	ASSERT_MOVE_ERR(r, EBUSY);
	for (int i = 0; i < 4; i++) {
		ASSERT_PATTERN(src + i * ps, SEED, i);
		ASSERT_MISSING(dst + i * ps);
	}
	/* COW-break page 0 in the parent: now exclusive and movable */
	fill_page(src, 43, 0);
	r = do_move(self->uffd, dst, src, ps, 0);
	ASSERT_MOVED(r, ps);
	ASSERT_PATTERN(dst, 43, 0);
	/* page 3 is still shared: a 2-page move from page 2 stops after page 2 ... */
	fill_page(src + 2 * ps, 44, 2);
	r = do_move(self->uffd, dst + 2 * ps, src + 2 * ps, 2 * ps, 0);
	ASSERT_PARTIAL(r, ps);
	ASSERT_PATTERN(dst + 2 * ps, 44, 2);
	ASSERT_PATTERN(src + 3 * ps, SEED, 3);
	/* MADV_DONTFORK source was not inherited: exclusive, movable */
	r = do_move(self->uffd, dst + ps, nf, ps, 0);
	ASSERT_MOVED(r, ps);
	ASSERT_PATTERN(dst + ps, 42, 0);
	ASSERT_EQ(1, write(p2c[1], "g", 1));
	ASSERT_EQ(pid, waitpid(pid, &st, 0));
	ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) TH_LOG("child saw modified memory: status %#x", st);
}

/*
 * [man] EBUSY "pinned": a page pinned with FOLL_LONGTERM (io_uring fixed
 * buffer registration) cannot be moved -> EBUSY, move == -EBUSY; the
 * unpinned neighbour moves; after unregistering the buffer the move succeeds.
 */
TEST_F(fork, ebusy_pinned)
{
	char *src = self->src, *dst = self->dst;
	uint64_t params[16] = { 0 };	/* struct io_uring_params is 120 bytes */
	struct iovec iov;
	struct mres r;
	int ring;

	ring = syscall(__NR_io_uring_setup, 4, params);
	if (ring < 0)
		SKIP(return, "io_uring_setup: %s (needed to long-term pin a page)", strerror(errno));
	iov.iov_base = src;
	iov.iov_len = ps;
	if (syscall(__NR_io_uring_register, ring, 0 /* IORING_REGISTER_BUFFERS */, &iov, 1))
		SKIP(return, "IORING_REGISTER_BUFFERS: %s", strerror(errno));
	r = do_move(self->uffd, dst, src, ps, 0);
	ASSERT_MOVE_ERR(r, EBUSY);
	r = do_move(self->uffd, dst, src, 2 * ps, 0);
	ASSERT_MOVE_ERR(r, EBUSY);
	ASSERT_PATTERN(src, SEED, 0);
	ASSERT_MISSING(dst);
	/* the unpinned neighbour still moves */
	r = do_move(self->uffd, dst + ps, src + ps, ps, 0);
	ASSERT_MOVED(r, ps);
	ASSERT_EQ(0, syscall(__NR_io_uring_register, ring, 1 /* IORING_UNREGISTER_BUFFERS */, NULL, 0))
	TH_LOG("IORING_UNREGISTER_BUFFERS: %s", strerror(errno));
	close(ring);
	r = do_move(self->uffd, dst, src, ps, 0);
	ASSERT_MOVED(r, ps);
	ASSERT_PATTERN(dst, SEED, 0);
}

/* for code running in a forked child: no harness assertion there */
#define CHILD_CHECK(cond, fmt, ...) do {					\
	if (!(cond)) {								\
		fprintf(stderr, "# %s:%d: child: %s: " fmt "\n", __FILE__, __LINE__, #cond, ##__VA_ARGS__); \
		return 1;							\
	}									\
} while (0)

#define CHILD_MOVE(r, want_ret, want_err, want_move)				\
	CHILD_CHECK((r).ret == (want_ret) && (r).err == (want_err) && (r).move == (__s64)(want_move), \
		    "UFFDIO_MOVE: ret=%d errno=%d move=%lld", (r).ret, (r).err, (long long)(r).move)

/*
 * The child's half of anon_vma_different_root: 0 on success, else 1 after
 * saying why on stderr.
 */
static int child_anon_vma_roots(char *parent_area, unsigned long n)
{
	int fd = uffd_move_fd();
	char *dst = map_anon(n * ps);
	struct mres r;
	int st;
	pid_t gc;

	CHILD_CHECK(fd >= 0, "userfaultfd: %s", strerror(-fd));
	CHILD_CHECK(dst != NULL, "mmap: %s", strerror(errno));
	for (unsigned long i = 0; i < n; i++)
		fill_page(parent_area + i * ps, 61, i);	/* COW: child-private pages, parent's root */
	CHILD_CHECK(uffd_reg(fd, dst, n * ps, UFFDIO_REGISTER_MODE_MISSING, NULL) == 0, "register");
	r = do_move(fd, dst, parent_area, n * ps, 0);
	CHILD_MOVE(r, 0, 0, n * ps);
	for (unsigned long i = 0; i < n; i++) {
		CHILD_CHECK(check_page(dst + i * ps, 61, i) < 0, "moved page %lu", i);
		CHILD_CHECK(page_present(parent_area + i * ps) == 0, "source page %lu still mapped", i);
	}
	gc = fork();
	CHILD_CHECK(gc >= 0, "fork: %s", strerror(errno));
	if (gc == 0) {
		for (unsigned long i = 0; i < n; i++) {
			if (check_page(dst + i * ps, 61, i) >= 0)
				_exit(1);
			fill_page(dst + i * ps, 62, i);
		}
		_exit(0);
	}
	CHILD_CHECK(waitpid(gc, &st, 0) == gc && WIFEXITED(st) && WEXITSTATUS(st) == 0,
		    "grandchild saw wrong data: %#x", st);
	for (unsigned long i = 0; i < n; i++)
		CHILD_CHECK(check_page(dst + i * ps, 61, i) < 0, "page %lu changed by the grandchild's COW", i);
	/*
	 * and move them back into the (parent-rooted) vma: the fork above
	 * made them non-exclusive (even though the grandchild is gone) ->
	 * EBUSY until they are written again.
	 */
	CHILD_CHECK(uffd_reg(fd, parent_area, n * ps, UFFDIO_REGISTER_MODE_MISSING, NULL) == 0, "register");
	r = do_move(fd, parent_area, dst, n * ps, 0);
	CHILD_MOVE(r, -1, EBUSY, -EBUSY);
	for (unsigned long i = 0; i < n; i++)
		fill_page(dst + i * ps, 66, i);
	r = do_move(fd, parent_area, dst, n * ps, 0);
	CHILD_MOVE(r, 0, 0, n * ps);
	for (unsigned long i = 0; i < n; i++) {
		CHILD_CHECK(check_page(parent_area + i * ps, 66, i) < 0, "page %lu moved back", i);
		CHILD_CHECK(page_present(dst + i * ps) == 0, "page %lu still mapped at dst", i);
	}
	return 0;
}

/*
 * Moving between vmas whose anon_vmas have different roots (the reason for
 * "mm/rmap: support move to different root anon_vma in
 * folio_move_anon_rmap()"): the source pages are COW copies made in a forked
 * child (their anon_vma's root is the parent's), the destination is a vma
 * created in the child (own root).  After the move the data is right, a
 * further fork of the child shares the moved pages correctly (COW in the
 * grandchild does not leak back), and the parent's memory is untouched.
 */
TEST_F(fork, anon_vma_different_root)
{
	const unsigned long n = NPAGES;
	char *a = self->src;
	int st;
	pid_t pid;

	pid = fork();
	ASSERT_LE(0, pid) TH_LOG("fork: %s", strerror(errno));
	if (pid == 0) {
		int rc = child_anon_vma_roots(a, n);

		fflush(stderr);
		_exit(rc);
	}
	ASSERT_EQ(pid, waitpid(pid, &st, 0));
	ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0) TH_LOG("child failed: status %#x", st);
	for (unsigned long i = 0; i < n; i++) {
		ASSERT_PATTERN(a + i * ps, SEED, i);
	}
}

/*
 * Pages whose vma was mremap()ed (they keep the old anon_vma and an index
 * that no longer matches a linear layout) and pages moved twice: the moved
 * pages stay correct through another mremap, fork + COW, and moving back.
 */
TEST_F(fork, mremap_and_back)
{
	const unsigned long n = NPAGES;
	char *a = self->src, *b = self->dst, *c = map_anon(2 * n * ps), *m;
	struct mres r;
	int st;
	pid_t pid;

	ASSERT_MAPPED(c);
	m = mremap(a, n * ps, n * ps, MREMAP_MAYMOVE | MREMAP_FIXED, c + n * ps);
	ASSERT_NE(MAP_FAILED, m) TH_LOG("mremap: %s", strerror(errno));
	self->src = NULL;	/* gone from there */
	r = do_move(self->uffd, b, m, n * ps, 0);
	ASSERT_MOVED(r, n * ps);
	for (unsigned long i = 0; i < n; i++) {
		ASSERT_PATTERN(b + i * ps, SEED, i);
	}
	/* move b back over the mremapped area (register it first) */
	ASSERT_REGISTER(self->uffd, m, n * ps);
	r = do_move(self->uffd, m + 0, b + 0, n * ps, 0);
	ASSERT_MOVED(r, n * ps);
	/* fork: child COWs, parent must keep its data */
	pid = fork();
	ASSERT_LE(0, pid) TH_LOG("fork: %s", strerror(errno));
	if (pid == 0) {
		for (unsigned long i = 0; i < n; i++) {
			if (check_page(m + i * ps, SEED, i) >= 0)
				_exit(1);
			fill_page(m + i * ps, 64, i);
		}
		_exit(0);
	}
	ASSERT_TRUE(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0) TH_LOG("child: %#x", st);
	for (unsigned long i = 0; i < n; i++) {
		ASSERT_PATTERN(m + i * ps, SEED, i);
		ASSERT_MISSING(b + i * ps);
	}
	/* after the child exited the pages are exclusive again only once written */
	for (unsigned long i = 0; i < n; i++)
		fill_page(m + i * ps, 65, i);
	r = do_move(self->uffd, b, m, n * ps, 0);
	ASSERT_MOVED(r, n * ps);
	for (unsigned long i = 0; i < n; i++) {
		ASSERT_PATTERN(b + i * ps, 65, i);
	}
}

UFFD_MOVE_HARNESS_MAIN
