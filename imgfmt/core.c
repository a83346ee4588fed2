/* The imgfmt core: probing, the image life cycle (open, create under a
 * temporary name, commit, close), request validation and fallbacks. */
#include "driver.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#define PROBE_HEAD_BYTES (64u * 1024u)

static const uint8_t zero_buf[64 * 1024];

int imgfmt_err(struct imgfmt_image *img, int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(img->err, sizeof(img->err), fmt, ap);
	va_end(ap);
	return code;
}

void imgfmt_warn(struct imgfmt_image *img, const char *fmt, ...)
{
	char msg[IMGFMT_ERRMSG_BYTES];
	va_list ap;

	if (!img->log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	img->log(img->log_opaque, msg);
}

/* ---- the driver table ---- */

static const struct {
	const char *alias, *name;
} aliases[] = {
	{ "vhd", "vpc" }, { "qcow", "qcow2" }, { "img", "raw" }, { "iso", "raw" },
};

const char *imgfmt_driver_canonical(const char *name)
{
	for (size_t i = 0; i < sizeof(aliases) / sizeof(aliases[0]); i++)
		if (!strcmp(name, aliases[i].alias))
			return aliases[i].name;
	for (unsigned i = 0; i < imgfmt_n_drivers; i++)
		if (!strcmp(name, imgfmt_drivers[i]->name))
			return imgfmt_drivers[i]->name;
	return NULL;
}

const struct imgfmt_driver *imgfmt_find_driver(const char *name)
{
	const char *canon = imgfmt_driver_canonical(name);

	for (unsigned i = 0; canon && i < imgfmt_n_drivers; i++)
		if (!strcmp(canon, imgfmt_drivers[i]->name))
			return imgfmt_drivers[i];
	return NULL;
}

const char *imgfmt_driver_name(unsigned i)
{
	return i < imgfmt_n_drivers ? imgfmt_drivers[i]->name : NULL;
}

bool imgfmt_driver_can_create(const char *format)
{
	const struct imgfmt_driver *d = imgfmt_find_driver(format);

	return d && d->create;
}

const char *imgfmt_format_from_filename(const char *path)
{
	const char *dot = strrchr(path, '.');

	const char *slash = strrchr(path, '/');
	char ext[16];
	size_t i;

	if (imgfmt_is_nbd_uri(path))
		return "nbd";
	if (!dot || (slash && dot < slash) || strlen(dot + 1) >= sizeof(ext))
		return NULL;
	for (i = 0; dot[1 + i]; i++)
		ext[i] = (char)tolower((unsigned char)dot[1 + i]);
	ext[i] = 0;
	return imgfmt_driver_canonical(ext);
}

/* ---- probing ---- */

#define PROBE_TAIL_BYTES 1024u

/* The first 64 KiB and the last KiB of fd, for the probes; tail must hold
 * PROBE_TAIL_BYTES; pb->head is malloc'd (free it). */
static int read_probe_buf(int fd, bool is_blk, struct imgfmt_probe_buf *pb, uint8_t *tail,
			  char *err, size_t err_bytes, const char *path)
{
	uint8_t *head = malloc(PROBE_HEAD_BYTES);
	int r;

	*pb = (struct imgfmt_probe_buf){ .head = head, .tail_wide = tail, .is_block_device = is_blk };
	if (!head) {
		snprintf(err, err_bytes, "out of memory");
		return -ENOMEM;
	}
	r = imgfmt_fd_size(fd, &pb->file_bytes);
	if (r == 0)
		r = imgfmt_fd_pread_zfill(fd, head, PROBE_HEAD_BYTES, 0);
	pb->head_bytes = pb->file_bytes < PROBE_HEAD_BYTES ? pb->file_bytes : PROBE_HEAD_BYTES;
	pb->tail_wide_bytes = pb->file_bytes < PROBE_TAIL_BYTES ? pb->file_bytes : PROBE_TAIL_BYTES;
	pb->tail_bytes = pb->tail_wide_bytes < 512 ? pb->tail_wide_bytes : 512;
	pb->tail = tail + (pb->tail_wide_bytes - pb->tail_bytes);
	if (r == 0)
		r = imgfmt_fd_pread_zfill(fd, tail, pb->tail_wide_bytes,
					  pb->file_bytes - pb->tail_wide_bytes);
	if (r < 0) {
		snprintf(err, err_bytes, "%s: reading the header: %s", path, strerror(-r));
		free(head);
		pb->head = NULL;
	}
	return r;
}

/* The driver for an image opened without a format: the one whose signature
 * it carries; a signature of a format p2v does not read is refused naming
 * it; raw only for a file with no signature at all, read-only (with a note
 * through log), as writing to a guessed raw image is what lets a guest turn
 * its disk into another format (CVE-2008-2004). */
static const struct imgfmt_driver *probe(int fd, bool is_blk, const struct imgfmt_open_opts *opts,
					 char *err, size_t err_bytes, const char *path)
{
	uint8_t tail[PROBE_TAIL_BYTES];
	struct imgfmt_probe_buf pb;
	const struct imgfmt_driver *best = NULL;
	const char *sig;
	int best_score = 0;

	if (read_probe_buf(fd, is_blk, &pb, tail, err, err_bytes, path) < 0)
		return NULL;
	for (unsigned i = 0; i < imgfmt_n_drivers; i++) {
		int s = imgfmt_drivers[i]->probe ? imgfmt_drivers[i]->probe(&pb) : 0;
		if (s > best_score) {
			best_score = s;
			best = imgfmt_drivers[i];
		}
	}
	sig = imgfmt_probe_signature(&pb);
	free((void *)pb.head);
	if (best)
		return best;
	for (unsigned i = 0; sig && i < imgfmt_n_drivers; i++)
		if (!strcmp(sig, imgfmt_drivers[i]->name))
			return imgfmt_drivers[i]; /* its own open says what is wrong */
	if (sig) {
		snprintf(err, err_bytes, "%s: this is a %s image, which p2v does not read", path, sig);
		return NULL;
	}
	if (opts->flags & IMGFMT_OPEN_RDWR) {
		snprintf(err, err_bytes, "%s: no image signature; give -f raw to open it for writing as a raw disk",
			 path);
		return NULL;
	}
	if (opts->log) {
		char note[IMGFMT_ERRMSG_BYTES];
		snprintf(note, sizeof(note), "%s has no image signature; reading it as raw (give -f raw to say so)",
			 path);
		opts->log(opts->log_opaque, note);
	}
	return &imgfmt_raw_driver;
}

static bool starts_with(const uint8_t *buf, size_t len, const char *magic)
{
	size_t n = strlen(magic);

	return len >= n && !memcmp(buf, magic, n);
}

/* s with bytes outside printable ASCII as \\xNN. */
static void escape(const char *s, char *out, size_t out_bytes)
{
	size_t n = 0;

	for (; *s && n + 5 < out_bytes; s++) {
		unsigned char c = (unsigned char)*s;
		n += (size_t)snprintf(out + n, out_bytes - n, c >= 0x20 && c < 0x7f ? "%c" : "\\x%02x", c);
	}
	out[n] = 0;
}

/* A format named with -f must find its signature (raw has none to find):
 * otherwise say so, instead of a driver's complaint about a header field
 * that is really some other format's data. */
static int check_forced(int fd, bool is_blk, const struct imgfmt_driver *drv, char *err,
			size_t err_bytes, const char *path)
{
	uint8_t tail[PROBE_TAIL_BYTES], shown[8];
	struct imgfmt_probe_buf pb;
	bool found = false;
	char magic[64];

	if (!drv->magic)
		return 0;
	if (read_probe_buf(fd, is_blk, &pb, tail, err, err_bytes, path) < 0)
		return -EIO;
	for (size_t i = 0; drv->magic[i]; i++)
		found = found || starts_with(pb.head, pb.head_bytes, drv->magic[i]) ||
			starts_with(pb.tail, pb.tail_bytes, drv->magic[i]);
	for (size_t i = 0; i < sizeof(shown); i++)
		shown[i] = i < pb.head_bytes && pb.head[i] >= 0x20 && pb.head[i] < 0x7f ? pb.head[i] : '.';
	escape(drv->magic[0], magic, sizeof(magic));
	if (!found)
		snprintf(err, err_bytes, "%s: not a %s image (it does not start with %s's signature \"%s\"; "
			 "its first bytes are %02x %02x %02x %02x \"%.8s\")", path, drv->name, drv->name,
			 magic, pb.head_bytes > 0 ? pb.head[0] : 0, pb.head_bytes > 1 ? pb.head[1] : 0,
			 pb.head_bytes > 2 ? pb.head[2] : 0, pb.head_bytes > 3 ? pb.head[3] : 0,
			 (const char *)shown);
	free((void *)pb.head);
	return found ? 0 : -EINVAL;
}

/* ---- life cycle ---- */

static struct imgfmt_image *image_new(const char *path, int fd, const struct imgfmt_driver *drv)
{
	struct imgfmt_image *img = calloc(1, sizeof(*img));

	if (!img)
		return NULL;
	img->path = strdup(path);
	if (!img->path) {
		free(img);
		return NULL;
	}
	img->fd = fd;
	img->dirfd = -1;
	img->drv = drv;
	return img;
}

static void image_free(struct imgfmt_image *img)
{
	if (img->drv && img->drv->close && img->priv)
		img->drv->close(img);
	if (img->fd >= 0)
		close(img->fd);
	if (img->dirfd >= 0)
		close(img->dirfd);
	if (img->tmp_path && !img->committed)
		unlink(img->tmp_path);
	if (img->backing)
		imgfmt_close(img->backing);
	free(img->tmp_path);
	free(img->path);
	free(img);
}

static void set_err(char *err, size_t err_bytes, const char *msg, int r)
{
	if (!err || !err_bytes)
		return;
	if (msg && *msg)
		snprintf(err, err_bytes, "%s", msg);
	else
		snprintf(err, err_bytes, "%s", strerror(-r));
}

/* After a driver's open/create: hand the image out, or report and free it. */
static int hand_out(struct imgfmt_image **out, struct imgfmt_image *img, int r,
		    char *err, size_t err_bytes)
{
	if (r < 0) {
		if (!img->err[0])
			snprintf(img->err, sizeof(img->err), "%s: %s", img->path, strerror(-r));
		set_err(err, err_bytes, img->err, r);
		image_free(img);
		return r;
	}
	*out = img;
	return 0;
}

/* Open the image in fd (its stat st; dirfd: O_PATH of its directory, or
 * -1), named path, at depth in a chain below above.  Takes fd and dirfd. */
static int open_file(struct imgfmt_image **out, const char *path, int fd, int dirfd,
		     const struct stat *st, const struct imgfmt_open_opts *opts,
		     const struct imgfmt_image *above, char *err, size_t err_bytes)
{
	const struct imgfmt_driver *drv;
	struct imgfmt_image *img;
	char perr[IMGFMT_ERRMSG_BYTES] = "";
	int r;

	if (!(opts->flags & IMGFMT_OPEN_FORCE_SHARE)) {
		char lmsg[IMGFMT_ERRMSG_BYTES - 64];
		r = imgfmt_lock_fd(fd, opts->flags & IMGFMT_OPEN_RDWR, lmsg, sizeof(lmsg));
		if (r < 0) {
			snprintf(perr, sizeof(perr), "%s: %s", path, lmsg);
			goto close_fds;
		}
	}
	if (opts->format) {
		drv = imgfmt_find_driver(opts->format);
		if (!drv) {
			r = -EINVAL;
			snprintf(perr, sizeof(perr), "unknown format '%s'", opts->format);
			goto close_fds;
		}
		r = check_forced(fd, S_ISBLK(st->st_mode), drv, perr, sizeof(perr), path);
		if (r < 0)
			goto close_fds;
	} else {
		drv = probe(fd, S_ISBLK(st->st_mode), opts, perr, sizeof(perr), path);
		if (!drv) {
			r = -EINVAL;
			goto close_fds;
		}
	}
	if (drv == &imgfmt_nbd_driver) {
		r = -EINVAL;
		snprintf(perr, sizeof(perr), "%s: format nbd is for nbd:// URIs only", path);
		goto close_fds;
	}
	if (!drv->open) {
		r = -ENOTSUP;
		snprintf(perr, sizeof(perr), "%s: format %s cannot be read yet", path, drv->name);
		goto close_fds;
	}
	img = image_new(path, fd, drv);
	if (!img) {
		r = -ENOMEM;
		goto close_fds;
	}
	img->dirfd = dirfd;
	img->st_dev = st->st_dev;
	img->st_ino = st->st_ino;
	img->above = above;
	img->allow_backing = opts->allow_backing;
	img->n_allow_backing = opts->allow_backing ? opts->n_allow_backing : 0;
	img->allow_symlinks = opts->allow_symlinks;
	img->flags = opts->flags;
	img->writable = opts->flags & IMGFMT_OPEN_RDWR;
	img->is_block_device = S_ISBLK(st->st_mode);
	img->depth = above ? above->depth + 1 : 0;
	img->log = opts->log;
	img->log_opaque = opts->log_opaque;
	img->cluster_bytes = IMGFMT_SECTOR_BYTES;
	img->finished = !img->writable;
	return hand_out(out, img, drv->open(img), err, err_bytes);

close_fds:
	close(fd);
	if (dirfd >= 0)
		close(dirfd);
	set_err(err, err_bytes, perr, r);
	return r;
}

/* An NBD URI: the export through the nbd driver, named without the
 * URI's query.  rdwr: opened for writing; fresh-created targets pass
 * create_size_bytes (the export must hold it), else UINT64_MAX. */
static int open_uri(struct imgfmt_image **out, const char *uri, const char *format,
		    unsigned flags, const struct imgfmt_open_opts *opts, uint64_t create_size_bytes,
		    char *err, size_t err_bytes)
{
	struct imgfmt_image *img;
	char *name = imgfmt_display_name(uri);
	int r;

	if (!name) {
		set_err(err, err_bytes, NULL, -ENOMEM);
		return -ENOMEM;
	}
	if (format && strcmp(format, "raw") && strcmp(format, "nbd")) {
		snprintf(err, err_bytes, "%s: an NBD export holds raw content, not %s", name, format);
		free(name);
		return -EINVAL;
	}
	img = image_new(name, -1, &imgfmt_nbd_driver);
	free(name);
	if (!img) {
		set_err(err, err_bytes, NULL, -ENOMEM);
		return -ENOMEM;
	}
	img->uri = uri;
	img->flags = flags;
	if (opts) {
		img->log = opts->log;
		img->log_opaque = opts->log_opaque;
	}
	img->writable = flags & IMGFMT_OPEN_RDWR;
	img->finished = !img->writable;
	img->cluster_bytes = IMGFMT_SECTOR_BYTES;
	r = create_size_bytes == UINT64_MAX ? imgfmt_nbd_driver.open(img)
					    : imgfmt_nbd_driver.create(img, create_size_bytes, NULL);
	img->uri = NULL;
	return hand_out(out, img, r, err, err_bytes);
}

int imgfmt_open(struct imgfmt_image **out, const char *path,
		const struct imgfmt_open_opts *opts, char *err, size_t err_bytes)
{
	static const struct imgfmt_open_opts defaults;
	char perr[IMGFMT_ERRMSG_BYTES] = "";
	struct stat st;
	int fd, r;

	if (!opts)
		opts = &defaults;
	if (imgfmt_is_nbd_uri(path))
		return open_uri(out, path, opts->format, opts->flags, opts, UINT64_MAX, err,
				err_bytes);
	fd = open(path, ((opts->flags & IMGFMT_OPEN_RDWR) ? O_RDWR : O_RDONLY) | O_CLOEXEC);
	if (fd < 0) {
		r = -errno;
		snprintf(perr, sizeof(perr), "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (fstat(fd, &st) < 0) {
		r = -errno;
		snprintf(perr, sizeof(perr), "%s: %s", path, strerror(errno));
		goto close_fd;
	}
	if (S_ISDIR(st.st_mode)) {
		r = -EISDIR;
		snprintf(perr, sizeof(perr), "%s: is a directory", path);
		goto close_fd;
	}
	return open_file(out, path, fd, -1, &st, opts, NULL, err, err_bytes);

close_fd:
	close(fd);
fail:
	set_err(err, err_bytes, perr, r);
	return r;
}

/* As QEMU's path_combine(): "dir/img" and "b" -> "dir/b"; "img" and "b"
 * -> "b", so that paths print as qemu-img prints them. */
char *imgfmt_resolve_relative(const struct imgfmt_image *img, const char *name)
{
	const char *slash = strrchr(img->path, '/');
	char *res = NULL;

	if (name[0] == '/' || !slash)
		return strdup(name);
	if (asprintf(&res, "%.*s%s", (int)(slash - img->path + 1), img->path, name) < 0)
		res = NULL;
	return res;
}

/* A backing name must be a plain file path: no "json:{...}", no "nbd:",
 * "http://", "file:" or other protocol prefix before the first slash. */
static bool plain_path(const char *name)
{
	const char *colon = strchr(name, ':');
	const char *slash = strchr(name, '/');

	if (!*name)
		return false;
	return !colon || (slash && slash < colon);
}

/* When st is already in the chain that ends at img: "backing chain loops:
 * a -> b -> a" on img, -ELOOP.  Else 0. */
static int refuse_loop(struct imgfmt_image *img, const struct stat *st, const char *path)
{
	const struct imgfmt_image *chain[IMGFMT_MAX_BACKING_DEPTH + 1];
	const struct imgfmt_image *p;
	char msg[IMGFMT_ERRMSG_BYTES];
	size_t n = 0, o;

	for (p = img; p; p = p->above)
		if (p->st_dev == st->st_dev && p->st_ino == st->st_ino)
			break;
	if (!p)
		return 0;
	for (p = img; p && n < IMGFMT_MAX_BACKING_DEPTH + 1; p = p->above)
		chain[n++] = p;
	o = (size_t)snprintf(msg, sizeof(msg), "backing chain loops:");
	while (n-- > 0 && o < sizeof(msg))
		o += (size_t)snprintf(msg + o, sizeof(msg) - o, " %s ->", chain[n]->path);
	if (o < sizeof(msg))
		snprintf(msg + o, sizeof(msg) - o, " %s", path);
	return imgfmt_err(img, -ELOOP, "%s", msg);
}

int imgfmt_open_backing(struct imgfmt_image *img, const char *name, const char *format)
{
	struct imgfmt_open_opts o = {
		.format = (format && *format) ? format : NULL,
		.flags = img->flags & (IMGFMT_OPEN_FORCE_SHARE | IMGFMT_OPEN_FORCE_SHARE_BACKING)
				 ? IMGFMT_OPEN_FORCE_SHARE : 0,
		.log = img->log,
		.log_opaque = img->log_opaque,
		.allow_backing = img->allow_backing,
		.n_allow_backing = img->n_allow_backing,
		.allow_symlinks = img->allow_symlinks,
	};
	char err[IMGFMT_ERRMSG_BYTES];
	struct stat st;
	char *path;
	int fd, dirfd, r;

	if (!plain_path(name)) {
		/* an NBD URI's query may name keys: not shown */
		int n = imgfmt_is_nbd_uri(name) ? (int)strcspn(name, "?#") : (int)strlen(name);
		return imgfmt_err(img, -EPERM,
				  "%s: backing file name '%.*s' is not a plain path (protocols and json: are refused)",
				  img->path, n, name);
	}
	if (img->depth + 1 >= IMGFMT_MAX_BACKING_DEPTH)
		return imgfmt_err(img, -ELOOP, "%s: backing chain is longer than the limit of %d images",
				  img->path, IMGFMT_MAX_BACKING_DEPTH);
	if (o.format && !imgfmt_find_driver(o.format))
		return imgfmt_err(img, -EINVAL, "%s: backing format '%s' is unknown", img->path, o.format);
	r = imgfmt_confine_open(img, "backing file", name, false, &fd, &dirfd, &st);
	if (r < 0)
		return r;
	path = imgfmt_resolve_relative(img, name);
	if (!path) {
		r = imgfmt_err(img, -ENOMEM, "out of memory");
		goto close_fds;
	}
	r = refuse_loop(img, &st, path);
	if (r < 0)
		goto free_path;
	r = open_file(&img->backing, path, fd, dirfd, &st, &o, img, err, sizeof(err));
	free(path);
	if (r < 0) /* the backing file's own message, as it is */
		return imgfmt_err(img, r, "%s", err);
	return 0;

free_path:
	free(path);
close_fds:
	close(fd);
	close(dirfd);
	return r;
}

static int create_target(const char *path, unsigned flags, char **tmp_path, bool *is_blk,
			 char *err, size_t err_bytes)
{
	struct stat st;
	char *copy, *base, *dir;
	int fd;

	*tmp_path = NULL;
	*is_blk = stat(path, &st) == 0 && S_ISBLK(st.st_mode);
	if (*is_blk && !(flags & IMGFMT_CREATE_FORCE)) {
		snprintf(err, err_bytes, "%s is a block device: its content would be overwritten (use --force)",
			 path);
		return -EEXIST;
	}
	if (*is_blk || (flags & IMGFMT_CREATE_IN_PLACE)) {
		fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | (*is_blk ? 0 : O_TRUNC), 0644);
		if (fd < 0)
			snprintf(err, err_bytes, "%s: %s", path, strerror(errno));
		return fd < 0 ? -errno : fd;
	}
	if (!(flags & IMGFMT_CREATE_FORCE) && lstat(path, &st) == 0) {
		snprintf(err, err_bytes, "%s already exists (use --force to replace it)", path);
		return -EEXIST;
	}
	copy = strdup(path);
	base = copy ? strdup(basename(copy)) : NULL;
	dir = copy ? dirname(copy) : NULL;
	if (!base || asprintf(tmp_path, "%s/.%s.p2v-tmp-XXXXXX", dir, base) < 0) {
		free(copy);
		free(base);
		*tmp_path = NULL;
		snprintf(err, err_bytes, "out of memory");
		return -ENOMEM;
	}
	free(copy);
	free(base);
	fd = mkostemp(*tmp_path, O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		snprintf(err, err_bytes, "%s: cannot create a temporary file beside it: %s", path,
			 strerror(e));
		free(*tmp_path);
		*tmp_path = NULL;
		return -e;
	}
	return fd;
}

int imgfmt_create(struct imgfmt_image **out, const char *path, const char *format,
		  uint64_t size_bytes, const char *options, unsigned flags,
		  char *err, size_t err_bytes)
{
	char perr[IMGFMT_ERRMSG_BYTES] = "";
	const struct imgfmt_driver *drv = imgfmt_find_driver(format ? format : "");
	struct imgfmt_optval *ov;
	struct imgfmt_image *img;
	char *tmp_path;
	bool is_blk;
	int fd, r;

	if (imgfmt_is_nbd_uri(path) && options && *options) {
		char *name = imgfmt_display_name(path);
		snprintf(perr, sizeof(perr), "%s: an NBD export is written as it is: no create options (-o)",
			 name ? name : "NBD export");
		free(name);
		set_err(err, err_bytes, perr, -EINVAL);
		return -EINVAL;
	}
	if (imgfmt_is_nbd_uri(path))
		return open_uri(out, path, format, IMGFMT_OPEN_RDWR |
				((flags & IMGFMT_CREATE_INSECURE_NBD) ? IMGFMT_OPEN_INSECURE_NBD : 0),
				NULL, size_bytes, err, err_bytes);
	if (drv == &imgfmt_nbd_driver) {
		snprintf(perr, sizeof(perr), "%s: format nbd is for nbd:// URIs only", path);
		set_err(err, err_bytes, perr, -EINVAL);
		return -EINVAL;
	}
	if (!drv || !drv->create) {
		snprintf(perr, sizeof(perr), drv ? "format %s cannot be written" : "unknown format '%s'",
			 drv ? drv->name : (format ? format : "(none)"));
		set_err(err, err_bytes, perr, -EINVAL);
		return -EINVAL;
	}
	r = imgfmt_optvals_parse(drv, options, &ov, perr, sizeof(perr));
	if (r < 0) {
		set_err(err, err_bytes, perr, r);
		return r;
	}
	fd = create_target(path, flags, &tmp_path, &is_blk, perr, sizeof(perr));
	if (fd < 0) {
		imgfmt_optvals_free(drv, ov);
		set_err(err, err_bytes, perr, fd);
		return fd;
	}
	img = image_new(path, fd, drv);
	if (!img) {
		close(fd);
		if (tmp_path)
			unlink(tmp_path);
		free(tmp_path);
		imgfmt_optvals_free(drv, ov);
		set_err(err, err_bytes, NULL, -ENOMEM);
		return -ENOMEM;
	}
	img->tmp_path = tmp_path;
	img->trusted_names = true; /* a backing file named by the caller */
	img->writable = true;
	img->flags = IMGFMT_OPEN_RDWR;
	img->fresh = !is_blk;
	img->is_block_device = is_blk;
	img->cluster_bytes = IMGFMT_SECTOR_BYTES;
	r = drv->create(img, size_bytes, ov);
	imgfmt_optvals_free(drv, ov);
	return hand_out(out, img, r, err, err_bytes);
}

static int finish(struct imgfmt_image *img)
{
	int r = 0;

	if (img->finished)
		return 0;
	img->finished = true;
	if (img->drv->finish)
		r = img->drv->finish(img);
	else if (img->drv->flush)
		r = img->drv->flush(img);
	if (r == 0 && img->fd >= 0 && fsync(img->fd) < 0 && errno != EINVAL)
		r = imgfmt_err(img, -errno, "%s: fsync: %s", img->path, strerror(errno));
	return r;
}

static mode_t default_mode(void)
{
	mode_t mask = umask(022);

	umask(mask);
	return 0666 & ~mask;
}

static void fsync_dir_of(const char *path)
{
	char *copy = strdup(path);
	int dfd;

	if (!copy)
		return;
	dfd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	free(copy);
}

int imgfmt_commit(struct imgfmt_image *img)
{
	int r;

	if (!img->writable)
		return 0;
	r = finish(img);
	if (r < 0)
		return r;
	if (img->tmp_path && !img->committed) {
		if (fchmod(img->fd, default_mode()) < 0)
			return imgfmt_err(img, -errno, "%s: chmod: %s", img->tmp_path, strerror(errno));
		if (rename(img->tmp_path, img->path) < 0)
			return imgfmt_err(img, -errno, "renaming %s to %s: %s", img->tmp_path,
					  img->path, strerror(errno));
		fsync_dir_of(img->path);
	}
	img->committed = true;
	return 0;
}

int imgfmt_close(struct imgfmt_image *img)
{
	int r = 0;

	if (!img)
		return 0;
	if (img->writable && !img->tmp_path)
		r = finish(img);
	image_free(img);
	return r;
}

/* ---- requests ---- */

static int check_range(struct imgfmt_image *img, uint64_t len, uint64_t off)
{
	if (off > img->size_bytes || len > img->size_bytes - off)
		return imgfmt_err(img, -EINVAL,
				  "request of %llu bytes at offset %llu is beyond the image size %llu",
				  (unsigned long long)len, (unsigned long long)off,
				  (unsigned long long)img->size_bytes);
	return 0;
}

static int check_write(struct imgfmt_image *img, uint64_t len, uint64_t off)
{
	if (!img->writable)
		return imgfmt_err(img, -EBADF, "%s is open read-only", img->path);
	return check_range(img, len, off);
}

int imgfmt_pread(struct imgfmt_image *img, void *buf, uint64_t len, uint64_t off)
{
	int r = check_range(img, len, off);

	if (r < 0 || len == 0)
		return r;
	return img->drv->pread(img, buf, len, off);
}

int imgfmt_pread_batch(struct imgfmt_image *img, const struct imgfmt_read_req *reqs, size_t n)
{
	int r = 0;

	for (size_t i = 0; i < n && r == 0; i++)
		r = check_range(img, reqs[i].len, reqs[i].off);
	if (r < 0 || n == 0)
		return r;
	if (img->drv->pread_batch)
		return img->drv->pread_batch(img, reqs, n);
	for (size_t i = 0; i < n && r == 0; i++)
		r = reqs[i].len ? img->drv->pread(img, reqs[i].buf, reqs[i].len, reqs[i].off) : 0;
	return r;
}

int imgfmt_pwrite(struct imgfmt_image *img, const void *buf, uint64_t len, uint64_t off)
{
	int r = check_write(img, len, off);

	if (r < 0 || len == 0)
		return r;
	if (!img->drv->pwrite)
		return imgfmt_err(img, -ENOTSUP, "format %s cannot be written", img->drv->name);
	return img->drv->pwrite(img, buf, len, off);
}

int imgfmt_write_zeroes(struct imgfmt_image *img, uint64_t len, uint64_t off)
{
	int r = check_write(img, len, off);

	if (r < 0 || len == 0)
		return r;
	if (img->drv->write_zeroes)
		return img->drv->write_zeroes(img, len, off);
	if (!img->drv->pwrite)
		return imgfmt_err(img, -ENOTSUP, "format %s cannot be written", img->drv->name);
	while (len > 0 && r == 0) {
		uint64_t n = len < sizeof(zero_buf) ? len : sizeof(zero_buf);
		r = img->drv->pwrite(img, zero_buf, n, off);
		len -= n;
		off += n;
	}
	return r;
}

int imgfmt_flush(struct imgfmt_image *img)
{
	if (!img->writable)
		return 0;
	if (img->drv->flush)
		return img->drv->flush(img);
	if (fdatasync(img->fd) < 0 && errno != EINVAL)
		return imgfmt_err(img, -errno, "%s: fdatasync: %s", img->path, strerror(errno));
	return 0;
}

int imgfmt_block_status(struct imgfmt_image *img, uint64_t off, uint64_t len,
			struct imgfmt_extent *ext)
{
	int r = check_range(img, len, off);

	if (r < 0)
		return r;
	if (len == 0)
		return imgfmt_err(img, -EINVAL, "block status of an empty range at %llu",
				  (unsigned long long)off);
	ext->offset_bytes = off;
	ext->length_bytes = len;
	ext->type = IMGFMT_EXTENT_DATA;
	ext->depth = 0;
	ext->host_offset_bytes = IMGFMT_NO_HOST_OFFSET;
	if (!img->drv->block_status)
		return 0;
	r = img->drv->block_status(img, off, len, ext);
	if (r < 0)
		return r;
	if (ext->offset_bytes != off || ext->length_bytes == 0)
		return imgfmt_err(img, -EIO, "%s: driver returned an empty extent at %llu",
				  img->drv->name, (unsigned long long)off);
	if (ext->length_bytes > len)
		ext->length_bytes = len;
	return 0;
}

bool imgfmt_can_compress(const struct imgfmt_image *img)
{
	return img->drv->compress && img->drv->pwrite_compressed;
}

int imgfmt_compress(const struct imgfmt_image *img, const void *in, size_t in_bytes,
		    void *out, size_t out_cap, size_t *out_bytes)
{
	if (!imgfmt_can_compress(img))
		return -ENOTSUP;
	return img->drv->compress(img, in, in_bytes, out, out_cap, out_bytes);
}

int imgfmt_pwrite_compressed(struct imgfmt_image *img, const void *buf, size_t len,
			     uint64_t off)
{
	int r = check_write(img, 1, off);

	if (r < 0)
		return r;
	if (off % img->cluster_bytes)
		return imgfmt_err(img, -EINVAL, "compressed write at %llu is not cluster-aligned",
				  (unsigned long long)off);
	if (!imgfmt_can_compress(img))
		return imgfmt_err(img, -ENOTSUP, "format %s does not write compressed data",
				  img->drv->name);
	return img->drv->pwrite_compressed(img, buf, len, off);
}

/* ---- in-place changes ---- */

int imgfmt_resize(struct imgfmt_image *img, uint64_t size_bytes, bool shrink_ok)
{
	if (!img->writable)
		return imgfmt_err(img, -EBADF, "%s is open read-only", img->path);
	if (!img->drv->resize)
		return imgfmt_err(img, -ENOTSUP, "%s: format %s cannot be resized", img->path, img->drv->name);
	if (size_bytes < img->size_bytes && !shrink_ok)
		return imgfmt_err(img, -EINVAL, "%s: shrinking from %llu to %llu bytes discards what lies past "
				  "the new end; ask for it explicitly (--shrink)", img->path,
				  (unsigned long long)img->size_bytes, (unsigned long long)size_bytes);
	if (size_bytes == img->size_bytes)
		return 0;
	return img->drv->resize(img, size_bytes);
}

static int amend(struct imgfmt_image *img, const char *options, bool check_only)
{
	char err[IMGFMT_ERRMSG_BYTES];
	struct imgfmt_optval *ov;
	int r;

	if (!img->drv->amend)
		return imgfmt_err(img, -ENOTSUP, "Format driver '%s' does not support option amendment",
				  img->drv->name);
	r = imgfmt_optvals_parse_table(img->drv, img->drv->amend_opts, options, &ov, err, sizeof(err));
	if (r < 0)
		return imgfmt_err(img, r, "%s", err);
	r = img->drv->amend(img, ov, check_only);
	imgfmt_optvals_free_table(img->drv->amend_opts, ov);
	return r;
}

int imgfmt_amend_check(struct imgfmt_image *img, const char *options)
{
	return amend(img, options, true);
}

int imgfmt_amend(struct imgfmt_image *img, const char *options)
{
	if (!img->writable)
		return imgfmt_err(img, -EBADF, "%s is open read-only", img->path);
	return amend(img, options, false);
}

bool imgfmt_can_set_backing(const struct imgfmt_image *img)
{
	return img->drv->set_backing != NULL;
}

int imgfmt_set_backing(struct imgfmt_image *img, const char *name, const char *fmt)
{
	int r;

	if (!img->writable)
		return imgfmt_err(img, -EBADF, "%s is open read-only", img->path);
	if (!img->drv->set_backing)
		return imgfmt_err(img, -ENOTSUP, "%s: p2v cannot change the backing file of a %s image (qcow2 only)",
				  img->path, img->drv->name);
	if (*name && !plain_path(name))
		return imgfmt_err(img, -EPERM,
				  "%s: backing file name '%s' is not a plain path (protocols and json: are refused)",
				  img->path, name);
	r = img->drv->set_backing(img, name, *name && fmt ? fmt : "");
	if (r == 0 && img->backing) {
		imgfmt_close(img->backing);
		img->backing = NULL;
	}
	return r;
}

int imgfmt_open_as_backing(struct imgfmt_image *img, const char *name, const char *fmt,
			   struct imgfmt_image **out)
{
	struct imgfmt_image *keep = img->backing;
	int r;

	img->backing = NULL;
	r = imgfmt_open_backing(img, name, fmt);
	*out = r < 0 ? NULL : img->backing;
	img->backing = keep;
	return r;
}

int imgfmt_discard(struct imgfmt_image *img, uint64_t len, uint64_t off)
{
	int r = check_write(img, len, off);

	if (r < 0)
		return r;
	if (!img->drv->discard)
		return imgfmt_err(img, -ENOTSUP, "%s: p2v cannot empty a %s image (qcow2 only)", img->path,
				  img->drv->name);
	return img->drv->discard(img, len, off);
}

bool imgfmt_same_file(const struct imgfmt_image *a, const struct imgfmt_image *b)
{
	return a->st_dev == b->st_dev && a->st_ino == b->st_ino;
}

static int no_snapshots(struct imgfmt_image *img)
{
	return imgfmt_err(img, -ENOTSUP, "%s: format %s has no internal snapshots (qcow2 has)", img->path,
			  img->drv->name);
}

static int snapshot_writable(struct imgfmt_image *img, const char *what)
{
	if (!what || !*what)
		return imgfmt_err(img, -EINVAL, "%s: a snapshot needs a name", img->path);
	if (!img->writable)
		return imgfmt_err(img, -EBADF, "%s is open read-only", img->path);
	return 0;
}

int imgfmt_snapshot_list(struct imgfmt_image *img, struct imgfmt_snapshot **list, unsigned *n)
{
	*list = NULL;
	*n = 0;
	return img->drv->snapshot_list ? img->drv->snapshot_list(img, list, n) : no_snapshots(img);
}

int imgfmt_snapshot_create(struct imgfmt_image *img, const char *name)
{
	int r = img->drv->snapshot_create ? snapshot_writable(img, name) : no_snapshots(img);

	return r < 0 ? r : img->drv->snapshot_create(img, name);
}

int imgfmt_snapshot_apply(struct imgfmt_image *img, const char *id_or_name)
{
	int r = img->drv->snapshot_apply ? snapshot_writable(img, id_or_name) : no_snapshots(img);

	return r < 0 ? r : img->drv->snapshot_apply(img, id_or_name);
}

int imgfmt_snapshot_delete(struct imgfmt_image *img, const char *id_or_name)
{
	int r = img->drv->snapshot_delete ? snapshot_writable(img, id_or_name) : no_snapshots(img);

	return r < 0 ? r : img->drv->snapshot_delete(img, id_or_name);
}

/* ---- description ---- */

uint64_t imgfmt_size_bytes(const struct imgfmt_image *img) { return img->size_bytes; }
const char *imgfmt_format(const struct imgfmt_image *img) { return img->drv->name; }
const char *imgfmt_path(const struct imgfmt_image *img) { return img->path; }
const char *imgfmt_errmsg(const struct imgfmt_image *img) { return img->err; }
uint32_t imgfmt_cluster_bytes(const struct imgfmt_image *img) { return img->cluster_bytes; }
bool imgfmt_is_fresh(const struct imgfmt_image *img) { return img->fresh; }
struct imgfmt_image *imgfmt_backing(const struct imgfmt_image *img) { return img->backing; }
bool imgfmt_can_have_backing(const struct imgfmt_image *img)
{
	return img->drv->backing_format || img->backing;
}

int imgfmt_info(struct imgfmt_image *img, struct imgfmt_info *info)
{
	struct stat st;

	memset(info, 0, sizeof(*info));
	snprintf(info->format, sizeof(info->format), "%s", img->drv->name);
	info->virtual_size_bytes = img->size_bytes;
	info->cluster_bytes = img->cluster_bytes > IMGFMT_SECTOR_BYTES ? img->cluster_bytes : 0;
	if (fstat(img->fd, &st) == 0)
		info->file_size_bytes = S_ISBLK(st.st_mode) ? img->size_bytes
							    : (uint64_t)st.st_blocks * 512u;
	return img->drv->info ? img->drv->info(img, info) : 0;
}

int imgfmt_check(struct imgfmt_image *img, struct imgfmt_check *res)
{
	struct imgfmt_check in = *res;
	int r;

	memset(res, 0, sizeof(*res));
	res->repair = in.repair;
	res->report = in.report;
	res->report_opaque = in.report_opaque;
	if (!img->drv->check)
		return imgfmt_err(img, -ENOTSUP, "%s: format %s does not support checks", img->path,
				  img->drv->name);
	if (res->repair && !img->writable)
		return imgfmt_err(img, -EROFS, "%s: a repair needs the image opened for writing",
				  img->path);
	if (res->repair && !img->drv->repairs)
		return imgfmt_err(img, -ENOTSUP, "%s: format %s cannot repair; check it without -r",
				  img->path, img->drv->name);
	r = img->drv->check(img, res);
	if (r == 0 && res->repair && (res->errors_fixed || res->leaks_fixed))
		r = imgfmt_flush(img);
	return r;
}
