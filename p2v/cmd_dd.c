/* p2v dd: copy part of an image into a new one, as qemu-img dd does
 * (bs, count and skip with its semantics: count limits the input's end,
 * counted from its start, and skip moves the start). */
#include "p2v.h"

#include "imgfmt.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define DD_CHUNK_BYTES (4u << 20)
#define DD_MAX_BS_BYTES 2147483647ull /* qemu-img's limit (INT_MAX) */

static const struct p2v_opt dd_opts[] = {
	P2V_OPT_FORMAT("format of IN (probed by default)"),
	P2V_ARG('O', NULL, P2V_ARG_STR, "FMT", "format of OUT (default raw, as qemu-img dd)"),
	P2V_OPT_FORCE("replace an existing OUT"),
	P2V_OPT_SHARE, P2V_OPTS_CONFINE, P2V_OPT_PROGRESS, P2V_OPT_QUIET,
	P2V_OPT_END,
};

static const struct p2v_cmd dd_cmd = {
	"dd", "if=IN of=OUT [bs=N] [count=N] [skip=N]",
	"Copy IN into a new image OUT as qemu-img dd does: bs (default 512, K/M/G suffixes, at "
	"most 2147483647) is the block size; count=N ends the input at N blocks from its start; "
	"skip=N starts it N blocks in.  OUT, of format -O (default raw), is as large as what is "
	"copied; it is written under a temporary name and renamed when complete, and an existing "
	"OUT needs --force.",
	dd_opts, 2, 5,
};

struct dd_args {
	const char *in, *out;
	uint64_t bs_bytes, count_blocks, skip_blocks;
	bool has_count, has_skip;
};

/* A number of blocks or bytes with qemu-img's suffixes. */
static int dd_number(const char *key, const char *val, uint64_t *out)
{
	if (imgfmt_parse_size(val, out) < 0) {
		p2v_err("dd: invalid %s '%s' (a number, with an optional k, M, G, T, P or E suffix)", key, val);
		return -EINVAL;
	}
	return 0;
}

static int dd_operand(struct dd_args *d, const char *op)
{
	const char *eq = strchr(op, '='), *val = eq ? eq + 1 : "";
	size_t klen = eq ? (size_t)(eq - op) : strlen(op);

	if (klen == 2 && !strncmp(op, "if", 2))
		d->in = val;
	else if (klen == 2 && !strncmp(op, "of", 2))
		d->out = val;
	else if (klen == 2 && !strncmp(op, "bs", 2)) {
		if (dd_number("bs", val, &d->bs_bytes) < 0)
			return -EINVAL;
		if (d->bs_bytes < 1 || d->bs_bytes > DD_MAX_BS_BYTES) {
			p2v_err("dd: invalid bs %s: it must be between 1 and %llu", val, DD_MAX_BS_BYTES);
			return -EINVAL;
		}
	} else if (klen == 5 && !strncmp(op, "count", 5)) {
		d->has_count = true;
		return dd_number("count", val, &d->count_blocks);
	} else if (klen == 4 && !strncmp(op, "skip", 4)) {
		d->has_skip = true;
		return dd_number("skip", val, &d->skip_blocks);
	} else {
		p2v_err("dd: unrecognized operand '%s' (if=, of=, bs=, count=, skip=)", op);
		return -EINVAL;
	}
	return 0;
}

static int dd_parse(const struct p2v_args *a, struct dd_args *d)
{
	*d = (struct dd_args){ .bs_bytes = 512 };
	for (int i = 0; i < a->n_operands; i++)
		if (dd_operand(d, a->operands[i]) < 0)
			return -EINVAL;
	if (!d->in || !d->out || !*d->in || !*d->out) {
		p2v_err("dd: both if=IN and of=OUT are needed");
		return -EINVAL;
	}
	return 0;
}

/* The input range [*start, *end): qemu-img dd's arithmetic. */
static void dd_range(const struct dd_args *d, uint64_t in_bytes, uint64_t *start, uint64_t *end)
{
	*end = in_bytes;
	if (d->has_count && d->count_blocks <= INT64_MAX / d->bs_bytes && *end > d->count_blocks * d->bs_bytes)
		*end = d->count_blocks * d->bs_bytes;
	*start = 0;
	if (!d->has_skip)
		return;
	if (d->skip_blocks > INT64_MAX / d->bs_bytes || *end < d->skip_blocks * d->bs_bytes) {
		p2v_warn("dd: %s: cannot skip to specified offset (skip=%llu blocks of %llu bytes is past "
			 "the end, %llu): OUT is empty", d->in, (unsigned long long)d->skip_blocks,
			 (unsigned long long)d->bs_bytes, (unsigned long long)*end);
		*start = *end;
	} else {
		*start = d->skip_blocks * d->bs_bytes;
	}
}

/* Copy src [start, end) to dst at 0; dst is new (reads as zeroes), so
 * holes, zero extents and all-zero chunks are not written. */
static int dd_copy(struct imgfmt_image *src, struct imgfmt_image *dst, uint64_t start, uint64_t end,
		   struct p2v_progress *pg)
{
	uint8_t *buf = malloc(DD_CHUNK_BYTES);
	uint64_t off = start;
	int r = buf ? 0 : -ENOMEM;

	if (!buf)
		p2v_err("dd: out of memory");
	while (r == 0 && off < end) {
		struct imgfmt_extent e;
		uint64_t n = end - off < DD_CHUNK_BYTES ? end - off : DD_CHUNK_BYTES;
		if (p2v_interrupted) {
			p2v_err("dd: interrupted; OUT was not created");
			r = -EINTR;
		} else if ((r = imgfmt_block_status(src, off, n, &e)) < 0) {
			p2v_err("%s", imgfmt_errmsg(src));
		} else if (e.type != IMGFMT_EXTENT_DATA) {
			off += e.length_bytes;
		} else {
			n = e.length_bytes < n ? e.length_bytes : n;
			if ((r = imgfmt_pread(src, buf, n, off)) < 0)
				p2v_err("%s", imgfmt_errmsg(src));
			else if (!imgfmt_is_zero(buf, n) && (r = imgfmt_pwrite(dst, buf, n, off - start)) < 0)
				p2v_err("%s", imgfmt_errmsg(dst));
			off += n;
		}
		p2v_progress_update(pg, off - start, end - start);
	}
	free(buf);
	return r;
}

int p2v_cmd_dd(int argc, char **argv)
{
	struct imgfmt_image *src, *dst = NULL;
	char err[IMGFMT_ERRMSG_BYTES];
	struct p2v_progress pg;
	struct p2v_args a;
	struct dd_args d;
	uint64_t start, end;
	int r = p2v_args_parse(&dd_cmd, argc, argv, &a);

	if (r != 0)
		return r > 0 ? P2V_EXIT_OK : P2V_EXIT_ERROR;
	if (dd_parse(&a, &d) < 0)
		return P2V_EXIT_ERROR;
	if (p2v_open_image(&src, d.in, p2v_str(&a, 'f'), p2v_has(&a, 'U') ? IMGFMT_OPEN_FORCE_SHARE : 0, &a) < 0)
		return P2V_EXIT_ERROR;
	dd_range(&d, imgfmt_size_bytes(src), &start, &end);
	r = imgfmt_create(&dst, d.out, p2v_str(&a, 'O') ? p2v_str(&a, 'O') : "raw", end - start, NULL,
			  p2v_has(&a, P2V_O_FORCE) ? IMGFMT_CREATE_FORCE : 0, err, sizeof(err));
	if (r < 0)
		p2v_err("%s", err);
	if (r == 0) {
		p2v_install_signal_handlers();
		p2v_progress_init(&pg, "dd", p2v_progress_mode(&a));
		r = dd_copy(src, dst, start, end, &pg);
		if (r == 0 && (r = imgfmt_commit(dst)) < 0)
			p2v_err("%s", imgfmt_errmsg(dst));
		if (r == 0)
			p2v_progress_finish(&pg);
		else
			p2v_progress_abort(&pg);
	}
	imgfmt_close(dst); /* removes the temporary file unless committed */
	imgfmt_close(src);
	return r < 0 ? P2V_EXIT_ERROR : P2V_EXIT_OK;
}
