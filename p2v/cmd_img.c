/* Image commands: info, convert, create, compare, check, map. */
#include "p2v.h"

#include "imgfmt.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#define CMP_BUF_BYTES (1u << 20)

/* Options shared by the image commands. */
struct img_args {
	const char *src_fmt, *dst_fmt, *options;
	bool json, compress, force, force_share, backing_chain, quiet, progress;
	unsigned threads;
};

static int open_image(struct imgfmt_image **img, const char *path, const char *fmt,
		      unsigned flags)
{
	struct imgfmt_open_opts o = { .format = fmt, .flags = flags, .log = p2v_log_warning };
	char err[IMGFMT_ERRMSG_BYTES];
	int r = imgfmt_open(img, path, &o, err, sizeof(err));

	if (r < 0)
		p2v_err("%s", err);
	return r;
}

static bool want_help(int argc, char **argv, const char *usage)
{
	for (int i = 1; i < argc; i++)
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			printf("usage: %s\n", usage);
			return true;
		}
	return false;
}

enum { OPT_FORCE = 256, OPT_JSON, OPT_BACKING_CHAIN, OPT_THREADS };

static const struct option long_opts[] = {
	{ "json", no_argument, NULL, OPT_JSON },
	{ "force", no_argument, NULL, OPT_FORCE },
	{ "backing-chain", no_argument, NULL, OPT_BACKING_CHAIN },
	{ "threads", required_argument, NULL, OPT_THREADS },
	{ "force-share", no_argument, NULL, 'U' },
	{ "progress", no_argument, NULL, 'p' },
	{ "quiet", no_argument, NULL, 'q' },
	{ NULL, 0, NULL, 0 },
};

/* Parse the common options; returns the index of the first operand or -1. */
static int parse_args(int argc, char **argv, struct img_args *a, const char *usage)
{
	int c;

	memset(a, 0, sizeof(*a));
	optind = 1;
	opterr = 0;
	while ((c = getopt_long(argc, argv, "f:F:O:o:cUpqt:", long_opts, NULL)) != -1) {
		switch (c) {
		case 'f': a->src_fmt = optarg; break;
		case 'F': a->dst_fmt = optarg; break;
		case 'O': a->dst_fmt = optarg; break;
		case 'o': a->options = optarg; break;
		case 'c': a->compress = true; break;
		case 'U': a->force_share = true; break;
		case 'p': a->progress = true; break;
		case 'q': a->quiet = true; break;
		case 't': case OPT_THREADS: a->threads = (unsigned)atoi(optarg); break;
		case OPT_JSON: a->json = true; break;
		case OPT_FORCE: a->force = true; break;
		case OPT_BACKING_CHAIN: a->backing_chain = true; break;
		default:
			p2v_err("%s: unknown or incomplete option '%s'", argv[0], argv[optind - 1]);
			fprintf(stderr, "usage: %s\n", usage);
			return -1;
		}
	}
	return optind;
}

static bool operands(int argc, int first, int want, const char *cmd, const char *usage)
{
	if (first >= 0 && argc - first == want)
		return true;
	if (first >= 0)
		p2v_err("%s: expected %d operand%s", cmd, want, want == 1 ? "" : "s");
	fprintf(stderr, "usage: %s\n", usage);
	return false;
}

/* --help, options and operand count: the first operand's index, 0 after
 * --help, -1 on a usage error. */
static int start(int argc, char **argv, const char *usage, int n_operands, struct img_args *a)
{
	int first;

	if (want_help(argc, argv, usage))
		return 0;
	first = parse_args(argc, argv, a, usage);
	return operands(argc, first, n_operands, argv[0], usage) ? first : -1;
}

#define START(n) \
	int first = start(argc, argv, usage, (n), &a); \
	if (first <= 0) \
		return first ? P2V_EXIT_ERROR : P2V_EXIT_OK

/* ---- info ---- */

static void print_info_human(struct imgfmt_image *img, const struct imgfmt_info *in)
{
	char a[32], b[32];

	printf("image: %s\n", imgfmt_path(img));
	printf("file format: %s\n", in->format);
	if (in->subformat[0])
		printf("subformat: %s\n", in->subformat);
	printf("virtual size: %s (%llu bytes)\n", p2v_human_bytes(in->virtual_size_bytes, a, sizeof(a)),
	       (unsigned long long)in->virtual_size_bytes);
	printf("disk size: %s\n", p2v_human_bytes(in->file_size_bytes, b, sizeof(b)));
	if (in->cluster_bytes)
		printf("cluster_size: %u\n", in->cluster_bytes);
	if (in->backing_file[0])
		printf("backing file: %s%s%s%s\n", in->backing_file,
		       in->backing_format[0] ? " (format " : "", in->backing_format,
		       in->backing_format[0] ? ")" : "");
	if (in->n_extra)
		printf("format specific information:\n");
	for (unsigned i = 0; i < in->n_extra; i++)
		printf("    %s: %s\n", in->extra[i].key, in->extra[i].val);
}

static void print_info_json(struct p2v_json *j, struct imgfmt_image *img, const struct imgfmt_info *in)
{
	p2v_json_obj_begin(j, NULL);
	p2v_json_str(j, "filename", imgfmt_path(img));
	p2v_json_str(j, "format", in->format);
	if (in->subformat[0])
		p2v_json_str(j, "subformat", in->subformat);
	p2v_json_u64(j, "virtual-size", in->virtual_size_bytes);
	p2v_json_u64(j, "actual-size", in->file_size_bytes);
	if (in->cluster_bytes)
		p2v_json_u64(j, "cluster-size", in->cluster_bytes);
	if (in->backing_file[0]) {
		p2v_json_str(j, "backing-filename", in->backing_file);
		if (in->backing_format[0])
			p2v_json_str(j, "backing-filename-format", in->backing_format);
	}
	p2v_json_obj_begin(j, "format-specific");
	for (unsigned i = 0; i < in->n_extra; i++) {
		if (in->extra[i].is_number)
			p2v_json_raw(j, in->extra[i].key, in->extra[i].val);
		else
			p2v_json_str(j, in->extra[i].key, in->extra[i].val);
	}
	p2v_json_obj_end(j);
	p2v_json_obj_end(j);
}

int p2v_cmd_info(int argc, char **argv)
{
	static const char usage[] = "p2v info [-f FMT] [-U] [--backing-chain] [--json] IMAGE";
	struct imgfmt_image *top, *img;
	struct imgfmt_info *in;
	struct img_args a;
	struct p2v_json j;
	int r = 0;

	START(1);
	if (open_image(&top, argv[first], a.src_fmt,
		       (a.backing_chain ? 0 : IMGFMT_OPEN_NO_BACKING) |
		       (a.force_share ? IMGFMT_OPEN_FORCE_SHARE : 0)) < 0)
		return P2V_EXIT_ERROR;
	in = malloc(sizeof(*in));
	if (!in) {
		imgfmt_close(top);
		return P2V_EXIT_ERROR;
	}
	p2v_json_init(&j, stdout);
	if (a.json && a.backing_chain)
		p2v_json_arr_begin(&j, NULL);
	for (img = top; img && r == 0; img = a.backing_chain ? imgfmt_backing(img) : NULL) {
		r = imgfmt_info(img, in);
		if (r < 0) {
			p2v_err("%s", imgfmt_errmsg(img));
			break;
		}
		if (a.json)
			print_info_json(&j, img, in);
		else
			print_info_human(img, in);
		if (!a.json && a.backing_chain && imgfmt_backing(img))
			printf("\n");
	}
	if (a.json && a.backing_chain)
		p2v_json_arr_end(&j);
	if (a.json && r == 0)
		p2v_json_finish(&j);
	free(in);
	imgfmt_close(top);
	return r < 0 ? P2V_EXIT_ERROR : P2V_EXIT_OK;
}

/* ---- convert ---- */

static bool wants_stream(const char *options)
{
	return options && strstr(options, "subformat=streamOptimized");
}

static void print_copy_stats(const struct img_args *a, const struct imgfmt_copy_stats *s,
			     double secs, struct imgfmt_image *dst)
{
	char r[32], w[32];

	if (a->json) {
		struct p2v_json j;
		p2v_json_init(&j, stdout);
		p2v_json_obj_begin(&j, NULL);
		p2v_json_str(&j, "output", imgfmt_path(dst));
		p2v_json_str(&j, "format", imgfmt_format(dst));
		p2v_json_u64(&j, "virtual-size", imgfmt_size_bytes(dst));
		p2v_json_u64(&j, "data-bytes-read", s->data_bytes_read);
		p2v_json_u64(&j, "zero-bytes-skipped", s->zero_bytes_skipped);
		p2v_json_u64(&j, "hole-bytes-skipped", s->hole_bytes_skipped);
		p2v_json_u64(&j, "bytes-written", s->bytes_written);
		p2v_json_u64(&j, "compressed-clusters", s->compressed_clusters);
		p2v_json_double(&j, "seconds", secs);
		p2v_json_obj_end(&j);
		p2v_json_finish(&j);
	} else if (!a->quiet && a->progress) {
		fprintf(stderr, "p2v: read %s, wrote %s in %.2f s\n",
			p2v_human_bytes(s->data_bytes_read, r, sizeof(r)),
			p2v_human_bytes(s->bytes_written, w, sizeof(w)), secs);
	}
}

static int convert(struct imgfmt_image *src, const char *out, const struct img_args *a)
{
	const char *fmt = a->dst_fmt ? a->dst_fmt : imgfmt_format_from_filename(out);
	struct imgfmt_copy_opts co = { .threads = a->threads, .cancel = &p2v_interrupted };
	struct imgfmt_copy_stats stats;
	struct imgfmt_image *dst;
	struct p2v_progress prog;
	char err[IMGFMT_ERRMSG_BYTES];
	double t0 = p2v_now_s();
	int r;

	if (!fmt) {
		p2v_err("cannot tell the output format from '%s': use -O FORMAT", out);
		return -EINVAL;
	}
	r = imgfmt_create(&dst, out, fmt, imgfmt_size_bytes(src), a->options,
			  a->force ? IMGFMT_CREATE_FORCE : 0, err, sizeof(err));
	if (r < 0) {
		p2v_err("%s", err);
		return r;
	}
	co.compress = a->compress || (wants_stream(a->options) && imgfmt_can_compress(dst));
	p2v_progress_init(&prog, "converting", a->quiet);
	if (a->progress || prog.enabled) {
		prog.enabled = prog.enabled || a->progress;
		co.progress = p2v_progress_update;
		co.progress_opaque = &prog;
	}
	r = imgfmt_copy(src, dst, &co, &stats, err, sizeof(err));
	if (r == 0 && (r = imgfmt_commit(dst)) < 0)
		snprintf(err, sizeof(err), "%s", imgfmt_errmsg(dst));
	if (co.progress && r == 0)
		p2v_progress_finish(&prog);
	else if (prog.enabled)
		fputc('\n', stderr);
	if (r < 0)
		p2v_err("converting %s to %s: %s", imgfmt_path(src), out, err);
	else
		print_copy_stats(a, &stats, p2v_now_s() - t0, dst);
	imgfmt_close(dst); /* removes the temporary file unless committed */
	return r;
}

int p2v_cmd_convert(int argc, char **argv)
{
	static const char usage[] =
		"p2v convert [-f FMT] [-O FMT] [-o OPTIONS] [-c] [-p] [-q] [-U] [--force] [--json] [-t THREADS] INPUT OUTPUT";
	struct imgfmt_image *src;
	struct img_args a;
	int r;

	START(2);
	if (open_image(&src, argv[first], a.src_fmt, a.force_share ? IMGFMT_OPEN_FORCE_SHARE : 0) < 0)
		return P2V_EXIT_ERROR;
	p2v_install_signal_handlers();
	r = convert(src, argv[first + 1], &a);
	imgfmt_close(src);
	return r < 0 ? P2V_EXIT_ERROR : P2V_EXIT_OK;
}

/* ---- create ---- */

int p2v_cmd_create(int argc, char **argv)
{
	static const char usage[] = "p2v create -O FMT [-o OPTIONS] [--force] OUTPUT SIZE";
	char err[IMGFMT_ERRMSG_BYTES];
	struct imgfmt_image *img;
	struct img_args a;
	uint64_t size;
	const char *fmt;
	int r;

	START(2);
	if (imgfmt_parse_size(argv[first + 1], &size) < 0) {
		p2v_err("create: '%s' is not a size (e.g. 10G, 512M)", argv[first + 1]);
		return P2V_EXIT_ERROR;
	}
	fmt = a.dst_fmt ? a.dst_fmt : imgfmt_format_from_filename(argv[first]);
	if (!fmt) {
		p2v_err("create: cannot tell the format from '%s': use -O FORMAT", argv[first]);
		return P2V_EXIT_ERROR;
	}
	r = imgfmt_create(&img, argv[first], fmt, size, a.options,
			  a.force ? IMGFMT_CREATE_FORCE : 0, err, sizeof(err));
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

/* ---- compare ---- */

struct cmp_state {
	struct imgfmt_image *img[2];
	uint8_t *buf[2];
	uint64_t first_diff;
};

static bool is_zeroish(const struct imgfmt_extent *e)
{
	return e->type != IMGFMT_EXTENT_DATA;
}

/* Length of the next range that is uniform in both images, and whether it
 * must be read. */
static int next_range(struct cmp_state *s, uint64_t off, uint64_t end, uint64_t *len, bool *read)
{
	struct imgfmt_extent e[2];

	for (int i = 0; i < 2; i++) {
		int r = imgfmt_block_status(s->img[i], off, end - off, &e[i]);
		if (r < 0) {
			p2v_err("%s", imgfmt_errmsg(s->img[i]));
			return r;
		}
	}
	*len = e[0].length_bytes < e[1].length_bytes ? e[0].length_bytes : e[1].length_bytes;
	*read = !(is_zeroish(&e[0]) && is_zeroish(&e[1]));
	return 0;
}

/* 0 equal, 1 different (first_diff set), <0 error.  Compares [0, end). */
static int compare_common(struct cmp_state *s, uint64_t end)
{
	uint64_t off = 0;

	while (off < end) {
		uint64_t len, n;
		bool rd;
		int r = next_range(s, off, end, &len, &rd);
		if (r < 0)
			return r;
		for (uint64_t done = 0; rd && done < len; done += n) {
			n = len - done < CMP_BUF_BYTES ? len - done : CMP_BUF_BYTES;
			for (int i = 0; i < 2; i++)
				if ((r = imgfmt_pread(s->img[i], s->buf[i], n, off + done)) < 0) {
					p2v_err("%s", imgfmt_errmsg(s->img[i]));
					return r;
				}
			if (memcmp(s->buf[0], s->buf[1], n)) {
				uint64_t k = 0;
				while (s->buf[0][k] == s->buf[1][k])
					k++;
				s->first_diff = off + done + k;
				return 1;
			}
		}
		off += len;
		if (p2v_interrupted)
			return -EINTR;
	}
	return 0;
}

/* The tail of the longer image must read as zeroes. */
static int compare_tail(struct cmp_state *s, int longer, uint64_t from)
{
	uint64_t end = imgfmt_size_bytes(s->img[longer]), off = from;

	while (off < end) {
		struct imgfmt_extent e;
		uint64_t n;
		int r = imgfmt_block_status(s->img[longer], off, end - off, &e);
		if (r < 0)
			return r;
		for (uint64_t done = 0; !is_zeroish(&e) && done < e.length_bytes; done += n) {
			n = e.length_bytes - done < CMP_BUF_BYTES ? e.length_bytes - done : CMP_BUF_BYTES;
			if ((r = imgfmt_pread(s->img[longer], s->buf[0], n, off + done)) < 0)
				return r;
			if (!imgfmt_is_zero(s->buf[0], n)) {
				uint64_t k = 0;
				while (!s->buf[0][k])
					k++;
				s->first_diff = off + done + k;
				return 1;
			}
		}
		off += e.length_bytes;
	}
	return 0;
}

int p2v_cmd_compare(int argc, char **argv)
{
	static const char usage[] = "p2v compare [-f FMT] [-F FMT] [-U] [--json] IMAGE1 IMAGE2";
	struct cmp_state s = { 0 };
	uint64_t sz[2];
	struct img_args a;
	int r = -ENOMEM;

	START(2);
	p2v_install_signal_handlers();
	if (open_image(&s.img[0], argv[first], a.src_fmt, a.force_share ? IMGFMT_OPEN_FORCE_SHARE : 0) < 0)
		return P2V_EXIT_ERROR;
	if (open_image(&s.img[1], argv[first + 1], a.dst_fmt, a.force_share ? IMGFMT_OPEN_FORCE_SHARE : 0) < 0) {
		imgfmt_close(s.img[0]);
		return P2V_EXIT_ERROR;
	}
	s.buf[0] = malloc(CMP_BUF_BYTES);
	s.buf[1] = malloc(CMP_BUF_BYTES);
	sz[0] = imgfmt_size_bytes(s.img[0]);
	sz[1] = imgfmt_size_bytes(s.img[1]);
	if (s.buf[0] && s.buf[1]) {
		r = compare_common(&s, sz[0] < sz[1] ? sz[0] : sz[1]);
		if (r == 0 && sz[0] != sz[1])
			r = compare_tail(&s, sz[0] > sz[1] ? 0 : 1, sz[0] < sz[1] ? sz[0] : sz[1]);
	}
	if (a.json && r >= 0) {
		struct p2v_json j;
		p2v_json_init(&j, stdout);
		p2v_json_obj_begin(&j, NULL);
		p2v_json_bool(&j, "identical", r == 0);
		if (r == 1)
			p2v_json_u64(&j, "first-difference", s.first_diff);
		p2v_json_obj_end(&j);
		p2v_json_finish(&j);
	} else if (r == 0) {
		if (sz[0] != sz[1])
			p2v_warn("image sizes differ (%llu and %llu bytes); the extra part reads as zeroes",
				 (unsigned long long)sz[0], (unsigned long long)sz[1]);
		printf("Images are identical.\n");
	} else if (r == 1) {
		printf("Content mismatch at offset %llu!\n", (unsigned long long)s.first_diff);
	} else if (r == -EINTR) {
		p2v_err("compare: interrupted");
	} else if (r == -ENOMEM) {
		p2v_err("compare: out of memory");
	}
	free(s.buf[0]);
	free(s.buf[1]);
	imgfmt_close(s.img[0]);
	imgfmt_close(s.img[1]);
	return r < 0 ? P2V_EXIT_ERROR : (r ? P2V_EXIT_NO : P2V_EXIT_OK);
}

/* ---- check ---- */

static void report_problem(void *opaque, const char *msg)
{
	bool *json = opaque;

	if (!*json)
		printf("%s\n", msg);
}

int p2v_cmd_check(int argc, char **argv)
{
	static const char usage[] = "p2v check [-f FMT] [-U] [--json] IMAGE";
	struct imgfmt_check res = { 0 };
	struct imgfmt_image *img;
	struct img_args a;
	int r;

	START(1);
	if (open_image(&img, argv[first], a.src_fmt,
		       IMGFMT_OPEN_NO_BACKING | (a.force_share ? IMGFMT_OPEN_FORCE_SHARE : 0)) < 0)
		return P2V_EXIT_ERROR;
	res.report = report_problem;
	res.report_opaque = &a.json;
	r = imgfmt_check(img, &res);
	if (r < 0 && r != -ENOTSUP) {
		p2v_err("%s", imgfmt_errmsg(img));
		imgfmt_close(img);
		return P2V_EXIT_ERROR;
	}
	if (a.json) {
		struct p2v_json j;
		p2v_json_init(&j, stdout);
		p2v_json_obj_begin(&j, NULL);
		p2v_json_str(&j, "filename", argv[first]);
		p2v_json_str(&j, "format", imgfmt_format(img));
		p2v_json_bool(&j, "checked", r == 0);
		p2v_json_u64(&j, "corruptions", res.errors);
		p2v_json_u64(&j, "leaks", res.leaks);
		p2v_json_u64(&j, "allocated-clusters", res.allocated_clusters);
		p2v_json_u64(&j, "total-clusters", res.total_clusters);
		p2v_json_obj_end(&j);
		p2v_json_finish(&j);
	} else if (r == -ENOTSUP) {
		printf("%s: format %s has no metadata to check.\n", argv[first], imgfmt_format(img));
	} else {
		if (res.errors == 0 && res.leaks == 0)
			printf("No errors were found on the image.\n");
		else
			printf("%llu errors and %llu leaked clusters were found on the image.\n",
			       (unsigned long long)res.errors, (unsigned long long)res.leaks);
		if (res.total_clusters)
			printf("%llu/%llu clusters are allocated.\n",
			       (unsigned long long)res.allocated_clusters,
			       (unsigned long long)res.total_clusters);
	}
	imgfmt_close(img);
	return (res.errors || res.leaks) ? P2V_EXIT_NO : P2V_EXIT_OK;
}

/* ---- map ---- */

static const char *type_name(enum imgfmt_extent_type t)
{
	return t == IMGFMT_EXTENT_DATA ? "data" : t == IMGFMT_EXTENT_ZERO ? "zero" : "hole";
}

static void print_extent(const struct img_args *a, struct p2v_json *j, const struct imgfmt_extent *e)
{
	if (!a->json) {
		printf("%-20llu %-20llu %s\n", (unsigned long long)e->offset_bytes,
		       (unsigned long long)e->length_bytes, type_name(e->type));
		return;
	}
	p2v_json_obj_begin(j, NULL);
	p2v_json_u64(j, "start", e->offset_bytes);
	p2v_json_u64(j, "length", e->length_bytes);
	p2v_json_str(j, "type", type_name(e->type));
	p2v_json_bool(j, "data", e->type == IMGFMT_EXTENT_DATA);
	p2v_json_obj_end(j);
}

int p2v_cmd_map(int argc, char **argv)
{
	static const char usage[] = "p2v map [-f FMT] [-U] [--json] IMAGE";
	struct imgfmt_extent cur = { 0 }, e;
	struct imgfmt_image *img;
	struct img_args a;
	struct p2v_json j;
	uint64_t off = 0, size;
	int r = 0;

	START(1);
	if (open_image(&img, argv[first], a.src_fmt, a.force_share ? IMGFMT_OPEN_FORCE_SHARE : 0) < 0)
		return P2V_EXIT_ERROR;
	size = imgfmt_size_bytes(img);
	p2v_json_init(&j, stdout);
	if (a.json)
		p2v_json_arr_begin(&j, NULL);
	else
		printf("%-20s %-20s %s\n", "Offset", "Length", "Type");
	while (off < size && (r = imgfmt_block_status(img, off, size - off, &e)) == 0) {
		if (cur.length_bytes && cur.type == e.type) {
			cur.length_bytes += e.length_bytes;
		} else {
			if (cur.length_bytes)
				print_extent(&a, &j, &cur);
			cur = e;
		}
		off += e.length_bytes;
	}
	if (r == 0 && cur.length_bytes)
		print_extent(&a, &j, &cur);
	if (a.json) {
		p2v_json_arr_end(&j);
		p2v_json_finish(&j);
	}
	if (r < 0)
		p2v_err("%s", imgfmt_errmsg(img));
	imgfmt_close(img);
	return r < 0 ? P2V_EXIT_ERROR : P2V_EXIT_OK;
}
