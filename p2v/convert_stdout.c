/* p2v convert ... - : an image streamed to stdout, for the formats whose
 * bytes can be written in order: raw, and fixed VHD (raw data, then the
 * 512-byte footer).  The footer is the one p2v's vpc writer makes for the
 * same size and options: a fixed VHD is created sparse in a temporary
 * directory and its last sector taken, so the two never differ. */
#include "p2v.h"

#include "imgfmt.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define STREAM_CHUNK_BYTES (4u << 20)
#define VHD_FOOTER_BYTES 512u

static int write_all(const uint8_t *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(STDOUT_FILENO, buf, len);
		if (n < 0 && errno == EINTR && !p2v_interrupted)
			continue;
		if (n <= 0) {
			int e = n < 0 ? errno : EIO;
			p2v_err("convert: writing to stdout: %s", e == EINTR ? "interrupted" : strerror(e));
			return -e;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/* The footer of a fixed VHD of size_bytes with options, and the bytes of
 * data before it (the size rounded as the options say). */
static int vhd_footer(uint64_t size_bytes, const char *options, uint8_t *footer, uint64_t *data_bytes)
{
	const char *tmp = getenv("TMPDIR");
	char dir[4096], path[4200], err[IMGFMT_ERRMSG_BYTES];
	struct imgfmt_image *img = NULL;
	struct imgfmt_info info;
	struct stat st;
	int r, fd = -1;

	snprintf(dir, sizeof(dir), "%s/p2v-vhd-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		p2v_err("convert: a temporary directory in %s: %s", tmp && *tmp ? tmp : "/tmp", strerror(errno));
		return -errno;
	}
	snprintf(path, sizeof(path), "%s/footer.vhd", dir);
	r = imgfmt_create(&img, path, "vpc", size_bytes, options, 0, err, sizeof(err));
	if (r < 0)
		p2v_err("%s", err);
	if (r == 0 && (r = imgfmt_info(img, &info)) == 0 && strcmp(info.subformat, "fixed")) {
		p2v_err("convert: a %s VHD cannot be written to stdout (its block table precedes the data "
			"it maps): use -o subformat=fixed", info.subformat);
		r = -EINVAL;
	}
	if (r == 0 && (r = imgfmt_commit(img)) < 0)
		p2v_err("%s", imgfmt_errmsg(img));
	imgfmt_close(img);
	if (r == 0 && ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0 || fstat(fd, &st) < 0 ||
		       st.st_size < (off_t)VHD_FOOTER_BYTES ||
		       pread(fd, footer, VHD_FOOTER_BYTES, st.st_size - VHD_FOOTER_BYTES) != VHD_FOOTER_BYTES)) {
		p2v_err("convert: reading the footer of %s: %s", path, strerror(errno ? errno : EIO));
		r = -EIO;
	}
	if (r == 0)
		*data_bytes = (uint64_t)st.st_size - VHD_FOOTER_BYTES;
	if (fd >= 0)
		close(fd);
	unlink(path);
	rmdir(dir);
	return r;
}

/* src's content, then zeroes up to data_bytes. */
static int stream_data(struct imgfmt_image *src, uint64_t data_bytes, struct p2v_progress *pg)
{
	uint64_t size = imgfmt_size_bytes(src), off = 0;
	uint8_t *buf = malloc(STREAM_CHUNK_BYTES);
	int r = buf ? 0 : -ENOMEM;

	if (!buf)
		p2v_err("convert: out of memory");
	while (r == 0 && off < data_bytes) {
		struct imgfmt_extent e = { .type = IMGFMT_EXTENT_HOLE, .length_bytes = data_bytes - off };
		uint64_t n = data_bytes - off < STREAM_CHUNK_BYTES ? data_bytes - off : STREAM_CHUNK_BYTES;
		if (p2v_interrupted) {
			p2v_err("convert: interrupted");
			r = -EINTR;
			break;
		}
		if (off < size && (r = imgfmt_block_status(src, off, (size - off < n ? size - off : n), &e)) < 0) {
			p2v_err("%s", imgfmt_errmsg(src));
			break;
		}
		n = e.length_bytes < n ? e.length_bytes : n;
		if (e.type == IMGFMT_EXTENT_DATA) {
			if ((r = imgfmt_pread(src, buf, n, off)) < 0)
				p2v_err("%s", imgfmt_errmsg(src));
		} else {
			memset(buf, 0, n);
		}
		if (r == 0)
			r = write_all(buf, n);
		off += n;
		p2v_progress_update(pg, off, data_bytes);
	}
	free(buf);
	return r;
}

int p2v_convert_to_stdout(struct imgfmt_image *src, const char *fmt, const char *options,
			  const struct p2v_args *a)
{
	uint8_t footer[VHD_FOOTER_BYTES];
	uint64_t data_bytes = imgfmt_size_bytes(src);
	struct p2v_progress pg;
	bool vhd;
	int r = 0;

	fmt = imgfmt_driver_canonical(fmt) ? imgfmt_driver_canonical(fmt) : fmt;
	vhd = !strcmp(fmt, "vpc");
	if (isatty(STDOUT_FILENO)) {
		p2v_err("convert: refusing to write a disk image to a terminal (redirect stdout)");
		return -EINVAL;
	}
	if (strcmp(fmt, "raw") && !vhd) {
		p2v_err("convert: format %s cannot be written to stdout (not streamable: its writer "
			"goes back to update tables); raw and vpc -o subformat=fixed can", fmt);
		return -EINVAL;
	}
	if (!vhd && options && *options) {
		p2v_err("convert: raw to stdout takes no options (-o %s)", options);
		return -EINVAL;
	}
	if (vhd && (r = vhd_footer(imgfmt_size_bytes(src), options, footer, &data_bytes)) < 0)
		return r;
	signal(SIGPIPE, SIG_IGN); /* a closed stdout is an error, reported */
	p2v_progress_init(&pg, "converting", p2v_progress_mode(a));
	r = stream_data(src, data_bytes, &pg);
	if (r == 0 && vhd)
		r = write_all(footer, sizeof(footer));
	if (r == 0)
		p2v_progress_finish(&pg);
	else
		p2v_progress_abort(&pg);
	return r;
}
