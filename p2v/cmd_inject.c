/* p2v inject: make a captured OS boot on virtio (drivers-inject/). */
#include "p2v.h"

#include "imgfmt.h"
#include "inject_plugin.h"

#include <stdlib.h>
#include <string.h>

struct inject_args {
	const char *format;
	bool json;
	struct drvinject_opts o;
	const char *allow[P2V_MAX_REPEATS]; /* --allow-backing */
	unsigned n_allow;
	bool allow_symlinks;
};

/* Progress lines with the time since the start: the appliance is slow. */
static void inject_log(void *opaque, const char *msg)
{
	const double *start_s = opaque;
	fprintf(stderr, "p2v: [%5.1fs] %s\n", p2v_now_s() - *start_s, msg);
}

enum { O_DRY = P2V_O_CMD, O_SERIAL, O_VIRTIO_WIN };

static const struct p2v_opt inject_opts[] = {
	P2V_OPT_FORMAT("the image's format (probed by default)"),
	P2V_FLAG(O_DRY, "dry-run", "say what would change and change nothing"),
	P2V_FLAG(O_SERIAL, "serial-console", "also put the kernel's console on the first serial port"),
	P2V_ARG(O_VIRTIO_WIN, "virtio-win", P2V_ARG_STR, "DIR",
		"Windows guests: the virtio-win drivers (an unpacked virtio-win ISO)"),
	P2V_OPTS_CONFINE, P2V_OPT_JSON, P2V_OPT_OUTPUT, P2V_OPT_END,
};

static const struct p2v_cmd inject_cmd = {
	"inject", "IMAGE",
	"Make a captured OS boot on virtio: drivers into the initramfs (Linux) or the registry "
	"(Windows), root by UUID, fstab and the bootloader fixed.  Each changed file keeps its "
	"original as FILE.p2v-orig.",
	inject_opts, 1, 1,
};

/* 0 with arguments parsed, 1 after --help, -1 on a usage error. */
static int parse_inject_args(int argc, char **argv, struct inject_args *a, int *first)
{
	struct p2v_args pa;
	int r = p2v_args_parse(&inject_cmd, argc, argv, &pa);

	if (r != 0)
		return r;
	a->format = p2v_str(&pa, 'f');
	a->o.dry_run = p2v_has(&pa, O_DRY);
	a->o.serial_console = p2v_has(&pa, O_SERIAL);
	a->o.virtio_win_dir = p2v_str(&pa, O_VIRTIO_WIN);
	a->json = p2v_json_wanted(&pa);
	a->n_allow = p2v_strs(&pa, P2V_O_ALLOW_BACKING, a->allow, P2V_MAX_REPEATS);
	a->allow_symlinks = p2v_has(&pa, P2V_O_ALLOW_SYMLINKS);
	*first = (int)(pa.operands - argv);
	return 0;
}

/* The image's format by p2v's own probe: libguestfs must never guess.
 * Its backing chain is opened too, confined: an image naming files
 * outside is refused here before anything else reads it. */
static int probe_format(const char *path, const struct inject_args *a, char *fmt, size_t fmt_bytes)
{
	struct imgfmt_open_opts oo = { .format = a->format, .allow_backing = a->n_allow ? a->allow : NULL,
				       .n_allow_backing = a->n_allow, .allow_symlinks = a->allow_symlinks };
	struct imgfmt_image *img;
	char err[IMGFMT_ERRMSG_BYTES];
	if (imgfmt_open(&img, path, &oo, err, sizeof(err)) < 0) {
		p2v_err("%s", err);
		return -1;
	}
	snprintf(fmt, fmt_bytes, "%s", imgfmt_format(img));
	imgfmt_close(img);
	return 0;
}

static void print_human(const char *path, const struct drvinject_result *r, bool dry_run)
{
	printf("%s: %s %s %d.%d (%s), root %s\n", path, r->os_type, r->distro, r->major_version,
	       r->minor_version, r->arch, r->root);
	for (unsigned i = 0; i < r->nr_kernels; i++)
		printf("  kernel %s\n", r->kernels[i]);
	if (r->initramfs_tool[0])
		printf("  initramfs tool: %s\n", r->initramfs_tool);
	if (r->uefi_fallback[0])
		printf("  UEFI fallback \\EFI\\BOOT\\BOOTX64.EFI: %s\n", r->uefi_fallback);
	printf("%s (%u):\n", dry_run ? "changes that would be made" : "changes made", r->nr_changes);
	for (unsigned i = 0; i < r->nr_changes; i++)
		printf("  %s: %s\n", r->changes[i].path, r->changes[i].what);
	if (!dry_run && r->nr_changes)
		printf("originals kept as FILE.p2v-orig\n");
}

static void print_json(const char *path, const char *fmt, const struct drvinject_result *r,
		       bool dry_run)
{
	struct p2v_json j;
	p2v_json_init(&j, stdout);
	p2v_json_obj_begin(&j, NULL);
	p2v_json_str(&j, "image", path);
	p2v_json_str(&j, "format", fmt);
	p2v_json_bool(&j, "dry_run", dry_run);
	p2v_json_bool(&j, "tcg", r->kvm_software_nested);
	p2v_json_str(&j, "os_type", r->os_type);
	p2v_json_str(&j, "distro", r->distro);
	p2v_json_i64(&j, "major_version", r->major_version);
	p2v_json_i64(&j, "minor_version", r->minor_version);
	p2v_json_str(&j, "arch", r->arch);
	p2v_json_str(&j, "root", r->root);
	p2v_json_str(&j, "initramfs_tool", r->initramfs_tool);
	p2v_json_str(&j, "uefi_fallback", r->uefi_fallback);
	p2v_json_arr_begin(&j, "kernels");
	for (unsigned i = 0; i < r->nr_kernels; i++)
		p2v_json_str(&j, NULL, r->kernels[i]);
	p2v_json_arr_end(&j);
	p2v_json_arr_begin(&j, "changes");
	for (unsigned i = 0; i < r->nr_changes; i++) {
		p2v_json_obj_begin(&j, NULL);
		p2v_json_str(&j, "path", r->changes[i].path);
		p2v_json_str(&j, "change", r->changes[i].what);
		p2v_json_obj_end(&j);
	}
	p2v_json_arr_end(&j);
	p2v_json_obj_end(&j);
	p2v_json_finish(&j);
}

int p2v_cmd_inject(int argc, char **argv)
{
	double start_s = p2v_now_s();
	struct inject_args a = { .o = { .log = inject_log, .opaque = &start_s } };
	char fmt[32], err[1024];
	int first;
	int pr = parse_inject_args(argc, argv, &a, &first);
	if (pr)
		return pr > 0 ? P2V_EXIT_OK : P2V_EXIT_ERROR;
	const char *path = argv[first];
	if (probe_format(path, &a, fmt, sizeof(fmt)) < 0)
		return P2V_EXIT_ERROR;
	a.o.format = fmt;
	const struct drvinject_plugin *plugin = p2v_inject_plugin();
	if (!plugin)
		return P2V_EXIT_ERROR;
	if (plugin->kvm_is_software())
		fprintf(stderr, "p2v: KVM is software-nested here; libguestfs uses TCG\n");
	struct drvinject_result *res = malloc(sizeof(*res));
	if (!res) {
		p2v_err("out of memory");
		return P2V_EXIT_ERROR;
	}
	int r = plugin->run(path, &a.o, res, err, sizeof(err));
	if (r < 0)
		p2v_err("%s: %s", path, err);
	else if (a.json)
		print_json(path, fmt, res, a.o.dry_run);
	else
		print_human(path, res, a.o.dry_run);
	free(res);
	return r < 0 ? P2V_EXIT_ERROR : P2V_EXIT_OK;
}
