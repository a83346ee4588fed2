/* p2v rebase and p2v commit: change the backing file an image names, or
 * write an image's data into its backing file, as qemu-img does (qcow2). */
#include "p2v.h"

#include "imgfmt.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ---- rebase ---- */

static const struct p2v_opt rebase_opts[] = {
	P2V_OPT_FORMAT("the image's format (probed by default)"),
	P2V_ARG('b', "backing", P2V_ARG_STR, "NEW_BACKING",
		"the new backing file, as the image will name it (relative to the image's "
		"directory); \"\" for none"),
	P2V_ARG('F', "backing-format", P2V_ARG_STR, "NEW_FMT",
		"the new backing file's format (probed by default)"),
	P2V_FLAG('u', "unsafe", "only rewrite the header: the image's content changes if the "
		 "new backing file reads differently from the old one"),
	P2V_FLAG('U', "force-share", "open the backing files even when another process holds a "
		 "lock on them (IMAGE itself is locked: a change needs its lock)"),
	P2V_OPT_PROGRESS,
	P2V_OPT_QUIET,
	P2V_OPTS_CONFINE,
	P2V_OPT_END,
};

static const struct p2v_cmd rebase_cmd = {
	"rebase", "IMAGE",
	"Change the backing file IMAGE names to NEW_BACKING (-b \"\": none).  By default (safe "
	"mode) every cluster IMAGE does not hold and that reads differently through the new "
	"backing file than through the old chain is first written into IMAGE, so its content "
	"is unchanged; -u only rewrites the header.  The new backing file is opened as the "
	"image's backing files are, confined beneath IMAGE's directory unless --allow-backing "
	"names its own.  qcow2 only; the header is switched by one write after the new name "
	"is on disk.",
	rebase_opts, 1, 1,
};

/* Safe mode: write into img the clusters it does not hold whose content
 * differs between its old chain (what img reads now) and nb (NULL: none). */
static int rebase_copy(struct imgfmt_image *img, struct imgfmt_image *nb, struct p2v_progress *pg)
{
	uint64_t size = imgfmt_size_bytes(img), cb = imgfmt_cluster_bytes(img);
	uint64_t nsize = nb ? imgfmt_size_bytes(nb) : 0, chunk = cb > (1u << 20) ? cb : (1u << 20);
	uint64_t off = 0, done = 0;
	uint8_t *oldb = malloc(chunk), *newb = malloc(chunk);
	int r = 0;

	if (!oldb || !newb) {
		p2v_err("rebase: out of memory");
		r = -ENOMEM;
	}
	while (r == 0 && off < size) {
		struct imgfmt_extent e;
		uint64_t start, end, len;

		if (p2v_interrupted) {
			p2v_err("rebase: interrupted; the image still names its old backing file");
			r = -EINTR;
			break;
		}
		if ((r = imgfmt_block_status(img, off, size - off, &e)) < 0) {
			p2v_err("%s", imgfmt_errmsg(img));
			break;
		}
		end = e.offset_bytes + e.length_bytes;
		if (e.depth == 0 && e.type != IMGFMT_EXTENT_HOLE) { /* img holds it */
			off = end;
			continue;
		}
		if (e.type != IMGFMT_EXTENT_DATA) {
			/* the old chain reads zeroes up to end: nothing to do
			 * where the new backing file reads zeroes too */
			struct imgfmt_extent ne = { .type = IMGFMT_EXTENT_HOLE };
			uint64_t zend = end;
			if (nb && off < nsize) {
				if ((r = imgfmt_block_status(nb, off, (end < nsize ? end : nsize) - off, &ne)) < 0) {
					p2v_err("%s", imgfmt_errmsg(nb));
					break;
				}
				zend = off + ne.length_bytes;
			}
			if (ne.type != IMGFMT_EXTENT_DATA) {
				off = zend;
				p2v_progress_update(pg, off, size);
				continue;
			}
		}
		/* whole clusters: the rest of a cluster is unallocated in img too */
		start = off / cb * cb;
		if (start < done)
			start = done;
		end = (end + cb - 1) / cb * cb;
		if (end > size)
			end = size;
		if (end - start > chunk)
			end = start + chunk;
		len = end - start;
		if ((r = imgfmt_pread(img, oldb, len, start)) < 0) {
			p2v_err("%s", imgfmt_errmsg(img));
			break;
		}
		memset(newb, 0, len);
		if (nb && start < nsize &&
		    (r = imgfmt_pread(nb, newb, (end < nsize ? end : nsize) - start, start)) < 0) {
			p2v_err("%s", imgfmt_errmsg(nb));
			break;
		}
		for (uint64_t c = 0; c < len && r == 0; c += cb) {
			uint64_t n = len - c < cb ? len - c : cb;
			if (!memcmp(oldb + c, newb + c, n))
				continue;
			r = imgfmt_is_zero(oldb + c, n) ? imgfmt_write_zeroes(img, n, start + c)
							 : imgfmt_pwrite(img, oldb + c, n, start + c);
			if (r < 0)
				p2v_err("%s", imgfmt_errmsg(img));
		}
		done = off = end;
		p2v_progress_update(pg, off, size);
	}
	free(oldb);
	free(newb);
	return r;
}

int p2v_cmd_rebase(int argc, char **argv)
{
	struct imgfmt_image *img, *nb = NULL;
	struct imgfmt_open_opts o = { .log = p2v_log_warning };
	const char *allow[P2V_MAX_REPEATS];
	char err[IMGFMT_ERRMSG_BYTES];
	struct p2v_progress pg;
	struct p2v_args a;
	const char *name, *fmt;
	bool unsafe;
	int r = p2v_args_parse(&rebase_cmd, argc, argv, &a);

	if (r != 0)
		return r > 0 ? P2V_EXIT_OK : P2V_EXIT_ERROR;
	name = p2v_str(&a, 'b');
	fmt = p2v_str(&a, 'F');
	unsafe = p2v_has(&a, 'u');
	if (!name) {
		p2v_err("rebase: -b NEW_BACKING is required (-b \"\" removes the backing file)");
		return P2V_EXIT_ERROR;
	}
	if (fmt && !*name) {
		p2v_err("rebase: -F needs a backing file (-b)");
		return P2V_EXIT_ERROR;
	}
	/* the format first (some open read-only only), then read-write */
	if (p2v_open_image(&img, a.operands[0], p2v_str(&a, 'f'),
			   IMGFMT_OPEN_NO_BACKING | IMGFMT_OPEN_FORCE_SHARE, &a) < 0)
		return P2V_EXIT_ERROR;
	if (!imgfmt_can_set_backing(img)) {
		p2v_err("%s: p2v cannot change the backing file of a %s image (qcow2 only)",
			a.operands[0], imgfmt_format(img));
		imgfmt_close(img);
		return P2V_EXIT_ERROR;
	}
	imgfmt_close(img);
	/* allow[] outlives img: the new backing file is opened as img's */
	o.format = p2v_str(&a, 'f');
	o.flags = IMGFMT_OPEN_RDWR | (unsafe ? IMGFMT_OPEN_NO_BACKING : 0) |
		  (p2v_has(&a, 'U') ? IMGFMT_OPEN_FORCE_SHARE_BACKING : 0);
	p2v_confine_opts(&a, &o, allow);
	if (imgfmt_open(&img, a.operands[0], &o, err, sizeof(err)) < 0) {
		p2v_err("%s", err);
		return P2V_EXIT_ERROR;
	}
	p2v_install_signal_handlers();
	if (*name) {
		r = imgfmt_open_as_backing(img, name, fmt, &nb);
		/* -u may name a file that does not exist yet, as qemu-img allows */
		if (r == -ENOENT && unsafe)
			r = 0;
		else if (r < 0)
			p2v_err("%s", imgfmt_errmsg(img));
		if (r == 0 && nb && !fmt)
			fmt = imgfmt_format(nb);
	}
	if (r == 0 && !unsafe) {
		p2v_progress_init(&pg, "rebase", p2v_progress_mode(&a));
		r = rebase_copy(img, nb, &pg);
		if (r == 0)
			p2v_progress_finish(&pg);
		else
			p2v_progress_abort(&pg);
		if (r == 0 && (r = imgfmt_flush(img)) < 0)
			p2v_err("%s", imgfmt_errmsg(img));
	}
	if (r == 0 && (r = imgfmt_set_backing(img, name, fmt)) < 0)
		p2v_err("%s", imgfmt_errmsg(img));
	imgfmt_close(nb);
	if (r == 0 && (r = imgfmt_commit(img)) < 0)
		p2v_err("%s", imgfmt_errmsg(img));
	imgfmt_close(img);
	return r < 0 ? P2V_EXIT_ERROR : P2V_EXIT_OK;
}

/* ---- commit ---- */

static const struct p2v_opt commit_opts[] = {
	P2V_OPT_FORMAT("the image's format (probed by default)"),
	P2V_FLAG('d', "keep", "do not empty IMAGE after the commit (qemu-img's -d)"),
	P2V_OPT_PROGRESS,
	P2V_OPT_QUIET,
	P2V_OPTS_CONFINE,
	P2V_OPT_END,
};

static const struct p2v_cmd commit_cmd = {
	"commit", "IMAGE",
	"Write the data IMAGE holds into its backing file, as qemu-img commit does, then (unless "
	"-d) empty IMAGE so that it reads through to the backing file.  The backing file is found "
	"through IMAGE's confined chain, then reopened read-write and checked to be the same "
	"file; it grows when IMAGE is larger.  Both are locked as QEMU locks them.  IMAGE: "
	"qcow2; the backing file: any writable format.",
	commit_opts, 1, 1,
};

/* Empty top (qemu-img's make_empty): its allocated clusters become
 * unallocated. */
static int empty_image(struct imgfmt_image *top)
{
	uint64_t size = imgfmt_size_bytes(top), off = 0;
	int r = 0;

	while (r == 0 && off < size) {
		struct imgfmt_extent e;
		if ((r = imgfmt_block_status(top, off, size - off, &e)) < 0)
			break;
		if (e.type != IMGFMT_EXTENT_HOLE)
			r = imgfmt_discard(top, e.length_bytes, off);
		off += e.length_bytes;
	}
	if (r < 0)
		p2v_err("%s", imgfmt_errmsg(top));
	return r;
}

int p2v_cmd_commit(int argc, char **argv)
{
	struct imgfmt_image *chain, *base = NULL, *top = NULL;
	struct imgfmt_copy_opts co = { .keep_holes = true, .cancel = &p2v_interrupted };
	struct imgfmt_open_opts o = { .flags = IMGFMT_OPEN_RDWR, .log = p2v_log_warning };
	const char *allow[P2V_MAX_REPEATS];
	char err[IMGFMT_ERRMSG_BYTES] = "", *bpath = NULL, bfmt[32];
	struct imgfmt_copy_stats st;
	struct p2v_progress pg;
	struct p2v_args a;
	int r = p2v_args_parse(&commit_cmd, argc, argv, &a);

	if (r != 0)
		return r > 0 ? P2V_EXIT_OK : P2V_EXIT_ERROR;
	/* 1. the backing file as the confined chain open reaches it (no locks:
	 * only to find it; the opens below take them) */
	if (p2v_open_image(&chain, a.operands[0], p2v_str(&a, 'f'), IMGFMT_OPEN_FORCE_SHARE, &a) < 0)
		return P2V_EXIT_ERROR;
	if (!imgfmt_backing(chain)) {
		p2v_err("%s: the image has no backing file to commit into", a.operands[0]);
		imgfmt_close(chain);
		return P2V_EXIT_ERROR;
	}
	if (!p2v_has(&a, 'd') && !imgfmt_can_set_backing(chain)) {
		p2v_err("%s: p2v cannot empty a %s image after a commit (qcow2 only; -d keeps it)",
			a.operands[0], imgfmt_format(chain));
		imgfmt_close(chain);
		return P2V_EXIT_ERROR;
	}
	bpath = strdup(imgfmt_path(imgfmt_backing(chain)));
	snprintf(bfmt, sizeof(bfmt), "%s", imgfmt_format(imgfmt_backing(chain)));
	/* 2. the backing file reopened read-write by path, the same file */
	o.format = bfmt;
	p2v_confine_opts(&a, &o, allow);
	o.flags = IMGFMT_OPEN_RDWR;
	r = bpath ? imgfmt_open(&base, bpath, &o, err, sizeof(err)) : -ENOMEM;
	if (r < 0)
		p2v_err("%s", bpath ? err : "out of memory");
	else if (!imgfmt_same_file(base, imgfmt_backing(chain))) {
		p2v_err("%s: the backing file %s was replaced while it was opened; nothing changed",
			a.operands[0], bpath);
		r = -ESTALE;
	}
	/* 3. the image itself, its own clusters only (read-write to empty it) */
	if (r == 0)
		r = p2v_open_image(&top, a.operands[0], p2v_str(&a, 'f'),
				   (p2v_has(&a, 'd') ? 0 : IMGFMT_OPEN_RDWR) | IMGFMT_OPEN_NO_BACKING, &a);
	if (r == 0 && !imgfmt_same_file(top, chain)) {
		p2v_err("%s was replaced while it was opened; nothing changed", a.operands[0]);
		r = -ESTALE;
	}
	imgfmt_close(chain);
	free(bpath);
	if (r == 0 && imgfmt_size_bytes(top) > imgfmt_size_bytes(base) &&
	    (r = imgfmt_resize(base, imgfmt_size_bytes(top), false)) < 0)
		p2v_err("%s", imgfmt_errmsg(base));
	if (r == 0) {
		p2v_install_signal_handlers();
		p2v_progress_init(&pg, "commit", p2v_progress_mode(&a));
		co.progress = p2v_progress_update;
		co.progress_opaque = &pg;
		err[0] = 0;
		r = imgfmt_copy(top, base, &co, &st, err, sizeof(err));
		if (r < 0) {
			p2v_progress_abort(&pg);
			p2v_err("%s", err[0] ? err : imgfmt_errmsg(base)[0] ? imgfmt_errmsg(base)
									  : imgfmt_errmsg(top));
		} else {
			p2v_progress_finish(&pg);
		}
	}
	/* the data is in the backing file, durably, before top lets go of it */
	if (r == 0 && (r = imgfmt_commit(base)) < 0)
		p2v_err("%s", imgfmt_errmsg(base));
	if (r == 0 && !p2v_has(&a, 'd'))
		r = empty_image(top);
	if (r == 0 && (r = imgfmt_commit(top)) < 0)
		p2v_err("%s", imgfmt_errmsg(top));
	imgfmt_close(top);
	if (base && imgfmt_close(base) < 0 && r == 0) {
		p2v_err("%s", "closing the backing file failed");
		r = -EIO;
	}
	if (r == 0 && !p2v_has(&a, 'q'))
		printf("Image committed.\n");
	return r < 0 ? P2V_EXIT_ERROR : P2V_EXIT_OK;
}
