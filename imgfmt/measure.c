/* imgfmt_measure(): the size a new image needs, from the driver's layout
 * and the source's block status (no data is read). */
#include "driver.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

int imgfmt_measure_data(struct imgfmt_image *img, struct imgfmt_image *src, uint64_t unit_bytes,
			uint64_t *bytes)
{
	uint64_t off = 0, size, units = 0, next_unit = 0;

	*bytes = 0;
	if (!src)
		return 0;
	size = imgfmt_size_bytes(src);
	while (off < size) {
		struct imgfmt_extent e;
		int r = imgfmt_block_status(src, off, size - off, &e);
		if (r < 0)
			return imgfmt_err(img, r, "%s", imgfmt_errmsg(src));
		if (e.type == IMGFMT_EXTENT_DATA) {
			uint64_t first = off / unit_bytes, end = imgfmt_div_round_up(off + e.length_bytes, unit_bytes);
			if (first < next_unit)
				first = next_unit; /* the unit is counted already */
			if (end > first)
				units += end - first;
			if (end > next_unit)
				next_unit = end;
		}
		off += e.length_bytes;
	}
	*bytes = units * unit_bytes;
	return 0;
}

int imgfmt_measure(const char *format, const char *options, struct imgfmt_image *src,
		   uint64_t size_bytes, struct imgfmt_measure *m, char *err, size_t err_bytes)
{
	const struct imgfmt_driver *drv = imgfmt_find_driver(format ? format : "");
	struct imgfmt_image scratch = { .fd = -1, .dirfd = -1, .path = (char *)"(measure)" };
	struct imgfmt_optval *ov;
	int r;

	memset(m, 0, sizeof(*m));
	if (!drv || !drv->measure) {
		snprintf(err, err_bytes, drv ? "format %s cannot be measured" : "unknown format '%s'",
			 drv ? drv->name : (format ? format : "(none)"));
		return drv ? -ENOTSUP : -EINVAL;
	}
	r = imgfmt_optvals_parse(drv, options, &ov, err, err_bytes);
	if (r < 0)
		return r;
	scratch.drv = drv;
	r = drv->measure(&scratch, ov, src ? imgfmt_size_bytes(src) : size_bytes, src, m);
	imgfmt_optvals_free(drv, ov);
	if (r < 0)
		snprintf(err, err_bytes, "%s", scratch.err[0] ? scratch.err : strerror(-r));
	return r;
}
