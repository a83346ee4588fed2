/* Image commands: info, compare, check, map. */
#include "p2v.h"

#include "imgfmt.h"
#include "img_report.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#define CMP_BUF_BYTES (1u << 20)

static int open_image(struct imgfmt_image **img, const char *path, const char *fmt,
		      unsigned flags, const struct p2v_args *a)
{
	return p2v_open_image(img, path, fmt, flags, a);
}

static unsigned share_flag(const struct p2v_args *a)
{
	return p2v_has(a, 'U') ? IMGFMT_OPEN_FORCE_SHARE : 0;
}

/* Parse argv by cmd's table: the operands' index, 0 after --help, -1 on a
 * usage error (already reported). */
static int start(const struct p2v_cmd *cmd, int argc, char **argv, struct p2v_args *a)
{
	int r = p2v_args_parse(cmd, argc, argv, a);

	return r < 0 ? -1 : r > 0 ? 0 : (int)(a->operands - argv);
}

#define START(cmd) \
	int first = start(&(cmd), argc, argv, &a); \
	if (first <= 0) \
		return first ? P2V_EXIT_ERROR : P2V_EXIT_OK

/* ---- info ---- */

int p2v_cmd_info(int argc, char **argv)
{
	static const struct p2v_opt opts[] = {
		P2V_OPT_FORMAT("the image's format (probed by default)"),
		P2V_FLAG(P2V_O_BACKING_CHAIN, "backing-chain",
			 "describe every image of the backing chain, top first"),
		P2V_OPT_SHARE, P2V_OPTS_CONFINE, P2V_OPT_INSECURE_NBD, P2V_OPT_JSON, P2V_OPT_OUTPUT, P2V_OPT_END,
	};
	static const struct p2v_cmd cmd = {
		"info", "IMAGE", "Describe an image: format, sizes, backing file and format-specific "
		"details, as qemu-img info does.", opts, 1, 1,
	};
	struct imgfmt_image *top, *img;
	struct imgfmt_info *in;
	struct p2v_args a;
	struct p2v_json j;
	bool json, chain;
	int r = 0;

	START(cmd);
	json = p2v_json_wanted(&a);
	chain = p2v_has(&a, P2V_O_BACKING_CHAIN);
	if (open_image(&top, argv[first], p2v_str(&a, 'f'),
		       (chain ? 0 : IMGFMT_OPEN_NO_BACKING) | share_flag(&a), &a) < 0)
		return P2V_EXIT_ERROR;
	in = malloc(sizeof(*in));
	if (!in) {
		imgfmt_close(top);
		return P2V_EXIT_ERROR;
	}
	p2v_json_init(&j, stdout);
	if (json && chain)
		p2v_json_arr_begin(&j, NULL);
	for (img = top; img && r == 0; img = chain ? imgfmt_backing(img) : NULL) {
		r = imgfmt_info(img, in);
		if (r < 0) {
			p2v_err("%s", imgfmt_errmsg(img));
			break;
		}
		if (json)
			p2v_info_json(&j, img, in);
		else
			p2v_info_human(img, in);
		if (!json && chain && imgfmt_backing(img))
			printf("\n");
	}
	if (json && chain)
		p2v_json_arr_end(&j);
	if (json && r == 0)
		p2v_json_finish(&j);
	free(in);
	imgfmt_close(top);
	return r < 0 ? P2V_EXIT_ERROR : P2V_EXIT_OK;
}

/* ---- compare ---- */

struct cmp_state {
	struct imgfmt_image *img[2];
	uint8_t *buf[2];
	uint64_t first_diff;
	bool strict;                 /* -s: allocation must match too */
};

enum { CMP_SAME, CMP_CONTENT, CMP_STATUS, CMP_SIZE };

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
	if (s->strict) { /* as qemu-img compare -s: the map's flags must agree */
		struct p2v_map_flags f[2];
		for (int i = 0; i < 2; i++)
			p2v_map_flags(s->img[i], &e[i], &f[i]);
		if (memcmp(&f[0], &f[1], sizeof(f[0]))) {
			s->first_diff = off;
			return CMP_STATUS;
		}
	}
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
		if (r != 0)
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
	static const struct p2v_opt opts[] = {
		P2V_OPT_FORMAT("format of IMAGE1 (probed by default)"),
		P2V_ARG('F', NULL, P2V_ARG_STR, "FMT", "format of IMAGE2 (probed by default)"),
		P2V_FLAG('s', "strict", "strict, as qemu-img compare -s: the sizes must be equal and "
			 "the allocation the same (map's present/zero/data), not only the content"),
		P2V_OPT_SHARE, P2V_OPTS_CONFINE, P2V_OPT_INSECURE_NBD, P2V_OPT_JSON, P2V_OPT_OUTPUT, P2V_OPT_END,
	};
	static const struct p2v_cmd cmd = {
		"compare", "IMAGE1 IMAGE2", "Compare the content two images present to a guest; a "
		"part only the larger image has must read as zeroes (unless -s).  Exit 0 identical, "
		"1 different, 2 error.",
		opts, 2, 2,
	};
	struct cmp_state s = { 0 };
	uint64_t sz[2];
	struct p2v_args a;
	int r = -ENOMEM;

	START(cmd);
	p2v_install_signal_handlers();
	if (open_image(&s.img[0], argv[first], p2v_str(&a, 'f'), share_flag(&a), &a) < 0)
		return P2V_EXIT_ERROR;
	if (open_image(&s.img[1], argv[first + 1], p2v_str(&a, 'F'), share_flag(&a), &a) < 0) {
		imgfmt_close(s.img[0]);
		return P2V_EXIT_ERROR;
	}
	s.buf[0] = malloc(CMP_BUF_BYTES);
	s.buf[1] = malloc(CMP_BUF_BYTES);
	sz[0] = imgfmt_size_bytes(s.img[0]);
	sz[1] = imgfmt_size_bytes(s.img[1]);
	s.strict = p2v_has(&a, 's');
	if (s.strict && sz[0] != sz[1]) {
		r = CMP_SIZE;
	} else if (s.buf[0] && s.buf[1]) {
		r = compare_common(&s, sz[0] < sz[1] ? sz[0] : sz[1]);
		if (r == 0 && sz[0] != sz[1])
			r = compare_tail(&s, sz[0] > sz[1] ? 0 : 1, sz[0] < sz[1] ? sz[0] : sz[1]);
	}
	if (p2v_json_wanted(&a) && r >= 0) {
		struct p2v_json j;
		p2v_json_init(&j, stdout);
		p2v_json_obj_begin(&j, NULL);
		p2v_json_bool(&j, "identical", r == CMP_SAME);
		if (r == CMP_CONTENT || r == CMP_STATUS)
			p2v_json_u64(&j, "first-difference", s.first_diff);
		if (r != CMP_SAME)
			p2v_json_str(&j, "difference", r == CMP_CONTENT ? "content" :
				     r == CMP_STATUS ? "block-status" : "size");
		p2v_json_obj_end(&j);
		p2v_json_finish(&j);
	} else if (r == 0) {
		if (sz[0] != sz[1])
			p2v_warn("image sizes differ (%llu and %llu bytes); the extra part reads as zeroes",
				 (unsigned long long)sz[0], (unsigned long long)sz[1]);
		printf("Images are identical.\n");
	} else if (r == CMP_CONTENT) {
		printf("Content mismatch at offset %llu!\n", (unsigned long long)s.first_diff);
	} else if (r == CMP_STATUS) {
		printf("Strict mode: Offset %llu block status mismatch!\n", (unsigned long long)s.first_diff);
	} else if (r == CMP_SIZE) {
		printf("Strict mode: Image size mismatch!\n");
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

static const char *const repair_choices[] = { "leaks", "all", NULL };

int p2v_cmd_check(int argc, char **argv)
{
	static const struct p2v_opt opts[] = {
		P2V_OPT_FORMAT("the image's format (probed by default)"),
		P2V_ARG('r', "repair", P2V_ARG_CHOICE, "leaks|all",
			"repair (qcow2): leaks frees leaked clusters, all also fixes refcounts that "
			"are too low and COPIED flags; then checks again", .choices = repair_choices),
		P2V_OPT_SHARE, P2V_OPTS_CONFINE, P2V_OPT_INSECURE_NBD, P2V_OPT_JSON, P2V_OPT_OUTPUT, P2V_OPT_END,
	};
	static const struct p2v_cmd cmd = {
		"check", "IMAGE", "Check an image's metadata for corruption and leaked clusters, as "
		"qemu-img check does.  Exit 0 clean, 2 corruption, 3 leaks only, 63 the format has "
		"nothing to check, 1 the check could not be done.",
		opts, 1, 1,
	};
	struct imgfmt_image *img;
	struct p2v_args a;
	unsigned repair = 0, flags;
	int r, rc;

	r = p2v_args_parse(&cmd, argc, argv, &a);
	if (r != 0)
		return r > 0 ? P2V_CHECK_EXIT_CLEAN : P2V_CHECK_EXIT_ERROR;
	if (p2v_has(&a, 'r'))
		repair = p2v_u64(&a, 'r', 0) == 0 ? IMGFMT_REPAIR_LEAKS
						  : IMGFMT_REPAIR_LEAKS | IMGFMT_REPAIR_ERRORS;
	flags = IMGFMT_OPEN_NO_BACKING | share_flag(&a) |
		(repair ? IMGFMT_OPEN_RDWR | IMGFMT_OPEN_REPAIR : 0);
	if (open_image(&img, a.operands[0], p2v_str(&a, 'f'), flags, &a) < 0)
		return P2V_CHECK_EXIT_ERROR;
	r = p2v_check_run(img, imgfmt_path(img), repair, p2v_json_wanted(&a));
	rc = imgfmt_close(img);
	if (rc < 0) {
		p2v_err("%s: closing the repaired image: %s", a.operands[0], strerror(-rc));
		r = P2V_CHECK_EXIT_ERROR;
	}
	return r;
}

/* ---- map ---- */

int p2v_cmd_map(int argc, char **argv)
{
	static const struct p2v_opt opts[] = {
		P2V_OPT_FORMAT("the image's format (probed by default)"),
		P2V_OPT_SHARE, P2V_OPTS_CONFINE, P2V_OPT_INSECURE_NBD, P2V_OPT_JSON, P2V_OPT_OUTPUT, P2V_OPT_END,
	};
	static const struct p2v_cmd cmd = {
		"map", "IMAGE", "Where the image's data lies, as qemu-img map shows it: JSON entries "
		"with start, length, depth (which image of the backing chain), present, zero, data "
		"and offset (in that image's file); the human table lists the data ranges.",
		opts, 1, 1,
	};
	struct imgfmt_image *img;
	struct p2v_args a;
	int r;

	START(cmd);
	if (open_image(&img, argv[first], p2v_str(&a, 'f'), share_flag(&a), &a) < 0)
		return P2V_EXIT_ERROR;
	r = p2v_map_print(img, p2v_json_wanted(&a));
	imgfmt_close(img);
	return r < 0 ? P2V_EXIT_ERROR : P2V_EXIT_OK;
}
