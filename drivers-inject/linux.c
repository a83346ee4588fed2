/* The Linux half: virtio drivers into every initramfs with the guest's own
 * tool, device names to UUID= in fstab, crypttab and the bootloader. */
#include "internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GUEST_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

/* virtio_pci first: the order is the load order in initramfs-tools. */
static const char *const virtio_modules[] = {
	"virtio_pci", "virtio_blk", "virtio_scsi", "virtio_net", "virtio_console",
};
enum { NR_VIRTIO_MODULES = sizeof(virtio_modules) / sizeof(virtio_modules[0]) };
static const char virtio_list[] = "virtio_pci virtio_blk virtio_scsi virtio_net virtio_console";

static void free_strv(char **v)
{
	for (size_t i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

/* Kernel versions go into shell command lines: allow only what they use. */
static bool kernel_version_ok(const char *v)
{
	if (!v[0] || strlen(v) >= sizeof(((struct drvinject_result *)0)->kernels[0]))
		return false;
	for (const char *p = v; *p; p++)
		if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._+-~", *p))
			return false;
	return true;
}

static int find_kernels(struct inj *c)
{
	struct drvinject_result *r = c->res;
	char **vers = guestfs_ls(c->g, "/lib/modules");
	if (!vers)
		return inj_gfail(c, "listing /lib/modules");
	for (size_t i = 0; vers[i]; i++) {
		char dep[256];
		snprintf(dep, sizeof(dep), "/lib/modules/%s/modules.dep", vers[i]);
		if (!kernel_version_ok(vers[i]) || guestfs_is_file(c->g, dep) != 1)
			continue;
		if (r->nr_kernels == DRVINJECT_MAX_KERNELS) {
			inj_log(c, "more than %d kernels: ignoring %s", DRVINJECT_MAX_KERNELS, vers[i]);
			continue;
		}
		snprintf(r->kernels[r->nr_kernels++], sizeof(r->kernels[0]), "%s", vers[i]);
	}
	free_strv(vers);
	if (!r->nr_kernels)
		return inj_fail(c, -ENOENT, "no installed kernel found in /lib/modules");
	return 0;
}

static bool guest_has(struct inj *c, const char *path)
{
	return guestfs_exists(c->g, path) == 1;
}

static const char *first_existing(struct inj *c, const char *const *paths, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (guest_has(c, paths[i]))
			return paths[i];
	return NULL;
}

/* Runs a shell command in the guest; its output (malloc'd) or NULL. */
static char *guest_sh(struct inj *c, const char *cmd)
{
	char line[2048];
	snprintf(line, sizeof(line), "export " GUEST_PATH "; %s", cmd);
	inj_log(c, "running in the guest: %s", cmd);
	char *out = guestfs_sh(c->g, line);
	if (!out)
		inj_gfail(c, cmd);
	return out;
}

/* Is `word` alone on a line of text (surrounding blanks allowed)? */
static bool has_line(const char *text, const char *word)
{
	size_t n = strlen(word);
	const char *line = text;
	while (line) {
		line += strspn(line, " \t");
		if (!strncmp(line, word, n) && strchr(" \t\n", line[n]))
			return true;
		line = strchr(line, '\n');
		if (line)
			line++;
	}
	return false;
}

/* Appends the missing virtio modules, one per line, to a module list file. */
static int add_module_lines(struct inj *c, const char *path)
{
	bool missing;
	char *old = inj_read_text(c, path, &missing);
	if (!old && !missing)
		return -EIO;
	const char *base = old ? old : "";
	size_t len = strlen(base), cap = len + sizeof(virtio_list) + 8;
	char *text = malloc(cap);
	if (!text) {
		free(old);
		return inj_fail(c, -ENOMEM, "out of memory");
	}
	memcpy(text, base, len + 1);
	if (len && text[len - 1] != '\n')
		strcat(text, "\n");
	for (size_t i = 0; i < NR_VIRTIO_MODULES; i++) {
		if (has_line(base, virtio_modules[i]))
			continue;
		strcat(text, virtio_modules[i]);
		strcat(text, "\n");
	}
	int r = inj_replace_file(c, path, base, text);
	free(old);
	free(text);
	return r;
}

/* Checks that the rebuilt initramfs holds virtio_blk (list_cmd lists it). */
static int verify_initramfs(struct inj *c, const char *ver, const char *list_cmd,
			    const char *initrd)
{
	char cmd[512];
	snprintf(cmd, sizeof(cmd), "%s %s | grep -o 'virtio[a-z_]*\\.ko' | sort -u | tr '\\n' ' '",
		 list_cmd, initrd);
	char *out = guest_sh(c, cmd);
	if (!out)
		return -EIO;
	int r = 0;
	if (!strstr(out, "virtio_blk.ko"))
		r = inj_fail(c, -EIO, "%s: rebuilt for %s but still without virtio_blk (has: %s)",
			     initrd, ver, out[0] ? out : "no virtio module");
	else
		inj_change(c, initrd, "rebuilt for %s; now carries %s", ver, out);
	free(out);
	return r;
}

/* The build command, with a pending grub-mkconfig started beside it; its
 * status comes back as a "p2v-grub-rc=N" line. */
static void with_grub(struct inj *c, const char *build_cmd, char *cmd, size_t cmd_bytes)
{
	if (!c->grub_cmd[0]) {
		snprintf(cmd, cmd_bytes, "%s", build_cmd);
		return;
	}
	snprintf(cmd, cmd_bytes,
		 "(%s >/dev/null 2>/tmp/.p2v-grub.err; echo $? >/tmp/.p2v-grub.rc) & %s; b=$?; wait; "
		 "echo p2v-grub-rc=$(cat /tmp/.p2v-grub.rc 2>/dev/null || echo 127); "
		 "rm -f /tmp/.p2v-grub.rc /tmp/.p2v-grub.err; exit $b",
		 c->grub_cmd, build_cmd);
}

static void grub_result(struct inj *c, const char *out)
{
	const char *rc = out ? strstr(out, "p2v-grub-rc=") : NULL;

	if (!c->grub_cmd[0])
		return;
	c->grub_rc = rc ? atoi(rc + strlen("p2v-grub-rc=")) : 127;
	c->grub_cmd[0] = '\0';
}

static int rebuild_initramfs(struct inj *c, const char *ver, const char *initrd,
			     const char *build_cmd, const char *list_cmd)
{
	char cmd[1024];

	if (c->o->dry_run) {
		inj_change(c, initrd, "would rebuild for %s with %s to add %s", ver,
			   c->res->initramfs_tool, virtio_list);
		return 0;
	}
	if (guest_has(c, initrd)) {
		int r = inj_backup(c, initrd);
		if (r)
			return r;
	}
	with_grub(c, build_cmd, cmd, sizeof(cmd));
	char *out = guest_sh(c, cmd);
	grub_result(c, out);
	if (!out)
		return -EIO;
	free(out);
	if (!list_cmd) {
		inj_change(c, initrd, "rebuilt for %s with %s", ver, c->res->initramfs_tool);
		return 0;
	}
	return verify_initramfs(c, ver, list_cmd, initrd);
}

static int initramfs_tools(struct inj *c)
{
	int r = add_module_lines(c, "/etc/initramfs-tools/modules");
	for (unsigned i = 0; i < c->res->nr_kernels && !r; i++) {
		const char *v = c->res->kernels[i];
		char initrd[128], cmd[256];
		snprintf(initrd, sizeof(initrd), "/boot/initrd.img-%s", v);
		snprintf(cmd, sizeof(cmd), "update-initramfs -u -k %s", v);
		r = rebuild_initramfs(c, v, initrd, cmd, "lsinitramfs");
	}
	return r;
}

static int dracut(struct inj *c)
{
	char conf[160];
	snprintf(conf, sizeof(conf), "# written by p2v inject\nadd_drivers+=\" %s \"\n", virtio_list);
	int r = inj_replace_file(c, "/etc/dracut.conf.d/p2v-virtio.conf", "", conf);
	for (unsigned i = 0; i < c->res->nr_kernels && !r; i++) {
		const char *v = c->res->kernels[i];
		char initrd[128], cmd[384];
		snprintf(initrd, sizeof(initrd), "/boot/initramfs-%s.img", v);
		if (!guest_has(c, initrd))
			snprintf(initrd, sizeof(initrd), "/boot/initrd.img-%s", v);
		snprintf(cmd, sizeof(cmd), "dracut -f --add-drivers '%s' %s %s", virtio_list, initrd, v);
		r = rebuild_initramfs(c, v, initrd, cmd, "lsinitrd");
	}
	return r;
}

/* MODULES=(...) in /etc/mkinitcpio.conf; mkinitcpio -P rebuilds every preset
 * (each preset names its kernel file, so the running kernel plays no part). */
static int mkinitcpio(struct inj *c)
{
	bool missing;
	char *old = inj_read_text(c, "/etc/mkinitcpio.conf", &missing);
	if (!old)
		return missing ? inj_fail(c, -ENOENT, "/etc/mkinitcpio.conf is missing") : -EIO;
	char *line = strstr(old, "\nMODULES=(");
	char *text = NULL;
	int r = 0;
	if (!line)
		r = inj_fail(c, -EINVAL, "/etc/mkinitcpio.conf has no MODULES=(...) line");
	else if (asprintf(&text, "%.*s\nMODULES=(%s %s", (int)(line - old), old, virtio_list,
			  line + 10) < 0)
		r = inj_fail(c, -ENOMEM, "out of memory");
	if (!r && !strstr(old, "virtio_blk"))
		r = inj_replace_file(c, "/etc/mkinitcpio.conf", old, text);
	free(old);
	free(text);
	if (!r)
		r = rebuild_initramfs(c, c->res->kernels[0], "/boot/initramfs-linux.img",
				      "mkinitcpio -P", NULL);
	return r;
}

static int add_virtio_to_initramfs(struct inj *c)
{
	char *tool = c->res->initramfs_tool;
	size_t tool_bytes = sizeof(c->res->initramfs_tool);
	if (guest_has(c, "/usr/sbin/update-initramfs") || guest_has(c, "/sbin/update-initramfs")) {
		snprintf(tool, tool_bytes, "initramfs-tools");
		return initramfs_tools(c);
	}
	if (guest_has(c, "/usr/bin/dracut") || guest_has(c, "/usr/sbin/dracut") ||
	    guest_has(c, "/sbin/dracut")) {
		snprintf(tool, tool_bytes, "dracut");
		return dracut(c);
	}
	if (guest_has(c, "/usr/bin/mkinitcpio")) {
		snprintf(tool, tool_bytes, "mkinitcpio");
		return mkinitcpio(c);
	}
	return inj_fail(c, -ENOTSUP,
			"no initramfs tool found in the guest (initramfs-tools, dracut, mkinitcpio)");
}

/* ---- device names to UUID= ---- */

struct devmap {
	struct drvinject_devmap *map;
	char **strings;   /* what map[] points to, for freeing */
	size_t len;
};

static void devmap_free(struct devmap *m)
{
	free_strv(m->strings);
	free(m->map);
}

static int build_devmap(struct inj *c, struct devmap *m)
{
	char **fs = guestfs_list_filesystems(c->g);
	if (!fs)
		return inj_gfail(c, "listing filesystems");
	size_t n = 0;
	while (fs[2 * n])
		n++;
	m->map = calloc(n + 1, sizeof(*m->map));
	m->strings = calloc(2 * n + 1, sizeof(char *));
	if (!m->map || !m->strings) {
		free_strv(fs);
		return inj_fail(c, -ENOMEM, "out of memory");
	}
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		char *dev = fs[2 * i], *type = fs[2 * i + 1];
		char *uuid = strcmp(type, "unknown") ? guestfs_vfs_uuid(c->g, dev) : NULL;
		if (!uuid || !uuid[0]) {
			free(uuid);
			continue;
		}
		inj_log(c, "%s (%s) is UUID=%s", dev, type, uuid);
		m->strings[2 * k] = strdup(dev);
		m->strings[2 * k + 1] = uuid;
		m->map[k] = (struct drvinject_devmap){ m->strings[2 * k], uuid };
		k++;
	}
	m->len = k;
	free_strv(fs);
	return 0;
}

/* Rewrites one text file with the pure functions; missing files are fine. */
static int edit_file(struct inj *c, const char *path, enum drvinject_text_kind kind,
		     const struct devmap *m, bool serial)
{
	bool missing;
	char *old = inj_read_text(c, path, &missing);
	if (!old)
		return missing ? 0 : -EIO;
	char *mid = NULL, *text = NULL;
	unsigned n1, n2 = 0;
	int r = drvinject_rewrite_devices(old, kind, m->map, m->len, &mid, &n1);
	if (!r && serial)
		r = drvinject_add_serial_console(mid, &text, &n2);
	if (r)
		r = inj_fail(c, r, "%s: rewriting: %s", path, strerror(-r));
	else
		r = inj_replace_file(c, path, old, text ? text : mid);
	free(old);
	free(mid);
	free(text);
	return r;
}

/* grub.cfg: regenerated by the guest's grub-mkconfig (deferred: it runs
 * beside the initramfs build), else edited here. */
static int plan_grub_cfg(struct inj *c, const char *cfg, const struct devmap *m)
{
	static const char *const tools[] = {
		"/usr/sbin/grub-mkconfig", "/usr/sbin/grub2-mkconfig", "/sbin/grub-mkconfig",
		"/sbin/grub2-mkconfig",
	};
	const char *tool = first_existing(c, tools, sizeof(tools) / sizeof(tools[0]));
	int r;

	if (tool && c->o->dry_run)
		inj_change(c, cfg, "would regenerate with %s", tool);
	if (!tool || c->o->dry_run)
		return edit_file(c, cfg, DRVINJECT_KERNEL_CMDLINE, m, c->o->serial_console && !tool);
	if ((r = inj_backup(c, cfg)) != 0)
		return r;
	snprintf(c->grub_cfg, sizeof(c->grub_cfg), "%s", cfg);
	snprintf(c->grub_tool, sizeof(c->grub_tool), "%s", tool);
	snprintf(c->grub_cmd, sizeof(c->grub_cmd), "%s -o %s", tool, cfg);
	return 0;
}

/* After grub-mkconfig ran (or when nothing else ran it): only the names it
 * left behind are edited; if it failed, all of them, plus the serial
 * console it would have taken from /etc/default/grub. */
static int finish_grub_cfg(struct inj *c, const struct devmap *m)
{
	bool ok;

	if (!c->grub_cfg[0])
		return 0;
	if (c->grub_cmd[0]) { /* no initramfs build took it along */
		char *out = guest_sh(c, c->grub_cmd);
		c->grub_rc = out ? 0 : 1;
		c->grub_cmd[0] = '\0';
		free(out);
	}
	ok = c->grub_rc == 0;
	if (ok)
		inj_change(c, c->grub_cfg, "regenerated with %s", c->grub_tool);
	else
		inj_log(c, "%s failed (status %d): editing %s instead", c->grub_tool, c->grub_rc,
			c->grub_cfg);
	return edit_file(c, c->grub_cfg, DRVINJECT_KERNEL_CMDLINE, m, c->o->serial_console && !ok);
}

static int fix_device_names(struct inj *c, const struct devmap *m)
{
	static const char *const grub_cfgs[] = { "/boot/grub/grub.cfg", "/boot/grub2/grub.cfg" };
	static const char *const syslinux[] = {
		"/boot/syslinux/syslinux.cfg", "/boot/extlinux/extlinux.conf", "/boot/extlinux.conf",
		"/syslinux.cfg", "/extlinux.conf",
	};
	int r = edit_file(c, "/etc/fstab", DRVINJECT_FSTAB, m, false);
	if (!r)
		r = edit_file(c, "/etc/crypttab", DRVINJECT_CRYPTTAB, m, false);
	if (!r)
		r = edit_file(c, "/etc/default/grub", DRVINJECT_KERNEL_CMDLINE, m,
			      c->o->serial_console);
	for (size_t i = 0; i < sizeof(grub_cfgs) / sizeof(grub_cfgs[0]) && !r && !c->grub_cfg[0]; i++)
		if (guest_has(c, grub_cfgs[i]))
			r = plan_grub_cfg(c, grub_cfgs[i], m);
	for (size_t i = 0; i < sizeof(syslinux) / sizeof(syslinux[0]) && !r; i++)
		r = edit_file(c, syslinux[i], DRVINJECT_KERNEL_CMDLINE, m, c->o->serial_console);
	return r;
}

int drvinject_linux(struct inj *c)
{
	struct devmap m = { 0 };
	int r = find_kernels(c);
	if (r)
		return r;
	for (unsigned i = 0; i < c->res->nr_kernels; i++)
		inj_log(c, "kernel %s", c->res->kernels[i]);
	c->grub_rc = -1;
	/* Names first: update-initramfs reads fstab (resume, root fsck). */
	r = build_devmap(c, &m);
	if (!r)
		r = fix_device_names(c, &m);
	if (!r)
		r = add_virtio_to_initramfs(c);
	if (!r)
		r = finish_grub_cfg(c, &m);
	devmap_free(&m);
	return r;
}
