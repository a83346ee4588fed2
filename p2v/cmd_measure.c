/* p2v measure: the size an image needs, as qemu-img measure reports it. */
#include "p2v.h"

#include "imgfmt.h"

#include <string.h>

enum { O_SIZE = P2V_O_CMD };

static const struct p2v_opt measure_opts[] = {
	P2V_OPT_FORMAT("format of IMAGE (probed by default)"),
	P2V_ARG('O', NULL, P2V_ARG_STR, "FMT", "format to measure for (default raw)"),
	P2V_ARG('o', NULL, P2V_ARG_STR, "OPTIONS", "its options, as for convert ('p2v create -f FMT -o help')"),
	P2V_ARG(O_SIZE, "size", P2V_ARG_SIZE, "SIZE", "measure an empty image of SIZE instead of IMAGE"),
	P2V_OPT_SHARE, P2V_OPTS_CONFINE, P2V_OPT_INSECURE_NBD, P2V_OPT_JSON, P2V_OPT_OUTPUT, P2V_OPT_END,
};

static const struct p2v_cmd measure_cmd = {
	"measure", "[IMAGE]",
	"Say how large a conversion of IMAGE (or an empty image of --size bytes) to -O FMT would "
	"be: \"required size\" for IMAGE's allocated data, \"fully allocated size\" with every "
	"cluster written; the same numbers and JSON as qemu-img measure (which measures qcow2 "
	"and raw; p2v also vpc, vhdx and vmdk).  Nothing is read but IMAGE's block status.",
	measure_opts, 0, 1,
};

static void print(const struct p2v_args *a, const struct imgfmt_measure *m)
{
	struct p2v_json j;

	if (!p2v_json_wanted(a)) {
		printf("required size: %llu\nfully allocated size: %llu\n",
		       (unsigned long long)m->required_bytes, (unsigned long long)m->fully_allocated_bytes);
		if (m->has_bitmaps)
			printf("bitmaps size: %llu\n", (unsigned long long)m->bitmaps_bytes);
		return;
	}
	p2v_json_init(&j, stdout);
	p2v_json_obj_begin(&j, NULL);
	if (m->has_bitmaps)
		p2v_json_u64(&j, "bitmaps", m->bitmaps_bytes);
	p2v_json_u64(&j, "required", m->required_bytes);
	p2v_json_u64(&j, "fully-allocated", m->fully_allocated_bytes);
	p2v_json_obj_end(&j);
	p2v_json_finish(&j);
}

int p2v_cmd_measure(int argc, char **argv)
{
	struct imgfmt_image *src = NULL;
	struct imgfmt_measure m;
	struct p2v_args a;
	char err[IMGFMT_ERRMSG_BYTES];
	const char *fmt;
	int r = p2v_args_parse(&measure_cmd, argc, argv, &a);

	if (r != 0)
		return r > 0 ? P2V_EXIT_OK : P2V_EXIT_ERROR;
	if ((a.n_operands == 1) == p2v_has(&a, O_SIZE)) {
		p2v_err("measure: give either IMAGE or --size SIZE");
		return P2V_EXIT_ERROR;
	}
	fmt = p2v_str(&a, 'O') ? p2v_str(&a, 'O') : "raw";
	if (a.n_operands == 1 &&
	    p2v_open_image(&src, a.operands[0], p2v_str(&a, 'f'), p2v_has(&a, 'U') ? IMGFMT_OPEN_FORCE_SHARE : 0, &a) < 0)
		return P2V_EXIT_ERROR;
	r = imgfmt_measure(fmt, p2v_str(&a, 'o'), src, p2v_u64(&a, O_SIZE, 0), &m, err, sizeof(err));
	if (r < 0)
		p2v_err("measure: %s", err);
	else
		print(&a, &m);
	imgfmt_close(src);
	return r < 0 ? P2V_EXIT_ERROR : P2V_EXIT_OK;
}
