// SPDX-License-Identifier: GPL-2.0
/*
 * UFFDIO_MOVE: feature and ioctl advertisement, every argument and vma check
 * that refuses a move before anything moved (EINVAL, ENOENT, EFAULT), and the
 * EFAULT of a move whose result cannot be written back.
 *
 * The "errors" fixture gives each test a userfaultfd with UFFD_FEATURE_MOVE,
 * a 4-page private anonymous source filled with a pattern, and a 4-page
 * destination registered in MISSING mode.  It runs every test twice: with
 * mode 0 and with UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES in the moves that do not
 * test a mode of their own.  The checks refused here happen before the
 * source is walked, so the mode must not change their outcome.
 *
 * References ([man], [doc], [uapi], [mp]): see uffd-move-common.h.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>

#include "kselftest_harness.h"
#include "uffd-move-common.h"

#define NPAGES 4
#define SEED 20

/*
 * [doc] "UFFD_FEATURE_MOVE indicates that the kernel supports moving an
 * existing page contents from userspace"; [uapi] UFFD_API_FEATURES includes
 * UFFD_FEATURE_MOVE.  UFFDIO_API with features=0 reports every supported
 * feature; asking for MOVE explicitly must succeed and echo it back, and the
 * returned ioctls bitmask must contain the basic API ioctls.
 */
TEST(api_feature_move)
{
	const __u64 basic = (1ULL << _UFFDIO_REGISTER) | (1ULL << _UFFDIO_UNREGISTER) | (1ULL << _UFFDIO_API);
	__u64 feat = 0, ioctls = 0;
	int fd = uffd_new(0, &feat, NULL);

	ASSERT_LE(0, fd) TH_LOG("UFFDIO_API(features=0) failed: %s", strerror(-fd));
	ASSERT_TRUE(feat & UFFD_FEATURE_MOVE)
	TH_LOG("UFFD_FEATURE_MOVE not advertised: features=%#llx", (unsigned long long)feat);
	close(fd);
	fd = uffd_new(UFFD_FEATURE_MOVE, &feat, &ioctls);
	ASSERT_LE(0, fd) TH_LOG("UFFDIO_API(features=UFFD_FEATURE_MOVE) failed: %s", strerror(-fd));
	ASSERT_TRUE(feat & UFFD_FEATURE_MOVE)
	TH_LOG("features returned %#llx lack MOVE", (unsigned long long)feat);
	ASSERT_EQ(basic, ioctls & basic) TH_LOG("UFFDIO_API ioctls=%#llx", (unsigned long long)ioctls);
}

/*
 * [uapi] UFFD_API_RANGE_IOCTLS contains (1 << _UFFDIO_MOVE): registering an
 * anonymous range in MISSING mode must advertise UFFDIO_MOVE in
 * uffdio_register.ioctls ([doc]: check the returned ioctls before use).
 * Hugetlb ranges only get UFFD_API_RANGE_IOCTLS_BASIC which lacks MOVE.
 */
TEST(register_ioctls_move)
{
	int fd = uffd_move_fd();
	__u64 ioctls = 0;
	char *p = map_anon(4 * ps), *h;
	int e;

	ASSERT_UFFD(fd);
	ASSERT_MAPPED(p);
	e = uffd_reg(fd, p, 4 * ps, UFFDIO_REGISTER_MODE_MISSING, &ioctls);
	ASSERT_EQ(0, e) TH_LOG("register: %s", strerror(-e));
	ASSERT_TRUE(ioctls & (1ULL << _UFFDIO_MOVE))
	TH_LOG("UFFDIO_MOVE missing from register ioctls %#llx", (unsigned long long)ioctls);
	ASSERT_TRUE(ioctls & (1ULL << _UFFDIO_COPY)) TH_LOG("ioctls %#llx", (unsigned long long)ioctls);
	ASSERT_TRUE(ioctls & (1ULL << _UFFDIO_WAKE)) TH_LOG("ioctls %#llx", (unsigned long long)ioctls);

	h = mmap(NULL, 2 * hps, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_NORESERVE, -1, 0);
	if (h != MAP_FAILED) {
		char *ha = (char *)(((uintptr_t)h + hps - 1) & ~(hps - 1));

		if ((uintptr_t)ha + hps <= (uintptr_t)h + 2 * hps &&
		    uffd_reg(fd, ha, hps, UFFDIO_REGISTER_MODE_MISSING, &ioctls) == 0) {
			ASSERT_FALSE(ioctls & (1ULL << _UFFDIO_MOVE))
			TH_LOG("hugetlb registration advertises UFFDIO_MOVE: %#llx", (unsigned long long)ioctls);
		}
	}
}

/* struct uffdio_move at an invalid user address -> EFAULT. */
TEST(efault_bad_pointer)
{
	int fd = uffd_move_fd();
	int ret;

	ASSERT_UFFD(fd);
	ret = ioctl(fd, UFFDIO_MOVE, (void *)16);
	ASSERT_TRUE(ret == -1 && errno == EFAULT) TH_LOG("ret=%d errno=%d (%s)", ret, errno, strerror(errno));
}

FIXTURE(errors) {
	int uffd;
	char *src;	/* NPAGES pages, filled with pattern SEED */
	char *dst;	/* NPAGES pages, registered (MISSING) */
};

FIXTURE_VARIANT(errors) {
	__u64 mode;	/* used by every move that does not test a mode of its own */
};

FIXTURE_VARIANT_ADD(errors, plain) {
	.mode = 0,
};

FIXTURE_VARIANT_ADD(errors, allow_src_holes) {
	.mode = UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES,
};

FIXTURE_SETUP(errors)
{
	MOVE_PAIR_SETUP(NPAGES);
	fill(self->src, NPAGES, SEED);
}

FIXTURE_TEARDOWN(errors)
{
	MOVE_PAIR_TEARDOWN(NPAGES);
}

/*
 * The one EFAULT that comes after the move: the kernel reads the struct
 * without its last field ("don't copy "move" last field", userfaultfd_move()
 * in fs/userfaultfd.c), moves, then writes the result into "move"; when that
 * write faults the ioctl fails with EFAULT although the pages were moved.  A
 * struct whose "move" field lies on a PROT_NONE page, and one in a read-only
 * page: -1/EFAULT both times, and the page is at dst, src a hole.
 */
TEST_F(errors, efault_move_field_unwritable)
{
	char *src = self->src, *dst = self->dst;
	char *pg = map_guarded_flags(ps, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	char *ro = map_anon(ps);
	struct uffdio_move *m;
	int ret;

	ASSERT_MAPPED(pg);
	ASSERT_MAPPED(ro);
	/* "move" (the last 8 bytes) on the PROT_NONE guard page after pg */
	m = (struct uffdio_move *)(pg + ps - offsetof(struct uffdio_move, move));
	m->dst = (uintptr_t)dst;	/* not *m = ...: that would write "move" too */
	m->src = (uintptr_t)src;
	m->len = ps;
	m->mode = variant->mode;
	ret = ioctl(self->uffd, UFFDIO_MOVE, m);
	ASSERT_TRUE(ret == -1 && errno == EFAULT) TH_LOG("ret=%d errno=%d (%s)", ret, errno, strerror(errno));
	ASSERT_PATTERN(dst, SEED, 0);
	ASSERT_MISSING(src);
	/* the whole struct in a read-only page */
	m = (struct uffdio_move *)ro;
	*m = (struct uffdio_move){ .dst = (uintptr_t)(dst + ps), .src = (uintptr_t)(src + ps), .len = ps,
				   .mode = variant->mode, .move = MOVE_SENTINEL };
	ASSERT_EQ(0, mprotect(ro, ps, PROT_READ));
	ret = ioctl(self->uffd, UFFDIO_MOVE, m);
	ASSERT_TRUE(ret == -1 && errno == EFAULT) TH_LOG("ret=%d errno=%d (%s)", ret, errno, strerror(errno));
	ASSERT_EQ(MOVE_SENTINEL, m->move);
	ASSERT_PATTERN(dst + ps, SEED, 1);
	ASSERT_MISSING(src + ps);
	for (int i = 2; i < NPAGES; i++) {
		ASSERT_PATTERN(src + i * ps, SEED, i);
		ASSERT_MISSING(dst + i * ps);
	}
}

/*
 * A source pte that is neither a page, nor a swap entry, nor a migration
 * entry cannot be moved: move_pages_pte() fails with -EFAULT on any other
 * non-swap entry ("if (non_swap_entry(entry)) { if
 * (is_migration_entry(entry)) ... else err = -EFAULT; }").  A userfaultfd
 * write-protect marker is one: UFFDIO_WRITEPROTECT of an unpopulated
 * anonymous page on a userfaultfd with UFFD_FEATURE_WP_UNPOPULATED installs
 * it ([doc] "UFFD_FEATURE_WP_UNPOPULATED ... install a marker").  Moving that
 * page fails with EFAULT, move == -EFAULT (with ALLOW_SRC_HOLES too: a
 * marker is not a hole), nothing moved; a move that reaches it from a
 * movable page stops there (EAGAIN, move == PAGE).  Skipped where
 * the kernel has no WP_UNPOPULATED (before 6.4, or no uffd-wp support).
 */
TEST_F(errors, efault_src_wp_marker)
{
	char *src = self->src, *dst = self->dst;
	int wp = uffd_new(UFFD_FEATURE_WP_UNPOPULATED, NULL, NULL);
	struct uffdio_writeprotect w = {
		.range = { .start = (uintptr_t)(src + ps), .len = ps },
		.mode = UFFDIO_WRITEPROTECT_MODE_WP,
	};
	struct mres r;

	if (wp < 0)
		SKIP(return, "no UFFD_FEATURE_WP_UNPOPULATED: %s", strerror(-wp));
	if (uffd_reg(wp, src, NPAGES * ps, UFFDIO_REGISTER_MODE_WP, NULL))
		SKIP(return, "UFFDIO_REGISTER_MODE_WP of anonymous memory unsupported");
	madvise(src + ps, ps, MADV_DONTNEED);
	ASSERT_EQ(0, ioctl(wp, UFFDIO_WRITEPROTECT, &w)) TH_LOG("UFFDIO_WRITEPROTECT: %s", strerror(errno));
	ASSERT_FALSE(pagemap(src + ps) & PM_PRESENT) TH_LOG("the marked page is present");
	r = do_move(self->uffd, dst + ps, src + ps, ps, variant->mode);
	ASSERT_MOVE_ERR(r, EFAULT);
	r = do_move(self->uffd, dst, src, 2 * ps, variant->mode);
	ASSERT_PARTIAL(r, ps);
	ASSERT_PATTERN(dst, SEED, 0);
	ASSERT_MISSING(dst + ps);
	ASSERT_PATTERN(src + 2 * ps, SEED, 2);
	close(wp);
}

/* [man] EINVAL: dst, src or len not a multiple of the page size, len == 0. */
TEST_F(errors, einval_alignment)
{
	char *src = self->src, *dst = self->dst;
	__u64 mode = variant->mode;
	struct mres r;

	r = do_move(self->uffd, dst + 1, src, ps, mode);
	ASSERT_ARG_ERR(r, EINVAL);
	r = do_move(self->uffd, dst + ps / 2, src, ps, mode);
	ASSERT_ARG_ERR(r, EINVAL);
	r = do_move(self->uffd, dst, src + 8, ps, mode);
	ASSERT_ARG_ERR(r, EINVAL);
	r = do_move(self->uffd, dst, src, ps + 1, mode);
	ASSERT_ARG_ERR(r, EINVAL);
	r = do_move(self->uffd, dst, src, ps - 1, mode);
	ASSERT_ARG_ERR(r, EINVAL);
	r = do_move(self->uffd, dst, src, 0, mode);
	ASSERT_ARG_ERR(r, EINVAL);
	for (int i = 0; i < NPAGES; i++) {
		ASSERT_PATTERN(src + i * ps, SEED, i);
		ASSERT_MISSING(dst + i * ps);
	}
}

/*
 * [man] EINVAL: the range wraps / lies outside the user address space
 * (src+len or dst+len overflows, or start beyond TASK_SIZE).
 */
TEST_F(errors, einval_range_overflow)
{
	char *src = self->src, *dst = self->dst;
	unsigned long huge_len = (unsigned long)-1 & ~(ps - 1);
	__u64 mode = variant->mode;
	struct mres r;

	r = do_move(self->uffd, dst, src, huge_len, mode);	/* src + len wraps */
	ASSERT_ARG_ERR(r, EINVAL);
	r = do_move(self->uffd, dst, src, (~(uintptr_t)src + 1) & ~(ps - 1), mode); /* src + len == 0 mod 2^64 */
	ASSERT_ARG_ERR(r, EINVAL);
	r = do_move(self->uffd, (void *)(uintptr_t)(-(long)ps), src, ps, mode);	/* dst at the top */
	ASSERT_ARG_ERR(r, EINVAL);
	r = do_move(self->uffd, dst, (void *)(uintptr_t)(-(long)ps), ps, mode);
	ASSERT_ARG_ERR(r, EINVAL);
	r = do_move(self->uffd, dst, (void *)(1UL << 62), ps, mode);	/* beyond TASK_SIZE */
	ASSERT_ARG_ERR(r, EINVAL);
	for (int i = 0; i < NPAGES; i++) {
		ASSERT_PATTERN(src + i * ps, SEED, i);
		ASSERT_MISSING(dst + i * ps);
	}
}

/* [uapi] only DONTWAKE and ALLOW_SRC_HOLES are valid mode bits -> EINVAL. */
TEST_F(errors, einval_mode_bits)
{
	char *src = self->src, *dst = self->dst;
	struct mres r;

	for (int b = 2; b < 64; b++) {
		r = do_move(self->uffd, dst, src, ps, (1ULL << b) | variant->mode);
		if (r.ret != -1 || r.err != EINVAL)
			TH_LOG("mode bit %d", b);
		ASSERT_ARG_ERR(r, EINVAL);
	}
	r = do_move(self->uffd, dst, src, ps, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES | UFFDIO_MOVE_MODE_DONTWAKE | 4);
	ASSERT_ARG_ERR(r, EINVAL);
	ASSERT_PATTERN(src, SEED, 0);
	ASSERT_MISSING(dst);
	r = do_move(self->uffd, dst, src, ps, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES | UFFDIO_MOVE_MODE_DONTWAKE);
	ASSERT_MOVED(r, ps);
	ASSERT_PATTERN(dst, SEED, 0);
}

/*
 * [mp] "It only works on non shared anonymous pages" / [man] EINVAL: a
 * MAP_SHARED|MAP_ANONYMOUS (shmem) source is rejected with EINVAL and
 * move == -EINVAL (VM_SHARED check), contents untouched; also with
 * ALLOW_SRC_HOLES.
 */
TEST_F(errors, einval_src_shared_anon)
{
	char *src = map_guarded_flags(4 * ps, ps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1);
	char *dst = self->dst;
	struct mres r;

	ASSERT_MAPPED(src);
	fill(src, 4, 24);
	r = do_move(self->uffd, dst, src, 4 * ps, variant->mode);
	ASSERT_MOVE_ERR(r, EINVAL);
	r = do_move(self->uffd, dst, src, ps, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES);
	ASSERT_MOVE_ERR(r, EINVAL);
	for (int i = 0; i < 4; i++) {
		ASSERT_PATTERN(src + i * ps, 24, i);
		ASSERT_MISSING(dst + i * ps);
	}
}

/*
 * Same for a shmem memfd source, mapped MAP_SHARED (VM_SHARED) and
 * MAP_PRIVATE (private but not an anonymous vma; written pages are anon COW
 * copies yet the vma is file-backed) -> EINVAL.
 */
TEST_F(errors, einval_src_memfd)
{
	int mfd = syscall(__NR_memfd_create, "uffd-move", MFD_CLOEXEC);
	char *dst = self->dst, *sh, *pr;
	struct mres r;

	if (mfd < 0)
		SKIP(return, "memfd_create: %s", strerror(errno));
	ASSERT_EQ(0, ftruncate(mfd, 4 * ps)) TH_LOG("ftruncate: %s", strerror(errno));
	sh = map_guarded_flags(4 * ps, ps, PROT_READ | PROT_WRITE, MAP_SHARED, mfd);
	pr = map_guarded_flags(4 * ps, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE, mfd);
	ASSERT_MAPPED(sh);
	ASSERT_MAPPED(pr);
	fill(sh, 4, 25);
	fill(pr, 4, 26);	/* private COW copies */
	r = do_move(self->uffd, dst, sh, 4 * ps, variant->mode);
	ASSERT_MOVE_ERR(r, EINVAL);
	r = do_move(self->uffd, dst, pr, 4 * ps, variant->mode);
	ASSERT_MOVE_ERR(r, EINVAL);
	for (int i = 0; i < 4; i++) {
		ASSERT_PATTERN(sh + i * ps, 25, i);
		ASSERT_PATTERN(pr + i * ps, 26, i);
		ASSERT_MISSING(dst + i * ps);
	}
	close(mfd);
}

/* A regular-file mapping (private and shared) as source -> EINVAL. */
TEST_F(errors, einval_src_file)
{
	char path[] = "/tmp/uffd-move-XXXXXX";
	int ffd = mkstemp(path);
	char *dst = self->dst, *pr, *sh;
	struct mres r;

	if (ffd < 0) {
		strcpy(path, "./uffd-move-XXXXXX");
		ffd = mkstemp(path);
	}
	if (ffd < 0)
		SKIP(return, "cannot create a temporary file: %s", strerror(errno));
	unlink(path);
	ASSERT_EQ(0, ftruncate(ffd, 4 * ps)) TH_LOG("ftruncate: %s", strerror(errno));
	pr = map_guarded_flags(4 * ps, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE, ffd);
	sh = map_guarded_flags(4 * ps, ps, PROT_READ | PROT_WRITE, MAP_SHARED, ffd);
	ASSERT_MAPPED(pr);
	ASSERT_MAPPED(sh);
	fill(pr, 4, 27);
	r = do_move(self->uffd, dst, pr, 4 * ps, variant->mode);
	ASSERT_MOVE_ERR(r, EINVAL);
	r = do_move(self->uffd, dst, sh, ps, variant->mode);
	ASSERT_MOVE_ERR(r, EINVAL);
	for (int i = 0; i < 4; i++) {
		ASSERT_PATTERN(pr + i * ps, 27, i);
		ASSERT_MISSING(dst + i * ps);
	}
	close(ffd);
}

/*
 * The destination must be a private anonymous vma too ([mp] "Only allow
 * moving across anonymous vmas", VM_SHARED dst): a shmem (MAP_SHARED anon)
 * destination registered in MISSING mode -> EINVAL, src untouched.
 */
TEST_F(errors, einval_dst_shared)
{
	char *src = self->src;
	char *dst = map_guarded_flags(2 * ps, ps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1);
	struct mres r;
	int e;

	ASSERT_MAPPED(dst);
	e = uffd_reg(self->uffd, dst, 2 * ps, UFFDIO_REGISTER_MODE_MISSING, NULL);
	if (e)
		SKIP(return, "cannot register shmem: %s", strerror(-e));
	r = do_move(self->uffd, dst, src, 2 * ps, variant->mode);
	ASSERT_MOVE_ERR(r, EINVAL);
	ASSERT_PATTERN(src, SEED, 0);
	ASSERT_PATTERN(src + ps, SEED, 1);
}

/*
 * The destination vma must be registered with *this* userfaultfd ([mp]
 * "Ensure dst_vma is registered in uffd we are operating on"): a dst in an
 * unregistered anonymous vma and a dst registered with a different uffd both
 * give EINVAL with move == -EINVAL (not ENOENT: the vma exists).  Through
 * the uffd the dst is registered with, the same move works.
 */
TEST_F(errors, einval_dst_not_registered)
{
	int fd2 = uffd_move_fd();
	char *src = self->src, *plain = map_anon(2 * ps), *other = map_anon(2 * ps);
	struct mres r;

	ASSERT_UFFD(fd2);
	ASSERT_MAPPED(plain);
	ASSERT_MAPPED(other);
	ASSERT_REGISTER(fd2, other, 2 * ps);
	r = do_move(self->uffd, plain, src, 2 * ps, variant->mode);
	ASSERT_MOVE_ERR(r, EINVAL);
	r = do_move(self->uffd, other, src, 2 * ps, variant->mode);
	ASSERT_MOVE_ERR(r, EINVAL);
	ASSERT_MISSING(plain);
	ASSERT_MISSING(other);
	ASSERT_PATTERN(src, SEED, 0);
	/* through the right uffd it works */
	r = do_move(fd2, other, src, 2 * ps, variant->mode);
	ASSERT_MOVED(r, 2 * ps);
	ASSERT_PATTERN(other + ps, SEED, 1);
	close(fd2);
}

/*
 * [man] ENOENT ... / vma lookup: an unmapped destination or an unmapped
 * source address -> ENOENT with move == -ENOENT (with ALLOW_SRC_HOLES too:
 * an unmapped src is no hole inside a vma).
 */
TEST_F(errors, enoent_unmapped)
{
	char *src = self->src, *dst = self->dst, *hole = map_anon(4 * ps);
	struct mres r;

	ASSERT_MAPPED(hole);
	ASSERT_EQ(0, munmap(hole, 4 * ps)) TH_LOG("munmap: %s", strerror(errno));
	r = do_move(self->uffd, hole, src, ps, variant->mode);
	ASSERT_MOVE_ERR(r, ENOENT);
	r = do_move(self->uffd, dst, hole, ps, variant->mode);
	ASSERT_MOVE_ERR(r, ENOENT);
	r = do_move(self->uffd, dst, hole, ps, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES);
	ASSERT_MOVE_ERR(r, ENOENT);
	ASSERT_MISSING(dst);
	ASSERT_PATTERN(src, SEED, 0);
}

/*
 * [mp] "the src and dst remap ranges are both valid and fully within a
 * single existing vma": a range that runs past the end of the src vma or of
 * the dst vma, by several pages or by exactly one -> EINVAL, move ==
 * -EINVAL, nothing moved (with or without ALLOW_SRC_HOLES).  A range that
 * ends exactly at the end of both vmas moves.
 */
TEST_F(errors, einval_range_crosses_vma)
{
	char *src = self->src, *dst = self->dst;	/* both NPAGES == 4 pages */
	struct mres r;

	r = do_move(self->uffd, dst, src + 2 * ps, 4 * ps, variant->mode);	/* src: 2 pages past its vma */
	ASSERT_MOVE_ERR(r, EINVAL);
	r = do_move(self->uffd, dst, src + 2 * ps, 4 * ps, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES);
	ASSERT_MOVE_ERR(r, EINVAL);
	r = do_move(self->uffd, dst, src + 3 * ps, 2 * ps, variant->mode);	/* src: 1 page past its vma */
	ASSERT_MOVE_ERR(r, EINVAL);
	r = do_move(self->uffd, dst, src + 3 * ps, 2 * ps, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES);
	ASSERT_MOVE_ERR(r, EINVAL);
	r = do_move(self->uffd, dst + 3 * ps, src, 2 * ps, variant->mode);	/* dst: 1 page past its vma */
	ASSERT_MOVE_ERR(r, EINVAL);
	for (int i = 0; i < NPAGES; i++) {
		ASSERT_PATTERN(src + i * ps, SEED, i);
		ASSERT_MISSING(dst + i * ps);
	}
	r = do_move(self->uffd, dst + 2 * ps, src + 2 * ps, 2 * ps, variant->mode);	/* exactly to the end */
	ASSERT_MOVED(r, 2 * ps);
	ASSERT_PATTERN(dst + 3 * ps, SEED, 3);
}

/*
 * [man]/[mp] "It only works if the vma protection bits are identical from
 * the source and destination vma"; only writable vmas are supported ->
 * EINVAL for a PROT_READ source with a RW dst, for both read-only, for a RW
 * source with a RO dst, and for a RWX source with a RW destination.
 */
TEST_F(errors, einval_prot_mismatch)
{
	char *src = self->src, *dst = self->dst;
	char *ro_dst = map_guarded_flags(2 * ps, ps, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	__u64 mode = variant->mode;
	struct mres r;
	char *x;

	ASSERT_MAPPED(ro_dst);
	ASSERT_REGISTER(self->uffd, ro_dst, 2 * ps);
	ASSERT_EQ(0, mprotect(src, NPAGES * ps, PROT_READ)) TH_LOG("mprotect: %s", strerror(errno));
	r = do_move(self->uffd, dst, src, ps, mode);
	ASSERT_MOVE_ERR(r, EINVAL);
	r = do_move(self->uffd, ro_dst, src, ps, mode);	/* same prot, but not writable */
	ASSERT_MOVE_ERR(r, EINVAL);
	ASSERT_EQ(0, mprotect(src, NPAGES * ps, PROT_READ | PROT_WRITE)) TH_LOG("mprotect: %s", strerror(errno));
	r = do_move(self->uffd, ro_dst, src, ps, mode);	/* RW src, RO dst */
	ASSERT_MOVE_ERR(r, EINVAL);
	ASSERT_PATTERN(src, SEED, 0);
	ASSERT_MISSING(dst);
	ASSERT_MISSING(ro_dst);
	x = map_guarded_flags(ps, ps, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	if (x) {
		fill(x, 1, 33);
		r = do_move(self->uffd, dst, x, ps, mode);
		ASSERT_MOVE_ERR(r, EINVAL);
		ASSERT_PATTERN(x, 33, 0);
	}
	r = do_move(self->uffd, dst, src, 2 * ps, mode);
	ASSERT_MOVED(r, 2 * ps);
}

/*
 * [mp] "Only allow moving if both are mlocked or both aren't": VM_LOCKED
 * mismatch in either direction -> EINVAL; both locked (MLOCK_ONFAULT, so the
 * registered dst is not prefaulted) -> success.
 */
TEST_F(errors, einval_mlock_mismatch)
{
	char *src = self->src, *dst = self->dst, *ldst = map_anon(2 * ps);
	__u64 mode = variant->mode;
	struct mres r;

	ASSERT_MAPPED(ldst);
	ASSERT_REGISTER(self->uffd, ldst, 2 * ps);
	if (syscall(__NR_mlock2, src, NPAGES * ps, MLOCK_ONFAULT))
		SKIP(return, "mlock2(MLOCK_ONFAULT): %s", strerror(errno));
	r = do_move(self->uffd, dst, src, ps, mode);	/* locked src -> unlocked dst */
	ASSERT_MOVE_ERR(r, EINVAL);
	if (syscall(__NR_mlock2, ldst, 2 * ps, MLOCK_ONFAULT))
		SKIP(return, "mlock2(MLOCK_ONFAULT): %s", strerror(errno));
	r = do_move(self->uffd, ldst, src, ps, mode);	/* both locked */
	ASSERT_MOVED(r, ps);
	ASSERT_PATTERN(ldst, SEED, 0);
	munlock(src, NPAGES * ps);
	r = do_move(self->uffd, ldst + ps, src + ps, ps, mode);	/* unlocked src -> locked dst */
	ASSERT_MOVE_ERR(r, EINVAL);
	ASSERT_PATTERN(src + ps, SEED, 1);
	ASSERT_MISSING(dst);
	munlock(ldst, 2 * ps);
}

/*
 * [mp] vma_move_compatible(): hugetlb vmas cannot be moved from or into ->
 * EINVAL (also before any page is touched).
 */
TEST_F(errors, einval_hugetlb)
{
	char *src = self->src, *dst = self->dst;
	char *h = mmap(NULL, 2 * hps, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_NORESERVE, -1, 0);
	struct mres r;

	if (h == MAP_FAILED)
		SKIP(return, "MAP_HUGETLB unavailable: %s", strerror(errno));
	/* hugetlb mappings are huge-page aligned */
	r = do_move(self->uffd, dst, h, ps, variant->mode);
	ASSERT_ARG_ERR(r, EINVAL);
	if (uffd_reg(self->uffd, h, hps, UFFDIO_REGISTER_MODE_MISSING, NULL) == 0) {
		r = do_move(self->uffd, h, src, ps, variant->mode);
		ASSERT_ARG_ERR(r, EINVAL);
	}
	ASSERT_PATTERN(src, SEED, 0);
	ASSERT_MISSING(dst);
}

/*
 * fs/userfaultfd.c "Do not allow cross-mm moves": a child that inherited the
 * parent's uffd cannot move pages of the parent's mm (EINVAL), and the
 * parent's memory is unchanged.
 */
TEST_F(errors, einval_cross_mm)
{
	char *src = self->src, *dst = self->dst;
	int st;
	pid_t pid;

	pid = fork();
	ASSERT_LE(0, pid) TH_LOG("fork: %s", strerror(errno));
	if (pid == 0) {
		struct mres r = do_move(self->uffd, dst, src, 2 * ps, variant->mode);

		_exit(r.ret == -1 && r.err == EINVAL ? 0 : 10 + (r.err & 0x7f));
	}
	ASSERT_EQ(pid, waitpid(pid, &st, 0));
	ASSERT_TRUE(WIFEXITED(st) && WEXITSTATUS(st) == 0)
	TH_LOG("child's cross-mm move: status %#x (10+errno)", st);
	ASSERT_PATTERN(src, SEED, 0);
	ASSERT_PATTERN(src + ps, SEED, 1);
	ASSERT_MISSING(dst);
}

UFFD_MOVE_HARNESS_MAIN
