/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Shared helpers of the UFFDIO_MOVE selftests (uffd-move-*.c).
 *
 * The first part is plain C (implemented in uffd-move-common.c): opening a
 * userfaultfd, registering ranges, issuing UFFDIO_MOVE, mapping guarded
 * anonymous areas, filling and checking page patterns, and reading
 * /proc/self/{pagemap,smaps,status}.  The second part, compiled only after
 * kselftest_harness.h, holds the assertions on UFFDIO_MOVE results and the
 * common tail of every program (the kernel-log test and main()).
 *
 * References used in the test comments:
 *   [man]  UFFDIO_MOVE(2const) man page
 *   [doc]  Documentation/admin-guide/mm/userfaultfd.rst
 *   [uapi] include/uapi/linux/userfaultfd.h
 *   [mp]   the kernel-doc comment of move_pages() in mm/userfaultfd.c, which
 *          is the normative description of the ioctl's semantics.
 */
#ifndef UFFD_MOVE_COMMON_H
#define UFFD_MOVE_COMMON_H

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <linux/types.h>
#include <linux/userfaultfd.h>

/* ---- fallbacks for uapi headers older than UFFDIO_MOVE (e.g. 6.1) ------ */
#ifndef _UFFDIO_MOVE
#define _UFFDIO_MOVE (0x05)
#endif
#ifndef UFFDIO_MOVE
struct uffdio_move {
	__u64 dst;
	__u64 src;
	__u64 len;
	__u64 mode;
	__s64 move;
};
#define UFFDIO_MOVE _IOWR(UFFDIO, _UFFDIO_MOVE, struct uffdio_move)
#endif
#ifndef UFFDIO_MOVE_MODE_DONTWAKE
#define UFFDIO_MOVE_MODE_DONTWAKE ((__u64)1 << 0)
#endif
#ifndef UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES
#define UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES ((__u64)1 << 1)
#endif
#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE (1 << 16)	/* (1 << 10) is UFFD_FEATURE_MINOR_SHMEM */
#endif
#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(0xAA, 0x00)
#endif
#ifndef UFFD_FEATURE_EVENT_REMOVE
#define UFFD_FEATURE_EVENT_REMOVE (1 << 3)
#endif
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)	/* 6.4 */
#endif
#ifndef MADV_FREE
#define MADV_FREE 8
#endif
#ifndef MADV_PAGEOUT
#define MADV_PAGEOUT 21
#endif
#ifndef MLOCK_ONFAULT
#define MLOCK_ONFAULT 0x01
#endif
#ifndef MAP_HUGETLB
#define MAP_HUGETLB 0x40000
#endif
#ifndef MFD_CLOEXEC
#define MFD_CLOEXEC 1U
#endif
#ifndef __NR_io_uring_setup
#define __NR_io_uring_setup 425
#endif
#ifndef __NR_io_uring_register
#define __NR_io_uring_register 427
#endif
#ifndef __NR_mlock2
#define __NR_mlock2 325
#endif
#ifndef __NR_memfd_create
#define __NR_memfd_create 319
#endif

/* /proc/self/pagemap: bit 63 present, 62 swapped, 55 soft-dirty */
#define PM_PRESENT (1ULL << 63)
#define PM_SWAP (1ULL << 62)
#define PM_SOFT_DIRTY (1ULL << 55)
#define PM_PFN_MASK ((1ULL << 55) - 1)
/* /proc/kpageflags bits */
#define KPF_THP 22
#define KPF_ZERO_PAGE 24

/* a value the kernel never writes into uffdio_move.move */
#define MOVE_SENTINEL ((__s64)0x5a5a5a5a5a5aLL)

extern unsigned long ps;	/* base page size */
extern unsigned long hps;	/* PMD (THP) size */
extern int kmsg_fd;		/* /dev/kmsg, positioned at the program start, or -1 */

/*
 * Page size, PMD size and /dev/kmsg; NULL when UFFDIO_MOVE is usable, else
 * why not (no userfaultfd, or a kernel without UFFD_FEATURE_MOVE).
 */
const char *uffd_move_init(void);

/* ---- userfaultfd ---------------------------------------------------------- */
int uffd_open_raw(void);
/* a userfaultfd with the requested features: the fd, or -errno */
int uffd_new(__u64 features, __u64 *got_features, __u64 *got_ioctls);
/* uffd_new(UFFD_FEATURE_MOVE) */
int uffd_move_fd(void);
/* UFFDIO_REGISTER: 0 or -errno */
int uffd_reg(int fd, void *addr, unsigned long len, __u64 mode, __u64 *ioctls);
int uffd_wake(int fd, void *addr, unsigned long len);

struct mres {
	int ret;	/* ioctl return */
	int err;	/* errno when ret == -1 */
	__s64 move;	/* the "move" output field */
};

/* one UFFDIO_MOVE, with "move" preset to MOVE_SENTINEL */
struct mres do_move(int fd, void *dst, void *src, unsigned long len, __u64 mode);

/* ---- memory ---------------------------------------------------------------- */
/*
 * len bytes mapped with prot/flags/fd at an address aligned to align,
 * between PROT_NONE guard pages so the vma never merges with another; NULL
 * on failure.
 */
char *map_guarded_flags(unsigned long len, unsigned long align, int prot, int flags, int fd);
/* private anonymous memory; with align <= ps, 4K pages only (MADV_NOHUGEPAGE) */
char *map_anon_a(unsigned long len, unsigned long align);
char *map_anon(unsigned long len);
/*
 * GIB bytes of private anonymous memory (MAP_NORESERVE, never touched here)
 * that fill a whole 1 GiB-aligned range: no other mapping shares its page
 * tables, so until it is touched not even a pmd table exists for it (the PUD
 * entry is empty: mm_find_pmd() finds nothing).  NULL on failure.
 */
#define GIB (1UL << 30)
char *map_alone_gib(void);

static inline uint64_t pat_word(unsigned int seed, unsigned long page, unsigned long word)
{
	return ((uint64_t)(seed & 0xffff) << 48) | ((uint64_t)(page & 0xffffff) << 24) | (word & 0xffffff) | 1;
}

void fill_page(char *p, unsigned int seed, unsigned long page);
void fill(char *p, unsigned long npages, unsigned int seed);
/* -1 if page p holds the pattern (seed, page), else the index of the first bad word */
long check_page(const char *p, unsigned int seed, unsigned long page);
int page_is_zero(const char *p);

uint64_t pagemap(const void *addr);	/* the pagemap entry, ~0 if unreadable */
int page_present(const void *addr);	/* 1 present or swapped, 0 not, -1 unknown */
uint64_t pfn_of(const void *addr);	/* 0 if not present or PFNs hidden */
int64_t kpageflags(uint64_t pfn);	/* -1 if unreadable */
long smaps_kb(const void *addr, const char *field);	/* field of addr's vma, or -1 */
long status_kb(const char *field);	/* a /proc/self/status field, or -1 */
long meminfo_kb(const char *field);	/* a /proc/meminfo field, or -1 */
int read_file_str(const char *path, char *buf, size_t len);
int thp_usable(void);
int kernel_at_least(int maj, int min);
int swap_devices(void);			/* active swap devices in /proc/swaps */
/* MADV_PAGEOUT n pages at p (up to 5 tries): how many are then swap entries, or -errno */
int page_out(char *p, unsigned long n);

/* ---- what a move leaves behind ---------------------------------------------- */
/*
 * The kernel memory anon_vmas hold, read before and after some work: the
 * active objects of the anon_vma slab cache (/proc/slabinfo: root and
 * CONFIG_SLUB_DEBUG), else the unreclaimable slab memory (/proc/meminfo
 * SUnreclaim, kB).  gauge_start(): -1 if neither can be read.  For work that
 * frees n anon_vmas, `allowed` is half of what keeping them would cost (n/2
 * objects, or n * 32 bytes: an anon_vma has at least 64).  gauge_start()
 * waits for the reading to stop falling (frees of earlier work pending).
 */
struct gauge {
	int objs;		/* 1: anon_vma objects, 0: SUnreclaim kB */
	long before, allowed;
	const char *unit;
};
int gauge_start(struct gauge *g, unsigned long n);
/* growth since gauge_start(), read every 20 ms for up to 5 s until it is below `allowed` (RCU-deferred frees) */
long gauge_settled(struct gauge *g);

/*
 * A chain of n fresh vmas of `size` bytes (a page, or a PMD for a THP), each
 * between PROT_NONE gaps (none merges with another, none shares an
 * anon_vma), each registered (MISSING) with uffd just before the block at
 * `from` is moved into it, so the block hops through them in turn and each
 * move takes its source from a vma of its own anon_vma.  `at` is where the
 * block ends; chain_unmap() unmaps every vma of the chain (the block too).
 */
struct chain {
	char *base;
	unsigned long len;
	char *at;
};
int hop_chain(int uffd, char *from, unsigned long size, unsigned long n, struct chain *c);	/* 0 or -errno */
void chain_unmap(struct chain *c);

/* ---- faults ---------------------------------------------------------------- */
double now_ms(void);
long minor_faults(void);	/* getrusage(RUSAGE_SELF) ru_minflt: page faults taken so far */

/* a thread that reads one word (and so may block on a userfault) */
struct toucher {
	volatile char *addr;
	pthread_t th;
	volatile int done;
	volatile uint64_t val;
};

void touch_async(struct toucher *t, void *addr);
/* 1 once the thread has read its word, 0 if it has not within ms milliseconds (wall clock) */
int wait_done(struct toucher *t, int ms);
/* the page address of the next pagefault message, or 0 on timeout/error */
uint64_t read_fault(int fd, int ms);

/* =========================================================================== */
#ifdef __KSELFTEST_HARNESS_H

/*
 * Assertions on a UFFDIO_MOVE result (struct mres).  They are ASSERTs: the
 * test stops at the first one that fails, and the message says what came back.
 */

/* success: ioctl returns 0 and "move" equals len ([man] "move" field) */
#define ASSERT_MOVED(r, len)							\
	ASSERT_TRUE((r).ret == 0 && (r).move == (__s64)(len))			\
	TH_LOG("UFFDIO_MOVE: ret=%d errno=%d (%s) move=%lld; expected ret=0 move=%lld", \
	       (r).ret, (r).err, strerror((r).err), (long long)(r).move, (long long)(len))

/* failure before any progress: -1/errno and "move" == -errno */
#define ASSERT_MOVE_ERR(r, e)							\
	ASSERT_TRUE((r).ret == -1 && (r).err == (e) && (r).move == -(__s64)(e))	\
	TH_LOG("UFFDIO_MOVE: ret=%d errno=%d (%s) move=%lld; expected ret=-1 errno=%d (%s) move=%d", \
	       (r).ret, (r).err, strerror((r).err), (long long)(r).move, (e), strerror(e), -(e))

/* failure during argument validation: errno; "move" is either untouched or -errno */
#define ASSERT_ARG_ERR(r, e)							\
	ASSERT_TRUE((r).ret == -1 && (r).err == (e) &&				\
		    ((r).move == -(__s64)(e) || (r).move == MOVE_SENTINEL))	\
	TH_LOG("UFFDIO_MOVE: ret=%d errno=%d (%s) move=%lld; expected ret=-1 errno=%d (%s)", \
	       (r).ret, (r).err, strerror((r).err), (long long)(r).move, (e), strerror(e))

/* partial progress: -1/EAGAIN and "move" == bytes moved ([man] EAGAIN) */
#define ASSERT_PARTIAL(r, bytes)						\
	ASSERT_TRUE((r).ret == -1 && (r).err == EAGAIN && (r).move == (__s64)(bytes)) \
	TH_LOG("UFFDIO_MOVE: ret=%d errno=%d (%s) move=%lld; expected ret=-1 errno=EAGAIN move=%lld", \
	       (r).ret, (r).err, strerror((r).err), (long long)(r).move, (long long)(bytes))

/* page p holds the pattern (seed, page) */
#define ASSERT_PATTERN(p, seed, page)						\
	ASSERT_TRUE(check_page((p), (seed), (page)) < 0)			\
	TH_LOG("content mismatch at %p (pattern seed %u page %lu) word %ld", (void *)(p), \
	       (unsigned int)(seed), (unsigned long)(page), check_page((p), (seed), (page)))

#define ASSERT_PRESENT(addr)							\
	ASSERT_EQ(1, page_present(addr))					\
	TH_LOG("page %p is not present", (void *)(addr))

#define ASSERT_MISSING(addr)							\
	ASSERT_EQ(0, page_present(addr))					\
	TH_LOG("page %p is still mapped (pagemap %#" PRIx64 ")", (void *)(addr), pagemap(addr))

#define ASSERT_MAPPED(p)							\
	ASSERT_NE(NULL, (p))							\
	TH_LOG("mmap failed: %s", strerror(errno))

/* UFFDIO_REGISTER in MISSING mode */
#define ASSERT_REGISTER(fd, addr, len)						\
	ASSERT_EQ(0, uffd_reg((fd), (addr), (len), UFFDIO_REGISTER_MODE_MISSING, NULL)) \
	TH_LOG("UFFDIO_REGISTER %p+%#lx failed", (void *)(addr), (unsigned long)(len))

/* a userfaultfd with UFFD_FEATURE_MOVE (main() has checked that there is one) */
#define ASSERT_UFFD(fd)								\
	ASSERT_LE(0, (fd))							\
	TH_LOG("cannot open userfaultfd with UFFD_FEATURE_MOVE: %s", strerror(-(fd)))

/*
 * The fixture most programs share (in FIXTURE_SETUP/TEARDOWN, where `self`
 * has `uffd`, `src` and `dst`): `npages` source pages and `npages`
 * destination pages, the destination registered MISSING on a userfaultfd with
 * UFFD_FEATURE_MOVE.  The source is left empty; a program fills it as it needs.
 */
#define MOVE_PAIR_SETUP(npages) do {						\
	self->uffd = uffd_move_fd();						\
	ASSERT_UFFD(self->uffd);						\
	self->src = map_anon((npages) * ps);					\
	self->dst = map_anon((npages) * ps);					\
	ASSERT_MAPPED(self->src);						\
	ASSERT_MAPPED(self->dst);						\
	ASSERT_REGISTER(self->uffd, self->dst, (npages) * ps);			\
} while (0)

#define MOVE_PAIR_TEARDOWN(npages) do {					\
	if (self->uffd >= 0)							\
		close(self->uffd);						\
	if (self->src)								\
		munmap(self->src, (npages) * ps);				\
	if (self->dst)								\
		munmap(self->dst, (npages) * ps);				\
} while (0)

/*
 * Map a 2 MiB-aligned MADV_HUGEPAGE region and fault a THP in it: 0, or -1
 * after SKIP() (the caller returns).
 */
static inline int make_thp(struct __test_metadata *_metadata, char **out, unsigned long len,
			   unsigned int seed)
{
	char *p;

	if (!thp_usable())
		SKIP(return -1, "transparent hugepages are disabled or unsupported");
	p = map_anon_a(len, hps);
	ASSERT_MAPPED(p);
	if (madvise(p, len, MADV_HUGEPAGE))
		SKIP(return -1, "MADV_HUGEPAGE failed: %s", strerror(errno));
	fill(p, hps / ps, seed);
	if (smaps_kb(p, "AnonHugePages") < (long)(hps >> 10))
		SKIP(return -1, "could not allocate a PMD THP (AnonHugePages=%ld kB)",
		     smaps_kb(p, "AnonHugePages"));
	/*
	 * Keep khugepaged away: once the THP is split by a partial move it
	 * could collapse the (now sparse) source again, filling the moved-out
	 * holes.  VM_NOHUGEPAGE does not affect the existing THP.
	 */
	madvise(p, len, MADV_NOHUGEPAGE);
	*out = p;
	return 0;
}

/*
 * Clear the soft-dirty bits of the whole process (/proc/self/clear_refs = 4)
 * and check, with a written probe page, that soft-dirty tracking works: 0,
 * or -1 after SKIP() (the caller returns).
 */
static inline int clear_soft_dirty(struct __test_metadata *_metadata)
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
 * The end of every program: the kernel-log test (its fixture is declared
 * last, so it runs after every other test) and main().
 *
 * kmsg.kernel_log_clean: no kernel warnings/oopses were logged while the
 * program ran (WARN_ON_ONCE sanity checks inside move_pages(), bad page
 * state, rmap errors).  Needs /dev/kmsg.
 *
 * main() skips the whole program (KTAP "1..0 # SKIP reason", exit 4) when
 * the kernel has no userfaultfd or no UFFD_FEATURE_MOVE (Linux < 6.8); this
 * works with the harness of every kernel (6.1's does not stop a test whose
 * FIXTURE_SETUP skipped).
 */
#define UFFD_MOVE_HARNESS_MAIN							\
FIXTURE(kmsg) {									\
	int unused;								\
};										\
FIXTURE_SETUP(kmsg)								\
{										\
}										\
FIXTURE_TEARDOWN(kmsg)								\
{										\
}										\
TEST_F(kmsg, kernel_log_clean)							\
{										\
	static const char *const bad[] = { "WARNING:", "BUG:", "Oops", "Bad page", \
		"bad rmap", "kernel BUG", "general protection", "Unable to handle", \
		"RIP: ", "list_add corruption", "page dumped because" };	\
	char rec[8192];								\
	int n = 0, hits = 0;							\
										\
	if (kmsg_fd < 0)							\
		SKIP(return, "/dev/kmsg not readable");				\
	for (;;) {								\
		ssize_t len = read(kmsg_fd, rec, sizeof(rec) - 1);		\
		char *msg;							\
										\
		if (len < 0) {							\
			if (errno == EPIPE)					\
				continue;	/* records overwritten */	\
			break;			/* EAGAIN: the end */		\
		}								\
		rec[len] = 0;							\
		n++;								\
		msg = strchr(rec, ';');						\
		msg = msg ? msg + 1 : rec;					\
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)	\
			if (strstr(msg, bad[i])) {				\
				char *nl = strchr(msg, '\n');			\
										\
				if (nl)						\
					*nl = 0;				\
				TH_LOG("kernel log: %s", msg);			\
				hits++;						\
				break;						\
			}							\
	}									\
	ASSERT_EQ(0, hits)							\
	TH_LOG("%d suspicious kernel log lines during the run (of %d)", hits, n); \
}										\
										\
int main(int argc, char **argv)							\
{										\
	const char *why = uffd_move_init();					\
	int listing = 0;							\
										\
	setvbuf(stdout, NULL, _IOLBF, 0);					\
	for (int i = 1; i < argc; i++)						\
		listing |= !strcmp(argv[i], "-l") || !strcmp(argv[i], "-h");	\
	if (why && !listing) {							\
		ksft_print_header();						\
		ksft_exit_skip("%s\n", why);					\
	}									\
	return test_harness_run(argc, argv);					\
}

#endif /* __KSELFTEST_HARNESS_H */
#endif /* UFFD_MOVE_COMMON_H */
