/* Fuzz harness for the FAT used-cluster reader: the input is the partition.
 * Every range the reader emits must lie inside it. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "capture.h"

struct fuzz_disk {
	const uint8_t *b;
	size_t size;
};

static int fuzz_read(void *opaque, void *buf, uint64_t len, uint64_t off)
{
	const struct fuzz_disk *d = opaque;

	if (off > d->size || len > d->size - off)
		return -EIO;
	memcpy(buf, d->b + off, len);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_disk d = { data, size };
	struct p2v_rangemap m;
	struct p2v_fsmap_ctx ctx = {
		.read = fuzz_read, .read_opaque = &d, .part_off_bytes = 0, .part_bytes = size, .map = &m,
	};

	p2v_rangemap_init(&m);
	if (p2v_fsmap_fat(&ctx) == 0) {
		p2v_rangemap_normalize(&m);
		for (size_t i = 0; i < m.n; i++)
			if (m.v[i].off_bytes + m.v[i].len_bytes > size)
				abort();
	}
	p2v_rangemap_free(&m);
	return 0;
}
