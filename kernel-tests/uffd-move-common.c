// SPDX-License-Identifier: GPL-2.0
/*
 * Shared helpers of the UFFDIO_MOVE selftests: see uffd-move-common.h.
 * Plain C, no harness: linked into every uffd-move-* program.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/utsname.h>
#include <time.h>

#include "uffd-move-common.h"

unsigned long ps;
unsigned long hps;
int kmsg_fd = -1;

const char *uffd_move_init(void)
{
	static char why[256];
	__u64 feat = 0;
	char buf[64];
	int fd;

	ps = sysconf(_SC_PAGESIZE);
	hps = 2UL << 20;
	if (!read_file_str("/sys/kernel/mm/transparent_hugepage/hpage_pmd_size", buf, sizeof(buf)) &&
	    strtoul(buf, NULL, 10) > ps)
		hps = strtoul(buf, NULL, 10);
	kmsg_fd = open("/dev/kmsg", O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (kmsg_fd >= 0 && lseek(kmsg_fd, 0, SEEK_END) < 0) {
		close(kmsg_fd);
		kmsg_fd = -1;
	}
	fd = uffd_new(0, &feat, NULL);
	if (fd < 0) {
		snprintf(why, sizeof(why), "userfaultfd unavailable: %s", strerror(-fd));
		return why;
	}
	close(fd);
	if (!(feat & UFFD_FEATURE_MOVE))
		return "kernel lacks UFFD_FEATURE_MOVE (UFFDIO_MOVE needs Linux 6.8+)";
	return NULL;
}

/* ---- userfaultfd ---------------------------------------------------------- */
int uffd_open_raw(void)
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

int uffd_new(__u64 features, __u64 *got_features, __u64 *got_ioctls)
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

int uffd_move_fd(void)
{
	return uffd_new(UFFD_FEATURE_MOVE, NULL, NULL);
}

int uffd_reg(int fd, void *addr, unsigned long len, __u64 mode, __u64 *ioctls)
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

int uffd_wake(int fd, void *addr, unsigned long len)
{
	struct uffdio_range r = { .start = (uintptr_t)addr, .len = len };

	return ioctl(fd, UFFDIO_WAKE, &r);
}

struct mres do_move(int fd, void *dst, void *src, unsigned long len, __u64 mode)
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

/* ---- memory ---------------------------------------------------------------- */
char *map_guarded_flags(unsigned long len, unsigned long align, int prot, int flags, int fd)
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

char *map_anon_a(unsigned long len, unsigned long align)
{
	char *p = map_guarded_flags(len, align, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1);

	if (p && align <= ps)
		madvise(p, len, MADV_NOHUGEPAGE);	/* plain 4K pages, no (m)THP */
	return p;
}

char *map_anon(unsigned long len)
{
	return map_anon_a(len, ps);
}

char *map_alone_gib(void)
{
	char *p = map_guarded_flags(GIB, GIB, PROT_READ | PROT_WRITE,
				    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1);

	if (p)
		madvise(p, GIB, MADV_NOHUGEPAGE);
	return p;
}

void fill_page(char *p, unsigned int seed, unsigned long page)
{
	uint64_t *w = (uint64_t *)p;

	for (unsigned long i = 0; i < ps / 8; i++)
		w[i] = pat_word(seed, page, i);
}

void fill(char *p, unsigned long npages, unsigned int seed)
{
	for (unsigned long i = 0; i < npages; i++)
		fill_page(p + i * ps, seed, i);
}

long check_page(const char *p, unsigned int seed, unsigned long page)
{
	const uint64_t *w = (const uint64_t *)p;

	for (unsigned long i = 0; i < ps / 8; i++)
		if (w[i] != pat_word(seed, page, i))
			return (long)i;
	return -1;
}

int page_is_zero(const char *p)
{
	const uint64_t *w = (const uint64_t *)p;

	for (unsigned long i = 0; i < ps / 8; i++)
		if (w[i])
			return 0;
	return 1;
}

uint64_t pagemap(const void *addr)
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

int page_present(const void *addr)
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

uint64_t pfn_of(const void *addr)
{
	uint64_t e = pagemap(addr);

	if (e == ~0ULL || !(e & PM_PRESENT))
		return 0;
	return e & PM_PFN_MASK;
}

int64_t kpageflags(uint64_t pfn)
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

long smaps_kb(const void *addr, const char *field)
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

/* the number after "field:" in a /proc file of "Name:   value kB" lines, or -1 */
static long proc_field_kb(const char *path, const char *field)
{
	FILE *f = fopen(path, "re");
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

long status_kb(const char *field)
{
	return proc_field_kb("/proc/self/status", field);
}

long meminfo_kb(const char *field)
{
	return proc_field_kb("/proc/meminfo", field);
}

int read_file_str(const char *path, char *buf, size_t len)
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

int thp_usable(void)
{
	char buf[128];

	if (read_file_str("/sys/kernel/mm/transparent_hugepage/enabled", buf, sizeof(buf)))
		return 0;
	return strstr(buf, "[never]") == NULL;
}

int kernel_at_least(int maj, int min)
{
	struct utsname u;
	int a = 0, b = 0;

	if (uname(&u) || sscanf(u.release, "%d.%d", &a, &b) != 2)
		return 1;
	return a > maj || (a == maj && b >= min);
}

int swap_devices(void)
{
	FILE *f = fopen("/proc/swaps", "re");
	char line[256];
	int n = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		n++;
	fclose(f);
	return n > 0 ? n - 1 : 0;	/* the header line is not a device */
}

int page_out(char *p, unsigned long n)
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

/* ---- what a move leaves behind ---------------------------------------------- */
static long anon_vma_objs(void)
{
	FILE *f = fopen("/proc/slabinfo", "re");
	char line[512];
	long v = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "anon_vma ", 9)) {
			v = strtol(line + 9, NULL, 10);
			break;
		}
	fclose(f);
	return v;
}

static long gauge_read(const struct gauge *g)
{
	return g->objs ? anon_vma_objs() : meminfo_kb("SUnreclaim");
}

int gauge_start(struct gauge *g, unsigned long n)
{
	g->objs = anon_vma_objs() >= 0;
	g->allowed = g->objs ? (long)n / 2 : (long)(n * 32 / 1024);
	g->unit = g->objs ? "anon_vma objects (/proc/slabinfo)" : "kB of SUnreclaim (/proc/meminfo)";
	g->before = gauge_read(g);
	if (g->before < 0)
		return -1;
	/*
	 * Earlier work may still have frees pending (vmas and maple nodes are
	 * freed after an RCU grace period): start from the level the reading
	 * falls to, once it has not fallen for 10 readings 20 ms apart (at most
	 * 5 s).  Starting higher would let a leak hide behind that drop.
	 */
	for (int still = 0, i = 0; still < 10 && i < 250; i++) {
		long v;

		usleep(20000);
		v = gauge_read(g);
		if (v < g->before) {
			g->before = v;
			still = 0;
		} else {
			still++;
		}
	}
	return 0;
}

long gauge_settled(struct gauge *g)
{
	double end = now_ms() + 5000;
	long grew;

	for (;;) {
		grew = gauge_read(g) - g->before;
		if (grew < g->allowed || now_ms() >= end)
			return grew;
		usleep(20000);
	}
}

int hop_chain(int uffd, char *from, unsigned long size, unsigned long n, struct chain *c)
{
	char *res;

	c->len = (2 * n + 2) * size;
	res = mmap(NULL, c->len, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (res == MAP_FAILED)
		return -errno;
	c->base = res;
	c->at = from;
	/* vma i at slot 2i+1 of size-aligned slots (slot 0 may be partial: alignment) */
	res = (char *)(((uintptr_t)res + size - 1) & ~(uintptr_t)(size - 1));
	for (unsigned long i = 0; i < n; i++) {
		char *v = res + (2 * i + 1) * size;
		struct mres r;
		int err;

		if (mprotect(v, size, PROT_READ | PROT_WRITE))
			return -errno;
		err = uffd_reg(uffd, v, size, UFFDIO_REGISTER_MODE_MISSING, NULL);
		if (err)
			return err;
		r = do_move(uffd, v, c->at, size, 0);
		if (r.ret)
			return -r.err;
		c->at = v;
	}
	return 0;
}

void chain_unmap(struct chain *c)
{
	munmap(c->base, c->len);
}

/* ---- faults ---------------------------------------------------------------- */
double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

long minor_faults(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_minflt;
}

static void *toucher_fn(void *arg)
{
	struct toucher *t = arg;

	t->val = *(volatile uint64_t *)t->addr;
	__atomic_store_n(&t->done, 1, __ATOMIC_SEQ_CST);
	return NULL;
}

void touch_async(struct toucher *t, void *addr)
{
	t->addr = addr;
	t->done = 0;
	pthread_create(&t->th, NULL, toucher_fn, t);
}

/*
 * Wait up to ms milliseconds of CLOCK_MONOTONIC time, not ms sleeps of 1 ms: on
 * a kernel without high-resolution timers (the suites' tinyconfig guests,
 * HZ=250) a usleep(1000) lasts one or two ticks, and on a loaded emulated
 * guest far longer, so counting sleeps made the negative waits ("the thread
 * stays blocked for 300 ms") last many seconds and uffd-move-wake overran
 * the per-program time limit.
 */
int wait_done(struct toucher *t, int ms)
{
	double end = now_ms() + ms;

	while (!__atomic_load_n(&t->done, __ATOMIC_SEQ_CST)) {
		if (now_ms() >= end)
			return __atomic_load_n(&t->done, __ATOMIC_SEQ_CST);
		usleep(1000);
	}
	return 1;
}

uint64_t read_fault(int fd, int ms)
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
