/* info, map and check output shaped as qemu-img 7.2's (img_report.c). */
#ifndef P2V_IMG_REPORT_H
#define P2V_IMG_REPORT_H

#include "p2v.h"

#include "imgfmt.h"

/* qemu-img check's exit codes. */
enum {
	P2V_CHECK_EXIT_CLEAN = 0,
	P2V_CHECK_EXIT_ERROR = 1,       /* the check could not be completed */
	P2V_CHECK_EXIT_CORRUPT = 2,
	P2V_CHECK_EXIT_LEAKS = 3,       /* leaked clusters, no corruption */
	P2V_CHECK_EXIT_UNSUPPORTED = 63,
};

void p2v_info_human(struct imgfmt_image *img, const struct imgfmt_info *in);
/* qcow2 internal snapshots, as qemu-img info and snapshot -l print them:
 * the human table (nothing when there are none), and the JSON array (under
 * key, or as a value inside an array when key is NULL). */
void p2v_snapshots_human(const struct imgfmt_snapshot *v, unsigned n);
void p2v_snapshots_json(struct p2v_json *j, const char *key, const struct imgfmt_snapshot *v, unsigned n);
void p2v_info_json(struct p2v_json *j, struct imgfmt_image *img, const struct imgfmt_info *in);

/* qemu-img map's flags of an extent of top (imgfmt_block_status). */
struct p2v_map_flags {
	bool present, zero, data;
};
void p2v_map_flags(struct imgfmt_image *top, const struct imgfmt_extent *e, struct p2v_map_flags *f);

/* The whole map of img: qemu-img map's JSON entries, or its human table of
 * data ranges.  0, or -errno after printing the error. */
int p2v_map_print(struct imgfmt_image *img, bool json);

/* imgfmt_log_fn: a problem line on stderr, as qemu-img check prints it. */
void p2v_check_problem(void *opaque, const char *msg);

/* Check img (with repair: IMGFMT_REPAIR_*, the image opened RDWR and
 * REPAIR, then a second check as qemu-img does), print the result and
 * return the exit code (P2V_CHECK_EXIT_*). */
int p2v_check_run(struct imgfmt_image *img, const char *filename, unsigned repair, bool json);

#endif
