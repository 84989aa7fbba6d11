// SPDX-License-Identifier: GPL-2.0
/*
 * UFFDIO_MOVE under concurrency: many threads faulting on pages that a
 * handler resolves by moving them, and two threads moving different pages
 * to the same destination at once.
 *
 * The "races" fixture gives each test a userfaultfd with UFFD_FEATURE_MOVE
 * and two RACE_PAGES-page private anonymous areas of 4K pages: "src", filled
 * with the pattern SEED, and "dst", registered in MISSING mode.
 *
 * References ([man], [doc], [uapi], [mp]): see uffd-move-common.h.
 */
#define _GNU_SOURCE
#include "kselftest_harness.h"
#include "uffd-move-common.h"

#define RACE_THREADS 4
#define RACE_PAGES 256
#define SEED 70

FIXTURE(races) {
	int uffd;
	char *src;	/* RACE_PAGES pages, filled with pattern SEED */
	char *dst;	/* RACE_PAGES pages, registered (MISSING) */
};

FIXTURE_SETUP(races)
{
	MOVE_PAIR_SETUP(RACE_PAGES);
	fill(self->src, RACE_PAGES, SEED);
}

FIXTURE_TEARDOWN(races)
{
	if (self->uffd >= 0)
		close(self->uffd);
	/* the areas stay mapped: a racer thread may still be blocked on dst */
}

struct racer {
	char *dst;
	int id;
	volatile int bad;
	volatile int done;
};

static void *racer_fn(void *arg)
{
	struct racer *rc = arg;
	unsigned long idx = (unsigned long)(rc->id % 2) * 37;	/* pairs of threads collide */

	for (unsigned long k = 0; k < RACE_PAGES; k++) {
		unsigned long p = (idx + k * 7) % RACE_PAGES;	/* 7 is coprime with 256 */

		if (check_page(rc->dst + p * ps, SEED, p) >= 0)
			rc->bad++;
	}
	__atomic_store_n(&rc->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

/*
 * [mp] "Only one thread should resolve the userland page fault at any given
 * time ... the second thread will get an explicit error": many threads fault
 * on every page of dst while the handler resolves each fault with
 * UFFDIO_MOVE; each page is moved exactly once (later faults on an already
 * moved page get EEXIST and are woken with UFFDIO_WAKE), every thread reads
 * the right data and the final dst is byte-exact.
 */
TEST_F(races, race_faults)
{
	char *src = self->src, *dst = self->dst;
	struct racer rc[RACE_THREADS];
	pthread_t th[RACE_THREADS];
	int moved = 0, eexist = 0, done, idle = 0;

	for (int i = 0; i < RACE_THREADS; i++) {
		rc[i] = (struct racer){ .dst = dst, .id = i };
		pthread_create(&th[i], NULL, racer_fn, &rc[i]);
	}
	do {
		uint64_t fa = read_fault(self->uffd, 50);

		if (fa) {
			unsigned long p = (fa - (uintptr_t)dst) / ps;
			struct mres r;
			int tries = 0;

			ASSERT_TRUE(fa >= (uintptr_t)dst && p < RACE_PAGES)
			TH_LOG("fault outside dst: %#llx", (unsigned long long)fa);
			do {
				r = do_move(self->uffd, (void *)(uintptr_t)fa, src + p * ps, ps, 0);
			} while (r.ret == -1 && r.err == EAGAIN && r.move == -EAGAIN && ++tries < 100);
			if (r.ret == 0) {
				ASSERT_EQ((__s64)ps, r.move) TH_LOG("move=%lld", (long long)r.move);
				moved++;
			} else {
				ASSERT_MOVE_ERR(r, EEXIST);
				eexist++;
				ASSERT_EQ(0, uffd_wake(self->uffd, (void *)(uintptr_t)fa, ps))
				TH_LOG("wake: %s", strerror(errno));
			}
		}
		done = 0;
		for (int i = 0; i < RACE_THREADS; i++)
			done += __atomic_load_n(&rc[i].done, __ATOMIC_SEQ_CST);
		if (!fa && done < RACE_THREADS && ++idle > 100) {
			int present = 0;

			for (unsigned long p = 0; p < RACE_PAGES; p++)
				present += page_present(dst + p * ps) == 1;
			ASSERT_TRUE(0)
			TH_LOG("stuck: %d/%d threads done, %d moved, %d eexist, %d dst pages present",
			       done, RACE_THREADS, moved, eexist, present);
		} else if (fa) {
			idle = 0;
		}
	} while (done < RACE_THREADS);
	for (int i = 0; i < RACE_THREADS; i++) {
		pthread_join(th[i], NULL);
		ASSERT_EQ(0, rc[i].bad) TH_LOG("thread %d read %d corrupt pages", i, rc[i].bad);
	}
	ASSERT_EQ(RACE_PAGES, moved) TH_LOG("moved %d pages, expected %d (eexist %d)", moved, RACE_PAGES, eexist);
	for (unsigned long p = 0; p < RACE_PAGES; p++) {
		ASSERT_PATTERN(dst + p * ps, SEED, p);
		ASSERT_MISSING(src + p * ps);
	}
	TH_LOG("%d faults resolved by move, %d duplicate faults got EEXIST", moved, eexist);
}

/*
 * Two threads move two different source pages to the same destination at
 * the same moment: exactly one wins (ret 0, move == PAGE), the other gets
 * EEXIST with move == -EEXIST and keeps its source page; dst holds the
 * winner's data ([mp] "the second thread will get an explicit error").
 * The two sources are separate vmas of their own.
 */
struct dueler {
	int fd;
	char *dst, *src;
	pthread_barrier_t *bar;
	struct mres r;
};

static void *dueler_fn(void *arg)
{
	struct dueler *d = arg;

	pthread_barrier_wait(d->bar);
	d->r = do_move(d->fd, d->dst, d->src, ps, 0);
	return NULL;
}

TEST_F(races, race_same_dst)
{
	char *s0 = map_anon(ps), *s1 = map_anon(ps), *dst = self->dst;
	pthread_barrier_t bar;
	int wins[2] = { 0, 0 };

	ASSERT_MAPPED(s0);
	ASSERT_MAPPED(s1);
	pthread_barrier_init(&bar, NULL, 2);
	for (int it = 0; it < 300; it++) {
		struct dueler d[2] = {
			{ .fd = self->uffd, .dst = dst, .src = s0, .bar = &bar },
			{ .fd = self->uffd, .dst = dst, .src = s1, .bar = &bar },
		};
		pthread_t th[2];
		int w;

		fill_page(s0, 71, it);
		fill_page(s1, 72, it);
		for (int i = 0; i < 2; i++)
			pthread_create(&th[i], NULL, dueler_fn, &d[i]);
		for (int i = 0; i < 2; i++)
			pthread_join(th[i], NULL);
		ASSERT_EQ(1, (d[0].r.ret == 0) + (d[1].r.ret == 0))
		TH_LOG("iteration %d: ret %d/%d errno %d/%d", it, d[0].r.ret, d[1].r.ret, d[0].r.err, d[1].r.err);
		w = d[0].r.ret == 0 ? 0 : 1;
		wins[w]++;
		ASSERT_MOVED(d[w].r, ps);
		ASSERT_MOVE_ERR(d[!w].r, EEXIST);
		ASSERT_PATTERN(dst, 71 + w, it);
		ASSERT_PATTERN(w ? s0 : s1, 72 - w, it);
		ASSERT_MISSING(w ? s1 : s0);
		madvise(dst, ps, MADV_DONTNEED);
	}
	TH_LOG("wins: %d / %d", wins[0], wins[1]);
}

UFFD_MOVE_HARNESS_MAIN
