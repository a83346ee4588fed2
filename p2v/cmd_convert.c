/* Commands that write a new image or a whole one: convert, create. */
#include "p2v.h"

#include "imgfmt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static const char *const cache_modes[] = { "none", "writeback", "writethrough", "directsync",
					    "unsafe", NULL };

/* -o help: the format's options, one line each. */
static int options_help(const char *fmt)
{
	const struct imgfmt_opt_desc *d = imgfmt_create_options(fmt);
	char line[600];

	if (!d) {
		p2v_err("unknown format '%s'", fmt);
		return P2V_EXIT_ERROR;
	}
	printf("Supported options (format %s):\n", imgfmt_driver_canonical(fmt));
	for (size_t i = 0; d[i].name; i++) {
		imgfmt_opt_describe(&d[i], line, sizeof(line));
		printf("  %s\n", line);
	}
	if (!d[0].name)
		printf("  (none)\n");
	return P2V_EXIT_OK;
}

static bool wants_help(const char *options)
{
	return options && (!strcmp(options, "help") || !strcmp(options, "?"));
}

/* "A,backing_file=B,backing_fmt=F" with commas in B and F doubled; caller frees. */
static char *with_backing(const char *options, const char *backing, const char *backing_fmt)
{
	size_t n = (options ? strlen(options) : 0) + 2 * strlen(backing) +
		   (backing_fmt ? 2 * strlen(backing_fmt) : 0) + 64;
	char *s = malloc(n), *p;

	if (!s)
		return NULL;
	p = s + snprintf(s, n, "%s%sbacking_file=", options ? options : "", options && *options ? "," : "");
	for (const char *q = backing; *q; q++) {
		*p++ = *q;
		if (*q == ',')
			*p++ = ',';
	}
	if (backing_fmt) {
		p += sprintf(p, ",backing_fmt=");
		for (const char *q = backing_fmt; *q; q++) {
			*p++ = *q;
			if (*q == ',')
				*p++ = ',';
		}
	}
	*p = 0;
	return s;
}

/* ---- convert ---- */

enum { O_TARGET, O_BACKING_FMT_B = P2V_O_CMD, O_NO_CREATE };

struct convert {
	struct p2v_args a;
	const char *in, *out, *fmt;
	char *in_name, *out_name;    /* for messages: NBD URIs without their query */
	struct imgfmt_image *src, *dst, *base;
	char *options;               /* -o plus what -B adds */
	bool created;
};

static const struct p2v_opt convert_opts[] = {
	P2V_OPT_FORMAT("format of INPUT (probed by default)"),
	P2V_ARG('O', NULL, P2V_ARG_STR, "FMT", "output format (by default from OUTPUT's extension)"),
	P2V_ARG('o', NULL, P2V_ARG_STR, "OPTIONS",
		"output format options, key=value,... ('-o help' lists them)"),
	P2V_FLAG('c', NULL, "compress (qcow2, vmdk streamOptimized)"),
	P2V_FLAG('n', NULL, "write into an existing OUTPUT instead of creating one (-O names its format "
		 "or it is probed); it must be at least as large as INPUT"),
	P2V_FLAG(P2V_O_TARGET_IS_ZERO, "target-is-zero",
		 "with -n: OUTPUT already reads as zeroes, so zero ranges are not written"),
	P2V_ARG('B', NULL, P2V_ARG_STR, "BACKING",
		"make OUTPUT a copy-on-write image over BACKING: only what differs from it is written"),
	P2V_ARG('F', NULL, P2V_ARG_STR, "FMT", "format of BACKING (probed by default)"),
	P2V_ARG('S', NULL, P2V_ARG_SIZE, "SIZE",
		"zero detection granularity (a multiple of 512, default 4K-64K by cluster); "
		"0 writes zeroes as data, allocating everything", .max = 4u << 20),
	P2V_ARG('m', "threads", P2V_ARG_COUNT, "N", "copy with N workers (default: the CPUs, 2 to 8)",
		.min = 1, .max = 64),
	P2V_ARG('t', NULL, P2V_ARG_CHOICE, "none|writeback|...",
		"qemu-img's cache mode of OUTPUT: accepted and ignored (p2v streams through the page "
		"cache with its own writeback)", .choices = cache_modes),
	P2V_ARG('T', NULL, P2V_ARG_CHOICE, "none|writeback|...",
		"qemu-img's cache mode of INPUT: accepted and ignored", .choices = cache_modes),
	P2V_FLAG('W', NULL, "qemu-img's out-of-order writes: accepted; p2v writes in order anyway"),
	P2V_OPT_FORCE("replace an existing OUTPUT (or overwrite a block device)"),
	P2V_OPT_SHARE, P2V_OPTS_CONFINE, P2V_OPT_INSECURE_NBD, P2V_OPT_PROGRESS, P2V_OPT_QUIET,
	P2V_FLAG(P2V_O_JSON, "json", "copy statistics as JSON on stdout"),
	P2V_OPT_OUTPUT,
	P2V_OPT_END,
};

static const struct p2v_cmd convert_cmd = {
	"convert", "INPUT OUTPUT",
	"Convert an image to another format, reading only the source's allocated data and "
	"writing no all-zero clusters.  OUTPUT is written under a temporary name and renamed "
	"when complete; OUTPUT - streams it to stdout (raw, or vpc with -o subformat=fixed; "
	"not to a terminal); an NBD URI (nbd://, nbds://, nbd+unix://) names an existing export, "
	"read from or written in place (raw content, no temporary name).  Formats: qcow2, vpc (VHD), vhdx, vmdk, raw.",
	convert_opts, 0, 2, /* none for -o help */
};

static void print_copy_stats(struct convert *cv, const struct imgfmt_copy_stats *s, double secs)
{
	char r[32], w[32];

	if (p2v_json_wanted(&cv->a)) {
		struct p2v_json j;
		p2v_json_init(&j, stdout);
		p2v_json_obj_begin(&j, NULL);
		p2v_json_str(&j, "output", cv->out_name);
		p2v_json_str(&j, "format", imgfmt_format(cv->dst));
		p2v_json_u64(&j, "virtual-size", imgfmt_size_bytes(cv->dst));
		p2v_json_u64(&j, "data-bytes-read", s->data_bytes_read);
		p2v_json_u64(&j, "zero-bytes-skipped", s->zero_bytes_skipped);
		p2v_json_u64(&j, "hole-bytes-skipped", s->hole_bytes_skipped);
		p2v_json_u64(&j, "base-bytes-skipped", s->base_bytes_skipped);
		p2v_json_u64(&j, "bytes-written", s->bytes_written);
		p2v_json_u64(&j, "compressed-clusters", s->compressed_clusters);
		p2v_json_double(&j, "seconds", secs);
		p2v_json_obj_end(&j);
		p2v_json_finish(&j);
	} else if (p2v_progress_mode(&cv->a) == P2V_PROGRESS_BAR) {
		fprintf(stderr, "p2v: read %s, wrote %s in %.2f s\n",
			p2v_human_bytes(s->data_bytes_read, r, sizeof(r)),
			p2v_human_bytes(s->bytes_written, w, sizeof(w)), secs);
	}
}

/* -n: the existing target, opened for writing. */
static int open_target(struct convert *cv)
{
	int r = p2v_open_image(&cv->dst, cv->out, p2v_str(&cv->a, 'O'), IMGFMT_OPEN_RDWR, &cv->a);

	if (r < 0)
		return r;
	if (imgfmt_size_bytes(cv->dst) < imgfmt_size_bytes(cv->src)) {
		p2v_err("%s: target of %llu bytes is smaller than the %llu of %s", cv->out_name,
			(unsigned long long)imgfmt_size_bytes(cv->dst),
			(unsigned long long)imgfmt_size_bytes(cv->src), cv->in_name);
		return -ENOSPC;
	}
	return 0;
}

/* -B: the new image's backing file, and a separate handle on it for the
 * comparison (relative names are relative to OUTPUT's directory). */
static int prepare_backing(struct convert *cv)
{
	const char *b = p2v_str(&cv->a, 'B'), *bf = p2v_str(&cv->a, 'F');
	char *path = NULL, *slash;
	int r;

	if (!b)
		return 0;
	cv->options = with_backing(p2v_str(&cv->a, 'o'), b, bf);
	if (b[0] != '/' && (slash = strrchr(cv->out, '/')) &&
	    asprintf(&path, "%.*s/%s", (int)(slash - cv->out), cv->out, b) < 0)
		path = NULL;
	if (!cv->options || (b[0] != '/' && slash && !path)) {
		free(path);
		p2v_err("out of memory");
		return -ENOMEM;
	}
	r = p2v_open_image(&cv->base, path ? path : b, bf,
			   p2v_has(&cv->a, 'U') ? IMGFMT_OPEN_FORCE_SHARE : 0, &cv->a);
	free(path);
	return r;
}

static int create_target(struct convert *cv)
{
	char err[IMGFMT_ERRMSG_BYTES];
	int r;

	cv->fmt = p2v_str(&cv->a, 'O') ? p2v_str(&cv->a, 'O') : imgfmt_format_from_filename(cv->out);
	if (!cv->fmt) {
		p2v_err("cannot tell the output format from '%s': use -O FORMAT", cv->out_name);
		return -EINVAL;
	}
	if ((r = prepare_backing(cv)) < 0)
		return r;
	r = imgfmt_create(&cv->dst, cv->out, cv->fmt, imgfmt_size_bytes(cv->src),
			  cv->options ? cv->options : p2v_str(&cv->a, 'o'),
			  (p2v_has(&cv->a, P2V_O_FORCE) ? IMGFMT_CREATE_FORCE : 0) |
			  (p2v_has(&cv->a, P2V_O_INSECURE_NBD) ? IMGFMT_CREATE_INSECURE_NBD : 0),
			  err, sizeof(err));
	if (r < 0)
		p2v_err("%s", err);
	cv->created = r == 0;
	return r;
}

static bool wants_stream(const char *options)
{
	return options && strstr(options, "subformat=streamOptimized");
}

static int run_copy(struct convert *cv)
{
	struct imgfmt_copy_opts co = {
		.threads = (unsigned)p2v_u64(&cv->a, 'm', 0), .cancel = &p2v_interrupted,
		.target_is_zero = p2v_has(&cv->a, P2V_O_TARGET_IS_ZERO), .base = cv->base,
	};
	struct imgfmt_copy_stats stats;
	struct p2v_progress prog;
	char err[IMGFMT_ERRMSG_BYTES];
	int r;

	if (p2v_has(&cv->a, 'S')) {
		co.sparse_bytes = (uint32_t)p2v_u64(&cv->a, 'S', 0);
		co.no_sparse = co.sparse_bytes == 0;
	}
	co.compress = p2v_has(&cv->a, 'c') || (wants_stream(p2v_str(&cv->a, 'o')) && imgfmt_can_compress(cv->dst));
	p2v_progress_init(&prog, "converting", p2v_progress_mode(&cv->a));
	co.progress = p2v_progress_update;
	co.progress_opaque = &prog;
	r = imgfmt_copy(cv->src, cv->dst, &co, &stats, err, sizeof(err));
	if (r == 0 && (r = imgfmt_commit(cv->dst)) < 0)
		snprintf(err, sizeof(err), "%s", imgfmt_errmsg(cv->dst));
	if (r == 0 && !cv->created && (r = imgfmt_flush(cv->dst)) < 0)
		snprintf(err, sizeof(err), "%s", imgfmt_errmsg(cv->dst));
	if (r < 0) {
		p2v_progress_abort(&prog);
		p2v_err("converting %s to %s: %s", cv->in_name, cv->out_name, r == -EINTR ? "interrupted" : err);
		return r;
	}
	p2v_progress_finish(&prog);
	print_copy_stats(cv, &stats, p2v_now_s() - prog.start_s);
	return 0;
}

static int convert_checks(struct convert *cv)
{
	const char *why = NULL;

	if (p2v_has(&cv->a, P2V_O_TARGET_IS_ZERO) && !p2v_has(&cv->a, 'n'))
		why = "--target-is-zero needs -n (an existing target)";
	else if (p2v_has(&cv->a, 'n') && (p2v_has(&cv->a, 'B') || p2v_has(&cv->a, 'o')))
		why = "-n writes into an existing image: -B and -o do not apply";
	else if (p2v_has(&cv->a, 'F') && !p2v_has(&cv->a, 'B'))
		why = "-F names the format of -B's backing file";
	else if (!strcmp(cv->out, "-") && (p2v_has(&cv->a, 'n') || p2v_has(&cv->a, 'B') || p2v_has(&cv->a, 'c')))
		why = "OUTPUT - (stdout) is a new uncompressed image: -n, -B and -c do not apply";
	else if (!strcmp(cv->out, "-") && p2v_json_wanted(&cv->a))
		why = "OUTPUT - (stdout) carries the image: --json has nowhere to go";
	if (why)
		p2v_err("convert: %s", why);
	return why ? -EINVAL : 0;
}

int p2v_cmd_convert(int argc, char **argv)
{
	struct convert cv = { 0 };
	int r = p2v_args_parse(&convert_cmd, argc, argv, &cv.a);

	if (r == 0 && wants_help(p2v_str(&cv.a, 'o')))
		return options_help(p2v_str(&cv.a, 'O') ? p2v_str(&cv.a, 'O') : "raw");
	if (r == 0)
		r = p2v_check_operands(&cv.a, 2, 2);
	if (r != 0)
		return r > 0 ? P2V_EXIT_OK : P2V_EXIT_ERROR;
	cv.in = cv.a.operands[0];
	cv.out = cv.a.operands[1];
	cv.in_name = imgfmt_display_name(cv.in);
	cv.out_name = imgfmt_display_name(cv.out);
	if (!cv.in_name || !cv.out_name) {
		free(cv.in_name);
		free(cv.out_name);
		p2v_err("out of memory");
		return P2V_EXIT_ERROR;
	}
	if (convert_checks(&cv) < 0) {
		free(cv.in_name);
		free(cv.out_name);
		return P2V_EXIT_ERROR;
	}
	r = p2v_open_image(&cv.src, cv.in, p2v_str(&cv.a, 'f'),
			   p2v_has(&cv.a, 'U') ? IMGFMT_OPEN_FORCE_SHARE : 0, &cv.a);
	if (r == 0)
		p2v_install_signal_handlers();
	if (r == 0 && !strcmp(cv.out, "-")) {
		r = p2v_convert_to_stdout(cv.src, p2v_str(&cv.a, 'O') ? p2v_str(&cv.a, 'O') : "raw",
					  p2v_str(&cv.a, 'o'), &cv.a);
	} else if (r == 0) {
		r = p2v_has(&cv.a, 'n') ? open_target(&cv) : create_target(&cv);
		if (r == 0)
			r = run_copy(&cv);
	}
	imgfmt_close(cv.dst); /* removes the temporary file unless committed */
	imgfmt_close(cv.base);
	imgfmt_close(cv.src);
	free(cv.options);
	free(cv.in_name);
	free(cv.out_name);
	return r < 0 ? P2V_EXIT_ERROR : P2V_EXIT_OK;
}

/* ---- create ---- */

static const struct p2v_opt create_opts[] = {
	P2V_OPT_FORMAT("image format (qemu-img's -f); or by the extension of OUTPUT"),
	P2V_ARG('O', NULL, P2V_ARG_STR, "FMT", "the same as -f"),
	P2V_ARG('o', NULL, P2V_ARG_STR, "OPTIONS", "format options, key=value,... ('-o help' lists them)"),
	P2V_ARG('b', NULL, P2V_ARG_STR, "BACKING",
		"backing file of a copy-on-write image (qcow2): SIZE defaults to its size"),
	P2V_ARG('F', NULL, P2V_ARG_STR, "FMT", "format of BACKING (probed by default)"),
	P2V_OPT_FORCE("replace an existing OUTPUT (or overwrite a block device)"),
	P2V_FLAG('q', "quiet", "print nothing but errors (p2v create prints nothing else anyway)"),
	P2V_OPT_END,
};

static const struct p2v_cmd create_cmd = {
	"create", "OUTPUT [SIZE]",
	"Create an empty image of SIZE bytes (K, M, G, T suffixes), written under a temporary "
	"name and renamed when complete.",
	create_opts, 0, 2, /* none for -o help */
};

/* The size of -b's backing file, relative to OUTPUT's directory. */
static int backing_size(const char *out, const char *b, const char *bf, uint64_t *size)
{
	struct imgfmt_image *img;
	const char *slash = strrchr(out, '/');
	char *path = NULL;
	int r;

	if (b[0] != '/' && slash && asprintf(&path, "%.*s/%s", (int)(slash - out), out, b) < 0)
		return -ENOMEM;
	r = p2v_open_image(&img, path ? path : b, bf, IMGFMT_OPEN_NO_BACKING, NULL);
	free(path);
	if (r < 0)
		return r;
	*size = imgfmt_size_bytes(img);
	imgfmt_close(img);
	return 0;
}

int p2v_cmd_create(int argc, char **argv)
{
	char err[IMGFMT_ERRMSG_BYTES], *options = NULL;
	struct imgfmt_image *img;
	struct p2v_args a;
	const char *fmt, *b;
	uint64_t size = 0;
	int r = p2v_args_parse(&create_cmd, argc, argv, &a);

	fmt = p2v_str(&a, 'O') ? p2v_str(&a, 'O') : p2v_str(&a, 'f');
	if (r == 0 && !fmt && a.n_operands)
		fmt = imgfmt_format_from_filename(a.operands[0]);
	if (r == 0 && wants_help(p2v_str(&a, 'o')))
		return options_help(fmt ? fmt : "raw");
	if (r == 0)
		r = p2v_check_operands(&a, 1, 2);
	if (r != 0)
		return r > 0 ? P2V_EXIT_OK : P2V_EXIT_ERROR;
	b = p2v_str(&a, 'b');
	if (a.n_operands == 2 && imgfmt_parse_size(a.operands[1], &size) < 0) {
		p2v_err("create: '%s' is not a size (e.g. 10G, 512M)", a.operands[1]);
		return P2V_EXIT_ERROR;
	}
	if (a.n_operands == 1 && (!b || backing_size(a.operands[0], b, p2v_str(&a, 'F'), &size) < 0)) {
		if (!b)
			p2v_err("create: SIZE is needed without a backing file (-b)");
		return P2V_EXIT_ERROR;
	}
	if (!fmt) {
		p2v_err("create: cannot tell the format from '%s': use -f FORMAT", a.operands[0]);
		return P2V_EXIT_ERROR;
	}
	if (b && !(options = with_backing(p2v_str(&a, 'o'), b, p2v_str(&a, 'F')))) {
		p2v_err("out of memory");
		return P2V_EXIT_ERROR;
	}
	r = imgfmt_create(&img, a.operands[0], fmt, size, b ? options : p2v_str(&a, 'o'),
			  p2v_has(&a, P2V_O_FORCE) ? IMGFMT_CREATE_FORCE : 0, err, sizeof(err));
	free(options);
	if (r < 0) {
		p2v_err("%s", err);
		return P2V_EXIT_ERROR;
	}
	r = imgfmt_commit(img);
	if (r < 0)
		p2v_err("%s", imgfmt_errmsg(img));
	imgfmt_close(img);
	return r < 0 ? P2V_EXIT_ERROR : P2V_EXIT_OK;
}
