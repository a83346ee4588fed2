/* Confinement of the files an image names (issue 14): the input is written
 * as an image into a fresh sandbox directory that also holds a benign raw
 * file, a symbolic link to a file outside and a FIFO; it is opened with its
 * backing files (probed, as p2v does) and read.  While it is open, every
 * descriptor the open added must lead inside the sandbox: one that leads
 * anywhere else is a file the image reached outside, and aborts. */
#include "fuzz_image.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>

#define FUZZ_MAX_FDS 1024

/* Which descriptors are open now (a bitmap over the first FUZZ_MAX_FDS). */
static void open_fds(unsigned char *set)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;

	memset(set, 0, FUZZ_MAX_FDS);
	if (!d)
		abort();
	while ((e = readdir(d))) {
		int fd = atoi(e->d_name);
		if (e->d_name[0] != '.' && fd >= 0 && fd < FUZZ_MAX_FDS)
			set[fd] = 1;
	}
	closedir(d);
}

/* Abort when a descriptor not in before leads outside dir. */
static void check_fds(const unsigned char *before, const char *dir)
{
	unsigned char now[FUZZ_MAX_FDS];
	char link[64], target[PATH_MAX];
	size_t n = strlen(dir);

	open_fds(now);
	for (int fd = 0; fd < FUZZ_MAX_FDS; fd++) {
		ssize_t len;
		if (!now[fd] || before[fd])
			continue;
		snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
		len = readlink(link, target, sizeof(target) - 1);
		if (len < 0)
			continue; /* the directory stream of open_fds, gone */
		target[len] = 0;
		if (strncmp(target, dir, n) || (target[n] && target[n] != '/')) {
			fprintf(stderr, "fuzz_confine: descriptor %d leads outside the sandbox %s: %s\n", fd,
				dir, target);
			abort();
		}
	}
}

static void make_sandbox(char *dir, size_t dir_bytes)
{
	char path[PATH_MAX + 16];
	int fd;

	snprintf(dir, dir_bytes, "%s/fuzz-confine.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(dir))
		abort();
	snprintf(path, sizeof(path), "%s/base.raw", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || fuzz_write_all(fd, (const uint8_t *)"benign data\n", 12) < 0)
		abort();
	close(fd);
	snprintf(path, sizeof(path), "%s/link", dir);
	if (symlink("/etc/passwd", path) < 0)
		abort();
	snprintf(path, sizeof(path), "%s/fifo", dir);
	if (mkfifo(path, 0600) < 0)
		abort();
}

static void remove_sandbox(const char *dir)
{
	static const char *const names[] = { "img", "base.raw", "link", "fifo" };
	char path[PATH_MAX + 16];

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s", dir, names[i]);
		unlink(path);
	}
	rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct imgfmt_open_opts o = { .format = NULL }; /* backing files opened, confined */
	unsigned char before[FUZZ_MAX_FDS];
	char dir[PATH_MAX], real[PATH_MAX], path[PATH_MAX + 8], err[IMGFMT_ERRMSG_BYTES];
	struct imgfmt_image *img;
	int fd;

	make_sandbox(dir, sizeof(dir));
	if (!realpath(dir, real))
		abort();
	snprintf(path, sizeof(path), "%s/img", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || fuzz_write_all(fd, data, size) < 0)
		abort();
	close(fd);
	open_fds(before);
	if (imgfmt_open(&img, path, &o, err, sizeof(err)) == 0) {
		check_fds(before, real);
		fuzz_exercise(img);
		check_fds(before, real);
		imgfmt_close(img);
	}
	remove_sandbox(dir);
	return 0;
}
