/* confine.c — the files an image names reach no file outside its directory.
 *
 * An image is untrusted input, and so is every name in it: a qcow2 backing
 * file, a VMDK parentFileNameHint or extent line, a VHD or VHDX parent
 * locator.  Each such file is opened with openat2() relative to an O_PATH
 * descriptor of the directory of the image that names it, with
 * RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS, and RESOLVE_NO_SYMLINKS unless
 * the caller allows symbolic links: the kernel, not a string check, keeps
 * the resolution inside.  An absolute or ../ name is refused unless the
 * caller allowed a directory it lies in (--allow-backing DIR); it is then
 * opened beneath that directory, with the same flags, by the rest of its
 * path.  The file is first opened O_PATH and must be a regular file (a
 * block device only when that exact device is allowed); only then is it
 * opened for I/O, O_NONBLOCK so that a FIFO swapped in cannot hang us, and
 * it must be the same inode.  A kernel without openat2 gets a refusal,
 * never an unconfined fallback.
 *
 * An image created by imgfmt_create() names the backing file its caller
 * gave: that one is the caller's choice, like the image itself, and is
 * opened by its plain path (with the same type checks).
 */
#include "driver.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#define CONFINE_RETRIES 8 /* -EAGAIN: a rename raced a ".." lookup */

/* Where a name is opened: beneath base by rel with resolve flags. */
struct where {
	int base;             /* AT_FDCWD or an O_PATH directory */
	bool own_base;        /* base is ours to close */
	char rel[PATH_MAX];
	uint64_t resolve;
};

/* openat2(), retried on -EAGAIN; without resolve flags (a name the caller
 * gave) a plain openat(). */
static int sys_openat2(int dirfd, const char *path, uint64_t flags, uint64_t resolve)
{
	struct open_how how = { .flags = flags, .resolve = resolve };

	if (!resolve) {
		int fd = openat(dirfd, path, (int)flags);
		return fd >= 0 ? fd : -errno;
	}
	for (int i = 0; i < CONFINE_RETRIES; i++) {
		long fd = syscall(SYS_openat2, dirfd, path, &how, sizeof(how));
		if (fd >= 0)
			return (int)fd;
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
	}
	return -EAGAIN;
}

/* Lexically normalize an absolute path: no "//", "." or ".." left. */
static int normalize(const char *in, char *out, size_t out_bytes)
{
	size_t o = 0;

	if (in[0] != '/' || out_bytes < 2)
		return -EINVAL;
	out[o++] = '/';
	while (*in) {
		const char *p = in;
		size_t n;
		while (*p == '/')
			p++;
		n = strcspn(p, "/");
		in = p + n;
		if (n == 0 || (n == 1 && p[0] == '.'))
			continue;
		if (n == 2 && p[0] == '.' && p[1] == '.') {
			while (o > 1 && out[o - 1] != '/')
				o--;
			if (o > 1)
				o--; /* the slash before the component */
			continue;
		}
		if (o > 1)
			out[o++] = '/';
		if (o + n + 1 > out_bytes)
			return -ENAMETOOLONG;
		memcpy(out + o, p, n);
		o += n;
	}
	out[o] = 0;
	return 0;
}

/* True when a relative name climbs out of its directory by "..". */
static bool climbs_out(const char *name)
{
	int level = 0;

	while (*name) {
		size_t n = strcspn(name, "/");
		if (n == 2 && name[0] == '.' && name[1] == '.') {
			if (--level < 0)
				return true;
		} else if (n && !(n == 1 && name[0] == '.')) {
			level++;
		}
		name += n;
		name += *name == '/';
	}
	return false;
}

/* The O_PATH descriptor of the directory of img (opened once: the image's
 * own path is its caller's, or was itself opened confined). */
static int image_dir(struct imgfmt_image *img)
{
	const char *slash = strrchr(img->path, '/');
	char dir[PATH_MAX];

	if (img->dirfd >= 0)
		return img->dirfd;
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == img->path)
		snprintf(dir, sizeof(dir), "/");
	else if (snprintf(dir, sizeof(dir), "%.*s", (int)(slash - img->path), img->path) >= (int)sizeof(dir))
		return -ENAMETOOLONG;
	img->dirfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	return img->dirfd >= 0 ? img->dirfd : -errno;
}

/* The real path of the directory dirfd (as the kernel names it). */
static int dir_path(int dirfd, char *out, size_t out_bytes)
{
	char link[64];
	ssize_t n;

	snprintf(link, sizeof(link), "/proc/self/fd/%d", dirfd);
	n = readlink(link, out, out_bytes - 1);
	if (n < 0)
		return -errno;
	out[n] = 0;
	return out[0] == '/' ? 0 : -ENOENT;
}

/* The absolute, normalized path name means, seen from directory dir. */
static int absolute_of(const char *dir, const char *name, char *out, size_t out_bytes)
{
	char joined[2 * PATH_MAX + 2];

	if (name[0] == '/')
		return normalize(name, out, out_bytes);
	snprintf(joined, sizeof(joined), "%s/%s", dir, name);
	return normalize(joined, out, out_bytes);
}

/* The allowed entry that abs lies in (or is, for a device): its form that
 * matched in *form, or -1. */
static int find_allowed(const struct imgfmt_image *img, const char *abs, char *form, size_t form_bytes)
{
	for (unsigned i = 0; i < img->n_allow_backing; i++) {
		const char *entry = img->allow_backing[i];
		char forms[2][PATH_MAX], cwd[PATH_MAX], joined[2 * PATH_MAX + 2];
		if (!entry || !*entry)
			continue;
		if (entry[0] != '/') {
			if (!getcwd(cwd, sizeof(cwd)))
				continue;
			snprintf(joined, sizeof(joined), "%s/%s", cwd, entry);
			entry = joined;
		}
		if (normalize(entry, forms[0], sizeof(forms[0])) < 0)
			continue;
		if (!realpath(entry, forms[1]))
			snprintf(forms[1], sizeof(forms[1]), "%s", forms[0]);
		for (int f = 0; f < 2; f++) {
			size_t n = strlen(forms[f]);
			bool root = n == 1;
			if (n < form_bytes && (!strcmp(abs, forms[f]) ||
					       (!strncmp(abs, forms[f], n) && (root || abs[n] == '/')))) {
				memcpy(form, forms[f], n + 1);
				return (int)i;
			}
		}
	}
	return -1;
}

/* Point w at an allowed directory for abs (or at the allowed file itself). */
static int beneath_allowed(const struct imgfmt_image *img, const char *abs, struct where *w)
{
	char form[PATH_MAX];
	size_t n;

	if (find_allowed(img, abs, form, sizeof(form)) < 0)
		return -EPERM;
	n = strlen(form);
	if (!strcmp(abs, form)) { /* the entry itself: the caller named this file */
		w->base = AT_FDCWD;
		w->resolve = 0;
		snprintf(w->rel, sizeof(w->rel), "%s", form);
		return 0;
	}
	w->base = open(form, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (w->base < 0)
		return -errno;
	w->own_base = true;
	snprintf(w->rel, sizeof(w->rel), "%s", abs + (n == 1 ? 1 : n + 1));
	return 0;
}

/* True when the block device st is one the caller named in allow_backing. */
static bool device_allowed(const struct imgfmt_image *img, const struct stat *st)
{
	for (unsigned i = 0; i < img->n_allow_backing; i++) {
		struct stat a;
		if (img->allow_backing[i] && stat(img->allow_backing[i], &a) == 0 && S_ISBLK(a.st_mode) &&
		    a.st_rdev == st->st_rdev)
			return true;
	}
	return false;
}

static const char *type_name(mode_t m)
{
	return S_ISFIFO(m) ? "FIFO" : S_ISCHR(m) ? "character device" : S_ISDIR(m) ? "directory" :
	       S_ISSOCK(m) ? "socket" : S_ISBLK(m) ? "block device" : "special file";
}

/* The directory part of abs, to suggest to --allow-backing. */
static void dir_of(const char *abs, char *out, size_t out_bytes)
{
	const char *slash = strrchr(abs, '/');

	if (!slash || slash == abs)
		snprintf(out, out_bytes, "/");
	else
		snprintf(out, out_bytes, "%.*s", (int)(slash - abs), abs);
}

/* The one-line refusal or failure for r at where w was resolved. */
static int report(struct imgfmt_image *img, const char *kind, const char *name, int r,
		  const char *abs)
{
	char dir[PATH_MAX];

	switch (r) {
	case -EXDEV:
	case -EPERM:
		if (abs[0]) {
			dir_of(abs, dir, sizeof(dir));
			return imgfmt_err(img, -EPERM,
					  "%s: %s \"%s\" is outside the image's directory (allow it with --allow-backing %s)",
					  img->path, kind, name, dir);
		}
		return imgfmt_err(img, -EPERM,
				  "%s: %s \"%s\" leads outside the image's directory through a symbolic link",
				  img->path, kind, name);
	case -ELOOP:
		if (!img->allow_symlinks)
			return imgfmt_err(img, -EPERM,
					  "%s: %s \"%s\" is a symbolic link or passes through one (allow it with --allow-symlinks)",
					  img->path, kind, name);
		return imgfmt_err(img, -EPERM,
				  "%s: %s \"%s\" passes through a /proc magic link or too many symbolic links",
				  img->path, kind, name);
	case -ENOSYS:
		return imgfmt_err(img, -ENOSYS,
				  "%s: %s \"%s\" is refused: this kernel has no openat2() to open it confined (Linux 5.6 or later)",
				  img->path, kind, name);
	default:
		return imgfmt_err(img, r, "%s: %s \"%s\": %s", img->path, kind, name, strerror(-r));
	}
}

/* Decide where name is opened; on refusal, record the message. */
static int locate(struct imgfmt_image *img, const char *kind, const char *name, struct where *w)
{
	uint64_t resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS |
			   (img->allow_symlinks ? 0 : RESOLVE_NO_SYMLINKS);
	char abs[PATH_MAX] = "", dir[PATH_MAX];
	size_t n;
	int dirfd, r;

	w->base = AT_FDCWD;
	w->own_base = false;
	w->resolve = resolve;
	if (img->trusted_names) {
		char *path = imgfmt_resolve_relative(img, name);
		if (!path)
			return imgfmt_err(img, -ENOMEM, "out of memory");
		snprintf(w->rel, sizeof(w->rel), "%s", path);
		free(path);
		w->resolve = 0;
		return 0;
	}
	if (strlen(name) >= sizeof(w->rel))
		return imgfmt_err(img, -ENAMETOOLONG, "%s: %s \"%.64s...\" is too long", img->path, kind, name);
	dirfd = image_dir(img);
	if (dirfd < 0)
		return imgfmt_err(img, dirfd, "%s: its directory: %s", img->path, strerror(-dirfd));
	if (name[0] != '/' && !climbs_out(name)) {
		w->base = dirfd;
		snprintf(w->rel, sizeof(w->rel), "%s", name);
		return 0;
	}
	r = dir_path(dirfd, dir, sizeof(dir));
	if (r == 0)
		r = absolute_of(dir, name, abs, sizeof(abs));
	if (r < 0)
		return report(img, kind, name, r, "");
	n = strlen(dir);
	if (!strncmp(abs, dir, n) && abs[n] == '/' && n > 1) {
		/* an absolute or ../ name that comes back beneath the image's own
		 * directory: opened from there by the rest of its path */
		w->base = dirfd;
		snprintf(w->rel, sizeof(w->rel), "%s", abs + n + 1);
		return 0;
	}
	r = beneath_allowed(img, abs, w);
	if (r < 0)
		return report(img, kind, name, r, abs);
	if (w->base == AT_FDCWD)
		w->resolve = 0;
	return 0;
}

/* The directory of the file opened at w, for the names it holds. */
static int open_parent_dir(const struct where *w, int *dirfd)
{
	const char *slash = strrchr(w->rel, '/');
	char dir[PATH_MAX];
	int fd;

	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == w->rel)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - w->rel), w->rel);
	fd = sys_openat2(w->base, dir, O_PATH | O_DIRECTORY | O_CLOEXEC, w->resolve);
	if (fd < 0)
		return fd;
	*dirfd = fd;
	return 0;
}

int imgfmt_confine_open(struct imgfmt_image *img, const char *kind, const char *name,
			bool writable, int *fd_out, int *dirfd_out, struct stat *st_out)
{
	struct where w;
	struct stat st, st2;
	int pathfd, fd, flags, r;

	r = locate(img, kind, name, &w);
	if (r < 0)
		return r;
	pathfd = sys_openat2(w.base, w.rel, O_PATH | O_CLOEXEC, w.resolve);
	if (pathfd < 0) {
		r = report(img, kind, name, pathfd, "");
		goto close_base;
	}
	if (fstat(pathfd, &st) < 0) {
		r = report(img, kind, name, -errno, "");
		goto close_pathfd;
	}
	if (S_ISBLK(st.st_mode) && !img->trusted_names && !device_allowed(img, &st)) {
		r = imgfmt_err(img, -EPERM,
			       "%s: %s \"%s\" is a block device (allow it by naming the device with --allow-backing)",
			       img->path, kind, name);
		goto close_pathfd;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		r = imgfmt_err(img, -EPERM, "%s: %s \"%s\" is a %s, not a regular file", img->path, kind,
			       name, type_name(st.st_mode));
		goto close_pathfd;
	}
	flags = (writable ? O_RDWR : O_RDONLY) | O_NONBLOCK | O_CLOEXEC | O_NOCTTY;
	fd = sys_openat2(w.base, w.rel, (uint64_t)flags, w.resolve);
	if (fd < 0) {
		r = report(img, kind, name, fd, "");
		goto close_pathfd;
	}
	if (fstat(fd, &st2) < 0 || st2.st_dev != st.st_dev || st2.st_ino != st.st_ino) {
		r = imgfmt_err(img, -EPERM, "%s: %s \"%s\" changed while it was being opened", img->path,
			       kind, name);
		goto close_fd;
	}
	if ((flags = fcntl(fd, F_GETFL)) < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) {
		r = report(img, kind, name, -errno, "");
		goto close_fd;
	}
	if (dirfd_out && (r = open_parent_dir(&w, dirfd_out)) < 0) {
		r = report(img, kind, name, r, "");
		goto close_fd;
	}
	close(pathfd);
	if (w.own_base)
		close(w.base);
	*fd_out = fd;
	if (st_out)
		*st_out = st2;
	return 0;

close_fd:
	close(fd);
close_pathfd:
	close(pathfd);
close_base:
	if (w.own_base)
		close(w.base);
	return r;
}
