/* UEFI guests: the machine's boot entry lives in its NVRAM, which does not
 * travel with the disk, so the new VM's firmware only finds the removable-
 * media fallback \EFI\BOOT\BOOTX64.EFI.  When it is missing, make it from
 * the guest's own files on its EFI system partition:
 *   - Linux with shim: shim as BOOTX64.EFI, grubx64.efi and mmx64.efi beside
 *     it (what `grub-install --removable` / `--force-extra-removable`
 *     install; not fbx64.efi, which would re-create NVRAM entries and reset);
 *   - Linux with GRUB alone: grubx64.efi as BOOTX64.EFI;
 *   - either way \EFI\BOOT\grub.cfg: the distribution directory's stub, or
 *     one written here that finds /boot/grub by its filesystem's UUID;
 *   - systemd-boot: systemd-bootx64.efi as BOOTX64.EFI;
 *   - Windows: \EFI\Microsoft\Boot\bootmgfw.efi as BOOTX64.EFI.
 * The ESP is mounted alone at / once the OS half is done (read-only for a
 * dry run); files it replaces keep a FILE.p2v-orig backup. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ESP_GPT_TYPE "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
#define ESP_MBR_ID 0xef

static void free_strv(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

/* ---- the plan (pure) ---- */

static const char *find_name(const char *const *files, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (!strcasecmp(files[i], name))
			return files[i];
	return NULL;
}

static void plan_copy(struct drvinject_efi_plan *p, const char *dir, const char *from, const char *to)
{
	struct drvinject_efi_copy *c = &p->copy[p->n++];

	snprintf(c->from, sizeof(c->from), "%s/%s", dir, from);
	snprintf(c->to, sizeof(c->to), "EFI/BOOT/%s", to);
}

int drvinject_efi_plan(bool windows, const char *dir, const char *const *files, size_t n_files,
		       struct drvinject_efi_plan *p)
{
	const char *shim = find_name(files, n_files, "shimx64.efi");
	const char *grub = find_name(files, n_files, "grubx64.efi");
	const char *mm = find_name(files, n_files, "mmx64.efi");
	const char *cfg = find_name(files, n_files, "grub.cfg");
	const char *sdboot = find_name(files, n_files, "systemd-bootx64.efi");
	const char *bootmgr = find_name(files, n_files, "bootmgfw.efi");

	memset(p, 0, sizeof(*p));
	if (windows && bootmgr) {
		snprintf(p->loader, sizeof(p->loader), "Windows Boot Manager");
		plan_copy(p, dir, bootmgr, "BOOTX64.EFI");
	} else if (!windows && shim && grub) {
		snprintf(p->loader, sizeof(p->loader), "shim and GRUB");
		plan_copy(p, dir, shim, "BOOTX64.EFI");
		plan_copy(p, dir, grub, "grubx64.efi");
		if (mm)
			plan_copy(p, dir, mm, "mmx64.efi");
	} else if (!windows && grub) {
		snprintf(p->loader, sizeof(p->loader), "GRUB");
		plan_copy(p, dir, grub, "BOOTX64.EFI");
	} else if (!windows && sdboot) {
		snprintf(p->loader, sizeof(p->loader), "systemd-boot");
		plan_copy(p, dir, sdboot, "BOOTX64.EFI");
		return 0;
	} else {
		return -ENOENT;
	}
	if (!windows && cfg)
		plan_copy(p, dir, cfg, "grub.cfg");
	else if (!windows)
		p->write_stub = true;
	return 0;
}

int drvinject_grub_stub(const char *uuid, const char *grub_dir, char *out, size_t out_bytes)
{
	for (const char *s = uuid; *s; s++)
		if (!strchr("0123456789abcdefABCDEF-", *s))
			return -EINVAL;
	if (!*uuid || strchr(grub_dir, '\'') || strchr(grub_dir, '\n'))
		return -EINVAL;
	if (snprintf(out, out_bytes,
		     "# written by p2v inject: the removable-media path finds /boot/grub by UUID\n"
		     "search.fs_uuid %s root\n"
		     "set prefix=($root)'%s'\n"
		     "configfile $prefix/grub.cfg\n", uuid, grub_dir) >= (int)out_bytes)
		return -ENAMETOOLONG;
	return 0;
}

/* ---- the guest ---- */

static bool is_esp(struct inj *c, const char *part)
{
	char *dev = guestfs_part_to_dev(c->g, part), *type;
	int n = guestfs_part_to_partnum(c->g, part);
	bool esp = false;

	if (!dev || n < 1) {
		free(dev);
		return false;
	}
	type = guestfs_part_get_parttype(c->g, dev);
	if (type && !strcmp(type, "gpt")) {
		char *guid = guestfs_part_get_gpt_type(c->g, dev, n);
		esp = guid && !strcasecmp(guid, ESP_GPT_TYPE);
		free(guid);
	} else if (type && !strcmp(type, "msdos")) {
		esp = guestfs_part_get_mbr_id(c->g, dev, n) == ESP_MBR_ID;
	}
	free(type);
	free(dev);
	return esp;
}

/* The first EFI system partition with a FAT filesystem, or "" */
static int find_esp(struct inj *c, char *esp, size_t esp_bytes)
{
	char **parts = guestfs_list_partitions(c->g);

	esp[0] = '\0';
	if (!parts)
		return inj_gfail(c, "listing partitions");
	for (size_t i = 0; parts[i] && !esp[0]; i++) {
		char *fs = is_esp(c, parts[i]) ? guestfs_vfs_type(c->g, parts[i]) : NULL;
		if (fs && (!strcmp(fs, "vfat") || !strcmp(fs, "msdos")))
			snprintf(esp, esp_bytes, "%s", parts[i]);
		free(fs);
	}
	free_strv(parts);
	return 0;
}

/* Linux: the UUID of the filesystem holding /boot/grub and GRUB's path in
 * it, for a grub.cfg stub (taken while the guest is still mounted). */
static void grub_location(struct inj *c, char *uuid, size_t uuid_bytes, char *dir, size_t dir_bytes)
{
	char **mp = guestfs_inspect_get_mountpoints(c->g, c->root);
	const char *dev = c->root;

	snprintf(dir, dir_bytes, "/boot/grub");
	for (size_t i = 0; mp && mp[i]; i += 2)
		if (!strcmp(mp[i], "/boot")) {
			dev = mp[i + 1];
			snprintf(dir, dir_bytes, "/grub");
		}
	char *u = guestfs_vfs_uuid(c->g, dev);
	snprintf(uuid, uuid_bytes, "%s", u ? u : "");
	free(u);
	free_strv(mp);
}

/* The guest's own case of a path on the ESP, or NULL when it does not exist. */
static char *esp_path(struct inj *c, const char *path)
{
	char abs[256];

	snprintf(abs, sizeof(abs), "/%s", path);
	if (guestfs_exists(c->g, abs) != 1)
		return NULL;
	return guestfs_case_sensitive_path(c->g, abs);
}

/* Chooses the directory holding the OS's loader: the distribution's name
 * first (\EFI\debian for Debian), else the first that yields a plan. */
/* The plan for one directory of the ESP (its path with the guest's case). */
static int plan_dir(struct inj *c, bool windows, const char *path, char *dir, size_t dir_bytes,
		    struct drvinject_efi_plan *plan)
{
	char **files = guestfs_is_dir(c->g, path) == 1 ? guestfs_ls(c->g, path) : NULL;
	size_t n = 0;
	int r;

	if (!files)
		return -ENOENT;
	while (files[n])
		n++;
	snprintf(dir, dir_bytes, "%s", path + 1);
	r = drvinject_efi_plan(windows, dir, (const char *const *)files, n, plan);
	free_strv(files);
	return r;
}

static int choose_loader(struct inj *c, bool windows, char *dir, size_t dir_bytes,
			 struct drvinject_efi_plan *plan)
{
	char **dirs;
	int r = -ENOENT;

	if (windows) {
		char *d = esp_path(c, "EFI/Microsoft/Boot");
		if (d)
			r = plan_dir(c, true, d, dir, dir_bytes, plan);
		free(d);
		return r;
	}
	if (!(dirs = guestfs_ls(c->g, "/EFI")))
		return -ENOENT;
	for (int pass = 0; pass < 2 && r < 0; pass++)
		for (size_t i = 0; dirs[i] && r < 0; i++) {
			char path[256];
			if (!strcasecmp(dirs[i], "BOOT") || (pass == 0 && strcasecmp(dirs[i], c->res->distro)))
				continue;
			snprintf(path, sizeof(path), "/EFI/%s", dirs[i]);
			r = plan_dir(c, false, path, dir, dir_bytes, plan);
		}
	free_strv(dirs);
	return r;
}

/* "ESP:/EFI/BOOT/BOOTX64.EFI": the changes list names the ESP's files so. */
struct esp_name {
	char p[128];
};

static struct esp_name esp_change_path(const char *path)
{
	struct esp_name n;

	snprintf(n.p, sizeof(n.p), "ESP:%.120s", path);
	return n;
}

/* Copies one file of the plan inside the ESP, backing up what it replaces. */
static int apply_copy(struct inj *c, const struct drvinject_efi_copy *cp)
{
	char from[192], to[96];
	int r;

	snprintf(from, sizeof(from), "/%s", cp->from);
	snprintf(to, sizeof(to), "/%s", cp->to);
	if (c->o->dry_run) {
		inj_change(c, esp_change_path(to).p, "would copy from ESP:%s", from);
		return 0;
	}
	if ((r = inj_backup(c, to)) != 0)
		return r;
	if (guestfs_cp(c->g, from, to) < 0)
		return inj_gfail(c, to);
	inj_change(c, esp_change_path(to).p, "copied from ESP:%s", from);
	return 0;
}

static int write_stub(struct inj *c, const char *uuid, const char *grub_dir)
{
	static const char path[] = "/EFI/BOOT/grub.cfg";
	char stub[512];
	int r;

	if (drvinject_grub_stub(uuid, grub_dir, stub, sizeof(stub)) < 0)
		return inj_fail(c, -EINVAL, "no usable UUID ('%s') for the filesystem holding %s",
				uuid, grub_dir);
	if (!c->o->dry_run) {
		if ((r = inj_backup(c, path)) != 0)
			return r;
		if (guestfs_write(c->g, path, stub, strlen(stub)) < 0)
			return inj_gfail(c, path);
	}
	inj_change(c, esp_change_path(path).p, "%s GRUB stub: search.fs_uuid %s, prefix %s",
		   c->o->dry_run ? "would write a" : "wrote a", uuid, grub_dir);
	return 0;
}

/* With the ESP mounted at /: the fallback path, unless it is there. */
static int make_fallback(struct inj *c, bool windows, const char *uuid, const char *grub_dir)
{
	struct drvinject_efi_plan plan;
	char dir[160];
	char *have = esp_path(c, "EFI/BOOT/BOOTX64.EFI");
	int r;

	if (have) {
		snprintf(c->res->uefi_fallback, sizeof(c->res->uefi_fallback), "already present (%s)", have);
		inj_log(c, "UEFI: %s is already on the ESP: left as it is", have);
		free(have);
		return 0;
	}
	if (choose_loader(c, windows, dir, sizeof(dir), &plan) < 0)
		return inj_fail(c, -ENOENT, "UEFI guest: no boot loader on the ESP to make "
				"\\EFI\\BOOT\\BOOTX64.EFI from (looked for shim, GRUB, systemd-boot%s)",
				windows ? ", bootmgfw.efi" : "");
	snprintf(c->res->uefi_fallback, sizeof(c->res->uefi_fallback), "%s %s from /%.120s",
		 c->o->dry_run ? "would create" : "created", plan.loader, plan.copy[0].from);
	inj_log(c, "UEFI: no fallback path on the ESP: %s from /%s into /EFI/BOOT", plan.loader, dir);
	if (!c->o->dry_run && guestfs_mkdir_p(c->g, "/EFI/BOOT") < 0)
		return inj_gfail(c, "/EFI/BOOT");
	r = 0;
	for (unsigned i = 0; i < plan.n && !r; i++)
		r = apply_copy(c, &plan.copy[i]);
	if (!r && plan.write_stub)
		r = write_stub(c, uuid, grub_dir);
	return r;
}

int drvinject_uefi(struct inj *c)
{
	bool windows = !strcmp(c->res->os_type, "windows");
	char esp[64], uuid[64] = "", grub_dir[32] = "";
	int r = find_esp(c, esp, sizeof(esp));

	if (r || !esp[0])
		return r;
	if (!windows)
		grub_location(c, uuid, sizeof(uuid), grub_dir, sizeof(grub_dir));
	if (guestfs_umount_all(c->g) < 0)
		return inj_gfail(c, "unmounting the guest");
	if ((c->o->dry_run ? guestfs_mount_ro(c->g, esp, "/") : guestfs_mount(c->g, esp, "/")) < 0)
		return inj_gfail(c, "mounting the EFI system partition");
	if (guestfs_is_dir(c->g, "/EFI") != 1) {
		inj_log(c, "UEFI: %s is an EFI system partition without /EFI: nothing to do", esp);
		return 0;
	}
	inj_log(c, "UEFI: EFI system partition %s", esp);
	return make_fallback(c, windows, uuid, grub_dir);
}
