// The program a denied exec must never run: says so if it ever does.
#include <unistd.h>

int main(void)
{
	return write(1, "PWNED\n", 6) == 6 ? 0 : 1;
}
