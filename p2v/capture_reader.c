/* Reading the source disk with retries: a failed read is retried, then
 * split in halves down to the logical sector size; sectors that still fail
 * read as zeroes and are recorded as lost.  The copy engine may call this
 * from several threads, so the lost-range list is under a mutex.
 *
 * Test hook (only for when device-mapper is unavailable):
 * P2V_TEST_BAD_SECTORS=START-END makes reads touching 512-byte sectors
 * START..END-1 fail with EIO. */
#include "capture.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "driver.h"

static void reader_test_hook(struct p2v_reader *r)
{
	const char *s = getenv("P2V_TEST_BAD_SECTORS");
	uint64_t start, end;

	if (s && sscanf(s, "%" SCNu64 "-%" SCNu64, &start, &end) == 2 && end > start &&
	    end < UINT64_MAX / 512) {
		r->test_bad.off_bytes = start * 512;
		r->test_bad.len_bytes = (end - start) * 512;
	}
}

int p2v_reader_init(struct p2v_reader *r, int fd, uint32_t sector_bytes, uint64_t max_errors)
{
	memset(r, 0, sizeof(*r));
	r->fd = fd;
	r->direct_fd = -1;
	r->sector_bytes = sector_bytes;
	r->retries = 2;
	r->max_errors = max_errors;
	r->record = true;
	p2v_rangemap_init(&r->lost);
	reader_test_hook(r);
	/* Mostly sequential: a larger readahead window (advice only). */
	posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	return -pthread_mutex_init(&r->lock, NULL);
}

void p2v_reader_use_direct(struct p2v_reader *r, const char *path)
{
	int fd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);

	if (fd < 0)
		return;
	if (posix_memalign(&r->bounce, r->sector_bytes < 4096 ? 4096 : r->sector_bytes,
			   r->sector_bytes) != 0) {
		r->bounce = NULL;
		close(fd);
		return;
	}
	r->direct_fd = fd;
}

void p2v_reader_destroy(struct p2v_reader *r)
{
	if (r->direct_fd >= 0)
		close(r->direct_fd);
	free(r->bounce);
	pthread_mutex_destroy(&r->lock);
	p2v_rangemap_free(&r->lost);
}

static int read_once(struct p2v_reader *r, void *buf, uint64_t len, uint64_t off)
{
	const struct p2v_range *bad = &r->test_bad;

	if (bad->len_bytes && off < bad->off_bytes + bad->len_bytes && bad->off_bytes < off + len)
		return -EIO;
	if (r->img)
		return imgfmt_pread(r->img, buf, len, off);
	return imgfmt_fd_pread(r->fd, buf, len, off);
}

/* One sector (or the short tail) through O_DIRECT when available. */
static int read_sector(struct p2v_reader *r, void *buf, uint64_t len, uint64_t off)
{
	const struct p2v_range *bad = &r->test_bad;
	ssize_t n;

	if (r->direct_fd < 0 || len != r->sector_bytes || off % r->sector_bytes)
		return read_once(r, buf, len, off);
	if (bad->len_bytes && off < bad->off_bytes + bad->len_bytes && bad->off_bytes < off + len)
		return -EIO;
	do
		n = pread(r->direct_fd, r->bounce, len, (off_t)off);
	while (n < 0 && errno == EINTR);
	if (n != (ssize_t)len)
		return n < 0 ? -errno : -EIO;
	memcpy(buf, r->bounce, len);
	return 0;
}

static int read_retry(struct p2v_reader *r, void *buf, uint64_t len, uint64_t off)
{
	int rc = read_once(r, buf, len, off);

	for (unsigned i = 0; rc < 0 && rc != -ENOMEM && i < r->retries; i++)
		rc = len <= r->sector_bytes ? read_sector(r, buf, len, off) : read_once(r, buf, len, off);
	return rc;
}

static int record_lost(struct p2v_reader *r, uint64_t len, uint64_t off)
{
	int rc;

	if (!r->record)
		return 0;
	pthread_mutex_lock(&r->lock);
	r->n_errors++;
	rc = p2v_rangemap_add(&r->lost, off, len);
	if (rc == 0 && r->max_errors && r->n_errors > r->max_errors)
		rc = -EIO;
	pthread_mutex_unlock(&r->lock);
	return rc;
}

/* Reads [off, off+len) that just failed as a whole: halves, down to sectors. */
static int read_narrow(struct p2v_reader *r, uint8_t *buf, uint64_t len, uint64_t off)
{
	uint64_t half;
	int rc;

	if (len <= r->sector_bytes) {
		if (read_retry(r, buf, len, off) == 0)
			return 0;
		memset(buf, 0, len);
		return record_lost(r, len, off);
	}
	half = (len / 2 + r->sector_bytes - 1) / r->sector_bytes * r->sector_bytes;
	if (half >= len)
		half = len - r->sector_bytes;
	rc = read_once(r, buf, half, off);
	if (rc < 0)
		rc = read_narrow(r, buf, half, off);
	if (rc < 0)
		return rc;
	rc = read_once(r, buf + half, len - half, off + half);
	if (rc < 0)
		rc = read_narrow(r, buf + half, len - half, off + half);
	return rc;
}

int p2v_reader_read(void *opaque, void *buf, uint64_t len_bytes, uint64_t off_bytes)
{
	struct p2v_reader *r = opaque;
	int rc = read_retry(r, buf, len_bytes, off_bytes);

	if (rc == 0 || rc == -ENOMEM)
		return rc;
	return read_narrow(r, buf, len_bytes, off_bytes);
}
