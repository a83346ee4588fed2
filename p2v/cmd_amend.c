/* p2v amend: change format options of an image in place, as qemu-img amend
 * does (qcow2: compat, lazy_refcounts, size, refcount_bits). */
#include "p2v.h"

#include "imgfmt.h"

#include <string.h>

static const char *const cache_modes[] = { "none", "writeback", "writethrough", "directsync",
					    "unsafe", NULL };

static const struct p2v_opt amend_opts[] = {
	P2V_OPT_FORMAT("the image's format (probed by default)"),
	P2V_ARG('o', NULL, P2V_ARG_STR, "OPTIONS",
		"the options to change, key=value,... ('-o help' lists them)"),
	P2V_ARG('t', NULL, P2V_ARG_CHOICE, "none|writeback|...",
		"qemu-img's cache mode: accepted and ignored (every step is made durable)",
		.choices = cache_modes),
	P2V_OPT_PROGRESS,
	P2V_OPT_QUIET,
	P2V_OPTS_CONFINE,
	P2V_OPT_END,
};

static const struct p2v_cmd amend_cmd = {
	"amend", "IMAGE",
	"Change format options of IMAGE in place, as qemu-img amend does.  qcow2: compat=0.10|1.1 "
	"(a downgrade writes v3 zero clusters out as zeroes and is refused, naming it, when the "
	"image uses another v3-only feature or its internal snapshots hold zero clusters), lazy_refcounts=on|off, size (grows or shrinks "
	"as resize), refcount_bits (new refcount structures, then one header write); backing_file "
	"and backing_fmt only to their current values ('p2v rebase' changes the backing file).  The image is locked as QEMU locks it, and the "
	"version and features change by one write of the header after the data is durable.",
	amend_opts, 0, 1, /* none for -f FMT -o help */
};

static bool wants_help(const char *options)
{
	return !strcmp(options, "help") || !strcmp(options, "?");
}

/* -o help: the format's amend options (qemu-img's heading). */
static int amend_help(const char *path, const char *fmt, const struct p2v_args *a)
{
	const struct imgfmt_opt_desc *d;
	struct imgfmt_image *img = NULL;
	char line[600];

	if (!fmt) {
		if (p2v_open_image(&img, path, NULL, IMGFMT_OPEN_NO_BACKING | IMGFMT_OPEN_FORCE_SHARE, a) < 0)
			return P2V_EXIT_ERROR;
		fmt = imgfmt_format(img);
	}
	d = imgfmt_amend_options(fmt);
	if (!d)
		p2v_err("unknown format '%s'", fmt);
	else if (!d[0].name)
		p2v_err("Format driver '%s' does not support option amendment", fmt);
	else {
		printf("Amend options for '%s':\n", fmt);
		for (size_t i = 0; d[i].name; i++) {
			imgfmt_opt_describe(&d[i], line, sizeof(line));
			printf("  %s\n", line);
		}
	}
	imgfmt_close(img);
	return d && d[0].name ? P2V_EXIT_OK : P2V_EXIT_ERROR;
}

int p2v_cmd_amend(int argc, char **argv)
{
	struct imgfmt_image *img;
	struct p2v_progress pg;
	struct p2v_args a;
	const char *options;
	int r = p2v_args_parse(&amend_cmd, argc, argv, &a);

	if (r != 0)
		return r > 0 ? P2V_EXIT_OK : P2V_EXIT_ERROR;
	options = p2v_str(&a, 'o');
	if (!options || !*options) {
		p2v_err("amend: Must specify options (-o)");
		return P2V_EXIT_ERROR;
	}
	if (wants_help(options) && (a.n_operands || p2v_str(&a, 'f')))
		return amend_help(a.n_operands ? a.operands[0] : NULL, p2v_str(&a, 'f'), &a);
	if (p2v_check_operands(&a, 1, 1) < 0)
		return P2V_EXIT_ERROR;
	/* refusals first, read-only: opening read-write changes the image
	 * (persistent bitmaps are marked inconsistent) */
	if (p2v_open_image(&img, a.operands[0], p2v_str(&a, 'f'),
			   IMGFMT_OPEN_NO_BACKING | IMGFMT_OPEN_FORCE_SHARE, &a) < 0)
		return P2V_EXIT_ERROR;
	if ((r = imgfmt_amend_check(img, options)) < 0)
		p2v_err("%s", imgfmt_errmsg(img));
	imgfmt_close(img);
	if (r < 0)
		return P2V_EXIT_ERROR;
	if (p2v_open_image(&img, a.operands[0], p2v_str(&a, 'f'), IMGFMT_OPEN_RDWR | IMGFMT_OPEN_NO_BACKING, &a) < 0)
		return P2V_EXIT_ERROR;
	p2v_progress_init(&pg, "amend", p2v_progress_mode(&a));
	if ((r = imgfmt_amend(img, options)) < 0)
		p2v_err("%s", imgfmt_errmsg(img));
	if (r == 0 && (r = imgfmt_commit(img)) < 0)
		p2v_err("%s", imgfmt_errmsg(img));
	imgfmt_close(img);
	if (r == 0) {
		p2v_progress_update(&pg, 1, 1);
		p2v_progress_finish(&pg);
	} else {
		p2v_progress_abort(&pg);
	}
	return r < 0 ? P2V_EXIT_ERROR : P2V_EXIT_OK;
}
