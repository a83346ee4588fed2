/* LD_PRELOAD shim for crash tests: with P2V_CRASH_AFTER=N the process ends
 * (_exit 99) at its Nth change to a file (pwrite, ftruncate, fallocate),
 * before making it: what an interruption at that point leaves on disk.  A
 * test runs a command with N = 1, 2, ... until it completes. */
#undef _FILE_OFFSET_BITS /* define pwrite and pwrite64 both, not one twice */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/types.h>
#include <unistd.h>

static long remaining = -1; /* changes left before the crash; 0: never */

static void change(void)
{
	if (remaining < 0) {
		const char *s = getenv("P2V_CRASH_AFTER");
		remaining = s ? atol(s) : 0;
	}
	if (remaining > 0 && --remaining == 0)
		_exit(99);
}

#define NEXT(name) ((__typeof__(&name))dlsym(RTLD_NEXT, #name))

ssize_t pwrite(int fd, const void *buf, size_t n, off_t off)
{
	change();
	return NEXT(pwrite)(fd, buf, n, off);
}

ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
	change();
	return NEXT(pwrite64)(fd, buf, n, off);
}

int ftruncate(int fd, off_t len)
{
	change();
	return NEXT(ftruncate)(fd, len);
}

int ftruncate64(int fd, off64_t len)
{
	change();
	return NEXT(ftruncate64)(fd, len);
}

int fallocate(int fd, int mode, off_t off, off_t len)
{
	change();
	return NEXT(fallocate)(fd, mode, off, len);
}

int fallocate64(int fd, int mode, off64_t off, off64_t len)
{
	change();
	return NEXT(fallocate64)(fd, mode, off, len);
}
