// A 32-bit (i386) supervisor's first steps on /dev/idwrap: open, VERSION,
// CONFIG, INTEREST, STATS, through the compat ioctl path. Freestanding (no
// 32-bit libc needed): raw int 0x80 calls. Prints
// "open=FD version=V config=R interest=R stats=R events=N"; a negative
// number is -errno (an ioctl without compat_ioctl is -ENOTTY, -25).
//   cc -m32 -static -nostdlib -ffreestanding -fno-pic -fno-stack-protector
#include "idwrap_uapi.h"

static long sys3(long n, long a, long b, long c)
{
	long r;

	asm volatile("int $0x80" : "=a"(r) : "a"(n), "b"(a), "c"(b), "d"(c) : "memory");
	return r;
}

static char out[256];
static int at;

static void put(const char *key, long v)
{
	char digits[24];
	int n = 0;
	unsigned long u = v < 0 ? -v : v;

	while (*key)
		out[at++] = *key++;
	if (v < 0)
		out[at++] = '-';
	do
		digits[n++] = '0' + u % 10;
	while (u /= 10);
	while (n)
		out[at++] = digits[--n];
	out[at++] = ' ';
}

static struct idwrap_config cfg = { .abi = IDWRAP_ABI_VERSION };
static struct idwrap_interest interest;
static struct idwrap_stats stats;

void _start(void)
{
	long fd = sys3(5 /* open */, (long)"/dev/idwrap", 2 /* O_RDWR */, 0);

	put("open=", fd);
	put("version=", sys3(54 /* ioctl */, fd, IDWRAP_IOC_VERSION, 0));
	put("config=", sys3(54, fd, IDWRAP_IOC_CONFIG, (long)&cfg));
	interest.mask[39] = IDWRAP_PRE_OBSERVE;	/* getpid */
	put("interest=", sys3(54, fd, IDWRAP_IOC_INTEREST, (long)&interest));
	put("stats=", sys3(54, fd, IDWRAP_IOC_STATS, (long)&stats));
	put("events=", (long)stats.events);
	out[at - 1] = '\n';
	sys3(4 /* write */, 1, (long)out, at);
	sys3(1 /* exit */, 0, 0, 0);
}
