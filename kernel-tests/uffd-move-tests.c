// SPDX-License-Identifier: GPL-2.0
/*
 * uffd-move-tests: a kselftest-style (KTAP) suite for the userfaultfd
 * UFFDIO_MOVE ioctl (Linux 6.8+).
 *
 * Every test pins one documented behaviour of UFFDIO_MOVE with exact
 * assertions (return value, errno, the "move" output field, memory contents
 * and page presence).  References used in the comments:
 *   [man]  UFFDIO_MOVE(2const) man page
 *   [doc]  Documentation/admin-guide/mm/userfaultfd.rst
 *   [uapi] include/uapi/linux/userfaultfd.h
 *   [mp]   the kernel-doc comment of move_pages() in mm/userfaultfd.c, which
 *          is the normative description of the ioctl's semantics.
 *
 * Build: make (see Makefile / README.md).  Run: ./uffd-move-tests [-l] [-t name]...
 * Exit codes follow kselftest: 0 pass, 1 fail, 4 skip.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <linux/types.h>
#include <linux/userfaultfd.h>

/* ---- fallbacks for older uapi headers (e.g. 6.1) ----------------------- */
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

#define KSFT_PASS 0
#define KSFT_FAIL 1
#define KSFT_SKIP 4

#define TEST_TIMEOUT_S 20

static unsigned long ps;	/* base page size */
static unsigned long hps;	/* PMD (THP) size */
static char *skip_reason;	/* MAP_SHARED: written by the test child */
static int kmsg_fd = -1;	/* /dev/kmsg positioned at the suite start */

/* ---- diagnostics / assertions ------------------------------------------ */
static void diag(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	printf("# %s\n", buf);
	fflush(stdout);
}

#define ASSERT(cond, ...) do {						\
	if (!(cond)) {							\
		diag("%s:%d: assertion failed: %s", __func__, __LINE__, #cond); \
		diag(__VA_ARGS__);					\
		return KSFT_FAIL;					\
	}								\
} while (0)

#define SKIP(...) do {							\
	snprintf(skip_reason, 256, __VA_ARGS__);			\
	return KSFT_SKIP;						\
} while (0)

/* propagate a non-pass result of a helper that returns KSFT_* */
#define TRY(expr) do { int __r = (expr); if (__r != KSFT_PASS) return __r; } while (0)

/* ---- userfaultfd helpers ------------------------------------------------ */
static int uffd_open_raw(void)
{
	int fd = syscall(SYS_userfaultfd, O_CLOEXEC);

	if (fd < 0 && errno == EPERM)
		fd = syscall(SYS_userfaultfd, O_CLOEXEC | UFFD_USER_MODE_ONLY);
	if (fd < 0) {
		int saved = errno;
		int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);

		if (dev >= 0) {
			fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC);
			if (fd < 0)
				saved = errno;
			close(dev);
		}
		if (fd < 0)
			errno = saved;
	}
	return fd;
}

/* open a userfaultfd with the requested features; returns fd or -errno */
static int uffd_new(__u64 features, __u64 *got_features, __u64 *got_ioctls)
{
	struct uffdio_api api = { .api = UFFD_API, .features = features };
	int fd = uffd_open_raw();

	if (fd < 0)
		return -errno;
	if (ioctl(fd, UFFDIO_API, &api)) {
		int e = errno;

		close(fd);
		return -e;
	}
	if (got_features)
		*got_features = api.features;
	if (got_ioctls)
		*got_ioctls = api.ioctls;
	return fd;
}

static int uffd_move_fd(void)
{
	return uffd_new(UFFD_FEATURE_MOVE, NULL, NULL);
}

#define UFFD_OR_FAIL(fd) do {						\
	if ((fd) < 0) {							\
		diag("cannot open userfaultfd with UFFD_FEATURE_MOVE: %s", strerror(-(fd))); \
		return KSFT_FAIL;					\
	}								\
} while (0)

static int uffd_reg(int fd, void *addr, unsigned long len, __u64 mode, __u64 *ioctls)
{
	struct uffdio_register r = {
		.range = { .start = (uintptr_t)addr, .len = len },
		.mode = mode,
	};

	if (ioctl(fd, UFFDIO_REGISTER, &r))
		return -errno;
	if (ioctls)
		*ioctls = r.ioctls;
	return 0;
}

#define REG_OR_FAIL(fd, addr, len) do {					\
	int __e = uffd_reg((fd), (addr), (len), UFFDIO_REGISTER_MODE_MISSING, NULL); \
	ASSERT(__e == 0, "UFFDIO_REGISTER failed: %s", strerror(-__e)); \
} while (0)

struct mres {
	int ret;	/* ioctl return */
	int err;	/* errno when ret == -1 */
	__s64 move;	/* the "move" output field */
};

#define MOVE_SENTINEL ((__s64)0x5a5a5a5a5a5aLL)

static struct mres do_move(int fd, void *dst, void *src, unsigned long len, __u64 mode)
{
	struct uffdio_move m = {
		.dst = (uintptr_t)dst, .src = (uintptr_t)src,
		.len = len, .mode = mode, .move = MOVE_SENTINEL,
	};
	struct mres r;

	r.ret = ioctl(fd, UFFDIO_MOVE, &m);
	r.err = r.ret ? errno : 0;
	r.move = m.move;
	return r;
}

/* success: ioctl returns 0 and "move" equals len ([man] "move" field) */
#define EXPECT_OK(r, len) ASSERT((r).ret == 0 && (r).move == (__s64)(len),	\
	"UFFDIO_MOVE: ret=%d errno=%d (%s) move=%lld; expected ret=0 move=%lld", \
	(r).ret, (r).err, strerror((r).err), (long long)(r).move, (long long)(len))

/* failure before any progress: -1/errno and "move" == -errno */
#define EXPECT_ERR(r, e) ASSERT((r).ret == -1 && (r).err == (e) && (r).move == -(__s64)(e), \
	"UFFDIO_MOVE: ret=%d errno=%d (%s) move=%lld; expected ret=-1 errno=%d (%s) move=%d", \
	(r).ret, (r).err, strerror((r).err), (long long)(r).move, (e), strerror(e), -(e))

/* failure during argument validation: errno; "move" is either untouched or -errno */
#define EXPECT_ARG_ERR(r, e) ASSERT((r).ret == -1 && (r).err == (e) &&		\
	((r).move == -(__s64)(e) || (r).move == MOVE_SENTINEL),			\
	"UFFDIO_MOVE: ret=%d errno=%d (%s) move=%lld; expected ret=-1 errno=%d (%s)", \
	(r).ret, (r).err, strerror((r).err), (long long)(r).move, (e), strerror(e))

/* partial progress: -1/EAGAIN and "move" == bytes moved ([man] EAGAIN) */
#define EXPECT_PARTIAL(r, bytes) ASSERT((r).ret == -1 && (r).err == EAGAIN && (r).move == (__s64)(bytes), \
	"UFFDIO_MOVE: ret=%d errno=%d (%s) move=%lld; expected ret=-1 errno=EAGAIN move=%lld", \
	(r).ret, (r).err, strerror((r).err), (long long)(r).move, (long long)(bytes))

/* ---- memory helpers ---------------------------------------------------- */
/*
 * Map len bytes of private anonymous memory at an address aligned to align,
 * surrounded by PROT_NONE guard pages so the vma never merges with another.
 */
static char *map_guarded_flags(unsigned long len, unsigned long align, int prot, int flags, int fd)
{
	unsigned long total = len + align + 2 * ps;
	char *res = mmap(NULL, total, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	uintptr_t start;
	char *p;

	if (res == MAP_FAILED)
		return NULL;
	start = (uintptr_t)res + ps;
	if (align > ps)
		start = (start + align - 1) & ~(uintptr_t)(align - 1);
	p = mmap((void *)start, len, prot, flags | MAP_FIXED, fd, 0);
	if (p == MAP_FAILED)
		return NULL;
	return p;
}

static char *map_anon_a(unsigned long len, unsigned long align)
{
	char *p = map_guarded_flags(len, align, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);

	if (p && align <= ps)
		madvise(p, len, MADV_NOHUGEPAGE);	/* plain 4K pages, no (m)THP */
	return p;
}

static char *map_anon(unsigned long len)
{
	return map_anon_a(len, ps);
}

#define MAP_OR_FAIL(p) ASSERT((p) != NULL, "mmap failed: %s", strerror(errno))

static inline uint64_t pat_word(unsigned seed, unsigned long page, unsigned long word)
{
	return ((uint64_t)(seed & 0xffff) << 48) | ((uint64_t)(page & 0xffffff) << 24) | (word & 0xffffff) | 1;
}

static void fill_page(char *p, unsigned seed, unsigned long page)
{
	uint64_t *w = (uint64_t *)p;

	for (unsigned long i = 0; i < ps / 8; i++)
		w[i] = pat_word(seed, page, i);
}

static void fill(char *p, unsigned long npages, unsigned seed)
{
	for (unsigned long i = 0; i < npages; i++)
		fill_page(p + i * ps, seed, i);
}

/* returns -1 if page p holds the pattern (seed, page), else first bad word */
static long check_page(const char *p, unsigned seed, unsigned long page)
{
	const uint64_t *w = (const uint64_t *)p;

	for (unsigned long i = 0; i < ps / 8; i++)
		if (w[i] != pat_word(seed, page, i))
			return (long)i;
	return -1;
}

#define CHECK_PAT(p, seed, page) do {					\
	long __bad = check_page((p), (seed), (page));			\
	ASSERT(__bad < 0, "content mismatch at %p (pattern seed %u page %lu) word %ld: %#" PRIx64 " != %#" PRIx64, \
	       (void *)(p), (unsigned)(seed), (unsigned long)(page), __bad, \
	       ((const uint64_t *)(p))[__bad < 0 ? 0 : __bad], pat_word((seed), (page), __bad < 0 ? 0 : __bad)); \
} while (0)

static int page_is_zero(const char *p)
{
	const uint64_t *w = (const uint64_t *)p;

	for (unsigned long i = 0; i < ps / 8; i++)
		if (w[i])
			return 0;
	return 1;
}

/* /proc/self/pagemap: bit 63 present, 62 swapped, 56 exclusive, 55 soft-dirty */
#define PM_PRESENT (1ULL << 63)
#define PM_SWAP (1ULL << 62)
#define PM_SOFT_DIRTY (1ULL << 55)
#define PM_PFN_MASK ((1ULL << 55) - 1)

static uint64_t pagemap(const void *addr)
{
	static int fd = -1;
	static pid_t owner;
	uint64_t e = 0;

	if (fd >= 0 && owner != getpid()) {	/* inherited across fork(): reopen */
		close(fd);
		fd = -1;
	}
	if (fd < 0) {
		fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
		owner = getpid();
	}
	if (fd < 0)
		return ~0ULL;
	if (pread(fd, &e, 8, ((uintptr_t)addr / ps) * 8) != 8)
		return ~0ULL;
	return e;
}

/* 1 present, 0 not present (neither mapped nor swapped), -1 unknown */
static int page_present(const void *addr)
{
	uint64_t e = pagemap(addr);

	if (e == ~0ULL) {
		unsigned char v;

		if (mincore((void *)((uintptr_t)addr & ~(ps - 1)), ps, &v))
			return -1;
		return v & 1;
	}
	return (e & (PM_PRESENT | PM_SWAP)) ? 1 : 0;
}

#define PRESENT(addr) ASSERT(page_present(addr) == 1, "page %p is not present", (void *)(addr))
#define MISSING(addr) ASSERT(page_present(addr) == 0, "page %p is still mapped (pagemap %#" PRIx64 ")", \
			     (void *)(addr), pagemap(addr))

static uint64_t pfn_of(const void *addr)
{
	uint64_t e = pagemap(addr);

	if (e == ~0ULL || !(e & PM_PRESENT))
		return 0;
	return e & PM_PFN_MASK;
}

#define KPF_THP 22
#define KPF_ZERO_PAGE 24
static int64_t kpageflags(uint64_t pfn)
{
	uint64_t f;
	int fd = open("/proc/kpageflags", O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -1;
	if (pread(fd, &f, 8, pfn * 8) != 8)
		f = (uint64_t)-1;
	close(fd);
	return (int64_t)f;
}

/* value (kB) of an smaps field of the vma containing addr, or -1 */
static long smaps_kb(const void *addr, const char *field)
{
	FILE *f = fopen("/proc/self/smaps", "re");
	char line[512];
	int in = 0;
	long val = -1;
	size_t flen = strlen(field);

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		unsigned long s, e;

		if (sscanf(line, "%lx-%lx ", &s, &e) == 2) {	/* a vma header line */
			if (in)
				break;
			in = (uintptr_t)addr >= s && (uintptr_t)addr < e;
			continue;
		}
		if (in && !strncmp(line, field, flen) && line[flen] == ':') {
			val = strtol(line + flen + 1, NULL, 10);
			break;
		}
	}
	fclose(f);
	return val;
}

static long status_kb(const char *field)
{
	FILE *f = fopen("/proc/self/status", "re");
	char line[256];
	long v = -1;
	size_t n = strlen(field);

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, n) && line[n] == ':') {
			v = strtol(line + n + 1, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

static int read_file_str(const char *path, char *buf, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -1;
	n = read(fd, buf, len - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = 0;
	return 0;
}

static int thp_usable(void)
{
	char buf[128];

	if (read_file_str("/sys/kernel/mm/transparent_hugepage/enabled", buf, sizeof(buf)))
		return 0;
	return strstr(buf, "[never]") == NULL;
}

static int kernel_at_least(int maj, int min)
{
	struct utsname u;
	int a = 0, b = 0;

	if (uname(&u) || sscanf(u.release, "%d.%d", &a, &b) != 2)
		return 1;
	return a > maj || (a == maj && b >= min);
}

/* Map a 2 MiB-aligned MADV_HUGEPAGE region and fault a THP in it. */
static int make_thp(char **out, unsigned long len, unsigned seed)
{
	char *p;

	if (!thp_usable())
		SKIP("transparent hugepages are disabled or unsupported");
	p = map_anon_a(len, hps);
	ASSERT(p != NULL, "mmap failed: %s", strerror(errno));
	if (madvise(p, len, MADV_HUGEPAGE))
		SKIP("MADV_HUGEPAGE failed: %s", strerror(errno));
	fill(p, hps / ps, seed);
	if (smaps_kb(p, "AnonHugePages") < (long)(hps >> 10))
		SKIP("could not allocate a PMD THP (AnonHugePages=%ld kB)", smaps_kb(p, "AnonHugePages"));
	/*
	 * Keep khugepaged away: once the THP is split by a partial move it
	 * could collapse the (now sparse) source again, filling the moved-out
	 * holes.  VM_NOHUGEPAGE does not affect the existing THP.
	 */
	madvise(p, len, MADV_NOHUGEPAGE);
	*out = p;
	return KSFT_PASS;
}

/* ---- fault helpers ------------------------------------------------------ */
static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

struct toucher {
	volatile char *addr;
	pthread_t th;
	volatile int done;
	volatile uint64_t val;
};

static void *toucher_fn(void *arg)
{
	struct toucher *t = arg;

	t->val = *(volatile uint64_t *)t->addr;
	__atomic_store_n(&t->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static void touch_async(struct toucher *t, void *addr)
{
	t->addr = addr;
	t->done = 0;
	pthread_create(&t->th, NULL, toucher_fn, t);
}

static int wait_done(struct toucher *t, int ms)
{
	for (int i = 0; i < ms; i++) {
		if (__atomic_load_n(&t->done, __ATOMIC_SEQ_CST))
			return 1;
		usleep(1000);
	}
	return __atomic_load_n(&t->done, __ATOMIC_SEQ_CST);
}

/* read one pagefault message; returns fault address or 0 on timeout/error */
static uint64_t read_fault(int fd, int ms)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	struct uffd_msg msg;
	int fl = fcntl(fd, F_GETFL);
	double end = now_ms() + ms;

	/*
	 * Non-blocking read: a fault can be queued (poll says POLLIN) and
	 * then withdrawn by the faulting thread itself when it notices the
	 * page got mapped meanwhile; a blocking read would then hang.
	 */
	if (!(fl & O_NONBLOCK))
		fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	for (;;) {
		int left = (int)(end - now_ms());

		if (left < 0 || poll(&pfd, 1, left) != 1)
			return 0;
		if (read(fd, &msg, sizeof(msg)) == sizeof(msg))
			break;
		if (errno != EAGAIN)
			return 0;
	}
	if (msg.event != UFFD_EVENT_PAGEFAULT)
		return 0;
	return msg.arg.pagefault.address & ~(uint64_t)(ps - 1);
}

static int uffd_wake(int fd, void *addr, unsigned long len)
{
	struct uffdio_range r = { .start = (uintptr_t)addr, .len = len };

	return ioctl(fd, UFFDIO_WAKE, &r);
}

/* ========================================================================= */
/*                                 THE TESTS                                 */
/* ========================================================================= */

/*
 * [doc] "UFFD_FEATURE_MOVE indicates that the kernel supports moving an
 * existing page contents from userspace"; [uapi] UFFD_API_FEATURES includes
 * UFFD_FEATURE_MOVE.  UFFDIO_API with features=0 reports every supported
 * feature; asking for MOVE explicitly must succeed and echo it back, and the
 * returned ioctls bitmask must contain the basic API ioctls.
 */
static int t_api_feature_move(void)
{
	__u64 feat = 0, ioctls = 0;
	int fd = uffd_new(0, &feat, NULL);

	ASSERT(fd >= 0, "UFFDIO_API(features=0) failed: %s", strerror(-fd));
	ASSERT(feat & UFFD_FEATURE_MOVE, "UFFD_FEATURE_MOVE not advertised: features=%#llx",
	       (unsigned long long)feat);
	close(fd);
	fd = uffd_new(UFFD_FEATURE_MOVE, &feat, &ioctls);
	ASSERT(fd >= 0, "UFFDIO_API(features=UFFD_FEATURE_MOVE) failed: %s", strerror(-fd));
	ASSERT(feat & UFFD_FEATURE_MOVE, "features returned %#llx lack MOVE", (unsigned long long)feat);
	ASSERT((ioctls & ((1ULL << _UFFDIO_REGISTER) | (1ULL << _UFFDIO_UNREGISTER) | (1ULL << _UFFDIO_API))) ==
	       ((1ULL << _UFFDIO_REGISTER) | (1ULL << _UFFDIO_UNREGISTER) | (1ULL << _UFFDIO_API)),
	       "UFFDIO_API ioctls=%#llx", (unsigned long long)ioctls);
	return KSFT_PASS;
}

/*
 * [uapi] UFFD_API_RANGE_IOCTLS contains (1 << _UFFDIO_MOVE): registering an
 * anonymous range in MISSING mode must advertise UFFDIO_MOVE in
 * uffdio_register.ioctls ([doc]: check the returned ioctls before use).
 * Hugetlb ranges only get UFFD_API_RANGE_IOCTLS_BASIC which lacks MOVE.
 */
static int t_register_ioctls_move(void)
{
	int fd = uffd_move_fd();
	__u64 ioctls = 0;
	char *p = map_anon(4 * ps), *h;
	int e;

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(p);
	e = uffd_reg(fd, p, 4 * ps, UFFDIO_REGISTER_MODE_MISSING, &ioctls);
	ASSERT(e == 0, "register: %s", strerror(-e));
	ASSERT(ioctls & (1ULL << _UFFDIO_MOVE), "UFFDIO_MOVE missing from register ioctls %#llx",
	       (unsigned long long)ioctls);
	ASSERT(ioctls & (1ULL << _UFFDIO_COPY), "ioctls %#llx", (unsigned long long)ioctls);
	ASSERT(ioctls & (1ULL << _UFFDIO_WAKE), "ioctls %#llx", (unsigned long long)ioctls);

	h = mmap(NULL, 2 * hps, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_NORESERVE, -1, 0);
	if (h != MAP_FAILED) {
		char *ha = (char *)(((uintptr_t)h + hps - 1) & ~(hps - 1));

		if ((uintptr_t)ha + hps <= (uintptr_t)h + 2 * hps &&
		    uffd_reg(fd, ha, hps, UFFDIO_REGISTER_MODE_MISSING, &ioctls) == 0)
			ASSERT(!(ioctls & (1ULL << _UFFDIO_MOVE)),
			       "hugetlb registration advertises UFFDIO_MOVE: %#llx", (unsigned long long)ioctls);
	}
	return KSFT_PASS;
}

/*
 * [man]/[mp]: UFFDIO_MOVE moves the pages of [src, src+len) to
 * [dst, dst+len) in zero copy: contents appear intact at dst, the source
 * range becomes a hole (the pages are *moved*, not copied), and a later
 * access to src in a MISSING-registered range raises a userfault that we
 * resolve with UFFDIO_ZEROPAGE and read zeros.
 */
static int t_move_basic(void)
{
	const unsigned long n = 16;
	int fd = uffd_move_fd();
	char *src = map_anon(n * ps), *dst = map_anon(n * ps);
	struct toucher t;
	struct mres r;
	uint64_t fa;

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(src);
	MAP_OR_FAIL(dst);
	fill(src, n, 7);
	REG_OR_FAIL(fd, src, n * ps);
	REG_OR_FAIL(fd, dst, n * ps);
	for (unsigned long i = 0; i < n; i++)
		MISSING(dst + i * ps);

	r = do_move(fd, dst, src, n * ps, 0);
	EXPECT_OK(r, n * ps);
	for (unsigned long i = 0; i < n; i++) {
		PRESENT(dst + i * ps);
		MISSING(src + i * ps);
	}
	for (unsigned long i = 0; i < n; i++)
		CHECK_PAT(dst + i * ps, 7, i);

	/* reading the source now faults (it is a hole in a registered range) */
	touch_async(&t, src + 3 * ps);
	fa = read_fault(fd, 5000);
	ASSERT(fa == (uintptr_t)(src + 3 * ps), "expected a userfault at %p, got %#llx",
	       (void *)(src + 3 * ps), (unsigned long long)fa);
	{
		struct uffdio_zeropage z = { .range = { .start = fa, .len = ps } };

		ASSERT(ioctl(fd, UFFDIO_ZEROPAGE, &z) == 0, "UFFDIO_ZEROPAGE: %s", strerror(errno));
	}
	ASSERT(wait_done(&t, 5000), "faulting thread not woken by UFFDIO_ZEROPAGE");
	pthread_join(t.th, NULL);
	ASSERT(t.val == 0, "source page read %#llx after move, expected zeros", (unsigned long long)t.val);
	/* the destination is a normal writable anonymous mapping */
	for (unsigned long i = 0; i < n; i++)
		fill_page(dst + i * ps, 8, i);
	for (unsigned long i = 0; i < n; i++)
		CHECK_PAT(dst + i * ps, 8, i);
	return KSFT_PASS;
}

/*
 * [mp] "remaps arbitrary anonymous pages atomically in zero copy": the
 * physical page (PFN) that backed src is the one now mapped at dst, and it
 * stays mapped after writing to dst (the moved pte is writable, no COW).
 * Needs PFNs in /proc/self/pagemap (CAP_SYS_ADMIN).
 */
static int t_move_zero_copy_pfn(void)
{
	const unsigned long n = 8;
	int fd = uffd_move_fd();
	char *src = map_anon(n * ps), *dst = map_anon(n * ps);
	uint64_t pfns[8];
	struct mres r;

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(src);
	MAP_OR_FAIL(dst);
	fill(src, n, 9);
	for (unsigned long i = 0; i < n; i++)
		pfns[i] = pfn_of(src + i * ps);
	if (!pfns[0])
		SKIP("PFNs are hidden in /proc/self/pagemap (needs CAP_SYS_ADMIN)");
	REG_OR_FAIL(fd, dst, n * ps);
	r = do_move(fd, dst, src, n * ps, 0);
	EXPECT_OK(r, n * ps);
	for (unsigned long i = 0; i < n; i++) {
		ASSERT(pfn_of(dst + i * ps) == pfns[i], "page %lu: pfn %#llx at dst, was %#llx at src", i,
		       (unsigned long long)pfn_of(dst + i * ps), (unsigned long long)pfns[i]);
		dst[i * ps + 5] = 0x42;
		ASSERT(pfn_of(dst + i * ps) == pfns[i], "page %lu was copied on write after the move", i);
	}
	return KSFT_PASS;
}

/*
 * [man] "move": on success the kernel writes len into the "move" field and
 * the ioctl returns 0; whatever the caller left there is overwritten.  Also
 * a single page, and moving within one vma ([mp] "It can remap non shared
 * anonymous pages within the same vma too").
 */
static int t_move_field_success(void)
{
	int fd = uffd_move_fd();
	char *a = map_anon(8 * ps);
	struct mres r;

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(a);
	fill(a, 4, 11);
	REG_OR_FAIL(fd, a, 8 * ps);	/* one vma: src = a[0..3], dst = a[4..7] */
	r = do_move(fd, a + 4 * ps, a, ps, 0);
	EXPECT_OK(r, ps);
	r = do_move(fd, a + 5 * ps, a + ps, 3 * ps, 0);
	EXPECT_OK(r, 3 * ps);
	for (int i = 0; i < 4; i++) {
		CHECK_PAT(a + (4 + i) * ps, 11, i);
		MISSING(a + i * ps);
	}
	return KSFT_PASS;
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
static int t_partial_eexist(void)
{
	const unsigned long n = 8, k = 3;
	int fd = uffd_move_fd();
	char *src = map_anon(n * ps), *dst = map_anon(n * ps);
	struct mres r;

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(src);
	MAP_OR_FAIL(dst);
	fill(src, n, 12);
	fill_page(dst + k * ps, 99, 0);
	REG_OR_FAIL(fd, dst, n * ps);
	r = do_move(fd, dst, src, n * ps, 0);
	EXPECT_PARTIAL(r, k * ps);
	for (unsigned long i = 0; i < k; i++) {
		CHECK_PAT(dst + i * ps, 12, i);
		MISSING(src + i * ps);
	}
	CHECK_PAT(dst + k * ps, 99, 0);
	for (unsigned long i = k; i < n; i++)
		CHECK_PAT(src + i * ps, 12, i);
	for (unsigned long i = k + 1; i < n; i++)
		MISSING(dst + i * ps);
	r = do_move(fd, dst + k * ps, src + k * ps, (n - k) * ps, 0);
	EXPECT_ERR(r, EEXIST);
	/* skip the busy page and finish */
	r = do_move(fd, dst + (k + 1) * ps, src + (k + 1) * ps, (n - k - 1) * ps, 0);
	EXPECT_OK(r, (n - k - 1) * ps);
	for (unsigned long i = k + 1; i < n; i++)
		CHECK_PAT(dst + i * ps, 12, i);
	CHECK_PAT(src + k * ps, 12, k);
	return KSFT_PASS;
}

/*
 * [mp] "If the source virtual memory range has any unmapped holes ...
 * move_pages() will fail ... with -ENOENT"; progress before the hole is
 * reported as in t_partial_eexist (EAGAIN + move == bytes moved).
 */
static int t_partial_enoent(void)
{
	const unsigned long n = 8, k = 5;
	int fd = uffd_move_fd();
	char *src = map_anon(n * ps), *dst = map_anon(n * ps);
	struct mres r;

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(src);
	MAP_OR_FAIL(dst);
	fill(src, n, 13);
	madvise(src + k * ps, ps, MADV_DONTNEED);
	REG_OR_FAIL(fd, dst, n * ps);
	r = do_move(fd, dst, src, n * ps, 0);
	EXPECT_PARTIAL(r, k * ps);
	for (unsigned long i = 0; i < k; i++)
		CHECK_PAT(dst + i * ps, 13, i);
	for (unsigned long i = k; i < n; i++)
		MISSING(dst + i * ps);
	for (unsigned long i = k + 1; i < n; i++)
		CHECK_PAT(src + i * ps, 13, i);
	r = do_move(fd, dst + k * ps, src + k * ps, (n - k) * ps, 0);
	EXPECT_ERR(r, ENOENT);
	return KSFT_PASS;
}

/*
 * [man] ENOENT / [mp]: a hole at the very first source page fails with
 * -ENOENT and move == -ENOENT, nothing moved.  Two flavours: the hole is a
 * none pte inside an existing page table, and the hole has no page table at
 * all (untouched 2 MiB region).
 */
static int t_enoent_src_hole(void)
{
	int fd = uffd_move_fd();
	char *src = map_anon(4 * ps), *dst = map_anon(4 * ps);
	char *empty = map_anon_a(hps, hps);	/* never touched: no page table */
	struct mres r;

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(src);
	MAP_OR_FAIL(dst);
	MAP_OR_FAIL(empty);
	madvise(empty, hps, MADV_NOHUGEPAGE);
	fill(src + ps, 3, 14);	/* page 0 is a hole, page table exists */
	REG_OR_FAIL(fd, dst, 4 * ps);
	r = do_move(fd, dst, src, 4 * ps, 0);
	EXPECT_ERR(r, ENOENT);
	r = do_move(fd, dst, src, ps, 0);
	EXPECT_ERR(r, ENOENT);
	for (int i = 0; i < 4; i++)
		MISSING(dst + i * ps);
	for (int i = 1; i < 4; i++)
		CHECK_PAT(src + i * ps, 14, i - 1);
	r = do_move(fd, dst, empty, 4 * ps, 0);
	EXPECT_ERR(r, ENOENT);
	r = do_move(fd, dst, empty + hps - ps, ps, 0);
	EXPECT_ERR(r, ENOENT);
	return KSFT_PASS;
}

/*
 * [uapi]/[man] UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES: "holes will be accounted as
 * successfully remapped in the retval" ([mp]): a sparse source moves with
 * ret 0 and move == len; holes stay holes at dst, data pages move.  Also a
 * fully unpopulated source with no page tables at all.
 */
static int t_allow_src_holes(void)
{
	const unsigned long n = 8;
	int fd = uffd_move_fd();
	char *src = map_anon(n * ps), *dst = map_anon(n * ps);
	char *empty = map_anon_a(2 * hps, hps), *dst2 = map_anon(n * ps);
	struct mres r;

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(src);
	MAP_OR_FAIL(dst);
	MAP_OR_FAIL(empty);
	MAP_OR_FAIL(dst2);
	madvise(empty, 2 * hps, MADV_NOHUGEPAGE);
	fill(src, n, 15);
	madvise(src, ps, MADV_DONTNEED);	/* hole at the start */
	madvise(src + 4 * ps, 2 * ps, MADV_DONTNEED);	/* and in the middle */
	madvise(src + 7 * ps, ps, MADV_DONTNEED);	/* and at the end */
	REG_OR_FAIL(fd, dst, n * ps);
	REG_OR_FAIL(fd, dst2, n * ps);
	r = do_move(fd, dst, src, n * ps, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES);
	EXPECT_OK(r, n * ps);
	for (unsigned long i = 0; i < n; i++) {
		int hole = i == 0 || i == 4 || i == 5 || i == 7;

		MISSING(src + i * ps);
		if (hole) {
			MISSING(dst + i * ps);
		} else {
			CHECK_PAT(dst + i * ps, 15, i);
		}
	}
	/* the holes did not turn into populated pages: a second move into them works */
	fill_page(src, 16, 0);
	r = do_move(fd, dst, src, ps, 0);
	EXPECT_OK(r, ps);
	CHECK_PAT(dst, 16, 0);

	/* completely empty source, crossing a page-table boundary */
	r = do_move(fd, dst2, empty + hps - 4 * ps, n * ps, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES);
	EXPECT_OK(r, n * ps);
	for (unsigned long i = 0; i < n; i++)
		MISSING(dst2 + i * ps);
	/* same without the flag: ENOENT */
	r = do_move(fd, dst2, empty + hps - 4 * ps, n * ps, 0);
	EXPECT_ERR(r, ENOENT);
	return KSFT_PASS;
}

/*
 * [mp] "if the destination virtual memory range is not a whole unmapped
 * hole, move_pages() will fail ... with -EEXIST" ([man] EEXIST): dst first
 * page populated -> -1/EEXIST, move == -EEXIST, nothing moved.  Also when
 * the dst page was populated by UFFDIO_COPY / UFFDIO_ZEROPAGE (zero page pte).
 */
static int t_eexist_dst_populated(void)
{
	int fd = uffd_move_fd();
	char *src = map_anon(4 * ps), *dst = map_anon(4 * ps), *buf = map_anon(ps);
	struct uffdio_copy c;
	struct uffdio_zeropage z;
	struct mres r;

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(src);
	MAP_OR_FAIL(dst);
	MAP_OR_FAIL(buf);
	fill(src, 4, 17);
	fill_page(dst, 18, 0);
	REG_OR_FAIL(fd, dst, 4 * ps);
	r = do_move(fd, dst, src, 4 * ps, 0);
	EXPECT_ERR(r, EEXIST);
	r = do_move(fd, dst, src, 4 * ps, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES);
	EXPECT_ERR(r, EEXIST);
	CHECK_PAT(dst, 18, 0);
	for (int i = 0; i < 4; i++)
		CHECK_PAT(src + i * ps, 17, i);
	for (int i = 1; i < 4; i++)
		MISSING(dst + i * ps);

	fill_page(buf, 19, 0);
	c = (struct uffdio_copy){ .dst = (uintptr_t)(dst + ps), .src = (uintptr_t)buf, .len = ps };
	ASSERT(ioctl(fd, UFFDIO_COPY, &c) == 0, "UFFDIO_COPY: %s", strerror(errno));
	r = do_move(fd, dst + ps, src + ps, ps, 0);
	EXPECT_ERR(r, EEXIST);
	z = (struct uffdio_zeropage){ .range = { .start = (uintptr_t)(dst + 2 * ps), .len = ps } };
	ASSERT(ioctl(fd, UFFDIO_ZEROPAGE, &z) == 0, "UFFDIO_ZEROPAGE: %s", strerror(errno));
	r = do_move(fd, dst + 2 * ps, src + 2 * ps, ps, 0);
	EXPECT_ERR(r, EEXIST);
	ASSERT(page_is_zero(dst + 2 * ps), "zeropage clobbered");
	CHECK_PAT(dst + ps, 19, 0);
	r = do_move(fd, dst + 3 * ps, src + 3 * ps, ps, 0);
	EXPECT_OK(r, ps);
	CHECK_PAT(dst + 3 * ps, 17, 3);
	return KSFT_PASS;
}

/* [man] EINVAL: dst, src or len not a multiple of the page size, len == 0. */
static int t_einval_alignment(void)
{
	int fd = uffd_move_fd();
	char *src = map_anon(4 * ps), *dst = map_anon(4 * ps);
	struct mres r;

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(src);
	MAP_OR_FAIL(dst);
	fill(src, 4, 20);
	REG_OR_FAIL(fd, dst, 4 * ps);
	r = do_move(fd, dst + 1, src, ps, 0);
	EXPECT_ARG_ERR(r, EINVAL);
	r = do_move(fd, dst + ps / 2, src, ps, 0);
	EXPECT_ARG_ERR(r, EINVAL);
	r = do_move(fd, dst, src + 8, ps, 0);
	EXPECT_ARG_ERR(r, EINVAL);
	r = do_move(fd, dst, src, ps + 1, 0);
	EXPECT_ARG_ERR(r, EINVAL);
	r = do_move(fd, dst, src, ps - 1, 0);
	EXPECT_ARG_ERR(r, EINVAL);
	r = do_move(fd, dst, src, 0, 0);
	EXPECT_ARG_ERR(r, EINVAL);
	for (int i = 0; i < 4; i++) {
		CHECK_PAT(src + i * ps, 20, i);
		MISSING(dst + i * ps);
	}
	return KSFT_PASS;
}

/*
 * [man] EINVAL: the range wraps / lies outside the user address space
 * (src+len or dst+len overflows, or start beyond TASK_SIZE).
 */
static int t_einval_range_overflow(void)
{
	int fd = uffd_move_fd();
	char *src = map_anon(4 * ps), *dst = map_anon(4 * ps);
	unsigned long huge_len = (unsigned long)-1 & ~(ps - 1);
	struct mres r;

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(src);
	MAP_OR_FAIL(dst);
	fill(src, 4, 21);
	REG_OR_FAIL(fd, dst, 4 * ps);
	r = do_move(fd, dst, src, huge_len, 0);	/* src + len wraps */
	EXPECT_ARG_ERR(r, EINVAL);
	r = do_move(fd, dst, src, (~(uintptr_t)src + 1) & ~(ps - 1), 0); /* src + len == 0 mod 2^64 */
	EXPECT_ARG_ERR(r, EINVAL);
	r = do_move(fd, (void *)(uintptr_t)(-(long)ps), src, ps, 0);	/* dst at the top of the address space */
	EXPECT_ARG_ERR(r, EINVAL);
	r = do_move(fd, dst, (void *)(uintptr_t)(-(long)ps), ps, 0);
	EXPECT_ARG_ERR(r, EINVAL);
	r = do_move(fd, dst, (void *)(1UL << 62), ps, 0);	/* beyond TASK_SIZE */
	EXPECT_ARG_ERR(r, EINVAL);
	for (int i = 0; i < 4; i++) {
		CHECK_PAT(src + i * ps, 21, i);
		MISSING(dst + i * ps);
	}
	return KSFT_PASS;
}

/* [uapi] only DONTWAKE and ALLOW_SRC_HOLES are valid mode bits -> EINVAL. */
static int t_einval_mode_bits(void)
{
	int fd = uffd_move_fd();
	char *src = map_anon(ps), *dst = map_anon(ps);
	struct mres r;

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(src);
	MAP_OR_FAIL(dst);
	fill(src, 1, 22);
	REG_OR_FAIL(fd, dst, ps);
	for (int b = 2; b < 64; b++) {
		r = do_move(fd, dst, src, ps, 1ULL << b);
		EXPECT_ARG_ERR(r, EINVAL);
	}
	r = do_move(fd, dst, src, ps, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES | UFFDIO_MOVE_MODE_DONTWAKE | 4);
	EXPECT_ARG_ERR(r, EINVAL);
	CHECK_PAT(src, 22, 0);
	MISSING(dst);
	r = do_move(fd, dst, src, ps, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES | UFFDIO_MOVE_MODE_DONTWAKE);
	EXPECT_OK(r, ps);
	CHECK_PAT(dst, 22, 0);
	return KSFT_PASS;
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
static int t_overlap(void)
{
	int fd = uffd_move_fd();
	char *a = map_anon(8 * ps);
	struct mres r;

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(a);
	fill(a + 2 * ps, 4, 23);	/* pages 2..5 */
	REG_OR_FAIL(fd, a, 8 * ps);
	r = do_move(fd, a + 3 * ps, a + 2 * ps, 4 * ps, 0);	/* up by one page */
	if (r.ret == -1 && r.err == EINVAL) {
		diag("kernel rejects overlapping ranges with EINVAL");
		for (int i = 0; i < 4; i++)
			CHECK_PAT(a + (2 + i) * ps, 23, i);
		return KSFT_PASS;
	}
	EXPECT_ERR(r, EEXIST);
	for (int i = 0; i < 4; i++)
		CHECK_PAT(a + (2 + i) * ps, 23, i);
	MISSING(a + 6 * ps);
	r = do_move(fd, a + ps, a + 2 * ps, 4 * ps, 0);	/* down by one page */
	EXPECT_OK(r, 4 * ps);
	for (int i = 0; i < 4; i++)
		CHECK_PAT(a + (1 + i) * ps, 23, i);
	MISSING(a + 5 * ps);
	/* fully identical src and dst: dst is populated -> EEXIST */
	r = do_move(fd, a + ps, a + ps, 2 * ps, 0);
	ASSERT(r.ret == -1 && (r.err == EEXIST || r.err == EINVAL), "src==dst: ret=%d errno=%d", r.ret, r.err);
	for (int i = 0; i < 4; i++)
		CHECK_PAT(a + (1 + i) * ps, 23, i);
	return KSFT_PASS;
}

/*
 * [mp] "It only works on non shared anonymous pages" / [man] EINVAL: a
 * MAP_SHARED|MAP_ANONYMOUS (shmem) source is rejected with EINVAL and
 * move == -EINVAL (VM_SHARED check), contents untouched.
 */
static int t_einval_src_shared_anon(void)
{
	int fd = uffd_move_fd();
	char *src = map_guarded_flags(4 * ps, ps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1);
	char *dst = map_anon(4 * ps);
	struct mres r;

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(src);
	MAP_OR_FAIL(dst);
	fill(src, 4, 24);
	REG_OR_FAIL(fd, dst, 4 * ps);
	r = do_move(fd, dst, src, 4 * ps, 0);
	EXPECT_ERR(r, EINVAL);
	r = do_move(fd, dst, src, ps, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES);
	EXPECT_ERR(r, EINVAL);
	for (int i = 0; i < 4; i++) {
		CHECK_PAT(src + i * ps, 24, i);
		MISSING(dst + i * ps);
	}
	return KSFT_PASS;
}

/*
 * Same for a shmem memfd source, mapped MAP_SHARED (VM_SHARED) and
 * MAP_PRIVATE (private but not an anonymous vma; written pages are anon COW
 * copies yet the vma is file-backed) -> EINVAL.
 */
static int t_einval_src_memfd(void)
{
	int fd = uffd_move_fd();
	int mfd = syscall(__NR_memfd_create, "uffd-move", MFD_CLOEXEC);
	char *dst = map_anon(4 * ps), *sh, *pr;
	struct mres r;

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(dst);
	if (mfd < 0)
		SKIP("memfd_create: %s", strerror(errno));
	ASSERT(ftruncate(mfd, 4 * ps) == 0, "ftruncate: %s", strerror(errno));
	sh = map_guarded_flags(4 * ps, ps, PROT_READ | PROT_WRITE, MAP_SHARED, mfd);
	pr = map_guarded_flags(4 * ps, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE, mfd);
	MAP_OR_FAIL(sh);
	MAP_OR_FAIL(pr);
	fill(sh, 4, 25);
	fill(pr, 4, 26);	/* private COW copies */
	REG_OR_FAIL(fd, dst, 4 * ps);
	r = do_move(fd, dst, sh, 4 * ps, 0);
	EXPECT_ERR(r, EINVAL);
	r = do_move(fd, dst, pr, 4 * ps, 0);
	EXPECT_ERR(r, EINVAL);
	for (int i = 0; i < 4; i++) {
		CHECK_PAT(sh + i * ps, 25, i);
		CHECK_PAT(pr + i * ps, 26, i);
		MISSING(dst + i * ps);
	}
	return KSFT_PASS;
}

/* A regular-file mapping (private and shared) as source -> EINVAL. */
static int t_einval_src_file(void)
{
	char path[] = "/tmp/uffd-move-XXXXXX";
	int fd = uffd_move_fd();
	int ffd = mkstemp(path);
	char *dst = map_anon(4 * ps), *pr, *sh;
	struct mres r;

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(dst);
	if (ffd < 0) {
		strcpy(path, "./uffd-move-XXXXXX");
		ffd = mkstemp(path);
	}
	if (ffd < 0)
		SKIP("cannot create a temporary file: %s", strerror(errno));
	unlink(path);
	ASSERT(ftruncate(ffd, 4 * ps) == 0, "ftruncate: %s", strerror(errno));
	pr = map_guarded_flags(4 * ps, ps, PROT_READ | PROT_WRITE, MAP_PRIVATE, ffd);
	sh = map_guarded_flags(4 * ps, ps, PROT_READ | PROT_WRITE, MAP_SHARED, ffd);
	MAP_OR_FAIL(pr);
	MAP_OR_FAIL(sh);
	fill(pr, 4, 27);
	REG_OR_FAIL(fd, dst, 4 * ps);
	r = do_move(fd, dst, pr, 4 * ps, 0);
	EXPECT_ERR(r, EINVAL);
	r = do_move(fd, dst, sh, ps, 0);
	EXPECT_ERR(r, EINVAL);
	for (int i = 0; i < 4; i++) {
		CHECK_PAT(pr + i * ps, 27, i);
		MISSING(dst + i * ps);
	}
	return KSFT_PASS;
}

/*
 * The destination must be a private anonymous vma too ([mp] "Only allow
 * moving across anonymous vmas", VM_SHARED dst): a shmem (MAP_SHARED anon)
 * destination registered in MISSING mode -> EINVAL, src untouched.
 */
static int t_einval_dst_shared(void)
{
	int fd = uffd_move_fd();
	char *src = map_anon(2 * ps);
	char *dst = map_guarded_flags(2 * ps, ps, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1);
	struct mres r;
	int e;

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(src);
	MAP_OR_FAIL(dst);
	fill(src, 2, 28);
	e = uffd_reg(fd, dst, 2 * ps, UFFDIO_REGISTER_MODE_MISSING, NULL);
	if (e)
		SKIP("cannot register shmem: %s", strerror(-e));
	r = do_move(fd, dst, src, 2 * ps, 0);
	EXPECT_ERR(r, EINVAL);
	CHECK_PAT(src, 28, 0);
	CHECK_PAT(src + ps, 28, 1);
	return KSFT_PASS;
}

/*
 * The destination vma must be registered with *this* userfaultfd ([mp]
 * "Ensure dst_vma is registered in uffd we are operating on"): a dst in an
 * unregistered anonymous vma and a dst registered with a different uffd both
 * give EINVAL with move == -EINVAL (not ENOENT: the vma exists).  Moving
 * *from* a registered range into a registered one is fine (src need not be
 * registered, or may be).
 */
static int t_einval_dst_not_registered(void)
{
	int fd = uffd_move_fd(), fd2 = uffd_move_fd();
	char *src = map_anon(2 * ps), *plain = map_anon(2 * ps), *other = map_anon(2 * ps);
	struct mres r;

	UFFD_OR_FAIL(fd);
	UFFD_OR_FAIL(fd2);
	MAP_OR_FAIL(src);
	MAP_OR_FAIL(plain);
	MAP_OR_FAIL(other);
	fill(src, 2, 29);
	REG_OR_FAIL(fd2, other, 2 * ps);
	r = do_move(fd, plain, src, 2 * ps, 0);
	EXPECT_ERR(r, EINVAL);
	r = do_move(fd, other, src, 2 * ps, 0);
	EXPECT_ERR(r, EINVAL);
	MISSING(plain);
	MISSING(other);
	CHECK_PAT(src, 29, 0);
	/* through the right uffd it works */
	r = do_move(fd2, other, src, 2 * ps, 0);
	EXPECT_OK(r, 2 * ps);
	CHECK_PAT(other + ps, 29, 1);
	return KSFT_PASS;
}

/*
 * [man] ENOENT ... / vma lookup: an unmapped destination or an unmapped
 * source address -> ENOENT with move == -ENOENT.
 */
static int t_enoent_unmapped(void)
{
	int fd = uffd_move_fd();
	char *src = map_anon(2 * ps), *dst = map_anon(2 * ps), *hole = map_anon(4 * ps);
	struct mres r;

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(src);
	MAP_OR_FAIL(dst);
	MAP_OR_FAIL(hole);
	ASSERT(munmap(hole, 4 * ps) == 0, "munmap");
	fill(src, 2, 30);
	REG_OR_FAIL(fd, dst, 2 * ps);
	r = do_move(fd, hole, src, ps, 0);
	EXPECT_ERR(r, ENOENT);
	r = do_move(fd, dst, hole, ps, 0);
	EXPECT_ERR(r, ENOENT);
	r = do_move(fd, dst, hole, ps, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES);
	EXPECT_ERR(r, ENOENT);
	MISSING(dst);
	CHECK_PAT(src, 30, 0);
	return KSFT_PASS;
}

/*
 * [mp] "the src and dst remap ranges are both valid and fully within a
 * single existing vma": a range that runs past the end of the src vma or of
 * the dst vma, by several pages or by exactly one -> EINVAL, move ==
 * -EINVAL, nothing moved.
 */
static int t_einval_range_crosses_vma(void)
{
	int fd = uffd_move_fd();
	char *src = map_anon(4 * ps), *dst = map_anon(8 * ps), *dst2 = map_anon(2 * ps);
	struct mres r;

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(src);
	MAP_OR_FAIL(dst);
	MAP_OR_FAIL(dst2);
	fill(src, 4, 31);
	REG_OR_FAIL(fd, dst, 8 * ps);
	REG_OR_FAIL(fd, dst2, 2 * ps);
	r = do_move(fd, dst, src + 2 * ps, 4 * ps, 0);	/* src runs 2 pages past its vma */
	EXPECT_ERR(r, EINVAL);
	r = do_move(fd, dst, src + 2 * ps, 4 * ps, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES);
	EXPECT_ERR(r, EINVAL);
	r = do_move(fd, dst, src + 3 * ps, 2 * ps, 0);	/* src runs 1 page past its vma */
	EXPECT_ERR(r, EINVAL);
	r = do_move(fd, dst, src + 3 * ps, 2 * ps, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES);
	EXPECT_ERR(r, EINVAL);
	r = do_move(fd, dst2 + ps, src, 2 * ps, 0);	/* dst runs 1 page past its vma */
	EXPECT_ERR(r, EINVAL);
	for (int i = 0; i < 4; i++)
		CHECK_PAT(src + i * ps, 31, i);
	MISSING(dst);
	MISSING(dst2 + ps);
	r = do_move(fd, dst2, src + 2 * ps, 2 * ps, 0);	/* exactly to the end: fine */
	EXPECT_OK(r, 2 * ps);
	return KSFT_PASS;
}

/*
 * [man]/[mp] "It only works if the vma protection bits are identical from
 * the source and destination vma"; only writable vmas are supported ->
 * EINVAL for a PROT_READ source with a RW dst, for both read-only, and for a
 * RWX source with a RW destination.
 */
static int t_einval_prot_mismatch(void)
{
	int fd = uffd_move_fd();
	char *src = map_anon(2 * ps), *dst = map_anon(2 * ps);
	char *ro_dst = map_guarded_flags(2 * ps, ps, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	char *x;
	struct mres r;

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(src);
	MAP_OR_FAIL(dst);
	MAP_OR_FAIL(ro_dst);
	fill(src, 2, 32);
	REG_OR_FAIL(fd, dst, 2 * ps);
	REG_OR_FAIL(fd, ro_dst, 2 * ps);
	ASSERT(mprotect(src, 2 * ps, PROT_READ) == 0, "mprotect");
	r = do_move(fd, dst, src, ps, 0);
	EXPECT_ERR(r, EINVAL);
	r = do_move(fd, ro_dst, src, ps, 0);	/* same prot, but not writable */
	EXPECT_ERR(r, EINVAL);
	ASSERT(mprotect(src, 2 * ps, PROT_READ | PROT_WRITE) == 0, "mprotect");
	r = do_move(fd, ro_dst, src, ps, 0);	/* RW src, RO dst */
	EXPECT_ERR(r, EINVAL);
	CHECK_PAT(src, 32, 0);
	MISSING(dst);
	MISSING(ro_dst);
	x = map_guarded_flags(ps, ps, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1);
	if (x) {
		fill(x, 1, 33);
		r = do_move(fd, dst, x, ps, 0);
		EXPECT_ERR(r, EINVAL);
		CHECK_PAT(x, 33, 0);
	}
	r = do_move(fd, dst, src, 2 * ps, 0);
	EXPECT_OK(r, 2 * ps);
	return KSFT_PASS;
}

/*
 * [mp] "Only allow moving if both are mlocked or both aren't": VM_LOCKED
 * mismatch in either direction -> EINVAL; both locked (MLOCK_ONFAULT, so the
 * registered dst is not prefaulted) -> success.
 */
static int t_einval_mlock_mismatch(void)
{
	int fd = uffd_move_fd();
	char *src = map_anon(2 * ps), *dst = map_anon(2 * ps), *ldst = map_anon(2 * ps);
	struct mres r;

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(src);
	MAP_OR_FAIL(dst);
	MAP_OR_FAIL(ldst);
	fill(src, 2, 34);
	REG_OR_FAIL(fd, dst, 2 * ps);
	REG_OR_FAIL(fd, ldst, 2 * ps);
	if (syscall(__NR_mlock2, src, 2 * ps, MLOCK_ONFAULT))
		SKIP("mlock2(MLOCK_ONFAULT): %s", strerror(errno));
	r = do_move(fd, dst, src, ps, 0);	/* locked src -> unlocked dst */
	EXPECT_ERR(r, EINVAL);
	if (syscall(__NR_mlock2, ldst, 2 * ps, MLOCK_ONFAULT))
		SKIP("mlock2(MLOCK_ONFAULT): %s", strerror(errno));
	r = do_move(fd, ldst, src, ps, 0);	/* both locked */
	EXPECT_OK(r, ps);
	CHECK_PAT(ldst, 34, 0);
	munlock(src, 2 * ps);
	r = do_move(fd, ldst + ps, src + ps, ps, 0);	/* unlocked src -> locked dst */
	EXPECT_ERR(r, EINVAL);
	CHECK_PAT(src + ps, 34, 1);
	MISSING(dst);
	return KSFT_PASS;
}

/*
 * [mp] vma_move_compatible(): hugetlb vmas cannot be moved from or into ->
 * EINVAL (also before any page is touched).
 */
static int t_einval_hugetlb(void)
{
	int fd = uffd_move_fd();
	char *src = map_anon(2 * ps), *dst = map_anon(2 * ps);
	char *h = mmap(NULL, 2 * hps, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_NORESERVE, -1, 0);
	struct mres r;
	char *ha;

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(src);
	MAP_OR_FAIL(dst);
	if (h == MAP_FAILED)
		SKIP("MAP_HUGETLB unavailable: %s", strerror(errno));
	ha = h;	/* hugetlb mappings are huge-page aligned */
	fill(src, 2, 35);
	REG_OR_FAIL(fd, dst, 2 * ps);
	r = do_move(fd, dst, ha, ps, 0);
	EXPECT_ARG_ERR(r, EINVAL);
	if (uffd_reg(fd, ha, hps, UFFDIO_REGISTER_MODE_MISSING, NULL) == 0) {
		r = do_move(fd, ha, src, ps, 0);
		EXPECT_ARG_ERR(r, EINVAL);
	}
	CHECK_PAT(src, 35, 0);
	MISSING(dst);
	return KSFT_PASS;
}

/*
 * fs/userfaultfd.c "Do not allow cross-mm moves": a child that inherited the
 * parent's uffd cannot move pages of the parent's mm (EINVAL), and the
 * parent's memory is unchanged.
 */
static int t_einval_cross_mm(void)
{
	int fd = uffd_move_fd();
	char *src = map_anon(2 * ps), *dst = map_anon(2 * ps);
	int st;
	pid_t pid;

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(src);
	MAP_OR_FAIL(dst);
	fill(src, 2, 36);
	REG_OR_FAIL(fd, dst, 2 * ps);
	pid = fork();
	ASSERT(pid >= 0, "fork");
	if (pid == 0) {
		struct mres r = do_move(fd, dst, src, 2 * ps, 0);

		_exit(r.ret == -1 && r.err == EINVAL ? 0 : 10 + (r.err & 0x7f));
	}
	ASSERT(waitpid(pid, &st, 0) == pid, "waitpid");
	ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child's cross-mm move: status %#x (10+errno)", st);
	CHECK_PAT(src, 36, 0);
	CHECK_PAT(src + ps, 36, 1);
	MISSING(dst);
	return KSFT_PASS;
}

/* struct uffdio_move at an invalid user address -> EFAULT. */
static int t_efault_bad_pointer(void)
{
	int fd = uffd_move_fd();

	UFFD_OR_FAIL(fd);
	ASSERT(ioctl(fd, UFFDIO_MOVE, (void *)16) == -1 && errno == EFAULT, "errno=%d (%s)", errno,
	       strerror(errno));
	return KSFT_PASS;
}

/*
 * [uapi] UFFDIO_MOVE_MODE_DONTWAKE / [man]: "Do not wake up the thread that
 * waits for page-fault resolution": with a thread blocked on a userfault at
 * dst, a DONTWAKE move installs the page (ret 0, move == len, page present)
 * but the thread stays blocked until UFFDIO_WAKE; it then reads the moved
 * content.
 */
static int t_dontwake(void)
{
	int fd = uffd_move_fd();
	char *src = map_anon(2 * ps), *dst = map_anon(2 * ps);
	struct toucher t;
	struct mres r;
	uint64_t fa;

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(src);
	MAP_OR_FAIL(dst);
	fill(src, 2, 37);
	REG_OR_FAIL(fd, dst, 2 * ps);
	touch_async(&t, dst + ps);
	fa = read_fault(fd, 5000);
	ASSERT(fa == (uintptr_t)(dst + ps), "fault at %#llx, expected %p", (unsigned long long)fa, dst + ps);
	r = do_move(fd, dst, src, 2 * ps, UFFDIO_MOVE_MODE_DONTWAKE);
	EXPECT_OK(r, 2 * ps);
	PRESENT(dst + ps);
	ASSERT(!wait_done(&t, 300), "DONTWAKE move woke the faulting thread");
	ASSERT(uffd_wake(fd, dst, ps) == 0, "UFFDIO_WAKE: %s", strerror(errno));
	ASSERT(!wait_done(&t, 200), "UFFDIO_WAKE of another page woke the thread");
	ASSERT(uffd_wake(fd, dst + ps, ps) == 0, "UFFDIO_WAKE: %s", strerror(errno));
	ASSERT(wait_done(&t, 5000), "UFFDIO_WAKE did not wake the faulting thread");
	pthread_join(t.th, NULL);
	ASSERT(t.val == pat_word(37, 1, 0), "thread read %#llx", (unsigned long long)t.val);
	return KSFT_PASS;
}

/*
 * Without DONTWAKE the move wakes the threads waiting on the moved range
 * ([man]: the waiting thread is woken), and only that range: a thread
 * faulting on a page outside [dst, dst+len) stays blocked.
 */
static int t_wake_default(void)
{
	int fd = uffd_move_fd();
	char *src = map_anon(4 * ps), *dst = map_anon(4 * ps);
	struct toucher t0, t2;
	struct mres r;
	uint64_t a, b;

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(src);
	MAP_OR_FAIL(dst);
	fill(src, 4, 38);
	REG_OR_FAIL(fd, dst, 4 * ps);
	touch_async(&t0, dst);
	touch_async(&t2, dst + 2 * ps);
	a = read_fault(fd, 5000);
	b = read_fault(fd, 5000);
	ASSERT(a && b, "expected two faults, got %#llx %#llx", (unsigned long long)a, (unsigned long long)b);
	r = do_move(fd, dst, src, ps, 0);
	EXPECT_OK(r, ps);
	ASSERT(wait_done(&t0, 5000), "move without DONTWAKE did not wake the faulting thread");
	ASSERT(t0.val == pat_word(38, 0, 0), "thread read %#llx", (unsigned long long)t0.val);
	ASSERT(!wait_done(&t2, 300), "thread faulting outside the moved range was woken");
	r = do_move(fd, dst + 2 * ps, src + 2 * ps, 2 * ps, 0);
	EXPECT_OK(r, 2 * ps);
	ASSERT(wait_done(&t2, 5000), "second move did not wake the thread");
	ASSERT(t2.val == pat_word(38, 2, 0), "thread read %#llx", (unsigned long long)t2.val);
	pthread_join(t0.th, NULL);
	pthread_join(t2.th, NULL);
	return KSFT_PASS;
}

/*
 * The wake after a short move covers exactly the bytes moved ([mp]: the
 * retval is the number of bytes remapped): touchers on dst[0] and dst[1],
 * src[1] a hole -> EAGAIN/move == PAGE, only dst[0]'s thread is woken; a
 * failed move (ENOENT, nothing moved) wakes nobody.
 */
static int t_wake_partial_range(void)
{
	int fd = uffd_move_fd();
	char *src = map_anon(2 * ps), *dst = map_anon(2 * ps);
	struct toucher t0, t1;
	struct mres r;

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(src);
	MAP_OR_FAIL(dst);
	fill(src, 1, 39);
	REG_OR_FAIL(fd, dst, 2 * ps);
	touch_async(&t0, dst);
	touch_async(&t1, dst + ps);
	ASSERT(read_fault(fd, 5000) && read_fault(fd, 5000), "expected two faults");
	r = do_move(fd, dst + ps, src + ps, ps, 0);	/* hole: nothing moved */
	EXPECT_ERR(r, ENOENT);
	ASSERT(!wait_done(&t1, 200) && !wait_done(&t0, 1), "failed move woke a thread");
	r = do_move(fd, dst, src, 2 * ps, 0);
	EXPECT_PARTIAL(r, ps);
	ASSERT(wait_done(&t0, 5000), "thread on the moved page not woken");
	ASSERT(t0.val == pat_word(39, 0, 0), "thread read %#llx", (unsigned long long)t0.val);
	ASSERT(!wait_done(&t1, 300), "thread beyond the moved bytes was woken");
	fill_page(src + ps, 40, 0);
	r = do_move(fd, dst + ps, src + ps, ps, 0);
	EXPECT_OK(r, ps);
	ASSERT(wait_done(&t1, 5000), "thread not woken");
	ASSERT(t1.val == pat_word(40, 0, 0), "thread read %#llx", (unsigned long long)t1.val);
	pthread_join(t0.th, NULL);
	pthread_join(t1.th, NULL);
	return KSFT_PASS;
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
static int t_ebusy_fork_shared(void)
{
	int fd = uffd_move_fd();
	char *src = map_anon(4 * ps), *dst = map_anon(4 * ps), *nf = map_anon(2 * ps);
	int p2c[2], c2p[2], st;
	char c = 0;
	struct mres r;
	pid_t pid;

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(src);
	MAP_OR_FAIL(dst);
	MAP_OR_FAIL(nf);
	fill(src, 4, 41);
	fill(nf, 2, 42);
	ASSERT(madvise(nf, 2 * ps, MADV_DONTFORK) == 0, "MADV_DONTFORK");
	REG_OR_FAIL(fd, dst, 4 * ps);
	ASSERT(pipe(p2c) == 0 && pipe(c2p) == 0, "pipe");
	pid = fork();
	ASSERT(pid >= 0, "fork");
	if (pid == 0) {
		int ok = 1;

		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (write(c2p[1], "r", 1) != 1 || read(p2c[0], &c, 1) != 1)
			_exit(2);
		for (int i = 0; i < 4; i++)
			ok &= check_page(src + i * ps, 41, i) < 0;
		_exit(ok ? 0 : 1);
	}
	ASSERT(read(c2p[0], &c, 1) == 1, "child did not start");
	r = do_move(fd, dst, src, 4 * ps, 0);
	EXPECT_ERR(r, EBUSY);
	r = do_move(fd, dst + ps, src + ps, ps, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES);
	EXPECT_ERR(r, EBUSY);
	for (int i = 0; i < 4; i++) {
		CHECK_PAT(src + i * ps, 41, i);
		MISSING(dst + i * ps);
	}
	/* COW-break page 0 in the parent: now exclusive and movable */
	fill_page(src, 43, 0);
	r = do_move(fd, dst, src, ps, 0);
	EXPECT_OK(r, ps);
	CHECK_PAT(dst, 43, 0);
	/* page 1 is still shared: a 2-page move stops after page 0 ... */
	fill_page(src + 2 * ps, 44, 2);
	r = do_move(fd, dst + 2 * ps, src + 2 * ps, 2 * ps, 0);
	EXPECT_PARTIAL(r, ps);
	CHECK_PAT(dst + 2 * ps, 44, 2);
	CHECK_PAT(src + 3 * ps, 41, 3);
	/* MADV_DONTFORK source was not inherited: exclusive, movable */
	r = do_move(fd, dst + ps, nf, ps, 0);
	EXPECT_OK(r, ps);
	CHECK_PAT(dst + ps, 42, 0);
	ASSERT(write(p2c[1], "g", 1) == 1, "pipe");
	ASSERT(waitpid(pid, &st, 0) == pid, "waitpid");
	ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child saw modified memory: status %#x", st);
	return KSFT_PASS;
}

/*
 * [man] EBUSY "pinned": a page pinned with FOLL_LONGTERM (io_uring fixed
 * buffer registration) cannot be moved -> EBUSY, move == -EBUSY; after
 * unregistering the buffer the move succeeds.
 */
static int t_ebusy_pinned(void)
{
	int fd = uffd_move_fd();
	char *src = map_anon(2 * ps), *dst = map_anon(2 * ps);
	uint64_t params[16] = { 0 };	/* struct io_uring_params is 120 bytes */
	struct iovec iov;
	struct mres r;
	int ring;

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(src);
	MAP_OR_FAIL(dst);
	fill(src, 2, 45);
	REG_OR_FAIL(fd, dst, 2 * ps);
	ring = syscall(__NR_io_uring_setup, 4, params);
	if (ring < 0)
		SKIP("io_uring_setup: %s (needed to long-term pin a page)", strerror(errno));
	iov.iov_base = src;
	iov.iov_len = ps;
	if (syscall(__NR_io_uring_register, ring, 0 /* IORING_REGISTER_BUFFERS */, &iov, 1))
		SKIP("IORING_REGISTER_BUFFERS: %s", strerror(errno));
	r = do_move(fd, dst, src, ps, 0);
	EXPECT_ERR(r, EBUSY);
	r = do_move(fd, dst, src, 2 * ps, 0);
	EXPECT_ERR(r, EBUSY);
	CHECK_PAT(src, 45, 0);
	MISSING(dst);
	/* the unpinned neighbour still moves */
	r = do_move(fd, dst + ps, src + ps, ps, 0);
	EXPECT_OK(r, ps);
	ASSERT(syscall(__NR_io_uring_register, ring, 1 /* IORING_UNREGISTER_BUFFERS */, NULL, 0) == 0,
	       "IORING_UNREGISTER_BUFFERS: %s", strerror(errno));
	close(ring);
	r = do_move(fd, dst, src, ps, 0);
	EXPECT_OK(r, ps);
	CHECK_PAT(dst, 45, 0);
	return KSFT_PASS;
}

/*
 * [mp] ALLOW_SRC_HOLES comment: moving "hugepage naturally aligned virtual
 * regions" must not split the huge pmd.  A 2 MiB-aligned THP moved to a
 * 2 MiB-aligned, never-touched dst moves as a whole PMD: move == 2 MiB, the
 * dst vma maps it as AnonHugePages, the src vma has nothing left, data intact.
 */
static int t_thp_move_pmd(void)
{
	int fd = uffd_move_fd();
	char *src, *dst = map_anon_a(hps, hps);
	uint64_t pfn0;
	struct mres r;

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(dst);
	madvise(dst, hps, MADV_HUGEPAGE);
	TRY(make_thp(&src, hps, 46));
	pfn0 = pfn_of(src);
	REG_OR_FAIL(fd, dst, hps);
	r = do_move(fd, dst, src, hps, 0);
	EXPECT_OK(r, hps);
	ASSERT(smaps_kb(dst, "AnonHugePages") == (long)(hps >> 10), "dst AnonHugePages=%ld kB: PMD was split",
	       smaps_kb(dst, "AnonHugePages"));
	ASSERT(smaps_kb(src, "Rss") == 0, "src vma Rss=%ld kB after move", smaps_kb(src, "Rss"));
	if (pfn0)
		ASSERT(pfn_of(dst) == pfn0, "THP not moved in place");
	for (unsigned long i = 0; i < hps / ps; i++) {
		CHECK_PAT(dst + i * ps, 46, i);
		MISSING(src + i * ps);
	}
	return KSFT_PASS;
}

/*
 * A move that covers only part of a THP splits the PMD and moves the 4K
 * pages ([mp]: the huge pmd is split when the move does not cover it
 * whole): 1 page out of the middle; then len = 2 MiB - 1 page from the THP
 * start (the last page stays).
 */
static int t_thp_move_pmd_split(void)
{
	int fd = uffd_move_fd();
	char *src, *src2, *dst = map_anon(hps);
	struct mres r;

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(dst);
	TRY(make_thp(&src, hps, 47));
	REG_OR_FAIL(fd, dst, hps);
	r = do_move(fd, dst + 7 * ps, src + 5 * ps, ps, 0);
	EXPECT_OK(r, ps);
	CHECK_PAT(dst + 7 * ps, 47, 5);
	MISSING(src + 5 * ps);
	ASSERT(smaps_kb(src, "AnonHugePages") == 0, "THP not split (AnonHugePages=%ld)",
	       smaps_kb(src, "AnonHugePages"));
	for (unsigned long i = 0; i < hps / ps; i++)
		if (i != 5)
			CHECK_PAT(src + i * ps, 47, i);

	TRY(make_thp(&src2, hps, 48));
	madvise(dst, hps, MADV_DONTNEED);
	r = do_move(fd, dst, src2, hps - ps, 0);
	EXPECT_OK(r, hps - ps);
	for (unsigned long i = 0; i < hps / ps - 1; i++) {
		CHECK_PAT(dst + i * ps, 48, i);
		MISSING(src2 + i * ps);
	}
	CHECK_PAT(src2 + hps - ps, 48, hps / ps - 1);
	MISSING(dst + hps - ps);
	return KSFT_PASS;
}

/*
 * Whole THP to a destination that is not PMD aligned: must fall back to
 * splitting and moving 512 small pages; result identical to a plain move.
 */
static int t_thp_move_unaligned_dst(void)
{
	int fd = uffd_move_fd();
	char *src, *dst = map_anon_a(2 * hps, hps);
	struct mres r;

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(dst);
	TRY(make_thp(&src, hps, 49));
	REG_OR_FAIL(fd, dst, 2 * hps);
	r = do_move(fd, dst + ps, src, hps, 0);
	EXPECT_OK(r, hps);
	for (unsigned long i = 0; i < hps / ps; i++) {
		CHECK_PAT(dst + (i + 1) * ps, 49, i);
		MISSING(src + i * ps);
	}
	MISSING(dst);
	return KSFT_PASS;
}

/*
 * Destination PMD already a THP -> EEXIST (dst not a hole), nothing moved.
 * Destination PMD has a page table with its last page populated: the src
 * THP is split and moved page by page up to the populated page: EAGAIN with
 * move == 2 MiB - 1 page.
 */
static int t_thp_dst_populated(void)
{
	int fd = uffd_move_fd();
	char *src, *dthp, *dst = map_anon_a(hps, hps);
	struct mres r;

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(dst);
	madvise(dst, hps, MADV_HUGEPAGE);
	TRY(make_thp(&dthp, hps, 50));
	TRY(make_thp(&src, hps, 51));
	REG_OR_FAIL(fd, dthp, hps);
	r = do_move(fd, dthp, src, hps, 0);
	EXPECT_ERR(r, EEXIST);
	r = do_move(fd, dthp + 3 * ps, src, ps, 0);
	EXPECT_ERR(r, EEXIST);
	CHECK_PAT(dthp + 3 * ps, 50, 3);
	ASSERT(smaps_kb(src, "AnonHugePages") == (long)(hps >> 10), "src THP disturbed");
	for (unsigned long i = 0; i < hps / ps; i += 97)
		CHECK_PAT(src + i * ps, 51, i);

	madvise(dst, hps, MADV_NOHUGEPAGE);	/* so the next write maps a 4K page */
	dst[hps - ps] = 1;	/* page table exists at dst, last page populated */
	ASSERT(smaps_kb(dst, "AnonHugePages") == 0, "dst got a THP");
	REG_OR_FAIL(fd, dst, hps);
	r = do_move(fd, dst, src, hps, 0);
	EXPECT_PARTIAL(r, hps - ps);
	for (unsigned long i = 0; i < hps / ps - 1; i++)
		CHECK_PAT(dst + i * ps, 51, i);
	CHECK_PAT(src + hps - ps, 51, hps / ps - 1);
	ASSERT(dst[hps - ps] == 1, "populated dst page clobbered");
	return KSFT_PASS;
}

/*
 * ALLOW_SRC_HOLES over two PMDs, the first a THP and the second empty: the
 * THP moves whole and the empty PMD counts as moved (move == 4 MiB).  Without
 * the flag the THP moves and the hole stops the move: EAGAIN, move == 2 MiB.
 */
static int t_thp_allow_src_holes(void)
{
	int fd = uffd_move_fd();
	char *src, *dst = map_anon_a(2 * hps, hps), *dst2 = map_anon_a(2 * hps, hps);
	struct mres r;

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(dst);
	MAP_OR_FAIL(dst2);
	madvise(dst, 2 * hps, MADV_HUGEPAGE);
	madvise(dst2, 2 * hps, MADV_HUGEPAGE);
	TRY(make_thp(&src, 2 * hps, 52));	/* only the first PMD is populated */
	REG_OR_FAIL(fd, dst, 2 * hps);
	REG_OR_FAIL(fd, dst2, 2 * hps);
	r = do_move(fd, dst, src, 2 * hps, UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES);
	EXPECT_OK(r, 2 * hps);
	ASSERT(smaps_kb(dst, "AnonHugePages") == (long)(hps >> 10), "dst AnonHugePages=%ld kB",
	       smaps_kb(dst, "AnonHugePages"));
	for (unsigned long i = 0; i < hps / ps; i += 31)
		CHECK_PAT(dst + i * ps, 52, i);
	MISSING(dst + hps);
	MISSING(dst + 2 * hps - ps);

	r = do_move(fd, dst2, dst, 2 * hps, 0);
	EXPECT_PARTIAL(r, hps);
	for (unsigned long i = 0; i < hps / ps; i += 31)
		CHECK_PAT(dst2 + i * ps, 52, i);
	MISSING(dst2 + hps);
	return KSFT_PASS;
}

/*
 * [man] EBUSY for a THP shared with a forked child: both the whole-PMD path
 * and the split path refuse with EBUSY, nothing moved, THP intact.
 */
static int t_thp_ebusy_fork(void)
{
	int fd = uffd_move_fd();
	char *src, *dst = map_anon_a(hps, hps);
	int p2c[2], st;
	char c;
	struct mres r;
	pid_t pid;

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(dst);
	madvise(dst, hps, MADV_HUGEPAGE);
	TRY(make_thp(&src, hps, 53));
	REG_OR_FAIL(fd, dst, hps);
	ASSERT(pipe(p2c) == 0, "pipe");
	pid = fork();
	ASSERT(pid >= 0, "fork");
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		_exit(read(p2c[0], &c, 1) == 1 ? 0 : 1);
	}
	r = do_move(fd, dst, src, hps, 0);
	EXPECT_ERR(r, EBUSY);
	r = do_move(fd, dst, src + ps, ps, 0);
	EXPECT_ERR(r, EBUSY);
	for (unsigned long i = 0; i < hps / ps; i += 17)
		CHECK_PAT(src + i * ps, 53, i);
	MISSING(dst);
	MISSING(dst + ps);
	ASSERT(write(p2c[1], "x", 1) == 1, "pipe");
	waitpid(pid, &st, 0);
	return KSFT_PASS;
}

/*
 * The shared zero page ([mp]/kernel 6.8 "userfaultfd: handle zeropage moves
 * by UFFDIO_MOVE"): a read-faulted, never-written source maps the zero page;
 * moving it succeeds (move == len), dst reads zeros and maps the zero page,
 * src becomes a hole; writing dst afterwards gives a private page.
 */
static int t_zeropage(void)
{
	int fd = uffd_move_fd();
	char *src = map_anon(4 * ps), *dst = map_anon(4 * ps);
	volatile char sink = 0;
	uint64_t zpfn;
	struct mres r;

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(src);
	MAP_OR_FAIL(dst);
	for (int i = 0; i < 4; i++)
		sink += src[i * ps];	/* read faults: zero page */
	(void)sink;
	zpfn = pfn_of(src);
	if (zpfn)
		ASSERT(pfn_of(src + ps) == zpfn, "read faults did not map the shared zero page");
	REG_OR_FAIL(fd, dst, 4 * ps);
	r = do_move(fd, dst, src, 4 * ps, 0);
	EXPECT_OK(r, 4 * ps);
	for (int i = 0; i < 4; i++) {
		PRESENT(dst + i * ps);
		MISSING(src + i * ps);
		ASSERT(page_is_zero(dst + i * ps), "dst page %d not zero", i);
		if (zpfn)
			ASSERT(pfn_of(dst + i * ps) == zpfn, "dst page %d is not the zero page", i);
	}
	r = do_move(fd, dst, src, ps, 0);	/* src is a hole now */
	EXPECT_ERR(r, EEXIST);	/* dst checked before src: populated with the zero page */
	dst[0] = 5;
	ASSERT(dst[0] == 5 && dst[ps] == 0, "write to moved zero page");
	if (zpfn)
		ASSERT(pfn_of(dst) != zpfn && pfn_of(dst + ps) == zpfn, "COW of the zero page");
	return KSFT_PASS;
}

/*
 * The huge zero page (read fault in a MADV_HUGEPAGE region with
 * transparent_hugepage/use_zero_page=1).  Kernels >= 6.10 move it as a whole
 * PMD (dst reads zeros, src becomes a hole); the first 6.8/6.9 releases
 * refused it with EBUSY (non-anon-exclusive page), which is accepted only on
 * those kernels.  A 1-page move out of it splits it and moves a zero pte.
 */
static int t_huge_zeropage(void)
{
	int fd = uffd_move_fd();
	char buf[64];
	char *src = map_anon_a(2 * hps, hps), *dst = map_anon_a(hps, hps), *dst2 = map_anon(4 * ps);
	volatile char sink;
	int64_t kf;
	uint64_t pfn;
	struct mres r;

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(src);
	MAP_OR_FAIL(dst);
	MAP_OR_FAIL(dst2);
	if (!thp_usable())
		SKIP("transparent hugepages are disabled or unsupported");
	if (read_file_str("/sys/kernel/mm/transparent_hugepage/use_zero_page", buf, sizeof(buf)) || buf[0] != '1')
		SKIP("transparent_hugepage/use_zero_page is not 1");
	madvise(src, 2 * hps, MADV_HUGEPAGE);
	madvise(dst, hps, MADV_HUGEPAGE);
	sink = src[0];
	sink = src[hps];
	(void)sink;
	madvise(src, 2 * hps, MADV_NOHUGEPAGE);	/* no khugepaged collapse behind our back */
	pfn = pfn_of(src);
	if (!pfn)
		SKIP("PFNs hidden in pagemap: cannot tell the huge zero page apart");
	kf = kpageflags(pfn);
	if (kf < 0 || !(kf & (1LL << KPF_ZERO_PAGE)) || !(kf & (1LL << KPF_THP)))
		SKIP("read fault did not map the huge zero page (kpageflags %#llx)", (long long)kf);
	REG_OR_FAIL(fd, dst, hps);
	REG_OR_FAIL(fd, dst2, 4 * ps);
	r = do_move(fd, dst, src, hps, 0);
	if (!kernel_at_least(6, 10) && r.ret == -1 && r.err == EBUSY) {
		diag("pre-6.10 kernel refuses the huge zero page with EBUSY");
		return KSFT_PASS;
	}
	EXPECT_OK(r, hps);
	for (unsigned long i = 0; i < hps / ps; i += 64) {
		ASSERT(page_is_zero(dst + i * ps), "dst page %lu not zero", i);
		MISSING(src + i * ps);
	}
	PRESENT(dst + hps - ps);
	/* partial move out of a huge zero page: split, zero pte moved */
	r = do_move(fd, dst2, src + hps + 3 * ps, ps, 0);
	EXPECT_OK(r, ps);
	PRESENT(dst2);
	ASSERT(page_is_zero(dst2), "dst2 not zero");
	MISSING(src + hps + 3 * ps);
	PRESENT(src + hps + 4 * ps);
	dst[0] = 1;
	ASSERT(dst[0] == 1 && dst[ps] == 0, "write after huge zero page move");
	return KSFT_PASS;
}

/*
 * [man]/[mp] swapped-out pages: a source pte that is a swap entry is moved
 * as a swap entry; the data comes back at dst on access, src is a hole.
 */
static int t_swap(void)
{
	FILE *f = fopen("/proc/swaps", "re");
	char line[256];
	int nswap = 0, fd, swapped = 0;
	const unsigned long n = 16;
	char *src, *dst;
	struct mres r;

	if (f) {
		while (fgets(line, sizeof(line), f))
			nswap++;
		fclose(f);
	}
	if (nswap < 2)
		SKIP("no active swap device in /proc/swaps");
	fd = uffd_move_fd();
	src = map_anon(n * ps);
	dst = map_anon(n * ps);
	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(src);
	MAP_OR_FAIL(dst);
	fill(src, n, 54);
	for (int tries = 0; tries < 5 && swapped < (int)n; tries++) {
		if (madvise(src, n * ps, MADV_PAGEOUT))
			SKIP("MADV_PAGEOUT: %s", strerror(errno));
		swapped = 0;
		for (unsigned long i = 0; i < n; i++)
			swapped += !!(pagemap(src + i * ps) & PM_SWAP);
	}
	if (!swapped)
		SKIP("MADV_PAGEOUT did not swap anything out");
	REG_OR_FAIL(fd, dst, n * ps);
	r = do_move(fd, dst, src, n * ps, 0);
	EXPECT_OK(r, n * ps);
	for (unsigned long i = 0; i < n; i++) {
		MISSING(src + i * ps);
		PRESENT(dst + i * ps);
	}
	for (unsigned long i = 0; i < n; i++)
		CHECK_PAT(dst + i * ps, 54, i);
	diag("%d of %lu pages were swapped out", swapped, n);
	return KSFT_PASS;
}

/* active swap devices in /proc/swaps (its header line is not counted) */
static int swap_devices(void)
{
	FILE *f = fopen("/proc/swaps", "re");
	char line[256];
	int n = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		n++;
	fclose(f);
	return n > 0 ? n - 1 : 0;
}

/* MADV_PAGEOUT n pages at p (up to 5 tries); how many are then swap entries */
static int page_out(char *p, unsigned long n)
{
	int swapped = 0;

	for (int tries = 0; tries < 5 && swapped < (int)n; tries++) {
		if (madvise(p, n * ps, MADV_PAGEOUT))
			return -errno;
		swapped = 0;
		for (unsigned long i = 0; i < n; i++)
			swapped += !!(pagemap(p + i * ps) & PM_SWAP);
	}
	return swapped;
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
static int t_reclaim_after_move(void)
{
	const unsigned long n = 16;
	char *src, *dst, *ctl;
	int fd, got, want;
	struct mres r;

	if (swap_devices() < 1)
		SKIP("no active swap device in /proc/swaps");
	fd = uffd_move_fd();
	src = map_anon(n * ps);
	dst = map_anon(n * ps);
	ctl = map_anon(n * ps);
	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(src);
	MAP_OR_FAIL(dst);
	MAP_OR_FAIL(ctl);
	fill(src, n, 81);
	fill(ctl, n, 82);
	want = page_out(ctl, n);
	if (want < 0)
		SKIP("MADV_PAGEOUT: %s", strerror(-want));
	if (want == 0)
		SKIP("MADV_PAGEOUT did not swap out any page of a control range");
	REG_OR_FAIL(fd, dst, n * ps);
	r = do_move(fd, dst, src, n * ps, 0);
	EXPECT_OK(r, n * ps);
	got = page_out(dst, n);
	ASSERT(got >= 0, "MADV_PAGEOUT of dst: %s", strerror(-got));
	ASSERT(got > 0 && 2 * got >= want,
	       "%d of %lu moved pages could be paged out (control: %d): reclaim cannot find them at dst", got, n, want);
	for (unsigned long i = 0; i < n; i++) {
		MISSING(src + i * ps);
		CHECK_PAT(dst + i * ps, 81, i);
		CHECK_PAT(ctl + i * ps, 82, i);
	}
	diag("%d of %lu moved pages paged out (control %d)", got, n, want);
	return KSFT_PASS;
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
static int child_anon_vma_roots(char *parent_area, unsigned long n)
{
	int fd = uffd_move_fd();
	char *dst = map_anon(n * ps);
	struct mres r;
	int st;
	pid_t gc;

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(dst);
	for (unsigned long i = 0; i < n; i++)
		fill_page(parent_area + i * ps, 61, i);	/* COW: child-private pages, parent's root */
	REG_OR_FAIL(fd, dst, n * ps);
	r = do_move(fd, dst, parent_area, n * ps, 0);
	EXPECT_OK(r, n * ps);
	for (unsigned long i = 0; i < n; i++) {
		CHECK_PAT(dst + i * ps, 61, i);
		MISSING(parent_area + i * ps);
	}
	gc = fork();
	ASSERT(gc >= 0, "fork");
	if (gc == 0) {
		for (unsigned long i = 0; i < n; i++) {
			if (check_page(dst + i * ps, 61, i) >= 0)
				_exit(1);
			fill_page(dst + i * ps, 62, i);
		}
		_exit(0);
	}
	ASSERT(waitpid(gc, &st, 0) == gc && WIFEXITED(st) && WEXITSTATUS(st) == 0,
	       "grandchild saw wrong data: %#x", st);
	for (unsigned long i = 0; i < n; i++)
		CHECK_PAT(dst + i * ps, 61, i);
	/*
	 * and move them back into the (parent-rooted) vma: the fork above
	 * made them non-exclusive (even though the grandchild is gone) ->
	 * EBUSY until they are written again.
	 */
	ASSERT(uffd_reg(fd, parent_area, n * ps, UFFDIO_REGISTER_MODE_MISSING, NULL) == 0, "register");
	r = do_move(fd, parent_area, dst, n * ps, 0);
	EXPECT_ERR(r, EBUSY);
	for (unsigned long i = 0; i < n; i++)
		fill_page(dst + i * ps, 66, i);
	r = do_move(fd, parent_area, dst, n * ps, 0);
	EXPECT_OK(r, n * ps);
	for (unsigned long i = 0; i < n; i++) {
		CHECK_PAT(parent_area + i * ps, 66, i);
		MISSING(dst + i * ps);
	}
	return KSFT_PASS;
}

static int t_anon_vma_different_root(void)
{
	const unsigned long n = 8;
	char *a = map_anon(n * ps);
	int st;
	pid_t pid;

	MAP_OR_FAIL(a);
	fill(a, n, 60);
	pid = fork();
	ASSERT(pid >= 0, "fork");
	if (pid == 0) {
		int rc = child_anon_vma_roots(a, n);

		fflush(stdout);
		_exit(rc);
	}
	ASSERT(waitpid(pid, &st, 0) == pid, "waitpid");
	ASSERT(WIFEXITED(st) && WEXITSTATUS(st) == 0, "child failed: status %#x", st);
	for (unsigned long i = 0; i < n; i++)
		CHECK_PAT(a + i * ps, 60, i);
	return KSFT_PASS;
}

/*
 * Pages whose vma was mremap()ed (they keep the old anon_vma and an index
 * that no longer matches a linear layout) and pages moved twice: the moved
 * pages stay correct through another mremap, fork + COW, and moving back.
 */
static int t_mremap_and_back(void)
{
	const unsigned long n = 8;
	int fd = uffd_move_fd();
	char *a = map_anon(n * ps), *b = map_anon(n * ps), *c = map_anon(2 * n * ps), *m;
	struct mres r;
	int st;
	pid_t pid;

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(a);
	MAP_OR_FAIL(b);
	MAP_OR_FAIL(c);
	fill(a, n, 63);
	m = mremap(a, n * ps, n * ps, MREMAP_MAYMOVE | MREMAP_FIXED, c + n * ps);
	ASSERT(m != MAP_FAILED, "mremap: %s", strerror(errno));
	REG_OR_FAIL(fd, b, n * ps);
	r = do_move(fd, b, m, n * ps, 0);
	EXPECT_OK(r, n * ps);
	for (unsigned long i = 0; i < n; i++)
		CHECK_PAT(b + i * ps, 63, i);
	/* move b back over the mremapped area (register it first) */
	REG_OR_FAIL(fd, m, n * ps);
	r = do_move(fd, m + 0, b + 0, n * ps, 0);
	EXPECT_OK(r, n * ps);
	/* fork: child COWs, parent must keep its data */
	pid = fork();
	ASSERT(pid >= 0, "fork");
	if (pid == 0) {
		for (unsigned long i = 0; i < n; i++) {
			if (check_page(m + i * ps, 63, i) >= 0)
				_exit(1);
			fill_page(m + i * ps, 64, i);
		}
		_exit(0);
	}
	ASSERT(waitpid(pid, &st, 0) == pid && WIFEXITED(st) && WEXITSTATUS(st) == 0, "child: %#x", st);
	for (unsigned long i = 0; i < n; i++) {
		CHECK_PAT(m + i * ps, 63, i);
		MISSING(b + i * ps);
	}
	/* after the child exited the pages are exclusive again only once written */
	for (unsigned long i = 0; i < n; i++)
		fill_page(m + i * ps, 65, i);
	r = do_move(fd, b, m, n * ps, 0);
	EXPECT_OK(r, n * ps);
	for (unsigned long i = 0; i < n; i++)
		CHECK_PAT(b + i * ps, 65, i);
	return KSFT_PASS;
}

/*
 * [mp] "Only one thread should resolve the userland page fault at any given
 * time ... the second thread will get an explicit error": many threads fault
 * on every page of dst while the handler resolves each fault with
 * UFFDIO_MOVE; each page is moved exactly once (later faults on an already
 * moved page get EEXIST and are woken with UFFDIO_WAKE), every thread reads
 * the right data and the final dst is byte-exact.
 */
#define RACE_THREADS 4
#define RACE_PAGES 256
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

		if (check_page(rc->dst + p * ps, 70, p) >= 0)
			rc->bad++;
	}
	__atomic_store_n(&rc->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

static int t_race_faults(void)
{
	int fd = uffd_move_fd();
	char *src = map_anon(RACE_PAGES * ps), *dst = map_anon(RACE_PAGES * ps);
	struct racer rc[RACE_THREADS];
	pthread_t th[RACE_THREADS];
	int moved = 0, eexist = 0, done, idle = 0;

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(src);
	MAP_OR_FAIL(dst);
	fill(src, RACE_PAGES, 70);
	REG_OR_FAIL(fd, dst, RACE_PAGES * ps);
	for (int i = 0; i < RACE_THREADS; i++) {
		rc[i] = (struct racer){ .dst = dst, .id = i };
		pthread_create(&th[i], NULL, racer_fn, &rc[i]);
	}
	do {
		uint64_t fa = read_fault(fd, 50);

		if (fa) {
			unsigned long p = (fa - (uintptr_t)dst) / ps;
			struct mres r;
			int tries = 0;

			ASSERT(fa >= (uintptr_t)dst && p < RACE_PAGES, "fault outside dst: %#llx",
			       (unsigned long long)fa);
			do {
				r = do_move(fd, (void *)(uintptr_t)fa, src + p * ps, ps, 0);
			} while (r.ret == -1 && r.err == EAGAIN && r.move == -EAGAIN && ++tries < 100);
			if (r.ret == 0) {
				ASSERT(r.move == (__s64)ps, "move=%lld", (long long)r.move);
				moved++;
			} else {
				EXPECT_ERR(r, EEXIST);
				eexist++;
				ASSERT(uffd_wake(fd, (void *)(uintptr_t)fa, ps) == 0, "wake: %s", strerror(errno));
			}
		}
		done = 0;
		for (int i = 0; i < RACE_THREADS; i++)
			done += __atomic_load_n(&rc[i].done, __ATOMIC_SEQ_CST);
		if (!fa && done < RACE_THREADS && ++idle > 100) {
			int present = 0;

			for (unsigned long p = 0; p < RACE_PAGES; p++)
				present += page_present(dst + p * ps) == 1;
			ASSERT(0, "stuck: %d/%d threads done, %d moved, %d eexist, %d dst pages present",
			       done, RACE_THREADS, moved, eexist, present);
		} else if (fa) {
			idle = 0;
		}
	} while (done < RACE_THREADS);
	for (int i = 0; i < RACE_THREADS; i++) {
		pthread_join(th[i], NULL);
		ASSERT(rc[i].bad == 0, "thread %d read %d corrupt pages", i, rc[i].bad);
	}
	ASSERT(moved == RACE_PAGES, "moved %d pages, expected %d (eexist %d)", moved, RACE_PAGES, eexist);
	for (unsigned long p = 0; p < RACE_PAGES; p++) {
		CHECK_PAT(dst + p * ps, 70, p);
		MISSING(src + p * ps);
	}
	diag("%d faults resolved by move, %d duplicate faults got EEXIST", moved, eexist);
	return KSFT_PASS;
}

/*
 * Two threads move two different source pages to the same destination at
 * the same moment: exactly one wins (ret 0, move == PAGE), the other gets
 * EEXIST with move == -EEXIST and keeps its source page; dst holds the
 * winner's data ([mp] "the second thread will get an explicit error").
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

static int t_race_same_dst(void)
{
	int fd = uffd_move_fd();
	char *s0 = map_anon(ps), *s1 = map_anon(ps), *dst = map_anon(ps);
	pthread_barrier_t bar;
	int wins[2] = { 0, 0 };

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(s0);
	MAP_OR_FAIL(s1);
	MAP_OR_FAIL(dst);
	REG_OR_FAIL(fd, dst, ps);
	pthread_barrier_init(&bar, NULL, 2);
	for (int it = 0; it < 300; it++) {
		struct dueler d[2] = {
			{ .fd = fd, .dst = dst, .src = s0, .bar = &bar },
			{ .fd = fd, .dst = dst, .src = s1, .bar = &bar },
		};
		pthread_t th[2];
		int w;

		fill_page(s0, 71, it);
		fill_page(s1, 72, it);
		for (int i = 0; i < 2; i++)
			pthread_create(&th[i], NULL, dueler_fn, &d[i]);
		for (int i = 0; i < 2; i++)
			pthread_join(th[i], NULL);
		ASSERT((d[0].r.ret == 0) + (d[1].r.ret == 0) == 1, "iteration %d: ret %d/%d errno %d/%d", it,
		       d[0].r.ret, d[1].r.ret, d[0].r.err, d[1].r.err);
		w = d[0].r.ret == 0 ? 0 : 1;
		wins[w]++;
		EXPECT_OK(d[w].r, ps);
		EXPECT_ERR(d[!w].r, EEXIST);
		CHECK_PAT(dst, 71 + w, it);
		CHECK_PAT(w ? s0 : s1, 72 - w, it);
		MISSING(w ? s1 : s0);
		madvise(dst, ps, MADV_DONTNEED);
	}
	diag("wins: %d / %d", wins[0], wins[1]);
	return KSFT_PASS;
}

/*
 * RSS accounting: a move within one mm does not change the process's
 * anonymous RSS (RssAnon, approximate per-cpu counter: small tolerance),
 * while the per-vma Rss in /proc/self/smaps (exact page-table walk) moves
 * from the src vma to the dst vma.  Both for 4K pages and a THP.
 */
static int t_rss_counters(void)
{
	const unsigned long n = 1024;
	int fd = uffd_move_fd();
	char *src = map_anon(n * ps), *dst = map_anon(n * ps), *tsrc, *tdst = map_anon_a(hps, hps);
	long before, after, tol = 512;	/* kB; per-cpu counter drift */
	struct mres r;

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(src);
	MAP_OR_FAIL(dst);
	MAP_OR_FAIL(tdst);
	fill(src, n, 73);
	REG_OR_FAIL(fd, dst, n * ps);
	ASSERT(smaps_kb(src, "Rss") == (long)(n * ps >> 10), "src Rss %ld", smaps_kb(src, "Rss"));
	before = status_kb("RssAnon");
	if (before < 0)
		SKIP("no RssAnon in /proc/self/status");
	r = do_move(fd, dst, src, n * ps, 0);
	EXPECT_OK(r, n * ps);
	after = status_kb("RssAnon");
	ASSERT(labs(after - before) <= tol, "RssAnon changed by a same-mm move: %ld -> %ld kB", before, after);
	ASSERT(smaps_kb(dst, "Rss") == (long)(n * ps >> 10), "dst vma Rss=%ld kB", smaps_kb(dst, "Rss"));
	ASSERT(smaps_kb(dst, "Anonymous") == (long)(n * ps >> 10), "dst vma Anonymous=%ld kB",
	       smaps_kb(dst, "Anonymous"));
	ASSERT(smaps_kb(src, "Rss") == 0, "src vma Rss=%ld kB", smaps_kb(src, "Rss"));
	/* sanity: the counter does react to real changes */
	madvise(dst, n * ps, MADV_DONTNEED);
	ASSERT(status_kb("RssAnon") < after - (long)(n * ps >> 10) + tol, "RssAnon did not drop after DONTNEED");

	if (thp_usable() && make_thp(&tsrc, hps, 74) == KSFT_PASS) {
		madvise(tdst, hps, MADV_HUGEPAGE);
		REG_OR_FAIL(fd, tdst, hps);
		before = status_kb("RssAnon");
		r = do_move(fd, tdst, tsrc, hps, 0);
		EXPECT_OK(r, hps);
		after = status_kb("RssAnon");
		ASSERT(labs(after - before) <= tol, "RssAnon changed by THP move: %ld -> %ld kB", before, after);
		ASSERT(smaps_kb(tdst, "Rss") == (long)(hps >> 10), "THP dst Rss=%ld", smaps_kb(tdst, "Rss"));
		ASSERT(smaps_kb(tsrc, "Rss") == 0, "THP src Rss=%ld", smaps_kb(tsrc, "Rss"));
	}
	return KSFT_PASS;
}

/*
 * mm/userfaultfd.c move_present_pte(): "Set soft dirty bit so userspace can
 * notice the pte was moved": after clearing soft-dirty bits
 * (/proc/self/clear_refs = 4) a moved page is soft-dirty at dst.
 */
/*
 * Clear the soft-dirty bits of the whole process (/proc/self/clear_refs = 4)
 * and check, with a written probe page, that soft-dirty tracking works:
 * KSFT_PASS, or KSFT_SKIP with the reason.
 */
static int clear_soft_dirty(void)
{
	char *probe = map_anon(ps);
	int cr = open("/proc/self/clear_refs", O_WRONLY | O_CLOEXEC);

	MAP_OR_FAIL(probe);
	if (cr < 0)
		SKIP("/proc/self/clear_refs: %s", strerror(errno));
	probe[0] = 1;
	if (write(cr, "4", 1) != 1)
		SKIP("clear_refs soft-dirty: %s", strerror(errno));
	close(cr);
	if (pagemap(probe) & PM_SOFT_DIRTY)
		SKIP("soft-dirty tracking unsupported (CONFIG_MEM_SOFT_DIRTY off)");
	probe[0] = 2;
	if (!(pagemap(probe) & PM_SOFT_DIRTY))
		SKIP("soft-dirty tracking unsupported (CONFIG_MEM_SOFT_DIRTY off)");
	return KSFT_PASS;
}

static int t_soft_dirty(void)
{
	int fd = uffd_move_fd();
	char *src = map_anon(4 * ps), *dst = map_anon(4 * ps);
	struct mres r;

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(src);
	MAP_OR_FAIL(dst);
	fill(src, 4, 75);
	REG_OR_FAIL(fd, dst, 4 * ps);
	TRY(clear_soft_dirty());
	ASSERT(!(pagemap(src) & PM_SOFT_DIRTY), "src soft-dirty after clear_refs");
	r = do_move(fd, dst, src, 4 * ps, 0);
	EXPECT_OK(r, 4 * ps);
	for (int i = 0; i < 4; i++)
		ASSERT(pagemap(dst + i * ps) & PM_SOFT_DIRTY, "moved page %d not soft-dirty: %#llx", i,
		       (unsigned long long)pagemap(dst + i * ps));
	for (int i = 0; i < 4; i++)
		CHECK_PAT(dst + i * ps, 75, i);
	return KSFT_PASS;
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
static int t_soft_dirty_clean_pte(void)
{
	int fd = uffd_move_fd();
	char *src = map_anon(4 * ps), *dst = map_anon(4 * ps);
	struct mres r;

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(src);
	MAP_OR_FAIL(dst);
	fill(src, 4, 76);
	REG_OR_FAIL(fd, dst, 4 * ps);
	if (madvise(src, 4 * ps, MADV_FREE))
		SKIP("MADV_FREE: %s", strerror(errno));
	TRY(clear_soft_dirty());
	for (int i = 0; i < 4; i++) {
		if (!(pagemap(src + i * ps) & PM_PRESENT))
			SKIP("a MADV_FREE page was reclaimed before the move");
		ASSERT(!(pagemap(src + i * ps) & PM_SOFT_DIRTY), "src page %d soft-dirty after clear_refs", i);
	}
	r = do_move(fd, dst, src, 4 * ps, 0);
	EXPECT_OK(r, 4 * ps);
	for (int i = 0; i < 4; i++) {
		ASSERT(pagemap(dst + i * ps) & PM_SOFT_DIRTY, "moved clean page %d not soft-dirty: %#llx", i,
		       (unsigned long long)pagemap(dst + i * ps));
		MISSING(src + i * ps);
	}
	return KSFT_PASS;
}

/*
 * [man] EAGAIN / [doc] non-cooperative events: while a UFFD_EVENT_REMOVE is
 * pending (mmap_changing), UFFDIO_MOVE fails with EAGAIN and move ==
 * -EAGAIN, nothing moved; once the event is read the same move succeeds.
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

static int t_eagain_mmap_changing(void)
{
	__u64 feat;
	int fd = uffd_new(UFFD_FEATURE_MOVE | UFFD_FEATURE_EVENT_REMOVE, &feat, NULL);
	char *src = map_anon(2 * ps), *dst = map_anon(4 * ps);
	struct pollfd pfd;
	struct uffd_msg msg;
	struct dn_arg d;
	pthread_t th;
	struct mres r;

	if (fd < 0)
		SKIP("UFFD_FEATURE_EVENT_REMOVE unavailable: %s", strerror(-fd));
	MAP_OR_FAIL(src);
	MAP_OR_FAIL(dst);
	fill(src, 2, 76);
	dst[3 * ps] = 1;
	REG_OR_FAIL(fd, dst, 4 * ps);
	d.p = dst + 3 * ps;
	d.done = 0;
	pthread_create(&th, NULL, dontneed_fn, &d);
	pfd = (struct pollfd){ .fd = fd, .events = POLLIN };
	ASSERT(poll(&pfd, 1, 5000) == 1, "no REMOVE event");
	usleep(200000);	/* the madvise thread stays blocked until the event is read */
	r = do_move(fd, dst, src, 2 * ps, 0);
	EXPECT_ERR(r, EAGAIN);
	MISSING(dst);
	CHECK_PAT(src, 76, 0);
	ASSERT(read(fd, &msg, sizeof(msg)) == sizeof(msg), "read event");
	ASSERT(msg.event == UFFD_EVENT_REMOVE, "event %d", msg.event);
	pthread_join(th, NULL);
	r = do_move(fd, dst, src, 2 * ps, 0);
	EXPECT_OK(r, 2 * ps);
	CHECK_PAT(dst + ps, 76, 1);
	return KSFT_PASS;
}

/*
 * Large move across many page tables (8 MiB of 4K pages, several PMDs,
 * unaligned start) in one call: move == len, every page exact.
 */
static int t_move_large(void)
{
	const unsigned long n = 2048 + 37;
	int fd = uffd_move_fd();
	char *src = map_anon(n * ps + ps), *dst = map_anon(n * ps + 3 * ps);
	struct mres r;

	UFFD_OR_FAIL(fd);
	MAP_OR_FAIL(src);
	MAP_OR_FAIL(dst);
	fill(src + ps, n, 77);
	REG_OR_FAIL(fd, dst, n * ps + 3 * ps);
	r = do_move(fd, dst + 3 * ps, src + ps, n * ps, 0);
	EXPECT_OK(r, n * ps);
	for (unsigned long i = 0; i < n; i++)
		CHECK_PAT(dst + (3 + i) * ps, 77, i);
	for (unsigned long i = 0; i < n; i += 13)
		MISSING(src + (1 + i) * ps);
	ASSERT(smaps_kb(src, "Rss") == 0, "src Rss %ld", smaps_kb(src, "Rss"));
	return KSFT_PASS;
}

/*
 * No kernel warnings/oopses were logged while the suite ran (WARN_ON_ONCE
 * sanity checks inside move_pages(), bad page state, rmap errors).
 * Runs last; needs /dev/kmsg.
 */
static int t_kernel_log_clean(void)
{
	static const char *bad[] = { "WARNING:", "BUG:", "Oops", "Bad page", "bad rmap", "kernel BUG",
				     "general protection", "Unable to handle", "RIP: ", "list_add corruption",
				     "page dumped because" };
	char rec[8192];
	int n = 0, hits = 0;

	if (kmsg_fd < 0)
		SKIP("/dev/kmsg not readable");
	for (;;) {
		ssize_t len = read(kmsg_fd, rec, sizeof(rec) - 1);
		char *msg;

		if (len < 0) {
			if (errno == EPIPE)
				continue;	/* records overwritten: keep reading */
			break;	/* EAGAIN: end */
		}
		rec[len] = 0;
		n++;
		msg = strchr(rec, ';');
		msg = msg ? msg + 1 : rec;
		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
			if (strstr(msg, bad[i])) {
				char *nl = strchr(msg, '\n');

				if (nl)
					*nl = 0;
				diag("kernel log: %s", msg);
				hits++;
				break;
			}
	}
	ASSERT(hits == 0, "%d suspicious kernel log lines during the run (of %d)", hits, n);
	return KSFT_PASS;
}

/* ========================================================================= */
struct test {
	const char *name;
	int (*fn)(void);
};

static const struct test tests[] = {
	{ "api-feature-move", t_api_feature_move },
	{ "register-ioctls-move", t_register_ioctls_move },
	{ "move-basic", t_move_basic },
	{ "move-zero-copy-pfn", t_move_zero_copy_pfn },
	{ "move-field-success", t_move_field_success },
	{ "move-large", t_move_large },
	{ "partial-eexist", t_partial_eexist },
	{ "partial-enoent", t_partial_enoent },
	{ "enoent-src-hole", t_enoent_src_hole },
	{ "allow-src-holes", t_allow_src_holes },
	{ "eexist-dst-populated", t_eexist_dst_populated },
	{ "einval-alignment", t_einval_alignment },
	{ "einval-range-overflow", t_einval_range_overflow },
	{ "einval-mode-bits", t_einval_mode_bits },
	{ "overlap", t_overlap },
	{ "einval-src-shared-anon", t_einval_src_shared_anon },
	{ "einval-src-memfd", t_einval_src_memfd },
	{ "einval-src-file", t_einval_src_file },
	{ "einval-dst-shared", t_einval_dst_shared },
	{ "einval-dst-not-registered", t_einval_dst_not_registered },
	{ "enoent-unmapped", t_enoent_unmapped },
	{ "einval-range-crosses-vma", t_einval_range_crosses_vma },
	{ "einval-prot-mismatch", t_einval_prot_mismatch },
	{ "einval-mlock-mismatch", t_einval_mlock_mismatch },
	{ "einval-hugetlb", t_einval_hugetlb },
	{ "einval-cross-mm", t_einval_cross_mm },
	{ "efault-bad-pointer", t_efault_bad_pointer },
	{ "dontwake", t_dontwake },
	{ "wake-default", t_wake_default },
	{ "wake-partial-range", t_wake_partial_range },
	{ "ebusy-fork-shared", t_ebusy_fork_shared },
	{ "ebusy-pinned", t_ebusy_pinned },
	{ "thp-move-pmd", t_thp_move_pmd },
	{ "thp-move-pmd-split", t_thp_move_pmd_split },
	{ "thp-move-unaligned-dst", t_thp_move_unaligned_dst },
	{ "thp-dst-populated", t_thp_dst_populated },
	{ "thp-allow-src-holes", t_thp_allow_src_holes },
	{ "thp-ebusy-fork", t_thp_ebusy_fork },
	{ "zeropage", t_zeropage },
	{ "huge-zeropage", t_huge_zeropage },
	{ "swap", t_swap },
	{ "reclaim-after-move", t_reclaim_after_move },
	{ "anon-vma-different-root", t_anon_vma_different_root },
	{ "mremap-and-back", t_mremap_and_back },
	{ "race-faults", t_race_faults },
	{ "race-same-dst", t_race_same_dst },
	{ "rss-counters", t_rss_counters },
	{ "soft-dirty", t_soft_dirty },
	{ "soft-dirty-clean-pte", t_soft_dirty_clean_pte },
	{ "eagain-mmap-changing", t_eagain_mmap_changing },
	{ "kernel-log-clean", t_kernel_log_clean },
};
#define NTESTS (sizeof(tests) / sizeof(tests[0]))

/* run one test in a forked child with a timeout; returns KSFT_* */
static int run_one(const struct test *t, char *why, size_t whylen)
{
	pid_t pid;
	int st;
	double deadline;

	skip_reason[0] = 0;
	why[0] = 0;
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		snprintf(why, whylen, "fork: %s", strerror(errno));
		return KSFT_FAIL;
	}
	if (pid == 0) {
		int rc;

		setpgid(0, 0);
		alarm(TEST_TIMEOUT_S);
		rc = t->fn();
		fflush(stdout);
		_exit(rc);
	}
	setpgid(pid, pid);
	deadline = now_ms() + (TEST_TIMEOUT_S + 5) * 1000.0;
	for (;;) {
		pid_t w = waitpid(pid, &st, WNOHANG);

		if (w == pid)
			break;
		if (now_ms() > deadline) {
			kill(-pid, SIGKILL);
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			snprintf(why, whylen, "timeout after %d s", TEST_TIMEOUT_S + 5);
			return KSFT_FAIL;
		}
		usleep(2000);
	}
	kill(-pid, SIGKILL);	/* reap any leftover helper processes of the test */
	if (WIFSIGNALED(st)) {
		if (WTERMSIG(st) == SIGALRM)
			snprintf(why, whylen, "timeout after %d s", TEST_TIMEOUT_S);
		else
			snprintf(why, whylen, "killed by signal %d (%s)", WTERMSIG(st), strsignal(WTERMSIG(st)));
		return KSFT_FAIL;
	}
	if (!WIFEXITED(st))
		return KSFT_FAIL;
	if (WEXITSTATUS(st) == KSFT_SKIP) {
		snprintf(why, whylen, "%s", skip_reason[0] ? skip_reason : "skipped");
		return KSFT_SKIP;
	}
	if (WEXITSTATUS(st) != KSFT_PASS) {
		snprintf(why, whylen, "exit status %d", WEXITSTATUS(st));
		return KSFT_FAIL;
	}
	return KSFT_PASS;
}

static void usage(const char *argv0)
{
	printf("usage: %s [-l] [-t test-name]...\n"
	       "  -l         list test names\n"
	       "  -t name    run only this test (repeatable)\n", argv0);
}

int main(int argc, char **argv)
{
	const char *only[NTESTS + 1];
	int nonly = 0, opt, fail = 0, pass = 0, skip = 0, n = 0;
	const struct test *sel[NTESTS];
	__u64 feat = 0;
	int fd;

	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((opt = getopt(argc, argv, "lt:h")) != -1) {
		switch (opt) {
		case 'l':
			for (size_t i = 0; i < NTESTS; i++)
				printf("%s\n", tests[i].name);
			return 0;
		case 't':
			if (nonly < (int)NTESTS)
				only[nonly++] = optarg;
			break;
		case 'h':
			usage(argv[0]);
			return 0;
		default:
			usage(argv[0]);
			return 2;
		}
	}
	for (int i = 0; i < nonly; i++) {
		size_t j;

		for (j = 0; j < NTESTS; j++)
			if (!strcmp(only[i], tests[j].name))
				break;
		if (j == NTESTS) {
			fprintf(stderr, "unknown test: %s (use -l)\n", only[i]);
			return 2;
		}
	}
	for (size_t j = 0; j < NTESTS; j++) {
		int want = nonly == 0;

		for (int i = 0; i < nonly; i++)
			if (!strcmp(only[i], tests[j].name))
				want = 1;
		if (want)
			sel[n++] = &tests[j];
	}

	ps = sysconf(_SC_PAGESIZE);
	hps = 2UL << 20;
	{
		char buf[64];

		if (!read_file_str("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size", buf, sizeof(buf)) &&
		    strtoul(buf, NULL, 10) > ps)
			hps = strtoul(buf, NULL, 10);
	}
	skip_reason = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (skip_reason == MAP_FAILED) {
		perror("mmap");
		return KSFT_FAIL;
	}

	printf("TAP version 13\n");
	fd = uffd_new(0, &feat, NULL);
	if (fd < 0) {
		printf("1..0 # SKIP userfaultfd unavailable: %s\n", strerror(-fd));
		return KSFT_SKIP;
	}
	close(fd);
	if (!(feat & UFFD_FEATURE_MOVE)) {
		printf("1..0 # SKIP kernel lacks UFFD_FEATURE_MOVE (UFFDIO_MOVE needs Linux 6.8+)\n");
		return KSFT_SKIP;
	}
	kmsg_fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (kmsg_fd >= 0 && lseek(kmsg_fd, 0, SEEK_END) < 0) {
		close(kmsg_fd);
		kmsg_fd = -1;
	}
	{
		struct utsname u;

		if (!uname(&u))
			printf("# kernel %s %s, page size %lu, PMD size %lu\n", u.release, u.machine, ps, hps);
	}
	printf("1..%d\n", n);
	for (int i = 0; i < n; i++) {
		char why[300];
		double t0 = now_ms();
		int rc = run_one(sel[i], why, sizeof(why));

		printf("# %s: %.0f ms\n", sel[i]->name, now_ms() - t0);
		if (rc == KSFT_PASS) {
			printf("ok %d %s\n", i + 1, sel[i]->name);
			pass++;
		} else if (rc == KSFT_SKIP) {
			printf("ok %d %s # SKIP %s\n", i + 1, sel[i]->name, why);
			skip++;
		} else {
			if (why[0])
				printf("# %s: %s\n", sel[i]->name, why);
			printf("not ok %d %s\n", i + 1, sel[i]->name);
			fail++;
		}
	}
	printf("# Totals: pass:%d fail:%d xfail:0 xpass:0 skip:%d error:0\n", pass, fail, skip);
	if (fail)
		return KSFT_FAIL;
	if (pass == 0 && skip > 0)
		return KSFT_SKIP;
	return KSFT_PASS;
}
