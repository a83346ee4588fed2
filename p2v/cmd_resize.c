/* In-place changes of an image: resize. */
#include "p2v.h"

#include "imgfmt.h"

#include <errno.h>
#include <string.h>

enum { O_SHRINK = P2V_O_SHRINK, O_PREALLOC = P2V_O_CMD };
static const char *const prealloc_choices[] = { "off", NULL };

static const struct p2v_opt resize_opts[] = {
	P2V_OPT_FORMAT("the image's format (probed by default)"),
	P2V_FLAG(O_SHRINK, "shrink", "allow a smaller size: what lies past the new end is discarded"),
	P2V_ARG(O_PREALLOC, "preallocation", P2V_ARG_CHOICE, "off",
		"qemu-img's preallocation of the new space: only off (the space reads as zeroes)",
		.choices = prealloc_choices),
	P2V_FLAG('q', "quiet", "print nothing but errors"),
	P2V_OPTS_CONFINE,
	P2V_OPT_END,
};

static const struct p2v_cmd resize_cmd = {
	"resize", "IMAGE [+|-]SIZE",
	"Change an image's virtual size in place: SIZE, or +SIZE/-SIZE relative to it (K, M, G, T "
	"suffixes).  Growing adds space that reads as zeroes; shrinking needs --shrink.  raw, qcow2 "
	"(without internal snapshots), vpc and vhdx grow; raw, qcow2 and fixed VHDs shrink.  The "
	"image is locked as QEMU locks it, and each format orders its writes so that an "
	"interruption leaves a consistent image.",
	resize_opts, 1, 2, /* a negative SIZE is taken out before parsing */
};

/* "10G", "+1G", "-512M" against the current size. */
static int new_size(const char *arg, uint64_t cur, uint64_t *out)
{
	uint64_t v;

	if (imgfmt_parse_size(arg + (arg[0] == '+' || arg[0] == '-'), &v) < 0) {
		p2v_err("resize: '%s' is not a size (e.g. 10G, +1G, -512M)", arg);
		return -EINVAL;
	}
	if (arg[0] == '-' && v > cur) {
		p2v_err("resize: %s is more than the image's %llu bytes", arg, (unsigned long long)cur);
		return -EINVAL;
	}
	if (arg[0] == '+' && v > UINT64_MAX - cur) {
		p2v_err("resize: %s overflows", arg);
		return -ERANGE;
	}
	*out = arg[0] == '+' ? cur + v : arg[0] == '-' ? cur - v : v;
	return 0;
}

int p2v_cmd_resize(int argc, char **argv)
{
	struct imgfmt_image *img;
	struct p2v_args a;
	char *size_arg = NULL;
	uint64_t size;
	int r;

	/* a negative size is not an option: take it out first, as qemu-img does */
	if (argc > 2 && argv[argc - 1][0] == '-' && argv[argc - 1][1] >= '0' && argv[argc - 1][1] <= '9')
		size_arg = argv[--argc];
	r = p2v_args_parse(&resize_cmd, argc, argv, &a);
	if (r == 0)
		r = p2v_check_operands(&a, size_arg ? 1 : 2, size_arg ? 1 : 2);
	if (r != 0)
		return r > 0 ? P2V_EXIT_OK : P2V_EXIT_ERROR;
	if (!size_arg)
		size_arg = a.operands[1];
	if (p2v_open_image(&img, a.operands[0], p2v_str(&a, 'f'), IMGFMT_OPEN_RDWR | IMGFMT_OPEN_NO_BACKING, &a) < 0)
		return P2V_EXIT_ERROR;
	r = new_size(size_arg, imgfmt_size_bytes(img), &size);
	if (r == 0 && (r = imgfmt_resize(img, size, p2v_has(&a, O_SHRINK))) < 0)
		p2v_err("%s", imgfmt_errmsg(img));
	if (r == 0 && (r = imgfmt_commit(img)) < 0)
		p2v_err("%s", imgfmt_errmsg(img));
	imgfmt_close(img);
	if (r == 0 && !p2v_has(&a, 'q'))
		printf("Image resized.\n");
	return r < 0 ? P2V_EXIT_ERROR : P2V_EXIT_OK;
}
