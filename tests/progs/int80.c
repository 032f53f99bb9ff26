// A 64-bit program making i386 system calls through int 0x80: getpid (20)
// and open (5) of argv[1]. Prints each raw result; both must be -ENOSYS.
#include <stdio.h>

static long int80(long nr, long a, long b)
{
	long ret;

	__asm__ volatile("int $0x80" : "=a"(ret) : "a"(nr), "b"(a), "c"(b) : "memory");
	return ret;
}

static char path[64] = "/etc/hostname";

int main(void)
{
	printf("getpid %ld\n", int80(20, 0, 0));
	printf("open %ld\n", int80(5, (long)path, 0));
	return 0;
}
