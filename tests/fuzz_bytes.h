/* Bytes in memory as a disk for the p2v readers' fuzz harnesses: an
 * imgfmt_read_fn that refuses reads outside them (-EIO). */
#ifndef P2V_FUZZ_BYTES_H
#define P2V_FUZZ_BYTES_H

#include <errno.h>
#include <stdint.h>
#include <string.h>

struct fuzz_disk {
	const uint8_t *b;
	size_t size;
};

static inline int fuzz_read(void *opaque, void *buf, uint64_t len, uint64_t off)
{
	const struct fuzz_disk *d = opaque;

	if (off > d->size || len > d->size - off)
		return -EIO;
	memcpy(buf, d->b + off, len);
	return 0;
}

#endif
