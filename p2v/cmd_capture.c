/* p2v capture SRC OUT: a physical disk (or a disk image file) into an image,
 * copying only what the filesystems use; p2v inspect SRC: the plan. */
#include "capture.h"
#include "p2v.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

struct cap_opts {
	const char *src, *out, *format, *options, *report;
	bool compress, dry_run, all_blocks, allow_mounted, freeze, verify, json, force, quiet;
	enum p2v_progress_mode progress;
	uint64_t max_errors;
};

/* Everything a capture holds; released in one place. */
struct cap {
	struct cap_opts o;
	struct p2v_disk disk;
	bool disk_open;
	struct p2v_mounts mounts;
	struct p2v_rangemap used;
	struct p2v_reader reader;
	bool reader_init;
	struct imgfmt_extent *ext;
	size_t n_ext;
	struct p2v_capture_result res;
	char err[IMGFMT_ERRMSG_BYTES + 256];
};

enum { O_DRY = P2V_O_CMD, O_ALL, O_ALLOW, O_FREEZE, O_VERIFY, O_REPORT, O_MAXERR };

#define CAPTURE_ABOUT \
	"Copies a disk (block device, whole-disk file, or NBD URI: nbd://, nbds://, " \
	"nbd+unix://, read over one connection) into an image, reading only the " \
	"blocks its filesystems use (ext2/3/4, FAT, NTFS bitmaps; swap header); unknown " \
	"filesystems are copied whole with zero detection.  Partitions mounted read-write " \
	"are refused unless --freeze (FIFREEZE for the duration) or --allow-mounted.  " \
	"Unreadable sectors are retried, filled with zeroes and listed in the report.  " \
	"Exit: 0 done, 1 done but sectors lost or --verify found a difference, 2 error."

#define OPT_ALL_BLOCKS P2V_FLAG(O_ALL, "all-blocks", \
	"copy every block (no filesystem maps), still skipping all-zero clusters")
#define OPT_REPORT P2V_ARG(O_REPORT, "report", P2V_ARG_STR, "FILE.json", \
	"write the JSON report (partitions, methods, bytes, lost ranges) to FILE.json")

static const struct p2v_opt capture_opts[] = {
	P2V_ARG('O', NULL, P2V_ARG_STR, "FMT", "output format (by default from OUT's extension)"),
	P2V_ARG('o', NULL, P2V_ARG_STR, "OPTIONS", "output format options ('p2v create -f FMT -o help')"),
	P2V_FLAG('c', NULL, "compress (qcow2, vmdk streamOptimized)"),
	P2V_FLAG(O_DRY, "dry-run", "show the plan (as p2v inspect) and copy nothing"),
	OPT_ALL_BLOCKS,
	P2V_FLAG(O_ALLOW, "allow-mounted", "capture partitions mounted read-write as they are (may be inconsistent)"),
	P2V_FLAG(O_FREEZE, "freeze", "freeze mounted filesystems (FIFREEZE) while copying"),
	P2V_FLAG(O_VERIFY, "verify", "read the image back and compare it with the source before it appears"),
	OPT_REPORT,
	P2V_ARG(O_MAXERR, "max-read-errors", P2V_ARG_COUNT, "N", "stop after N unreadable sectors (default: never)"),
	P2V_OPT_FORCE("replace an existing OUT (or overwrite a block device)"),
	P2V_OPT_PROGRESS, P2V_OPT_QUIET, P2V_OPT_JSON, P2V_OPT_OUTPUT,
	P2V_OPT_END,
};

static const struct p2v_cmd capture_cmd = {
	"capture", "SRC OUT", CAPTURE_ABOUT, capture_opts, 2, 2,
};

static const struct p2v_opt inspect_opts[] = {
	OPT_ALL_BLOCKS, OPT_REPORT, P2V_OPT_JSON, P2V_OPT_OUTPUT, P2V_OPT_END,
};

static const struct p2v_cmd inspect_cmd = {
	"inspect", "SRC", "Shows a disk's partitions, filesystems and what a capture would copy.",
	inspect_opts, 1, 1,
};

/* 0 parsed, 1 after --help, <0 on a usage error (reported). */
static int parse_args(int argc, char **argv, struct cap_opts *o, bool inspect)
{
	struct p2v_args a;
	int r = p2v_args_parse(inspect ? &inspect_cmd : &capture_cmd, argc, argv, &a);

	memset(o, 0, sizeof(*o));
	if (r != 0)
		return r < 0 ? -EINVAL : 1;
	o->src = a.operands[0];
	o->out = a.n_operands > 1 ? a.operands[1] : NULL;
	o->format = p2v_str(&a, 'O');
	o->options = p2v_str(&a, 'o');
	o->compress = p2v_has(&a, 'c');
	o->quiet = p2v_has(&a, 'q');
	o->progress = p2v_progress_mode(&a);
	o->dry_run = inspect || p2v_has(&a, O_DRY);
	o->all_blocks = p2v_has(&a, O_ALL);
	o->allow_mounted = p2v_has(&a, O_ALLOW);
	o->freeze = p2v_has(&a, O_FREEZE);
	o->verify = p2v_has(&a, O_VERIFY);
	o->report = p2v_str(&a, O_REPORT);
	o->json = p2v_json_wanted(&a);
	o->force = p2v_has(&a, P2V_O_FORCE);
	o->max_errors = p2v_u64(&a, O_MAXERR, 0);
	return 0;
}

/* Refuses read-write mounts of the source unless --freeze / --allow-mounted. */
static int check_mounts(struct cap *c, unsigned maj, unsigned min, bool *any_rw)
{
	char list[2048] = "";
	size_t len = 0;
	int r = p2v_mounts_of_disk(maj, min, &c->mounts);

	*any_rw = false;
	if (r < 0) {
		p2v_err("cannot read /proc/self/mountinfo: %s", strerror(-r));
		return r;
	}
	for (size_t i = 0; i < c->mounts.n; i++) {
		const struct p2v_mount *m = &c->mounts.v[i];
		if (!m->read_write)
			continue;
		*any_rw = true;
		if (len < sizeof(list))
			len += (size_t)snprintf(list + len, sizeof(list) - len, "%s%s on %s",
						len ? ", " : "", m->source, m->mountpoint);
	}
	if (!*any_rw || c->o.freeze)
		return 0;
	if (c->o.dry_run) {
		p2v_warn("mounted read-write: %s; a capture needs --freeze or --allow-mounted", list);
		return 0;
	}
	if (c->o.allow_mounted) {
		p2v_warn("capturing filesystems mounted read-write (%s): the image may be inconsistent", list);
		return 0;
	}
	p2v_err("%s has filesystems mounted read-write: %s; unmount them, or use --freeze or --allow-mounted",
		c->o.src, list);
	return -EBUSY;
}

/* The output must not lie on the source disk (or be it). */
static int check_output(struct cap *c, const struct stat *src_st)
{
	char *copy = strdup(c->o.out);
	struct stat st;
	int r = 0;

	if (!copy)
		return -ENOMEM;
	if (stat(c->o.out, &st) == 0) {
		if ((S_ISBLK(st.st_mode) && S_ISBLK(src_st->st_mode) &&
		     p2v_dev_on_disk(st.st_rdev, major(src_st->st_rdev), minor(src_st->st_rdev))) ||
		    (st.st_dev == src_st->st_dev && st.st_ino == src_st->st_ino))
			r = -EINVAL;
	}
	if (r == 0 && S_ISBLK(src_st->st_mode) && stat(dirname(copy), &st) == 0 &&
	    p2v_dev_on_disk(st.st_dev, major(src_st->st_rdev), minor(src_st->st_rdev)))
		r = -EINVAL;
	if (r < 0)
		p2v_err("output %s lies on the source disk %s%s", c->o.out, c->o.src,
			c->o.freeze ? " (and would be frozen)" : "");
	free(copy);
	return r;
}

static void print_warnings(const struct p2v_disk *d)
{
	for (unsigned i = 0; i < d->n_parts; i++)
		if (d->parts[i].warn)
			p2v_warn("partition %d (%s): %s", d->parts[i].number, d->parts[i].fs_type,
				 d->parts[i].why);
}

static int write_report_file(struct cap *c, const struct p2v_capture_result *res)
{
	FILE *f;

	if (!c->o.report)
		return 0;
	f = fopen(c->o.report, "we");
	if (!f) {
		p2v_err("%s: %s", c->o.report, strerror(errno));
		return -errno;
	}
	p2v_report_json(f, &c->disk, p2v_rangemap_bytes(&c->used), res);
	if (fclose(f) != 0) {
		p2v_err("%s: %s", c->o.report, strerror(errno));
		return -EIO;
	}
	return 0;
}

static int show_plan(struct cap *c)
{
	uint64_t copy_bytes = p2v_rangemap_bytes(&c->used);

	if (c->o.json)
		p2v_report_json(stdout, &c->disk, copy_bytes, NULL);
	else
		p2v_report_plan_human(stdout, &c->disk, copy_bytes);
	return write_report_file(c, NULL) < 0 ? P2V_EXIT_ERROR : P2V_EXIT_OK;
}

/* SHA-256 of the written image and (with --verify) comparison with the
 * source, before the image is made visible. */
static int readback(struct cap *c, struct imgfmt_image *dst)
{
	int r;

	if (!(c->o.verify || c->o.report || c->o.json))
		return 0;
	c->reader.record = false;
	r = p2v_capture_readback(dst, c->o.verify ? &c->reader : NULL, c->ext, c->n_ext, &c->res,
				 &p2v_interrupted);
	c->reader.record = true;
	if (r < 0 && r != -EINTR)
		snprintf(c->err, sizeof(c->err), "reading back %s: %s", c->o.out, imgfmt_errmsg(dst));
	return r;
}

static void copy_error(struct cap *c, int r, struct imgfmt_image *dst)
{
	if (r == -EINTR)
		p2v_err("interrupted; %s not written", c->o.out);
	else if (r == -EIO && c->o.max_errors && c->reader.n_errors > c->o.max_errors)
		p2v_err("more than %llu unreadable sectors (--max-read-errors); capture stopped, %s not written",
			(unsigned long long)c->o.max_errors, c->o.out);
	else
		p2v_err("%s", c->err[0] ? c->err : imgfmt_errmsg(dst));
}

/* Runs the copy engine from the device (through the retrying reader) into
 * OUT, reads it back, and commits it; on any failure OUT does not appear. */
static int run_copy(struct cap *c, const char *format, struct imgfmt_image *src)
{
	struct imgfmt_image *dst = NULL;
	struct p2v_progress pg;
	struct imgfmt_copy_opts co = {
		.compress = c->o.compress, .extents = c->ext, .n_extents = c->n_ext,
		.read = p2v_reader_read, .read_opaque = &c->reader,
		.progress = p2v_progress_update, .progress_opaque = &pg, .cancel = &p2v_interrupted,
	};
	struct stat st;
	int r = imgfmt_create(&dst, c->o.out, format, c->disk.size_bytes, c->o.options,
			      c->o.force ? IMGFMT_CREATE_FORCE : 0, c->err, sizeof(c->err));

	if (r < 0) {
		p2v_err("%s", c->err);
		return r;
	}
	p2v_progress_init(&pg, "capture", c->o.progress);
	r = imgfmt_copy(src, dst, &co, &c->res.stats, c->err, sizeof(c->err));
	c->res.copy_s = p2v_now_s() - pg.start_s;
	if (r == 0)
		p2v_progress_finish(&pg);
	else
		p2v_progress_abort(&pg);
	if (r == 0)
		r = readback(c, dst);
	if (r == 0)
		r = imgfmt_commit(dst);
	if (r < 0)
		copy_error(c, r, dst);
	imgfmt_close(dst);
	if (r == 0 && stat(c->o.out, &st) == 0)
		c->res.allocated_bytes = (uint64_t)st.st_blocks * 512;
	return r;
}

static int capture_copy(struct cap *c)
{
	struct imgfmt_open_opts oo = { .format = "raw" };
	const char *format = c->o.format ? c->o.format : imgfmt_format_from_filename(c->o.out);
	struct imgfmt_image *src;
	double t0 = p2v_now_s();
	int r;

	if (!format) {
		p2v_err("%s: cannot tell the output format from its name; use -O", c->o.out);
		return -EINVAL;
	}
	r = p2v_rangemap_to_extents(&c->used, c->disk.size_bytes, c->disk.logical_sector_bytes,
				    &c->ext, &c->n_ext);
	if (r == 0)
		r = p2v_reader_init(&c->reader, c->disk.fd, c->disk.logical_sector_bytes, c->o.max_errors);
	if (r < 0) {
		p2v_err("preparing the copy: %s", strerror(-r));
		return r;
	}
	c->reader_init = true;
	c->reader.img = c->disk.img; /* NBD: the connection that read the plan */
	if (c->disk.is_block_device)
		p2v_reader_use_direct(&c->reader, c->disk.path);
	if (c->disk.img) {
		src = c->disk.img;
	} else {
		r = imgfmt_open(&src, c->disk.path, &oo, c->err, sizeof(c->err));
		if (r < 0) {
			p2v_err("%s", c->err);
			return r;
		}
	}
	r = run_copy(c, format, src);
	if (src != c->disk.img)
		imgfmt_close(src);
	c->res.wall_s = p2v_now_s() - t0;
	c->res.out_path = c->o.out;
	c->res.out_format = imgfmt_driver_canonical(format) ? imgfmt_driver_canonical(format) : format;
	p2v_rangemap_normalize(&c->reader.lost);
	c->res.lost = &c->reader.lost;
	return r;
}

static int capture_report(struct cap *c)
{
	bool lost = c->reader.lost.n > 0;
	bool mismatch = c->res.verified && c->res.verify_mismatch_bytes;

	if (c->o.json)
		p2v_report_json(stdout, &c->disk, p2v_rangemap_bytes(&c->used), &c->res);
	p2v_report_result_human(c->o.json ? stderr : stdout, &c->res, c->o.quiet);
	if (lost)
		p2v_warn("%zu range(s) of the source could not be read and are zeroes in the image",
			 c->reader.lost.n);
	if (mismatch)
		p2v_err("verify: %llu bytes differ, first at byte %llu",
			(unsigned long long)c->res.verify_mismatch_bytes,
			(unsigned long long)c->res.verify_first_mismatch);
	if (write_report_file(c, &c->res) < 0)
		return P2V_EXIT_ERROR;
	return lost || mismatch ? P2V_EXIT_NO : P2V_EXIT_OK;
}

/* Open, (freeze,) probe, plan, then either show the plan or copy. */
static int capture_run(struct cap *c, bool any_rw)
{
	int r = p2v_disk_open(&c->disk, c->o.src, c->mounts.n == 0, c->err, sizeof(c->err));

	if (r < 0) {
		p2v_err("%s", c->err);
		return P2V_EXIT_ERROR;
	}
	c->disk_open = true;
	if (any_rw && c->o.freeze && !c->o.dry_run) {
		r = p2v_mounts_freeze(&c->mounts, c->err, sizeof(c->err));
		if (r < 0) {
			p2v_err("%s", c->err);
			return P2V_EXIT_ERROR;
		}
		/* Drop cached device pages read before the filesystems were flushed. */
		posix_fadvise(c->disk.fd, 0, 0, POSIX_FADV_DONTNEED);
	}
	r = p2v_disk_probe(&c->disk, c->err, sizeof(c->err));
	if (r < 0) {
		p2v_err("%s", c->err);
		return P2V_EXIT_ERROR;
	}
	r = p2v_disk_plan(&c->disk, c->o.all_blocks, &c->used);
	if (r < 0) {
		p2v_err("planning the capture: %s", strerror(-r));
		return P2V_EXIT_ERROR;
	}
	print_warnings(&c->disk);
	if (c->o.dry_run)
		return show_plan(c);
	r = capture_copy(c);
	/* Thaw before writing reports: they may go to a frozen filesystem. */
	p2v_mounts_thaw(&c->mounts);
	return r < 0 ? P2V_EXIT_ERROR : capture_report(c);
}

static void cap_release(struct cap *c)
{
	p2v_mounts_thaw(&c->mounts);
	p2v_mounts_free(&c->mounts);
	if (c->reader_init)
		p2v_reader_destroy(&c->reader);
	free(c->ext);
	p2v_rangemap_free(&c->used);
	if (c->disk_open)
		p2v_disk_close(&c->disk);
}

static int capture_main(int argc, char **argv, bool inspect)
{
	struct cap *c = calloc(1, sizeof(*c));
	struct stat st;
	bool any_rw = false;
	int r;

	if (!c)
		return P2V_EXIT_ERROR;
	r = parse_args(argc, argv, &c->o, inspect);
	if (r != 0) {
		free(c);
		return r > 0 ? P2V_EXIT_OK : P2V_EXIT_ERROR;
	}
	p2v_install_signal_handlers();
	p2v_rangemap_init(&c->used);
	if (imgfmt_is_nbd_uri(c->o.src)) {
		/* A remote disk: its mounts are the server's business (p2v serve
		 * checks them), and OUT cannot lie on it. */
		r = capture_run(c, false);
	} else if (stat(c->o.src, &st) < 0) {
		p2v_err("%s: %s", c->o.src, strerror(errno));
		r = P2V_EXIT_ERROR;
	} else if ((S_ISBLK(st.st_mode) &&
		    check_mounts(c, major(st.st_rdev), minor(st.st_rdev), &any_rw) < 0) ||
		   (c->o.out && !c->o.dry_run && check_output(c, &st) < 0)) {
		r = P2V_EXIT_ERROR;
	} else {
		r = capture_run(c, any_rw);
	}
	cap_release(c);
	free(c);
	return r;
}

int p2v_cmd_capture(int argc, char **argv)
{
	return capture_main(argc, argv, false);
}

int p2v_cmd_inspect(int argc, char **argv)
{
	return capture_main(argc, argv, true);
}
