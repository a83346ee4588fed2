/* drvinject_run: open the image with libguestfs, find the OS by
 * inspection, mount it and hand over to the Linux or Windows half. */
#include "internal.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

void inj_log(struct inj *c, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	if (!c->o->log)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	c->o->log(c->o->opaque, msg);
}

int inj_fail(struct inj *c, int e, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(c->err, c->err_bytes, fmt, ap);
	va_end(ap);
	return e;
}

int inj_gfail(struct inj *c, const char *what)
{
	const char *msg = guestfs_last_error(c->g);
	return inj_fail(c, -EIO, "%s: %s", what, msg ? msg : "libguestfs error");
}

void inj_change(struct inj *c, const char *path, const char *fmt, ...)
{
	struct drvinject_result *r = c->res;
	if (r->nr_changes >= DRVINJECT_MAX_CHANGES) {
		if (r->nr_changes == DRVINJECT_MAX_CHANGES)
			inj_log(c, "more than %d changes: the summary lists the first ones",
				DRVINJECT_MAX_CHANGES);
		return;
	}
	struct drvinject_change *ch = &r->changes[r->nr_changes++];
	va_list ap;
	snprintf(ch->path, sizeof(ch->path), "%s", path);
	va_start(ap, fmt);
	vsnprintf(ch->what, sizeof(ch->what), fmt, ap);
	va_end(ap);
}

int inj_backup(struct inj *c, const char *path)
{
	char backup[512];
	snprintf(backup, sizeof(backup), "%s.p2v-orig", path);
	int exists = guestfs_exists(c->g, backup);
	if (exists < 0)
		return inj_gfail(c, backup);
	if (exists)
		return 0;  /* a second run keeps the original, not the first run's output */
	exists = guestfs_exists(c->g, path);
	if (exists < 0)
		return inj_gfail(c, path);
	if (!exists)
		return 0;  /* a file p2v creates has no original */
	if (guestfs_cp_a(c->g, path, backup) < 0)
		return inj_gfail(c, "backing up");
	return 0;
}

char *inj_read_text(struct inj *c, const char *path, bool *missing)
{
	*missing = false;
	int is = guestfs_is_file(c->g, path);
	if (is <= 0) {
		*missing = is == 0;
		if (is < 0)
			inj_gfail(c, path);
		return NULL;
	}
	size_t n;
	char *data = guestfs_read_file(c->g, path, &n);
	if (!data) {
		inj_gfail(c, path);
		return NULL;
	}
	if (memchr(data, '\0', n)) {
		free(data);
		inj_fail(c, -EINVAL, "%s: binary content in a text configuration file", path);
		return NULL;
	}
	return data;
}

/* The length of one line starting at s, without its newline. */
static size_t line_len(const char *s)
{
	const char *nl = strchr(s, '\n');
	return nl ? (size_t)(nl - s) : strlen(s);
}

static void record_line_changes(struct inj *c, const char *path, const char *a, const char *b)
{
	while (*a || *b) {
		size_t la = line_len(a), lb = line_len(b);
		const char *verb = c->o->dry_run ? "would " : "";
		if (!*a)
			inj_change(c, path, "%sadd line '%.*s'", verb, (int)(lb > 150 ? 150 : lb), b);
		else if (!*b)
			inj_change(c, path, "%sremove line '%.*s'", verb, (int)(la > 150 ? 150 : la), a);
		else if (la != lb || memcmp(a, b, la))
			inj_change(c, path, "%s'%.*s' -> '%.*s'", c->o->dry_run ? "would change " : "",
				   (int)(la > 150 ? 150 : la), a, (int)(lb > 150 ? 150 : lb), b);
		a += la + (a[la] == '\n');
		b += lb + (b[lb] == '\n');
	}
}

int inj_replace_file(struct inj *c, const char *path, const char *old_text, const char *new_text)
{
	if (!strcmp(old_text, new_text))
		return 0;
	record_line_changes(c, path, old_text, new_text);
	if (c->o->dry_run)
		return 0;
	int r = inj_backup(c, path);
	if (r)
		return r;
	if (guestfs_write(c->g, path, new_text, strlen(new_text)) < 0)
		return inj_gfail(c, path);
	return 0;
}

bool drvinject_kvm_is_software(void)
{
	if (access("/dev/kvm", R_OK | W_OK) != 0)
		return true;
	FILE *f = fopen("/proc/cpuinfo", "r");
	if (!f)
		return true;
	char line[4096];
	bool hw = false;
	while (!hw && fgets(line, sizeof(line), f))
		if (!strncmp(line, "flags", 5))
			hw = strstr(line, " vmx") || strstr(line, " svm");
	fclose(f);
	return !hw;
}

static void copy_str(char *dst, size_t dst_bytes, char *src)
{
	snprintf(dst, dst_bytes, "%s", src ? src : "unknown");
	free(src);
}

static int inspect(struct inj *c)
{
	struct drvinject_result *r = c->res;
	char **roots = guestfs_inspect_os(c->g);
	if (!roots)
		return inj_gfail(c, "inspecting the image");
	if (!roots[0]) {
		free(roots);
		return inj_fail(c, -ENOENT, "no operating system found in the image");
	}
	for (size_t i = 1; roots[i]; i++)
		inj_log(c, "more than one operating system: using the one on %s, not %s",
			roots[0], roots[i]);
	snprintf(r->root, sizeof(r->root), "%s", roots[0]);
	for (size_t i = 0; roots[i]; i++)
		free(roots[i]);
	free(roots);
	c->root = r->root;
	copy_str(r->os_type, sizeof(r->os_type), guestfs_inspect_get_type(c->g, c->root));
	copy_str(r->distro, sizeof(r->distro), guestfs_inspect_get_distro(c->g, c->root));
	copy_str(r->arch, sizeof(r->arch), guestfs_inspect_get_arch(c->g, c->root));
	r->major_version = guestfs_inspect_get_major_version(c->g, c->root);
	r->minor_version = guestfs_inspect_get_minor_version(c->g, c->root);
	inj_log(c, "found %s %s %d.%d (%s) on %s", r->os_type, r->distro, r->major_version,
		r->minor_version, r->arch, c->root);
	return 0;
}

static int by_mountpoint_length(const void *a, const void *b)
{
	const char *const *x = a, *const *y = b;
	size_t lx = strlen(x[0]), ly = strlen(y[0]);
	return (lx > ly) - (lx < ly);
}

/* Mounts the guest's filesystems, shortest mount point first. */
static int mount_guest(struct inj *c)
{
	char **mp = guestfs_inspect_get_mountpoints(c->g, c->root);
	if (!mp)
		return inj_gfail(c, "listing mount points");
	size_t n = 0;
	while (mp[2 * n])
		n++;
	qsort(mp, n, 2 * sizeof(char *), by_mountpoint_length);
	int r = 0;
	for (size_t i = 0; i < n && !r; i++) {
		int m = c->o->dry_run ? guestfs_mount_ro(c->g, mp[2 * i + 1], mp[2 * i])
				      : guestfs_mount(c->g, mp[2 * i + 1], mp[2 * i]);
		if (m < 0 && !strcmp(mp[2 * i], "/"))
			r = inj_gfail(c, "mounting the root filesystem");
		else if (m < 0)
			inj_log(c, "cannot mount %s on %s: %s", mp[2 * i + 1], mp[2 * i],
				guestfs_last_error(c->g));
	}
	for (size_t i = 0; i < 2 * n; i++)
		free(mp[i]);
	free(mp);
	return r;
}

static int open_image(struct inj *c, const char *path)
{
	if (drvinject_kvm_is_software()) {
		c->res->kvm_software_nested = true;
		if (guestfs_set_backend_setting(c->g, "force_tcg", "1") < 0)
			return inj_gfail(c, "setting force_tcg");
	}
	/* Two vCPUs: grub-mkconfig and the initramfs rebuild are CPU-bound
	 * in the appliance (multi-threaded TCG uses both host cores). */
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	if (cpus >= 2 && guestfs_set_smp(c->g, 2) < 0)
		return inj_gfail(c, "setting the appliance's vCPUs");
	if (guestfs_add_drive_opts(c->g, path, GUESTFS_ADD_DRIVE_OPTS_READONLY, c->o->dry_run,
				   GUESTFS_ADD_DRIVE_OPTS_FORMAT, c->o->format ? c->o->format : "raw",
				   -1) < 0)
		return inj_gfail(c, path);
	inj_log(c, "starting the libguestfs appliance%s",
		c->res->kvm_software_nested ? " (TCG)" : "");
	if (guestfs_launch(c->g) < 0)
		return inj_gfail(c, "starting the libguestfs appliance");
	return 0;
}

/* Refusals come before mounting: a refused image stays byte-identical. */
static int convert_guest(struct inj *c)
{
	int r = inspect(c);
	if (r)
		return r;
	bool linux_guest = !strcmp(c->res->os_type, "linux");
	bool windows_guest = !strcmp(c->res->os_type, "windows");
	if (!linux_guest && !windows_guest)
		return inj_fail(c, -ENOTSUP, "%s guests are not supported (only Linux and Windows)",
				c->res->os_type);
	if (windows_guest && (r = drvinject_windows_precheck(c)))
		return r;
	r = mount_guest(c);
	if (r)
		return r;
	r = linux_guest ? drvinject_linux(c) : drvinject_windows(c);
	return r ? r : drvinject_uefi(c);
}

int drvinject_run(const char *path, const struct drvinject_opts *opts,
		  struct drvinject_result *res, char *err, size_t err_bytes)
{
	memset(res, 0, sizeof(*res));
	struct inj c = { .o = opts, .res = res, .err = err, .err_bytes = err_bytes };
	c.g = guestfs_create();
	if (!c.g) {
		snprintf(err, err_bytes, "cannot create a libguestfs handle");
		return -ENOMEM;
	}
	guestfs_set_error_handler(c.g, NULL, NULL);
	int r = open_image(&c, path);
	if (!r)
		r = convert_guest(&c);
	if (!r && guestfs_umount_all(c.g) < 0)
		r = inj_gfail(&c, "unmounting");
	if (!r && guestfs_shutdown(c.g) < 0)
		r = inj_gfail(&c, "closing the appliance");
	guestfs_close(c.g);
	return r;
}
