/* The source disk: opening it read-only, its size, sector sizes, model and
 * serial number. */
#include "capture.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "driver.h"

/* First line of a small text file, trailing blanks removed; "" if absent. */
static void read_line(const char *path, char *out, size_t out_bytes)
{
	FILE *f = fopen(path, "re");
	size_t n;

	out[0] = 0;
	if (!f)
		return;
	if (!fgets(out, (int)out_bytes, f))
		out[0] = 0;
	fclose(f);
	n = strlen(out);
	while (n && (out[n - 1] == '\n' || out[n - 1] == ' '))
		out[--n] = 0;
}

/* udev's database line "E:KEY=value" for the device, if any. */
static void udev_value(unsigned maj, unsigned min, const char *key, char *out, size_t out_bytes)
{
	char path[64], line[512];
	size_t klen = strlen(key);
	FILE *f;

	snprintf(path, sizeof(path), "/run/udev/data/b%u:%u", maj, min);
	f = fopen(path, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f)) {
		if (!strncmp(line, "E:", 2) && !strncmp(line + 2, key, klen) && line[2 + klen] == '=') {
			snprintf(out, out_bytes, "%s", line + 3 + klen);
			out[strcspn(out, "\n")] = 0;
			break;
		}
	}
	fclose(f);
}

static void disk_identity(struct p2v_disk *d)
{
	char path[128];

	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/device/model", d->dev_major, d->dev_minor);
	read_line(path, d->model, sizeof(d->model));
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/device/serial", d->dev_major, d->dev_minor);
	read_line(path, d->serial, sizeof(d->serial));
	if (!d->serial[0])
		udev_value(d->dev_major, d->dev_minor, "ID_SERIAL_SHORT", d->serial, sizeof(d->serial));
	if (!d->model[0])
		udev_value(d->dev_major, d->dev_minor, "ID_MODEL", d->model, sizeof(d->model));
}

static int disk_block_sizes(struct p2v_disk *d, char *err, size_t err_bytes)
{
	int lss = 0;
	unsigned pbs = 0;

	if (ioctl(d->fd, BLKGETSIZE64, &d->size_bytes) < 0 || ioctl(d->fd, BLKSSZGET, &lss) < 0) {
		snprintf(err, err_bytes, "%s: cannot get the device size: %s", d->path, strerror(errno));
		return -errno;
	}
	if (ioctl(d->fd, BLKPBSZGET, &pbs) < 0)
		pbs = (unsigned)lss;
	if (lss < 512 || lss > 65536 || (lss & (lss - 1))) {
		snprintf(err, err_bytes, "%s: logical sector size %d is not a power of two in 512..65536",
			 d->path, lss);
		return -EINVAL;
	}
	d->logical_sector_bytes = (uint32_t)lss;
	d->physical_sector_bytes = pbs >= (unsigned)lss ? pbs : (uint32_t)lss;
	disk_identity(d);
	return 0;
}

/* An NBD export through imgfmt's libnbd driver: no identity, 512-byte
 * sectors (the protocol's minimum block size is advisory); d->path is the
 * URI without its query, which may name key files. */
static int disk_open_nbd(struct p2v_disk *d, const char *uri, char *err, size_t err_bytes)
{
	struct imgfmt_open_opts oo = { .format = "nbd" };
	char *shown = imgfmt_display_name(uri);
	int r;

	d->fd = -1;
	if (!shown) {
		snprintf(err, err_bytes, "out of memory");
		return -ENOMEM;
	}
	snprintf(d->path, sizeof(d->path), "%s", shown);
	free(shown);
	r = imgfmt_open(&d->img, uri, &oo, err, err_bytes);
	if (r < 0) {
		d->img = NULL;
		return r;
	}
	d->size_bytes = imgfmt_size_bytes(d->img);
	d->logical_sector_bytes = d->physical_sector_bytes = 512;
	return 0;
}

int p2v_disk_open(struct p2v_disk *d, const char *path, bool exclusive, char *err,
		  size_t err_bytes)
{
	struct stat st;
	int r;

	memset(d, 0, sizeof(*d));
	if (imgfmt_is_nbd_uri(path))
		return disk_open_nbd(d, path, err, err_bytes);
	snprintf(d->path, sizeof(d->path), "%s", path);
	d->fd = open(path, O_RDONLY | O_CLOEXEC | (exclusive ? O_EXCL : 0));
	if (d->fd < 0) {
		r = -errno;
		snprintf(err, err_bytes, "%s: %s%s", path, strerror(errno),
			 errno == EBUSY ? " (in use: mounted or opened exclusively)" : "");
		return r;
	}
	if (fstat(d->fd, &st) < 0 || !(S_ISBLK(st.st_mode) || S_ISREG(st.st_mode))) {
		snprintf(err, err_bytes, "%s: not a block device or a regular file", path);
		close(d->fd);
		d->fd = -1;
		return -EINVAL;
	}
	d->is_block_device = S_ISBLK(st.st_mode);
	if (!d->is_block_device) {
		d->size_bytes = (uint64_t)st.st_size;
		d->logical_sector_bytes = d->physical_sector_bytes = 512;
		return 0;
	}
	d->dev_major = major(st.st_rdev);
	d->dev_minor = minor(st.st_rdev);
	r = disk_block_sizes(d, err, err_bytes);
	if (r < 0) {
		close(d->fd);
		d->fd = -1;
	}
	return r;
}

void p2v_disk_close(struct p2v_disk *d)
{
	if (d->fd >= 0)
		close(d->fd);
	d->fd = -1;
	if (d->img)
		imgfmt_close(d->img);
	d->img = NULL;
	free(d->boot);
	d->boot = NULL;
}

int p2v_disk_read(void *opaque, void *buf, uint64_t len_bytes, uint64_t off_bytes)
{
	const struct p2v_disk *d = opaque;

	if (off_bytes > d->size_bytes || len_bytes > d->size_bytes - off_bytes)
		return -EIO;
	if (d->img)
		return imgfmt_pread(d->img, buf, len_bytes, off_bytes);
	return imgfmt_fd_pread(d->fd, buf, len_bytes, off_bytes);
}

const char *p2v_method_name(enum p2v_copy_method m)
{
	switch (m) {
	case P2V_METHOD_USED: return "used-blocks";
	case P2V_METHOD_HEADER: return "header-only";
	case P2V_METHOD_ALL: return "all-sectors";
	case P2V_METHOD_CONTAINER: return "container";
	}
	return "?";
}
