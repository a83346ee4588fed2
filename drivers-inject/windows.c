/* The Windows half: copy viostor, vioscsi and netkvm from a virtio-win tree
 * (DIR/<driver>/<os>/<arch>/) into the guest and register the storage
 * drivers as boot-start services in the SYSTEM hive (win_registry.c). */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct win_driver {
	const char *dir;      /* directory in the virtio-win tree */
	const char *name;     /* file base name */
	bool required;
};

static const struct win_driver win_drivers[] = {
	{ "viostor", "viostor", true },
	{ "vioscsi", "vioscsi", false },
	{ "NetKVM", "netkvm", false },
};

static bool local_file(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* Guest path with the case the guest actually uses (NTFS is case-folding
 * but the appliance's ntfs-3g is not). */
static int guest_path(struct inj *c, const char *path, char *out, size_t out_bytes)
{
	char *p = guestfs_case_sensitive_path(c->g, path);
	if (!p)
		return inj_gfail(c, path);
	snprintf(out, out_bytes, "%s", p);
	free(p);
	return 0;
}

static int upload(struct inj *c, const char *local, const char *guest_dir, const char *file)
{
	char dst[512];
	snprintf(dst, sizeof(dst), "%s/%s", guest_dir, file);
	int r = guest_path(c, dst, dst, sizeof(dst));
	if (r && !c->o->dry_run)
		return r;
	/* a dry run does not make Windows\Drivers\VirtIO: its files keep the name given */
	if (c->o->dry_run) {
		inj_change(c, dst, "would copy from %s", local);
		return 0;
	}
	if (guestfs_exists(c->g, dst) == 1 && (r = inj_backup(c, dst)))
		return r;
	if (guestfs_upload(c->g, local, dst) < 0)
		return inj_gfail(c, dst);
	inj_change(c, dst, "copied from %s", local);
	return 0;
}

/* Copies one driver: the .sys into System32\drivers, the package (.sys,
 * .inf, .cat) into Windows\Drivers\VirtIO for PnP to find. */
static int copy_driver(struct inj *c, const struct win_driver *d, const char *os_dir,
		       const char *arch, const char *sysroot)
{
	static const char *const exts[] = { "sys", "inf", "cat" };
	char src_dir[512], local[640], file[64], drivers[256], pkg[256];
	snprintf(src_dir, sizeof(src_dir), "%s/%s/%s/%s", c->o->virtio_win_dir, d->dir, os_dir, arch);
	snprintf(local, sizeof(local), "%s/%s.sys", src_dir, d->name);
	if (!local_file(local)) {
		if (d->required)
			return inj_fail(c, -ENOENT, "%s is missing from the virtio-win tree "
					"(expected DIR/%s/%s/%s/%s.sys)", local, d->dir, os_dir, arch, d->name);
		inj_log(c, "no %s in the virtio-win tree: skipped", local);
		return 0;
	}
	snprintf(drivers, sizeof(drivers), "%s/System32/drivers", sysroot);
	snprintf(file, sizeof(file), "%s.sys", d->name);
	int r = upload(c, local, drivers, file);
	snprintf(pkg, sizeof(pkg), "%s/Drivers/VirtIO", sysroot);
	if (!r && !c->o->dry_run && guestfs_mkdir_p(c->g, pkg) < 0)
		r = inj_gfail(c, pkg);
	for (size_t i = 0; i < 3 && !r; i++) {
		snprintf(local, sizeof(local), "%s/%s.%s", src_dir, d->name, exts[i]);
		snprintf(file, sizeof(file), "%s.%s", d->name, exts[i]);
		if (local_file(local))
			r = upload(c, local, pkg, file);
	}
	return r;
}

static int edit_system_hive(struct inj *c, const char *sysroot)
{
	char hive[256], tmp[] = "/tmp/p2v-hive.XXXXXX";
	snprintf(hive, sizeof(hive), "%s/System32/config/SYSTEM", sysroot);
	int r = guest_path(c, hive, hive, sizeof(hive));
	if (r)
		return r;
	int fd = mkstemp(tmp);
	if (fd < 0)
		return inj_fail(c, -errno, "creating a temporary file: %s", strerror(errno));
	close(fd);
	if (guestfs_download(c->g, hive, tmp) < 0) {
		r = inj_gfail(c, hive);
		goto out_unlink;
	}
	r = drvinject_win_registry_add_virtio(tmp, c->res->major_version, c->res->minor_version,
					      c->err, c->err_bytes);
	if (r)
		goto out_unlink;
	bool before_win8 = c->res->major_version < 6 ||
			   (c->res->major_version == 6 && c->res->minor_version < 2);
	inj_change(c, hive, "%sservices viostor, vioscsi (boot start) and %s entries for their "
		   "virtio PCI IDs", c->o->dry_run ? "would add " : "added ",
		   before_win8 ? "CriticalDeviceDatabase" : "DriverDatabase\\DeviceIds");
	if (c->o->dry_run)
		goto out_unlink;
	r = inj_backup(c, hive);
	if (!r && guestfs_upload(c->g, tmp, hive) < 0)
		r = inj_gfail(c, hive);
out_unlink:
	unlink(tmp);
	return r;
}

/* Before anything is mounted read-write: is there all it takes? */
int drvinject_windows_precheck(struct inj *c)
{
	struct drvinject_result *res = c->res;
	if (!c->o->virtio_win_dir)
		return inj_fail(c, -EINVAL, "Windows guest (NT %d.%d, %s): p2v inject needs "
				"--virtio-win DIR, a virtio-win driver tree (viostor/<os>/<arch>/viostor.sys, "
				"as on virtio-win.iso), to install the virtio storage driver",
				res->major_version, res->minor_version, res->arch);
	if (strcmp(res->arch, "x86_64") && strcmp(res->arch, "i386"))
		return inj_fail(c, -ENOTSUP, "Windows on %s: virtio-win has amd64 and x86 only",
				res->arch);
	if (!drvinject_win_dir_name(res->major_version, res->minor_version, false, NULL))
		return inj_fail(c, -ENOTSUP, "Windows NT %d.%d is not a version p2v knows "
				"(XP 5.1 to 11 10.0)", res->major_version, res->minor_version);
	return 0;
}

int drvinject_windows(struct inj *c)
{
	struct drvinject_result *res = c->res;
	char *variant = guestfs_inspect_get_product_variant(c->g, c->root);
	char *product = guestfs_inspect_get_product_name(c->g, c->root);
	const char *os_dir = drvinject_win_dir_name(res->major_version, res->minor_version,
						    variant && !strcmp(variant, "Server"), product);
	free(variant);
	free(product);
	const char *arch = !strcmp(res->arch, "x86_64") ? "amd64" : "x86";
	char *sysroot = guestfs_inspect_get_windows_systemroot(c->g, c->root);
	if (!sysroot)
		return inj_gfail(c, "finding the Windows system root");
	inj_log(c, "Windows system root %s, drivers from %s/*/%s/%s", sysroot,
		c->o->virtio_win_dir, os_dir, arch);
	int r = 0;
	for (size_t i = 0; i < sizeof(win_drivers) / sizeof(win_drivers[0]) && !r; i++)
		r = copy_driver(c, &win_drivers[i], os_dir, arch, sysroot);
	if (!r)
		r = edit_system_hive(c, sysroot);
	free(sysroot);
	return r;
}
