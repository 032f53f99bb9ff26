// Calls getpid and openat through the x32 ABI (__X32_SYSCALL_BIT set in the
// number) from a 64-bit program. Prints each raw result.
#include <fcntl.h>
#include <stdio.h>
#include <sys/syscall.h>
#include <unistd.h>

#define X32_BIT 0x40000000L

static long raw(long nr, long a, long b, long c)
{
	long ret;

	__asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
	return ret;
}

int main(void)
{
	printf("getpid %ld\n", raw(X32_BIT | SYS_getpid, 0, 0, 0));
	printf("openat %ld\n", raw(X32_BIT | SYS_openat, AT_FDCWD, (long)"/etc/hostname", O_RDONLY));
	return 0;
}
