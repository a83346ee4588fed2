/* Small helpers shared by the core and the drivers: fd I/O, sizes, zero
 * detection, CRC-32C, info lines. */
#include "driver.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

/* Read len bytes at off; at end of file fail (-EIO) or zero-fill. */
static int fd_pread_full(int fd, void *buf, size_t len, uint64_t off, bool zfill)
{
	uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0) {
			if (!zfill)
				return -EIO;
			memset(p, 0, len);
			return 0;
		}
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int imgfmt_fd_pread(int fd, void *buf, size_t len, uint64_t off)
{
	return fd_pread_full(fd, buf, len, off, false);
}

int imgfmt_fd_pread_zfill(int fd, void *buf, size_t len, uint64_t off)
{
	return fd_pread_full(fd, buf, len, off, true);
}

int imgfmt_fd_pwrite(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;

	while (len > 0) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -ENOSPC;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

/* Start writeback of what was written since the last kick, and wait for
 * the span kicked before it, dropping its now clean pages: the device sees
 * a deep queue of large writes while the copy goes on, and the copy reuses
 * a few windows of page cache instead of dirtying gigabytes. */
static int writeback_kick(struct imgfmt_image *img)
{
	struct imgfmt_writeback *wb = &img->wb;
	const unsigned wait = SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
			      SYNC_FILE_RANGE_WAIT_AFTER;

	if (wb->prev_hi > wb->prev_lo) {
		if (sync_file_range(img->fd, (off_t)wb->prev_lo, (off_t)(wb->prev_hi - wb->prev_lo), wait) < 0 &&
		    errno != EINVAL && errno != ESPIPE)
			return -errno;
		posix_fadvise(img->fd, (off_t)wb->prev_lo, (off_t)(wb->prev_hi - wb->prev_lo),
			      POSIX_FADV_DONTNEED);
	}
	if (sync_file_range(img->fd, (off_t)wb->lo, (off_t)(wb->hi - wb->lo), SYNC_FILE_RANGE_WRITE) < 0 &&
	    errno != EINVAL && errno != ESPIPE)
		return -errno;
	wb->prev_lo = wb->lo;
	wb->prev_hi = wb->hi;
	wb->bytes = 0;
	return 0;
}

int imgfmt_data_pwrite(struct imgfmt_image *img, const void *buf, size_t len, uint64_t off)
{
	struct imgfmt_writeback *wb = &img->wb;
	int r = imgfmt_fd_pwrite(img->fd, buf, len, off);

	if (r < 0)
		return r;
	if (!wb->bytes || off < wb->lo)
		wb->lo = off;
	if (!wb->bytes || off + len > wb->hi)
		wb->hi = off + len;
	wb->bytes += len;
	return wb->bytes >= IMGFMT_WRITEBACK_WINDOW_BYTES ? writeback_kick(img) : 0;
}

int imgfmt_fd_size(int fd, uint64_t *size_bytes)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISBLK(st.st_mode)) {
		uint64_t sz;
		if (ioctl(fd, BLKGETSIZE64, &sz) < 0)
			return -errno;
		*size_bytes = sz;
		return 0;
	}
	*size_bytes = (uint64_t)st.st_size;
	return 0;
}

int imgfmt_parse_size(const char *s, uint64_t *out_bytes)
{
	char *end;
	unsigned shift = 0;
	long double v;

	if (!s || !*s || *s == '-' || isspace((unsigned char)*s))
		return -EINVAL;
	errno = 0;
	v = strtold(s, &end);
	if (errno || end == s)
		return -EINVAL;
	switch (toupper((unsigned char)*end)) {
	case 0: break;
	case 'B': shift = 0; break;
	case 'K': shift = 10; break;
	case 'M': shift = 20; break;
	case 'G': shift = 30; break;
	case 'T': shift = 40; break;
	case 'P': shift = 50; break;
	case 'E': shift = 60; break;
	default: return -EINVAL;
	}
	if (*end) {
		end++;
		if (toupper((unsigned char)*end) == 'I' && toupper((unsigned char)end[1]) == 'B')
			end += 2;
		else if (toupper((unsigned char)*end) == 'B')
			end++;
	}
	if (*end)
		return -EINVAL;
	v *= (long double)((uint64_t)1 << shift);
	if (v < 0 || v >= 18446744073709551616.0L)
		return -ERANGE;
	if (v != (long double)(uint64_t)v)
		return -EINVAL; /* fractional bytes */
	*out_bytes = (uint64_t)v;
	return 0;
}

void imgfmt_fd_block_status(int fd, bool is_block_device, uint64_t off, uint64_t len,
			    struct imgfmt_extent *ext)
{
	off_t data, hole;

	ext->type = IMGFMT_EXTENT_DATA;
	ext->length_bytes = len;
	if (is_block_device)
		return;
	data = lseek(fd, (off_t)off, SEEK_DATA);
	if (data < 0) {
		if (errno == ENXIO) /* only a hole from off to the end */
			ext->type = IMGFMT_EXTENT_HOLE;
		return; /* or no SEEK_DATA support: call it data */
	}
	if ((uint64_t)data > off) {
		ext->type = IMGFMT_EXTENT_HOLE;
		ext->length_bytes = (uint64_t)data - off < len ? (uint64_t)data - off : len;
		return;
	}
	hole = lseek(fd, (off_t)off, SEEK_HOLE);
	if (hole > (off_t)off && (uint64_t)hole - off < len)
		ext->length_bytes = (uint64_t)hole - off;
}

bool imgfmt_is_zero(const void *buf, size_t len)
{
	const uint8_t *p = buf;
	size_t head = len < 16 ? len : 16;

	for (size_t i = 0; i < head; i++)
		if (p[i])
			return false;
	if (len <= 16)
		return true;
	/* The first 16 bytes are zero: memcmp against a shifted self checks the rest. */
	return memcmp(p, p + 16, len - 16) == 0;
}

/* CRC-32C (Castagnoli), slicing-by-1 with a table built on first use per call
 * site would be global state; compute the table at compile time instead. */
#define CRC32C_POLY 0x82F63B78u
#define T1(c) (((c) & 1) ? (((c) >> 1) ^ CRC32C_POLY) : ((c) >> 1))
#define T8(c) T1(T1(T1(T1(T1(T1(T1(T1(c))))))))
#define R4(n) T8(n), T8(n + 1), T8(n + 2), T8(n + 3)
#define R16(n) R4(n), R4(n + 4), R4(n + 8), R4(n + 12)
#define R64(n) R16(n), R16(n + 16), R16(n + 32), R16(n + 48)
static const uint32_t crc32c_table[256] = {
	R64(0u), R64(64u), R64(128u), R64(192u),
};

uint32_t imgfmt_crc32c(uint32_t crc, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	crc = ~crc;
	while (len--)
		crc = crc32c_table[(crc ^ *p++) & 0xff] ^ (crc >> 8);
	return ~crc;
}

void imgfmt_info_add(struct imgfmt_info *info, const char *key, bool is_number,
		     const char *fmt, ...)
{
	va_list ap;

	if (info->n_extra >= IMGFMT_INFO_EXTRA)
		return;
	snprintf(info->extra[info->n_extra].key, sizeof(info->extra[0].key), "%s", key);
	va_start(ap, fmt);
	vsnprintf(info->extra[info->n_extra].val, sizeof(info->extra[0].val), fmt, ap);
	va_end(ap);
	info->extra[info->n_extra].is_number = is_number;
	info->n_extra++;
}
