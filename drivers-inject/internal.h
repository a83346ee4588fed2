/* Internal to drvinject: the state of one injection run and the helpers
 * the Linux and Windows halves share. */
#ifndef DRVINJECT_INTERNAL_H
#define DRVINJECT_INTERNAL_H

#include "inject.h"

#include <guestfs.h>

struct inj {
	guestfs_h *g;
	const struct drvinject_opts *o;
	struct drvinject_result *res;
	const char *root;       /* the inspected root filesystem */
	char *err;
	size_t err_bytes;
	/* Linux: grub-mkconfig, deferred to run in the guest beside the first
	 * initramfs build (both are slow in a TCG appliance, and independent) */
	char grub_cmd[256];     /* pending command, "" when none */
	char grub_cfg[64];      /* the file it regenerates, "" when none */
	char grub_tool[64];
	int grub_rc;            /* its exit status once it ran, else -1 */
};

void inj_log(struct inj *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Formats err; returns e (negative). */
int inj_fail(struct inj *c, int e, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
/* "what: <libguestfs's last error>"; returns -EIO. */
int inj_gfail(struct inj *c, const char *what);
void inj_change(struct inj *c, const char *path, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/* Copies path to path.p2v-orig (keeping an older backup). */
int inj_backup(struct inj *c, const char *path);
/* Records one change per differing line of old/new text and, unless dry
 * run, backs the file up and writes new. */
int inj_replace_file(struct inj *c, const char *path, const char *old_text, const char *new_text);
/* The file's content as a NUL-terminated string (NULL when missing: *missing set). */
char *inj_read_text(struct inj *c, const char *path, bool *missing);

int drvinject_linux(struct inj *c);
int drvinject_windows_precheck(struct inj *c);
int drvinject_windows(struct inj *c);
/* After the OS half: the ESP alone at /, \EFI\BOOT\BOOTX64.EFI made when missing. */
int drvinject_uefi(struct inj *c);

#endif
