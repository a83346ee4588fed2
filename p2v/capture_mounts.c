/* Which filesystems of the source disk are mounted (from
 * /proc/self/mountinfo, matched by device number against the disk and its
 * partitions through sysfs), and freezing/thawing them. */
#include "capture.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fs.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/sysmacros.h>
#include <unistd.h>

/* The whole disk a block device belongs to (itself when not a partition). */
static void parent_disk(unsigned maj, unsigned min, unsigned *pmaj, unsigned *pmin)
{
	char path[PATH_MAX], real[PATH_MAX], line[64];
	FILE *f;

	*pmaj = maj;
	*pmin = min;
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u/partition", maj, min);
	if (access(path, F_OK) != 0)
		return;
	snprintf(path, sizeof(path), "/sys/dev/block/%u:%u", maj, min);
	if (!realpath(path, real) || strlen(real) + 8 >= sizeof(real))
		return;
	strcat(real, "/../dev");
	f = fopen(real, "re");
	if (!f)
		return;
	if (fgets(line, sizeof(line), f) && sscanf(line, "%u:%u", pmaj, pmin) != 2) {
		*pmaj = maj;
		*pmin = min;
	}
	fclose(f);
}

bool p2v_dev_on_disk(uint64_t dev, unsigned maj, unsigned min)
{
	unsigned pmaj, pmin;

	if (!maj && !min)
		return false;
	if (major(dev) == maj && minor(dev) == min)
		return true;   /* the device itself (also when SRC is a partition) */
	parent_disk(major(dev), minor(dev), &pmaj, &pmin);
	return pmaj == maj && pmin == min;
}

/* mountinfo escapes space, tab, newline and backslash as \ooo. */
static void unescape(char *s)
{
	char *w = s;

	for (char *p = s; *p; p++) {
		if (p[0] == '\\' && p[1] >= '0' && p[1] <= '3' && p[2] >= '0' && p[2] <= '7' &&
		    p[3] >= '0' && p[3] <= '7') {
			*w++ = (char)((p[1] - '0') * 64 + (p[2] - '0') * 8 + (p[3] - '0'));
			p += 3;
		} else {
			*w++ = *p;
		}
	}
	*w = 0;
}

/* Parses one mountinfo line into m; false when malformed. */
static bool parse_mountinfo(char *line, struct p2v_mount *m)
{
	char mp[1024], src[256], sopts[256];
	const char *sep = strstr(line, " - ");

	memset(m, 0, sizeof(*m));
	m->frozen_fd = -1;
	if (!sep || sscanf(line, "%*u %*u %u:%u %*s %1023s", &m->major, &m->minor, mp) != 3)
		return false;
	if (sscanf(sep + 3, "%*s %255s %255s", src, sopts) != 2)
		return false;
	unescape(mp);
	unescape(src);
	snprintf(m->mountpoint, sizeof(m->mountpoint), "%s", mp);
	snprintf(m->source, sizeof(m->source), "%s", src);
	m->read_write = !strncmp(sopts, "rw", 2) && (sopts[2] == ',' || !sopts[2]);
	return true;
}

int p2v_mounts_of_disk(unsigned maj, unsigned min, struct p2v_mounts *out)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[4096];
	struct p2v_mount m;

	out->v = NULL;
	out->n = 0;
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		struct p2v_mount *v;
		if (!parse_mountinfo(line, &m) || !p2v_dev_on_disk(makedev(m.major, m.minor), maj, min))
			continue;
		v = reallocarray(out->v, out->n + 1, sizeof(*v));
		if (!v) {
			fclose(f);
			p2v_mounts_free(out);
			return -ENOMEM;
		}
		out->v = v;
		out->v[out->n++] = m;
	}
	fclose(f);
	return 0;
}

void p2v_mounts_free(struct p2v_mounts *m)
{
	free(m->v);
	m->v = NULL;
	m->n = 0;
}

/* Freezes each read-write filesystem once (bind mounts share a device). */
int p2v_mounts_freeze(struct p2v_mounts *m, char *err, size_t err_bytes)
{
	for (size_t i = 0; i < m->n; i++) {
		bool done = false;
		if (!m->v[i].read_write)
			continue;
		for (size_t j = 0; j < i; j++)
			done |= m->v[j].frozen_fd >= 0 && m->v[j].major == m->v[i].major &&
				m->v[j].minor == m->v[i].minor;
		if (done)
			continue;
		m->v[i].frozen_fd = open(m->v[i].mountpoint, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (m->v[i].frozen_fd >= 0 && ioctl(m->v[i].frozen_fd, FIFREEZE, 0) == 0)
			continue;
		int e = errno;
		snprintf(err, err_bytes, "cannot freeze %s (%s): %s", m->v[i].mountpoint,
			 m->v[i].source, strerror(e));
		if (m->v[i].frozen_fd >= 0)
			close(m->v[i].frozen_fd);
		m->v[i].frozen_fd = -1;
		p2v_mounts_thaw(m);
		return -e;
	}
	return 0;
}

void p2v_mounts_thaw(struct p2v_mounts *m)
{
	for (size_t i = 0; i < m->n; i++) {
		if (m->v[i].frozen_fd < 0)
			continue;
		if (ioctl(m->v[i].frozen_fd, FITHAW, 0) < 0)
			fprintf(stderr, "p2v: warning: cannot thaw %s: %s\n", m->v[i].mountpoint,
				strerror(errno));
		close(m->v[i].frozen_fd);
		m->v[i].frozen_fd = -1;
	}
}
