// SPDX-License-Identifier: GPL-2.0
/*
 * UFFDIO_MOVE and the threads waiting on userfaults: who is woken by a move
 * (with and without UFFDIO_MOVE_MODE_DONTWAKE, after a short or a failed
 * move), and the EAGAIN of a move while a non-cooperative event is pending.
 *
 * The "wake" fixture gives each test a userfaultfd with UFFD_FEATURE_MOVE and
 * two 4-page private anonymous areas of 4K pages: "src", left empty for the
 * test to fill, and "dst", registered in MISSING mode.
 *
 * References ([man], [doc], [uapi], [mp]): see uffd-move-common.h.
 */
#define _GNU_SOURCE
#include <poll.h>

#include "kselftest_harness.h"
#include "uffd-move-common.h"

#define NPAGES 4

FIXTURE(wake) {
	int uffd;
	char *src;	/* NPAGES pages, empty */
	char *dst;	/* NPAGES pages, registered (MISSING) */
};

FIXTURE_SETUP(wake)
{
	MOVE_PAIR_SETUP(NPAGES);
}

FIXTURE_TEARDOWN(wake)
{
	if (self->uffd >= 0)
		close(self->uffd);
	/* the areas stay mapped: a toucher thread may still be blocked on one */
}

/*
 * [uapi] UFFDIO_MOVE_MODE_DONTWAKE / [man]: "Do not wake up the thread that
 * waits for page-fault resolution": with a thread blocked on a userfault at
 * dst, a DONTWAKE move installs the page (ret 0, move == len, page present)
 * but the thread stays blocked until UFFDIO_WAKE; it then reads the moved
 * content.
 */
TEST_F(wake, dontwake)
{
	char *src = self->src, *dst = self->dst;
	struct toucher t;
	struct mres r;
	uint64_t fa;

	fill(src, 2, 37);
	touch_async(&t, dst + ps);
	fa = read_fault(self->uffd, 5000);
	ASSERT_EQ((uintptr_t)(dst + ps), fa) TH_LOG("fault at %#llx, expected %p", (unsigned long long)fa, dst + ps);
	r = do_move(self->uffd, dst, src, 2 * ps, UFFDIO_MOVE_MODE_DONTWAKE);
	ASSERT_MOVED(r, 2 * ps);
	ASSERT_PRESENT(dst + ps);
	ASSERT_FALSE(wait_done(&t, 300)) TH_LOG("DONTWAKE move woke the faulting thread");
	ASSERT_EQ(0, uffd_wake(self->uffd, dst, ps)) TH_LOG("UFFDIO_WAKE: %s", strerror(errno));
	ASSERT_FALSE(wait_done(&t, 200)) TH_LOG("UFFDIO_WAKE of another page woke the thread");
	ASSERT_EQ(0, uffd_wake(self->uffd, dst + ps, ps)) TH_LOG("UFFDIO_WAKE: %s", strerror(errno));
	ASSERT_TRUE(wait_done(&t, 5000)) TH_LOG("UFFDIO_WAKE did not wake the faulting thread");
	pthread_join(t.th, NULL);
	ASSERT_EQ(pat_word(37, 1, 0), t.val) TH_LOG("thread read %#llx", (unsigned long long)t.val);
}

/*
 * Without DONTWAKE the move wakes the threads waiting on the moved range
 * ([man]: the waiting thread is woken), and only that range: a thread
 * faulting on a page outside [dst, dst+len) stays blocked.
 */
TEST_F(wake, wake_default)
{
	char *src = self->src, *dst = self->dst;
	struct toucher t0, t2;
	struct mres r;
	uint64_t a, b;

	fill(src, 4, 38);
	touch_async(&t0, dst);
	touch_async(&t2, dst + 2 * ps);
	a = read_fault(self->uffd, 5000);
	b = read_fault(self->uffd, 5000);
	ASSERT_TRUE(a && b) TH_LOG("expected two faults, got %#llx %#llx", (unsigned long long)a, (unsigned long long)b);
	r = do_move(self->uffd, dst, src, ps, 0);
	ASSERT_MOVED(r, ps);
	ASSERT_TRUE(wait_done(&t0, 5000)) TH_LOG("move without DONTWAKE did not wake the faulting thread");
	ASSERT_EQ(pat_word(38, 0, 0), t0.val) TH_LOG("thread read %#llx", (unsigned long long)t0.val);
	ASSERT_FALSE(wait_done(&t2, 300)) TH_LOG("thread faulting outside the moved range was woken");
	r = do_move(self->uffd, dst + 2 * ps, src + 2 * ps, 2 * ps, 0);
	ASSERT_MOVED(r, 2 * ps);
	ASSERT_TRUE(wait_done(&t2, 5000)) TH_LOG("second move did not wake the thread");
	ASSERT_EQ(pat_word(38, 2, 0), t2.val) TH_LOG("thread read %#llx", (unsigned long long)t2.val);
	pthread_join(t0.th, NULL);
	pthread_join(t2.th, NULL);
}

/*
 * The wake after a short move covers exactly the bytes moved ([mp]: the
 * retval is the number of bytes remapped): touchers on dst[0] and dst[1],
 * src[1] a hole -> EAGAIN/move == PAGE, only dst[0]'s thread is woken; a
 * failed move (ENOENT, nothing moved) wakes nobody.
 */
TEST_F(wake, wake_partial_range)
{
	char *src = self->src, *dst = self->dst;
	struct toucher t0, t1;
	struct mres r;

	fill(src, 1, 39);
	touch_async(&t0, dst);
	touch_async(&t1, dst + ps);
	ASSERT_TRUE(read_fault(self->uffd, 5000) && read_fault(self->uffd, 5000)) TH_LOG("expected two faults");
	r = do_move(self->uffd, dst + ps, src + ps, ps, 0);	/* hole: nothing moved */
	ASSERT_MOVE_ERR(r, ENOENT);
	ASSERT_TRUE(!wait_done(&t1, 200) && !wait_done(&t0, 1)) TH_LOG("failed move woke a thread");
	r = do_move(self->uffd, dst, src, 2 * ps, 0);
	ASSERT_PARTIAL(r, ps);
	ASSERT_TRUE(wait_done(&t0, 5000)) TH_LOG("thread on the moved page not woken");
	ASSERT_EQ(pat_word(39, 0, 0), t0.val) TH_LOG("thread read %#llx", (unsigned long long)t0.val);
	ASSERT_FALSE(wait_done(&t1, 300)) TH_LOG("thread beyond the moved bytes was woken");
	fill_page(src + ps, 40, 0);
	r = do_move(self->uffd, dst + ps, src + ps, ps, 0);
	ASSERT_MOVED(r, ps);
	ASSERT_TRUE(wait_done(&t1, 5000)) TH_LOG("thread not woken");
	ASSERT_EQ(pat_word(40, 0, 0), t1.val) TH_LOG("thread read %#llx", (unsigned long long)t1.val);
	pthread_join(t0.th, NULL);
	pthread_join(t1.th, NULL);
}

/*
 * [man] EAGAIN / [doc] non-cooperative events: while a UFFD_EVENT_REMOVE is
 * pending (mmap_changing), UFFDIO_MOVE fails with EAGAIN and move ==
 * -EAGAIN, nothing moved; once the event is read the same move succeeds.
 * This test needs a userfaultfd with UFFD_FEATURE_EVENT_REMOVE too, and a
 * destination populated before registration: both its own.
 */
struct dn_arg {
	char *p;
	volatile int done;
};

static void *dontneed_fn(void *a)
{
	struct dn_arg *d = a;

	madvise(d->p, ps, MADV_DONTNEED);
	__atomic_store_n(&d->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

TEST_F(wake, eagain_mmap_changing)
{
	__u64 feat;
	int fd = uffd_new(UFFD_FEATURE_MOVE | UFFD_FEATURE_EVENT_REMOVE, &feat, NULL);
	char *src = self->src, *dst = map_anon(4 * ps);
	struct pollfd pfd;
	struct uffd_msg msg;
	struct dn_arg d;
	pthread_t th;
	struct mres r;

	if (fd < 0)
		SKIP(return, "UFFD_FEATURE_EVENT_REMOVE unavailable: %s", strerror(-fd));
	ASSERT_MAPPED(dst);
	fill(src, 2, 76);
	dst[3 * ps] = 1;
	ASSERT_REGISTER(fd, dst, 4 * ps);
	d.p = dst + 3 * ps;
	d.done = 0;
	pthread_create(&th, NULL, dontneed_fn, &d);
	pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
	ASSERT_EQ(1, poll(&pfd, 1, 5000)) TH_LOG("no REMOVE event");
	usleep(200000);	/* the madvise thread stays blocked until the event is read */
	r = do_move(fd, dst, src, 2 * ps, 0);
	ASSERT_MOVE_ERR(r, EAGAIN);
	ASSERT_MISSING(dst);
	ASSERT_PATTERN(src, 76, 0);
	ASSERT_EQ(sizeof(msg), read(fd, &msg, sizeof(msg))) TH_LOG("read event: %s", strerror(errno));
	ASSERT_EQ(UFFD_EVENT_REMOVE, msg.event) TH_LOG("event %d", msg.event);
	pthread_join(th, NULL);
	r = do_move(fd, dst, src, 2 * ps, 0);
	ASSERT_MOVED(r, 2 * ps);
	ASSERT_PATTERN(dst + ps, 76, 1);
	close(fd);
}

UFFD_MOVE_HARNESS_MAIN
