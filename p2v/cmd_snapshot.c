/* p2v snapshot: qcow2 internal snapshots, as qemu-img snapshot. */
#include "p2v.h"

#include "imgfmt.h"
#include "img_report.h"

#include <stdlib.h>
#include <string.h>

static const struct p2v_opt snapshot_opts[] = {
	P2V_OPT_FORMAT("the image's format (probed by default)"),
	P2V_FLAG('l', "list", "list the snapshots (the default)"),
	P2V_ARG('c', "create", P2V_ARG_STR, "NAME", "take a snapshot of the disk's state as NAME"),
	P2V_ARG('a', "apply", P2V_ARG_STR, "SNAP", "revert the disk to snapshot SNAP (an ID or a name)"),
	P2V_ARG('d', "delete", P2V_ARG_STR, "SNAP", "delete snapshot SNAP (an ID or a name)"),
	P2V_FLAG('U', "force-share", "list even when another process holds a lock on the image"),
	P2V_FLAG('q', "quiet", "print nothing but errors"),
	P2V_OPTS_CONFINE, P2V_OPT_JSON, P2V_OPT_OUTPUT, P2V_OPT_END,
};

static const struct p2v_cmd snapshot_cmd = {
	"snapshot", "IMAGE",
	"List, create, apply or delete the internal snapshots of a qcow2 image, as qemu-img "
	"snapshot does (and readable by it).  The image is locked as QEMU locks it; an "
	"interruption leaves it consistent (at worst with leaked clusters).",
	snapshot_opts, 1, 1,
};

static int list(struct imgfmt_image *img, const struct p2v_args *a)
{
	struct imgfmt_snapshot *v;
	unsigned n;
	int r = imgfmt_snapshot_list(img, &v, &n);

	if (r < 0)
		return r;
	if (p2v_json_wanted(a)) {
		struct p2v_json j;
		p2v_json_init(&j, stdout);
		p2v_snapshots_json(&j, NULL, v, n);
		p2v_json_finish(&j);
	} else {
		p2v_snapshots_human(v, n);
	}
	free(v);
	return 0;
}

int p2v_cmd_snapshot(int argc, char **argv)
{
	struct imgfmt_image *img;
	struct p2v_args a;
	int actions, r = p2v_args_parse(&snapshot_cmd, argc, argv, &a);
	const char *c, *ap, *d;

	if (r != 0)
		return r > 0 ? P2V_EXIT_OK : P2V_EXIT_ERROR;
	c = p2v_str(&a, 'c');
	ap = p2v_str(&a, 'a');
	d = p2v_str(&a, 'd');
	actions = p2v_has(&a, 'l') + !!c + !!ap + !!d;
	if (actions > 1 || (p2v_has(&a, 'U') && (c || ap || d))) {
		p2v_err("snapshot: %s", actions > 1 ? "one of -l, -c, -a, -d at a time"
						    : "-U only lists: a change needs the image's lock");
		return P2V_EXIT_ERROR;
	}
	if (p2v_open_image(&img, a.operands[0], p2v_str(&a, 'f'),
			   IMGFMT_OPEN_NO_BACKING | (c || ap || d ? IMGFMT_OPEN_RDWR : 0) |
			   (p2v_has(&a, 'U') ? IMGFMT_OPEN_FORCE_SHARE : 0), &a) < 0)
		return P2V_EXIT_ERROR;
	p2v_install_signal_handlers();
	if (c)
		r = imgfmt_snapshot_create(img, c);
	else if (ap)
		r = imgfmt_snapshot_apply(img, ap);
	else if (d)
		r = imgfmt_snapshot_delete(img, d);
	else
		r = list(img, &a);
	if (r == 0)
		r = imgfmt_commit(img);
	if (r < 0)
		p2v_err("%s", imgfmt_errmsg(img));
	imgfmt_close(img);
	return r < 0 ? P2V_EXIT_ERROR : P2V_EXIT_OK;
}
